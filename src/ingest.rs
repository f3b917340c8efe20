//! Incremental ingest: makes a scope of a collection hold exactly a set of
//! documents, embedding only those whose text, payload or model changed.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::bm25::Bm25;
use crate::embed::{Embedder, TextKind};
use crate::store::{Collection, Filter, Point};

/// A text to store, with its payload.
#[derive(Debug, Clone)]
pub struct Document {
    /// Unique within the tenant and scope; the point id derives from it.
    pub key: String,
    /// What is embedded.
    pub text: String,
    pub language: String,
    pub payload: Map<String, Value>,
}

/// What an ingest changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Texts embedded per call: bounds memory and keeps progress steady.
const EMBED_BATCH: usize = 32;

/// Makes the points matching `scope` equal `documents`, embedded as `kind`.
/// Every stored payload gets `tenant`, `language` and a `fingerprint` of
/// model, text and payload.
pub fn sync_documents(
    collection: &dyn Collection,
    embedder: &dyn Embedder,
    kind: TextKind,
    bm25: Option<&Bm25>,
    tenant: &str,
    scope: &Filter,
    documents: &[Document],
) -> anyhow::Result<IngestReport> {
    let stored: HashMap<u64, String> = collection
        .scroll(scope)?
        .into_iter()
        .map(|p| {
            let fingerprint = p
                .payload
                .get("fingerprint")
                .and_then(Value::as_str)
                .unwrap_or("");
            (p.id, fingerprint.to_string())
        })
        .collect();
    let mut report = IngestReport::default();
    let mut changed = Vec::new();
    let mut wanted = HashSet::new();
    for document in documents {
        let id = point_id(tenant, &document.key);
        wanted.insert(id);
        let fingerprint = fingerprint(embedder.model_id(), kind, document);
        match stored.get(&id) {
            Some(old) if *old == fingerprint => report.unchanged += 1,
            Some(_) => {
                report.updated += 1;
                changed.push((id, document, fingerprint));
            }
            None => {
                report.added += 1;
                changed.push((id, document, fingerprint));
            }
        }
    }
    for batch in changed.chunks(EMBED_BATCH) {
        let texts: Vec<&str> = batch.iter().map(|(_, d, _)| d.text.as_str()).collect();
        let vectors = embedder.embed(&texts, kind)?;
        let points = batch
            .iter()
            .zip(vectors)
            .map(|((id, document, fingerprint), dense)| {
                let mut payload = document.payload.clone();
                payload.insert("tenant".into(), tenant.into());
                payload.insert("language".into(), document.language.clone().into());
                payload.insert("fingerprint".into(), fingerprint.clone().into());
                Point {
                    id: *id,
                    dense,
                    sparse: bm25.map(|bm25| bm25.document(&document.language, &document.text)),
                    payload,
                }
            })
            .collect();
        collection.upsert(points)?;
    }
    let removed: Vec<u64> = stored
        .keys()
        .filter(|id| !wanted.contains(id))
        .copied()
        .collect();
    report.removed = removed.len();
    collection.delete(&removed)?;
    Ok(report)
}

fn fingerprint(model_id: &str, kind: TextKind, document: &Document) -> String {
    let kind = format!("{kind:?}");
    let mut hash = Sha256::new();
    for part in [
        model_id,
        &kind,
        &document.key,
        &document.text,
        &document.language,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(serde_json::to_vec(&document.payload).unwrap_or_default());
    format!("{:x}", hash.finalize())
}

/// Tenant under which the shipped labelled examples are stored.
pub const SEED_TENANT: &str = "_seed";

/// Makes the shipped labelled examples of payload `kind` equal `documents`,
/// embedded as queries (they are compared with inquiries like for like).
pub fn sync_seed_examples(
    collection: &dyn Collection,
    embedder: &dyn Embedder,
    kind: &str,
    documents: &[Document],
) -> anyhow::Result<IngestReport> {
    let scope = Filter::default()
        .field("tenant", SEED_TENANT)
        .field("kind", kind);
    sync_documents(
        collection,
        embedder,
        TextKind::Query,
        None,
        SEED_TENANT,
        &scope,
        documents,
    )
}

/// A stable point id for a tenant's document key.
pub fn point_id(tenant: &str, key: &str) -> u64 {
    let digest = Sha256::digest(format!("{tenant}\u{0}{key}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Kept below 2^63 so JSON clients that read numbers as i64 see them intact.
    u64::from_le_bytes(bytes) >> 1
}

//! The embedded backend: one qdrant-edge shard per collection, on disk.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter as EdgeFilter, Fusion, Match,
    Modifier, NamedQuery, NamedVectors, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest, Range,
    ScoringQuery, ScrollRequest, UpdateOperation, ValueVariants, VectorInternal,
    VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value};

use super::{
    Collection, FieldKind, Filter, Point, ScoredPoint, SparseVector, StoredPoint, DENSE,
    INDEXED_FIELDS, PREFETCH, RRF_K, SCROLL_PAGE, SPARSE,
};

/// How long a write may sit in memory before it is flushed to disk: what a
/// crash (or SIGKILL) can lose. qdrant-edge keeps no recovery log (see
/// `prune_write_ahead_log`), so a point reaches the disk only by a flush.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct EdgeCollection {
    shared: Arc<Shared>,
    /// Dropped to stop the flusher, which is joined before the shard closes.
    stop_flusher: Option<mpsc::Sender<()>>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    shard: EdgeShard,
    /// Writes hold it shared, a flush alone: qdrant-edge's flush panics when
    /// a write holds its log.
    writes: RwLock<()>,
    /// Written to since the last flush.
    dirty: AtomicBool,
}

impl Shared {
    fn update(&self, operation: UpdateOperation) -> anyhow::Result<()> {
        let _writing = self.writes.read().unwrap_or_else(PoisonError::into_inner);
        self.shard.update(operation)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn flush_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            let _alone = self.writes.write().unwrap_or_else(PoisonError::into_inner);
            // qdrant-edge panics when a flush fails (a full disk): log it and
            // try again at the next round instead of losing the flusher.
            let flushed = catch_unwind(AssertUnwindSafe(|| self.shard.flush()));
            if flushed.is_err() {
                self.dirty.store(true, Ordering::Release);
                tracing::error!(path = %self.shard.path().display(), "flushing the store failed");
            }
        }
    }
}

impl Drop for EdgeCollection {
    fn drop(&mut self) {
        drop(self.stop_flusher.take());
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        // The shard flushes as it closes, once this was its last owner.
    }
}

impl EdgeCollection {
    /// Opens the collection at `path`, creating it with `dimension`-sized
    /// cosine vectors and a BM25 sparse vector if it does not exist yet.
    pub fn open(path: &Path, dimension: usize) -> anyhow::Result<EdgeCollection> {
        let exists = path.join("edge_config.json").exists();
        let shard = if exists {
            prune_write_ahead_log(&path.join("wal"))?;
            EdgeShard::load(path, None)
                .with_context(|| format!("loading vector store {}", path.display()))?
        } else {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating vector store {}", path.display()))?;
            let config = EdgeConfig {
                vectors: HashMap::from([(
                    DENSE.to_string(),
                    EdgeVectorParams::builder(dimension, Distance::Cosine).build(),
                )]),
                sparse_vectors: HashMap::from([(
                    SPARSE.to_string(),
                    EdgeSparseVectorParams {
                        modifier: Some(Modifier::Idf),
                        ..Default::default()
                    },
                )]),
                ..Default::default()
            };
            EdgeShard::new(path, config)
                .with_context(|| format!("creating vector store {}", path.display()))?
        };
        let stored = shard.config().vectors.get(DENSE).map(|params| params.size);
        anyhow::ensure!(
            stored == Some(dimension),
            "vector store {} holds {stored:?}-dimensional vectors, the model makes {dimension}",
            path.display()
        );
        let indexed = shard.info().payload_schema;
        for (field, kind) in INDEXED_FIELDS {
            let schema = match kind {
                FieldKind::Keyword => PayloadSchemaType::Keyword,
                FieldKind::Number => PayloadSchemaType::Float,
            };
            let key = field.try_into().expect("a plain field name");
            if indexed.contains_key(&key) {
                continue;
            }
            shard
                .update(UpdateOperation::FieldIndexOperation(
                    FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name: key,
                        field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                    }),
                ))
                .with_context(|| format!("indexing payload field {field}"))?;
        }
        let shared = Arc::new(Shared {
            shard,
            writes: RwLock::new(()),
            dirty: AtomicBool::new(false),
        });
        let (stop_flusher, stop) = mpsc::channel::<()>();
        let flushed = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(FLUSH_EVERY) {
                    flushed.flush_if_dirty();
                }
            })
            .context("starting the store's flusher")?;
        Ok(EdgeCollection {
            shared,
            stop_flusher: Some(stop_flusher),
            flusher: Some(flusher),
        })
    }

    fn shard(&self) -> &EdgeShard {
        &self.shared.shard
    }
}

/// qdrant-edge appends every update to its write-ahead log but never
/// acknowledges or replays it (its segments are flushed instead), so closed
/// log files of 32 MiB pile up with traffic (about 6 KB per handled inquiry)
/// and are all mapped at start. Before a shard opens, every closed file but
/// the newest is removed: the newest keeps the log's operation numbers
/// continuous, which the stored points' versions are compared with.
fn prune_write_ahead_log(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut closed: Vec<(u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let start = name.strip_prefix("closed-")?.parse().ok()?;
            Some((start, entry.path()))
        })
        .collect();
    closed.sort();
    closed.pop();
    for (_, file) in &closed {
        std::fs::remove_file(file)
            .with_context(|| format!("removing the spent log file {}", file.display()))?;
    }
    if !closed.is_empty() {
        tracing::info!(dir = %dir.display(), removed = closed.len(), "spent write-ahead log files removed");
    }
    Ok(())
}

fn edge_filter(filter: &Filter) -> Option<EdgeFilter> {
    if filter.is_empty() {
        return None;
    }
    let key = |key: &str| key.try_into().expect("payload keys are plain field names");
    let equal = filter.must.iter().map(|(field, value)| {
        Condition::Field(FieldCondition::new_match(
            key(field),
            Match::new_value(ValueVariants::String(value.clone())),
        ))
    });
    let at_least = filter.at_least.iter().map(|(field, min)| {
        Condition::Field(FieldCondition::new_range(
            key(field),
            Range {
                gte: Some((*min).into()),
                gt: None,
                lt: None,
                lte: None,
            },
        ))
    });
    let below = filter.below.iter().map(|(field, max)| {
        Condition::Field(FieldCondition::new_range(
            key(field),
            Range {
                gte: None,
                gt: None,
                lt: Some((*max).into()),
                lte: None,
            },
        ))
    });
    let conditions = equal.chain(at_least).chain(below).collect();
    Some(EdgeFilter {
        must: Some(conditions),
        ..Default::default()
    })
}

fn numeric_id(id: PointId) -> Option<u64> {
    match id {
        PointId::NumId(n) => Some(n),
        PointId::Uuid(_) => None,
    }
}

fn nearest(vector: VectorInternal, using: &str) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.to_string()),
    }))
}

/// Converts results; `query` gives the cosine similarity where the stored
/// dense vector came back with the point, else the score is the cosine.
fn scored(points: Vec<qdrant_edge::ScoredPoint>, query: Option<&[f32]>) -> Vec<ScoredPoint> {
    points
        .into_iter()
        .filter_map(|p| {
            let similarity = match (query, &p.vector) {
                (Some(query), Some(VectorStructInternal::Named(named))) => match named.get(DENSE) {
                    Some(VectorInternal::Dense(stored)) => crate::embed::cosine(query, stored),
                    _ => 0.0,
                },
                _ => p.score,
            };
            Some(ScoredPoint {
                id: numeric_id(p.id)?,
                score: p.score,
                similarity,
                payload: p.payload.map(|p| p.0).unwrap_or_default(),
            })
        })
        .collect()
}

fn to_edge_sparse(sparse: &SparseVector) -> qdrant_edge::SparseVector {
    qdrant_edge::SparseVector {
        indices: sparse.indices.clone(),
        values: sparse.values.clone(),
    }
}

impl Collection for EdgeCollection {
    fn upsert(&self, points: Vec<Point>) -> anyhow::Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(|point| {
                let mut vectors = NamedVectors::default().add_vector(DENSE, point.dense);
                if let Some(sparse) = &point.sparse {
                    vectors = vectors.add_vector(SPARSE, to_edge_sparse(sparse));
                }
                PointStruct::new(
                    point.id,
                    Vectors::from(vectors),
                    Value::Object(point.payload),
                )
                .into()
            })
            .collect();
        self.shared
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .context("upserting points")?;
        Ok(())
    }

    fn delete(&self, ids: &[u64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.iter().map(|&id| PointId::NumId(id)).collect();
        self.shared
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids },
            ))
            .context("deleting points")?;
        Ok(())
    }

    fn delete_matching(&self, filter: &Filter) -> anyhow::Result<()> {
        let filter = edge_filter(filter).context("deleting by an empty filter")?;
        self.shared
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(filter),
            ))
            .context("deleting points by filter")?;
        Ok(())
    }

    fn scroll(&self, filter: &Filter) -> anyhow::Result<Vec<StoredPoint>> {
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let (records, next) = self
                .shard()
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(SCROLL_PAGE),
                    filter: edge_filter(filter),
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .context("scrolling points")?;
            out.extend(records.into_iter().filter_map(|r| {
                Some(StoredPoint {
                    id: numeric_id(r.id)?,
                    payload: r.payload.map(|p| p.0).unwrap_or_else(Map::new),
                })
            }));
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn retrieve(&self, ids: &[u64]) -> anyhow::Result<Vec<StoredPoint>> {
        let ids: Vec<PointId> = ids.iter().map(|&id| PointId::NumId(id)).collect();
        let records = self
            .shard()
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), None)
            .context("retrieving points")?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                Some(StoredPoint {
                    id: numeric_id(r.id)?,
                    payload: r.payload.map(|p| p.0).unwrap_or_else(Map::new),
                })
            })
            .collect())
    }

    fn dense_vectors(&self, ids: &[u64]) -> anyhow::Result<Vec<(u64, Vec<f32>)>> {
        let ids: Vec<PointId> = ids.iter().map(|&id| PointId::NumId(id)).collect();
        let records = self
            .shard()
            .retrieve(
                &ids,
                Some(WithPayloadInterface::Bool(false)),
                Some(WithVector::Selector(vec![DENSE.into()])),
            )
            .context("retrieving vectors")?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let dense = match r.vector? {
                    VectorStructInternal::Named(mut named) => match named.remove(DENSE)? {
                        VectorInternal::Dense(dense) => dense,
                        _ => return None,
                    },
                    VectorStructInternal::Single(dense) => dense,
                    VectorStructInternal::MultiDense(_) => return None,
                };
                Some((numeric_id(r.id)?, dense))
            })
            .collect())
    }

    fn search_dense(
        &self,
        dense: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>> {
        let points = self
            .shard()
            .query(QueryRequest {
                prefetches: vec![],
                query: Some(nearest(VectorInternal::from(dense.to_vec()), DENSE)),
                filter: edge_filter(filter),
                score_threshold: None,
                limit,
                offset: 0,
                params: None,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(true),
            })
            .context("dense search")?;
        Ok(scored(points, None))
    }

    fn search_hybrid(
        &self,
        dense: &[f32],
        sparse: &SparseVector,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>> {
        let filter = edge_filter(filter);
        let prefetch = |query: ScoringQuery| Prefetch {
            prefetches: vec![],
            query: Some(query),
            limit: PREFETCH.max(limit),
            params: None,
            filter: filter.clone(),
            score_threshold: None,
        };
        let mut prefetches = vec![prefetch(nearest(
            VectorInternal::from(dense.to_vec()),
            DENSE,
        ))];
        if !sparse.indices.is_empty() {
            prefetches.push(prefetch(nearest(
                VectorInternal::from(to_edge_sparse(sparse)),
                SPARSE,
            )));
        }
        let points = self
            .shard()
            .query(QueryRequest {
                prefetches,
                query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                    k: RRF_K as usize,
                    weights: None,
                })),
                filter: None,
                score_threshold: None,
                limit,
                offset: 0,
                params: None,
                with_vector: WithVector::Bool(true),
                with_payload: WithPayloadInterface::Bool(true),
            })
            .context("hybrid search")?;
        Ok(scored(points, Some(dense)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn point(id: u64, dense: Vec<f32>, lang: &str) -> Point {
        let Value::Object(payload) = json!({ "language": lang, "n": id }) else {
            unreachable!()
        };
        Point {
            id,
            dense,
            sparse: Some(SparseVector {
                indices: vec![id as u32],
                values: vec![1.0],
            }),
            payload,
        }
    }

    #[test]
    fn upsert_search_scroll_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        {
            let collection = EdgeCollection::open(&path, 3).unwrap();
            collection
                .upsert(vec![
                    point(1, vec![1.0, 0.0, 0.0], "en"),
                    point(2, vec![0.0, 1.0, 0.0], "de"),
                    point(3, vec![0.7, 0.7, 0.0], "en"),
                ])
                .unwrap();
            let hits = collection
                .search_dense(&[1.0, 0.1, 0.0], &Filter::default(), 2)
                .unwrap();
            assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 3]);
            let german = collection
                .search_dense(
                    &[1.0, 0.0, 0.0],
                    &Filter::default().field("language", "de"),
                    5,
                )
                .unwrap();
            assert_eq!(german.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2]);
            let sparse = SparseVector {
                indices: vec![3],
                values: vec![1.0],
            };
            let fused = collection
                .search_hybrid(&[0.0, 1.0, 0.0], &sparse, &Filter::default(), 3)
                .unwrap();
            assert_eq!(fused.len(), 3);
            assert!(fused[0].id == 2 || fused[0].id == 3);
            collection.delete(&[2]).unwrap();
        }
        let reopened = EdgeCollection::open(&path, 3).unwrap();
        reopened
            .upsert(vec![point(4, vec![0.0, 0.0, 1.0], "en")])
            .unwrap();
        let mut ids: Vec<u64> = reopened
            .scroll(&Filter::default())
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3, 4]);
        let found = reopened.retrieve(&[3, 2, 99]).unwrap();
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(found[0].payload["language"], "en");
        assert!(EdgeCollection::open(&path, 4).is_err());
    }

    #[test]
    fn writes_survive_a_kill_once_flushed() {
        // The test runs itself again as the process that is killed.
        const CHILD: &str = "FIRSTREPLY_TEST_KILLED_STORE";
        if let Some(dir) = std::env::var_os(CHILD) {
            let dir = Path::new(&dir);
            let collection = EdgeCollection::open(&dir.join("c"), 3).unwrap();
            collection
                .upsert(vec![point(7, vec![1.0, 0.0, 0.0], "en")])
                .unwrap();
            std::thread::sleep(FLUSH_EVERY * 3);
            std::fs::write(dir.join("written"), "").unwrap();
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::edge::tests::writes_survive_a_kill_once_flushed",
            ])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !dir.path().join("written").exists() {
            assert!(started.elapsed() < Duration::from_secs(60), "no write");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let reopened = EdgeCollection::open(&dir.path().join("c"), 3).unwrap();
        let ids: Vec<u64> = reopened
            .scroll(&Filter::default())
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, [7]);
    }

    #[test]
    fn spent_log_files_are_removed_at_open_and_later_updates_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let closed_files = || {
            std::fs::read_dir(path.join("wal"))
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("closed-")
                })
                .count()
        };
        let big = |id: u64, text: &str| {
            let mut point = point(id, vec![1.0, 0.0, 0.0], "en");
            point
                .payload
                .insert("text".into(), text.repeat(1 << 20).into());
            point
        };
        {
            let collection = EdgeCollection::open(&path, 3).unwrap();
            // About 100 MiB through a log of 32 MiB files.
            for id in 0..100 {
                collection.upsert(vec![big(id % 10, "a")]).unwrap();
            }
        }
        assert!(closed_files() >= 2, "{}", closed_files());
        {
            let collection = EdgeCollection::open(&path, 3).unwrap();
            assert_eq!(closed_files(), 1);
            // An update of an existing point must still win over its stored
            // version: the log's numbering went on where it was.
            collection.upsert(vec![big(3, "b")]).unwrap();
        }
        let reopened = EdgeCollection::open(&path, 3).unwrap();
        let three = reopened.retrieve(&[3]).unwrap();
        assert!(three[0].payload["text"].as_str().unwrap().starts_with('b'));
        assert_eq!(reopened.scroll(&Filter::default()).unwrap().len(), 10);
    }
}

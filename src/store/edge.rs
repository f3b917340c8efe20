//! The embedded backend: one qdrant-edge shard per collection, on disk.

use std::collections::HashMap;
use std::path::Path;

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

pub struct EdgeCollection {
    shard: EdgeShard,
}

impl EdgeCollection {
    /// Opens the collection at `path`, creating it with `dimension`-sized
    /// cosine vectors and a BM25 sparse vector if it does not exist yet.
    pub fn open(path: &Path, dimension: usize) -> anyhow::Result<EdgeCollection> {
        let exists = path.join("edge_config.json").exists();
        let shard = if exists {
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
        Ok(EdgeCollection { shard })
    }
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
    let conditions = equal.chain(at_least).collect();
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
        self.shard
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
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids },
            ))
            .context("deleting points")?;
        Ok(())
    }

    fn scroll(&self, filter: &Filter) -> anyhow::Result<Vec<StoredPoint>> {
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let (records, next) = self
                .shard
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
            .shard
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
            .shard
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
            .shard
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
            .shard
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
        let mut ids: Vec<u64> = reopened
            .scroll(&Filter::default())
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3]);
        let found = reopened.retrieve(&[3, 2, 99]).unwrap();
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(found[0].payload["language"], "en");
        assert!(EdgeCollection::open(&path, 4).is_err());
    }
}

//! The server backend: collections on a Qdrant server (or cluster) through
//! qdrant-client over gRPC, the same layout as the embedded backend (a named
//! dense vector, a BM25 sparse vector with IDF, indexed payload fields).
//! Replicas of firstreply sharing one server share every collection.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, points_selector::PointsSelectorOneOf, vector_output, vectors_config,
    with_vectors_selector, Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter as QdrantFilter, GetPointsBuilder, Modifier,
    NamedVectors, PointId, PointStruct, PointsIdsList, PrefetchQueryBuilder, Query,
    QueryPointsBuilder, Range, RetrievedPoint, RrfBuilder, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder,
    Value as QdrantValue, VectorInput, VectorParamsBuilder, VectorsConfigBuilder, VectorsSelector,
};
use qdrant_client::{Payload, Qdrant};
use serde_json::{Map, Value};

use super::{
    Collection, FieldKind, Filter, Point, ScoredPoint, SparseVector, StoredPoint, DENSE,
    INDEXED_FIELDS, PREFETCH, RRF_K, SCROLL_PAGE, SPARSE,
};
use crate::config::QdrantSettings;

/// A connection to a Qdrant server.
#[derive(Clone)]
pub struct QdrantServer {
    client: Arc<Qdrant>,
    prefix: String,
}

impl QdrantServer {
    /// Connects to the server at `settings.url` and checks that it answers.
    pub fn connect(settings: &QdrantSettings) -> anyhow::Result<QdrantServer> {
        let mut builder = Qdrant::from_url(&settings.url)
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .skip_compatibility_check();
        if !settings.api_key.is_empty() {
            builder = builder.api_key(settings.api_key.clone());
        }
        let client = Arc::new(builder.build().context("configuring the Qdrant client")?);
        let probe = client.clone();
        let version = on_io_runtime(async move { probe.health_check().await })
            .with_context(|| format!("Qdrant server at {} does not answer", settings.url))?
            .version;
        tracing::info!(url = %settings.url, version, "vector store: Qdrant server");
        Ok(QdrantServer {
            client,
            prefix: settings.collection_prefix.clone(),
        })
    }

    /// Opens collection `name` (the prefix added), creating it with
    /// `dimension`-sized cosine vectors and a BM25 sparse vector if it does
    /// not exist yet, and indexing the filtered payload fields.
    pub fn open(&self, name: &str, dimension: usize) -> anyhow::Result<ServerCollection> {
        let collection = ServerCollection {
            client: self.client.clone(),
            name: format!("{}{name}", self.prefix),
        };
        collection
            .prepare(dimension)
            .with_context(|| format!("opening Qdrant collection {}", collection.name))?;
        Ok(collection)
    }
}

/// One collection on a Qdrant server.
pub struct ServerCollection {
    client: Arc<Qdrant>,
    name: String,
}

/// Runs `future` on the store's own I/O thread and waits for it: the
/// `Collection` calls block (they run off the async runtime), while the
/// client is async.
fn on_io_runtime<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    let handle = RUNTIME.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("qdrant-client".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the Qdrant client");
                let _ = sender.send(runtime.handle().clone());
                runtime.block_on(std::future::pending::<()>());
            })
            .expect("a thread for the Qdrant client");
        receiver.recv().expect("the Qdrant client's runtime")
    });
    futures::executor::block_on(handle.spawn(future)).expect("a Qdrant client call panicked")
}

impl ServerCollection {
    fn call<T, F>(&self, call: impl FnOnce(Arc<Qdrant>, String) -> F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, qdrant_client::QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        Ok(on_io_runtime(call(self.client.clone(), self.name.clone()))?)
    }

    fn delete_points(&self, selector: impl Into<PointsSelectorOneOf>) -> anyhow::Result<()> {
        let selector = selector.into();
        self.call(|client, name| async move {
            client
                .delete_points(DeletePointsBuilder::new(name).points(selector).wait(true))
                .await
        })?;
        Ok(())
    }

    /// The points with these ids that exist, with or without payload and
    /// with the vectors `vectors` selects.
    fn get_points(
        &self,
        ids: &[u64],
        payload: bool,
        vectors: impl Into<with_vectors_selector::SelectorOptions>,
    ) -> anyhow::Result<Vec<RetrievedPoint>> {
        let ids: Vec<PointId> = ids.iter().map(|&id| id.into()).collect();
        let request = GetPointsBuilder::new(self.name.clone(), ids)
            .with_payload(payload)
            .with_vectors(vectors)
            .build();
        let found = self.call(|client, _| async move { client.get_points(request).await })?;
        Ok(found.result)
    }

    fn prepare(&self, dimension: usize) -> anyhow::Result<()> {
        let exists =
            self.call(|client, name| async move { client.collection_exists(name).await })?;
        if !exists {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(dimension as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let created = self.call(|client, name| async move {
                client
                    .create_collection(
                        CreateCollectionBuilder::new(name)
                            .vectors_config(vectors)
                            .sparse_vectors_config(sparse),
                    )
                    .await
            });
            // Another replica may have created it at the same moment.
            if let Err(error) = created {
                let exists =
                    self.call(|client, name| async move { client.collection_exists(name).await })?;
                anyhow::ensure!(exists, error);
            }
        }
        let info = self
            .call(|client, name| async move { client.collection_info(name).await })?
            .result
            .context("no collection info")?;
        let stored = info
            .config
            .as_ref()
            .and_then(|config| config.params.as_ref())
            .and_then(|params| params.vectors_config.as_ref())
            .and_then(|vectors| match &vectors.config {
                Some(vectors_config::Config::ParamsMap(map)) => map.map.get(DENSE),
                _ => None,
            })
            .map(|params| params.size as usize);
        anyhow::ensure!(
            stored == Some(dimension),
            "collection holds {stored:?}-dimensional vectors, the model makes {dimension}"
        );
        for (field, kind) in INDEXED_FIELDS {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            let kind = match kind {
                FieldKind::Keyword => FieldType::Keyword,
                FieldKind::Number => FieldType::Float,
            };
            self.call(move |client, name| async move {
                client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(name, field, kind).wait(true),
                    )
                    .await
            })
            .with_context(|| format!("indexing payload field {field}"))?;
        }
        Ok(())
    }
}

fn server_filter(filter: &Filter) -> Option<QdrantFilter> {
    if filter.is_empty() {
        return None;
    }
    let equal = filter
        .must
        .iter()
        .map(|(key, value)| Condition::matches(key.as_str(), value.clone()));
    let at_least = filter.at_least.iter().map(|(key, min)| {
        Condition::range(
            key.as_str(),
            Range {
                gte: Some(*min),
                ..Default::default()
            },
        )
    });
    let below = filter.below.iter().map(|(key, max)| {
        Condition::range(
            key.as_str(),
            Range {
                lt: Some(*max),
                ..Default::default()
            },
        )
    });
    Some(QdrantFilter::must(equal.chain(at_least).chain(below)))
}

fn numeric_id(id: Option<PointId>) -> Option<u64> {
    match id?.point_id_options? {
        PointIdOptions::Num(n) => Some(n),
        PointIdOptions::Uuid(_) => None,
    }
}

fn json_payload(payload: HashMap<String, QdrantValue>) -> Map<String, Value> {
    Payload::from(payload).into()
}

fn stored_points(points: Vec<RetrievedPoint>) -> Vec<StoredPoint> {
    points
        .into_iter()
        .filter_map(|point| {
            Some(StoredPoint {
                id: numeric_id(point.id)?,
                payload: json_payload(point.payload),
            })
        })
        .collect()
}

/// Converts results; `query` gives the cosine similarity where the stored
/// dense vector came back with the point, else the score is the cosine.
fn scored(
    points: Vec<qdrant_client::qdrant::ScoredPoint>,
    query: Option<&[f32]>,
) -> Vec<ScoredPoint> {
    points
        .into_iter()
        .filter_map(|point| {
            let stored = point
                .vectors
                .as_ref()
                .and_then(|vectors| vectors.get_vector_by_name(DENSE));
            let similarity = match (query, stored) {
                (Some(query), Some(vector_output::Vector::Dense(stored))) => {
                    crate::embed::cosine(query, &stored.data)
                }
                (Some(_), _) => 0.0,
                (None, _) => point.score,
            };
            Some(ScoredPoint {
                id: numeric_id(point.id)?,
                score: point.score,
                similarity,
                payload: json_payload(point.payload),
            })
        })
        .collect()
}

impl Collection for ServerCollection {
    fn upsert(&self, points: Vec<Point>) -> anyhow::Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|point| {
                let mut vectors = NamedVectors::default().add_vector(DENSE, point.dense);
                if let Some(sparse) = point.sparse {
                    vectors = vectors.add_vector(
                        SPARSE,
                        qdrant_client::qdrant::Vector::new_sparse(sparse.indices, sparse.values),
                    );
                }
                PointStruct::new(point.id, vectors, Payload::from(point.payload))
            })
            .collect();
        self.call(|client, name| async move {
            client
                .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
                .await
        })
        .context("upserting points")?;
        Ok(())
    }

    fn delete(&self, ids: &[u64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = PointsIdsList {
            ids: ids.iter().map(|&id| id.into()).collect(),
        };
        self.delete_points(ids).context("deleting points")
    }

    fn delete_matching(&self, filter: &Filter) -> anyhow::Result<()> {
        let filter = server_filter(filter).context("deleting by an empty filter")?;
        self.delete_points(filter)
            .context("deleting points by filter")
    }

    fn scroll(&self, filter: &Filter) -> anyhow::Result<Vec<StoredPoint>> {
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(self.name.clone())
                .limit(SCROLL_PAGE as u32)
                .with_payload(true)
                .with_vectors(false);
            if let Some(filter) = server_filter(filter) {
                request = request.filter(filter);
            }
            if let Some(offset) = offset.take() {
                request = request.offset(offset);
            }
            let page = self
                .call(|client, _| async move { client.scroll(request).await })
                .context("scrolling points")?;
            out.extend(stored_points(page.result));
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn retrieve(&self, ids: &[u64]) -> anyhow::Result<Vec<StoredPoint>> {
        let found = self
            .get_points(ids, true, false)
            .context("retrieving points")?;
        Ok(stored_points(found))
    }

    fn dense_vectors(&self, ids: &[u64]) -> anyhow::Result<Vec<(u64, Vec<f32>)>> {
        let dense_only = VectorsSelector {
            names: vec![DENSE.to_string()],
        };
        let found = self
            .get_points(ids, false, dense_only)
            .context("retrieving vectors")?;
        Ok(found
            .into_iter()
            .filter_map(|point| {
                let dense = match point.vectors.as_ref()?.get_vector_by_name(DENSE)? {
                    vector_output::Vector::Dense(dense) => dense.data,
                    _ => return None,
                };
                Some((numeric_id(point.id)?, dense))
            })
            .collect())
    }

    fn search_dense(
        &self,
        dense: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>> {
        let mut request = QueryPointsBuilder::new(self.name.clone())
            .query(Query::new_nearest(dense.to_vec()))
            .using(DENSE)
            .limit(limit as u64)
            .with_payload(true);
        if let Some(filter) = server_filter(filter) {
            request = request.filter(filter);
        }
        let found = self
            .call(|client, _| async move { client.query(request).await })
            .context("dense search")?;
        Ok(scored(found.result, None))
    }

    fn search_hybrid(
        &self,
        dense: &[f32],
        sparse: &SparseVector,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<ScoredPoint>> {
        let filter = server_filter(filter);
        let prefetch = |query: Query, using: &str| {
            let mut prefetch = PrefetchQueryBuilder::default()
                .query(query)
                .using(using)
                .limit(PREFETCH.max(limit) as u64);
            if let Some(filter) = &filter {
                prefetch = prefetch.filter(filter.clone());
            }
            prefetch
        };
        let mut request = QueryPointsBuilder::new(self.name.clone())
            .add_prefetch(prefetch(Query::new_nearest(dense.to_vec()), DENSE))
            .query(Query::new_rrf(RrfBuilder::with_k(RRF_K)))
            .limit(limit as u64)
            .with_payload(true)
            .with_vectors(true);
        if !sparse.indices.is_empty() {
            request = request.add_prefetch(prefetch(
                Query::new_nearest(VectorInput::new_sparse(
                    sparse.indices.clone(),
                    sparse.values.clone(),
                )),
                SPARSE,
            ));
        }
        let found = self
            .call(|client, _| async move { client.query(request).await })
            .context("hybrid search")?;
        Ok(scored(found.result, Some(dense)))
    }
}

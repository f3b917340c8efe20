//! One conformance suite for the vector store backends: the embedded
//! qdrant-edge always, a Qdrant server whenever `QDRANT_URL` is set (its gRPC
//! address, e.g. `http://127.0.0.1:6334`; the README says how to start one).

use std::sync::Arc;

use firstreply::config::QdrantSettings;
use firstreply::store::{
    Collection, EdgeCollection, Filter, Point, QdrantServer, SparseVector, HANDLED_AT,
};
use serde_json::{json, Map, Value};

type Open<'a> = dyn Fn(&str, usize) -> anyhow::Result<Arc<dyn Collection>> + 'a;

#[test]
fn the_embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conform(&|name, dimension| {
        Ok(Arc::new(EdgeCollection::open(
            &dir.path().join(name),
            dimension,
        )?))
    });
}

#[test]
fn a_qdrant_server_conforms_when_one_is_configured() {
    let Some(server) = qdrant_server() else {
        eprintln!("QDRANT_URL is not set: the server backend is not checked");
        return;
    };
    conform(&|name, dimension| Ok(Arc::new(server.open(name, dimension)?)));
}

/// The server at `QDRANT_URL`, with collection names of this run only.
pub fn qdrant_server() -> Option<QdrantServer> {
    let url = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty())?;
    Some(QdrantServer::connect(&qdrant_settings(&url)).expect("the Qdrant server answers"))
}

pub fn qdrant_settings(url: &str) -> QdrantSettings {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    QdrantSettings {
        url: url.to_string(),
        api_key: std::env::var("QDRANT_API_KEY").unwrap_or_default(),
        collection_prefix: format!("conformance_{nanos}_"),
        timeout_secs: 10,
    }
}

fn payload(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("an object")
    };
    map
}

fn point(id: u64, dense: Vec<f32>, sparse_term: Option<u32>, value: Value) -> Point {
    Point {
        id,
        dense,
        sparse: sparse_term.map(|term| SparseVector {
            indices: vec![term],
            values: vec![1.0],
        }),
        payload: payload(value),
    }
}

fn ids(points: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = points.into_iter().collect();
    ids.sort();
    ids
}

/// The ids of every point stored, sorted.
fn stored_ids(collection: &dyn Collection) -> Vec<u64> {
    ids(collection
        .scroll(&Filter::default())
        .unwrap()
        .iter()
        .map(|p| p.id))
}

/// What every backend must do, as the pipeline relies on it.
fn conform(open: &Open) {
    let docs = open("docs", 3).expect("a new collection opens");
    docs.upsert(vec![
        point(
            1,
            vec![1.0, 0.0, 0.0],
            Some(11),
            json!({"kind": "article", "tenant": "a", "language": "en", HANDLED_AT: 100}),
        ),
        point(
            2,
            vec![0.0, 1.0, 0.0],
            Some(12),
            json!({"kind": "article", "tenant": "b", "language": "de", HANDLED_AT: 200}),
        ),
        point(
            3,
            vec![0.7, 0.7, 0.0],
            Some(13),
            json!({"kind": "example", "tenant": "a", "language": "en", HANDLED_AT: 300}),
        ),
    ])
    .unwrap();

    // Dense search, nearest first, cosine scores.
    let hits = docs
        .search_dense(&[1.0, 0.1, 0.0], &Filter::default(), 2)
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 3]);
    assert!((hits[0].similarity - 0.995).abs() < 0.01, "{hits:?}");

    // Equality filters, alone and together; a numeric lower bound.
    let german = docs
        .search_dense(
            &[1.0, 0.0, 0.0],
            &Filter::default().field("language", "de"),
            5,
        )
        .unwrap();
    assert_eq!(ids(german.iter().map(|h| h.id)), vec![2]);
    let tenant_articles = Filter::default()
        .field("tenant", "a")
        .field("kind", "article");
    let found = docs
        .search_dense(&[0.0, 1.0, 0.0], &tenant_articles, 5)
        .unwrap();
    assert_eq!(ids(found.iter().map(|h| h.id)), vec![1]);
    let recent = docs
        .scroll(&Filter::default().at_least(HANDLED_AT, 200.0))
        .unwrap();
    assert_eq!(ids(recent.iter().map(|p| p.id)), vec![2, 3]);

    // Stored vectors come back by id (cosine vectors, unit length); unknown
    // ids are skipped.
    let mut stored = docs.dense_vectors(&[3, 1, 99]).unwrap();
    stored.sort_by_key(|(id, _)| *id);
    assert_eq!(
        stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(stored[0].1, vec![1.0, 0.0, 0.0]);
    let half = std::f32::consts::FRAC_1_SQRT_2;
    assert!(
        stored[1]
            .1
            .iter()
            .zip([half, half, 0.0])
            .all(|(a, b)| (a - b).abs() < 1e-5),
        "{stored:?}"
    );

    // Hybrid: the sparse side lifts a point the dense side ranks last;
    // `similarity` stays the dense cosine whatever the fused score.
    let sparse = SparseVector {
        indices: vec![11],
        values: vec![1.0],
    };
    let fused = docs
        .search_hybrid(&[0.0, 1.0, 0.0], &sparse, &Filter::default(), 3)
        .unwrap();
    assert_eq!(ids(fused.iter().map(|h| h.id)), vec![1, 2, 3]);
    let top_two = ids(fused.iter().take(2).map(|h| h.id));
    assert!(top_two.contains(&1) && top_two.contains(&2), "{fused:?}");
    let one = fused.iter().find(|h| h.id == 1).unwrap();
    assert!(one.similarity.abs() < 0.01, "{one:?}");
    // A filtered hybrid search keeps to the filter on both sides.
    let filtered = docs
        .search_hybrid(
            &[0.0, 1.0, 0.0],
            &sparse,
            &Filter::default().field("tenant", "a"),
            3,
        )
        .unwrap();
    assert_eq!(ids(filtered.iter().map(|h| h.id)), vec![1, 3]);
    // No sparse terms: the dense side alone.
    let dense_only = docs
        .search_hybrid(
            &[0.0, 1.0, 0.0],
            &SparseVector::default(),
            &Filter::default(),
            1,
        )
        .unwrap();
    assert_eq!(dense_only[0].id, 2);

    // Payloads come back as they went in.
    let stored = json!({
        "kind": "outcome", "text": "héllo 日本 ✓", "auto_reply": true, "count": 3,
        "share": 0.25, "reasons": ["upset", "refund"], "nested": {"a": [1, 2]},
    });
    docs.upsert(vec![point(4, vec![0.0, 0.0, 1.0], None, stored.clone())])
        .unwrap();
    let got = docs.retrieve(&[4, 2, 99]).unwrap();
    assert_eq!(ids(got.iter().map(|p| p.id)), vec![2, 4]);
    let four = got.iter().find(|p| p.id == 4).unwrap();
    assert_eq!(Value::Object(four.payload.clone()), stored);

    // Upserting an id replaces the point; deleting removes it.
    docs.upsert(vec![point(
        4,
        vec![0.0, 0.0, 1.0],
        None,
        json!({"kind": "replaced"}),
    )])
    .unwrap();
    assert_eq!(docs.retrieve(&[4]).unwrap()[0].payload["kind"], "replaced");
    docs.delete(&[2, 4]).unwrap();
    docs.delete(&[]).unwrap();
    assert_eq!(stored_ids(&*docs), vec![1, 3]);

    // Deleting by filter: a numeric upper bound (exclusive) and a field.
    docs.upsert(vec![point(
        5,
        vec![0.0, 0.0, 1.0],
        None,
        json!({"kind": "article", "tenant": "a", HANDLED_AT: 150}),
    )])
    .unwrap();
    docs.delete_matching(
        &Filter::default()
            .field("kind", "article")
            .below(HANDLED_AT, 150.0),
    )
    .unwrap();
    assert_eq!(stored_ids(&*docs), vec![3, 5]);
    assert!(docs.delete_matching(&Filter::default()).is_err());

    // Listing crosses pages.
    let many = open("many", 2).unwrap();
    many.upsert(
        (1..=600)
            .map(|id| {
                let kind = if id % 3 == 0 { "third" } else { "rest" };
                point(id, vec![1.0, id as f32], None, json!({ "kind": kind }))
            })
            .collect(),
    )
    .unwrap();
    assert_eq!(many.scroll(&Filter::default()).unwrap().len(), 600);
    assert_eq!(
        many.scroll(&Filter::default().field("kind", "third"))
            .unwrap()
            .len(),
        200
    );

    // Reopening keeps the points and refuses another vector size.
    drop(docs);
    let reopened = open("docs", 3).unwrap();
    assert_eq!(stored_ids(&*reopened), vec![3, 5]);
    drop(reopened);
    assert!(open("docs", 4).is_err(), "a dimension mismatch is refused");
}

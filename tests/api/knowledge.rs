//! Tenants' knowledge bases over the API: each tenant retrieves only its own
//! articles; upsert embeds only what changed; delete, list and re-index.

use firstreply::api;
use tonic::Code;

use crate::helpers::{client, inquiry, violated_fields};

fn fresh(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{nanos}")
}

fn gift_wrap(answer: &str) -> api::Article {
    api::Article {
        id: "gift-wrap".into(),
        title: "Gift wrapping".into(),
        language: "en".into(),
        categories: vec!["product_question".into()],
        tags: vec!["gift".into(), "wrapping".into(), "present".into()],
        answer: answer.into(),
    }
}

async fn retrieved(tenant: &str, text: &str) -> Vec<String> {
    let mut request = inquiry("kb-triage", text);
    request.tenant = tenant.to_string();
    client()
        .await
        .triage(request)
        .await
        .expect("triage")
        .into_inner()
        .knowledge
        .into_iter()
        .map(|hit| hit.article_id)
        .collect()
}

#[tokio::test]
async fn a_tenants_articles_are_its_own() {
    let (a, b) = (fresh("kb-a"), fresh("kb-b"));
    let mut client = client().await;
    let upsert = |tenant: &str, article: api::Article| api::UpsertArticlesRequest {
        tenant: tenant.to_string(),
        articles: vec![article],
    };
    let answer = "We wrap every present in recycled paper and add a handwritten card.";
    let added = client
        .upsert_articles(upsert(&a, gift_wrap(answer)))
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!((added.added, added.updated, added.unchanged), (1, 0, 0));
    let again = client
        .upsert_articles(upsert(&a, gift_wrap(answer)))
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(again.unchanged, 1, "nothing re-embedded");
    let changed = client
        .upsert_articles(upsert(
            &a,
            gift_wrap("Gift wrapping is free on every order."),
        ))
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(changed.updated, 1);

    let question = "Can you gift wrap the present for me?";
    assert!(retrieved(&a, question)
        .await
        .contains(&"gift-wrap".to_string()));
    assert!(
        !retrieved(&b, question)
            .await
            .contains(&"gift-wrap".to_string()),
        "another tenant never sees it"
    );
    assert!(!retrieved("", question)
        .await
        .contains(&"gift-wrap".to_string()));

    let listed = |tenant: String| {
        let mut client = client.clone();
        async move {
            client
                .list_articles(api::ListArticlesRequest { tenant })
                .await
                .expect("list")
                .into_inner()
                .articles
        }
    };
    let mine = listed(a.clone()).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].article_id, "gift-wrap");
    assert_eq!(mine[0].categories, ["product_question"]);
    assert!(listed(b.clone()).await.is_empty());

    let delete = |tenant: &str| api::DeleteArticlesRequest {
        tenant: tenant.to_string(),
        article_ids: vec!["gift-wrap".into()],
    };
    let none = client.delete_articles(delete(&b)).await.expect("delete");
    assert_eq!(none.into_inner().deleted, 0, "b cannot delete a's article");
    let one = client.delete_articles(delete(&a)).await.expect("delete");
    assert_eq!(one.into_inner().deleted, 1);
    assert!(!retrieved(&a, question)
        .await
        .contains(&"gift-wrap".to_string()));
}

#[tokio::test]
async fn bad_articles_are_refused_naming_the_fields_and_reindex_needs_a_folder() {
    let mut client = client().await;
    let mut bad = gift_wrap("");
    bad.categories = vec!["gifts".into()];
    let status = client
        .upsert_articles(api::UpsertArticlesRequest {
            tenant: "kb-bad".into(),
            articles: vec![bad],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["articles[0].answer", "articles[0].categories[0]"]);

    let missing = client
        .reindex_knowledge(api::ReindexKnowledgeRequest {
            tenant: fresh("kb-nofolder"),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // The default tenant's folder is knowledge-base/articles: in sync already.
    let report = client
        .reindex_knowledge(api::ReindexKnowledgeRequest {
            tenant: String::new(),
        })
        .await
        .expect("reindex")
        .into_inner();
    assert!(report.unchanged > 10, "{report:?}");
    assert_eq!((report.added, report.updated, report.removed), (0, 0, 0));
}

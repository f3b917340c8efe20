//! Knowledge: Markdown articles with front matter, embedded once and kept in
//! the vector store; searched by dense and BM25 vectors fused (hybrid).
//! Ingest is incremental: only articles whose text or model changed are
//! re-embedded, and articles deleted from disk are removed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::bm25::Bm25;
use crate::domain::{Category, KnowledgeHit};
use crate::embed::{Embedder, TextKind};
use crate::ingest::{point_id, sync_documents, Document, IngestReport};
use crate::store::{Collection, Filter, Point};

/// One article as written in `knowledge-base/articles/<lang>/<id>.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub id: String,
    pub title: String,
    pub language: String,
    pub categories: Vec<Category>,
    pub tags: Vec<String>,
    pub answer: String,
}

#[derive(Debug, Deserialize)]
struct FrontMatter {
    id: String,
    title: String,
    language: String,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl Article {
    /// Parses a Markdown file with YAML front matter between `---` lines.
    pub fn parse(text: &str) -> anyhow::Result<Article> {
        let text = text.trim_start_matches('\u{feff}');
        let rest = text
            .strip_prefix("---")
            .context("an article starts with a '---' front-matter line")?;
        let (front, body) = rest
            .split_once("\n---")
            .context("the front matter is not closed by a '---' line")?;
        let front: FrontMatter = serde_yaml::from_str(front).context("parsing the front matter")?;
        let categories = front
            .categories
            .iter()
            .map(|name| Category::parse(name).with_context(|| format!("unknown category {name:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let answer = body.trim_start_matches('-').trim();
        anyhow::ensure!(!front.id.trim().is_empty(), "the article id is empty");
        anyhow::ensure!(
            !answer.is_empty(),
            "the article {} has no answer text",
            front.id
        );
        Ok(Article {
            id: front.id,
            title: front.title,
            language: front.language.to_lowercase(),
            categories,
            tags: front.tags,
            answer: unwrap_lines(answer),
        })
    }

    /// The text that is embedded and indexed for search.
    fn search_text(&self) -> String {
        format!("{}\n{}\n{}", self.title, self.tags.join(", "), self.answer)
    }
}

/// Joins hard-wrapped lines of a paragraph; keeps blank lines between paragraphs.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|para| para.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Reads every `*.md` article below `dir`.
pub fn load_articles(dir: &Path) -> anyhow::Result<Vec<Article>> {
    let mut files = Vec::new();
    collect_markdown(dir, &mut files)?;
    files.sort();
    let mut articles = Vec::with_capacity(files.len());
    let mut seen = HashSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let article = Article::parse(&text).with_context(|| format!("in {}", path.display()))?;
        anyhow::ensure!(
            seen.insert(article.id.clone()),
            "article id {} is used twice ({})",
            article.id,
            path.display()
        );
        articles.push(article);
    }
    Ok(articles)
}

fn collect_markdown(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_markdown(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "md") {
            out.push(path);
        }
    }
    Ok(())
}

/// The knowledge base of every tenant, in one collection.
pub struct KnowledgeBase {
    collection: Arc<dyn Collection>,
    embedder: Arc<dyn Embedder>,
    bm25: Bm25,
    /// Languages each tenant has articles in, to pick the search language.
    languages: RwLock<HashMap<String, HashSet<String>>>,
}

/// Why a search returned what it did.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    pub tenant: &'a str,
    pub text: &'a str,
    /// The query's dense vector, shared with the intent classifier.
    pub vector: &'a [f32],
    pub language: &'a str,
    pub limit: usize,
}

impl KnowledgeBase {
    pub fn new(
        collection: Arc<dyn Collection>,
        embedder: Arc<dyn Embedder>,
    ) -> anyhow::Result<KnowledgeBase> {
        let kb = KnowledgeBase {
            collection,
            embedder,
            bm25: Bm25::new()?,
            languages: RwLock::new(HashMap::new()),
        };
        kb.refresh_languages()?;
        Ok(kb)
    }

    /// Makes the tenant's stored articles equal `articles`, embedding only
    /// what changed.
    pub fn ingest(&self, tenant: &str, articles: &[Article]) -> anyhow::Result<IngestReport> {
        let documents: Vec<Document> = articles.iter().map(document).collect();
        let report = self.sync(tenant, &articles_of(tenant), &documents)?;
        self.refresh_tenant_languages(tenant)?;
        Ok(report)
    }

    /// Adds or replaces these articles of the tenant's, leaving its others
    /// alone; only new or changed ones are embedded.
    pub fn upsert(&self, tenant: &str, articles: &[Article]) -> anyhow::Result<IngestReport> {
        let mut report = IngestReport::default();
        for article in articles {
            let scope = articles_of(tenant).field("article_id", &article.id);
            let one = self.sync(tenant, &scope, &[document(article)])?;
            report.added += one.added;
            report.updated += one.updated;
            report.unchanged += one.unchanged;
        }
        self.refresh_tenant_languages(tenant)?;
        Ok(report)
    }

    /// Deletes these articles of the tenant's; returns how many existed.
    pub fn delete(&self, tenant: &str, article_ids: &[String]) -> anyhow::Result<usize> {
        let ids: Vec<u64> = article_ids.iter().map(|id| point_id(tenant, id)).collect();
        let found: Vec<u64> = self
            .collection
            .retrieve(&ids)?
            .into_iter()
            .filter(|p| {
                p.payload.get("tenant").and_then(Value::as_str) == Some(tenant)
                    && p.payload.get("kind").and_then(Value::as_str) == Some("article")
            })
            .map(|p| p.id)
            .collect();
        self.collection.delete(&found)?;
        self.refresh_tenant_languages(tenant)?;
        Ok(found.len())
    }

    /// The tenant's articles and agent-approved answers, by id.
    pub fn list(&self, tenant: &str) -> anyhow::Result<Vec<KnowledgeHit>> {
        let mut entries: Vec<KnowledgeHit> = self
            .collection
            .scroll(&Filter::default().field("tenant", tenant))?
            .iter()
            .filter_map(|p| {
                let kind = p.payload.get("kind").and_then(Value::as_str)?;
                (kind == "article" || kind == APPROVED).then(|| hit(&p.payload, 0.0, 0.0))
            })
            .collect();
        entries.sort_by(|a, b| a.article_id.cmp(&b.article_id));
        Ok(entries)
    }

    fn sync(
        &self,
        tenant: &str,
        scope: &Filter,
        documents: &[Document],
    ) -> anyhow::Result<IngestReport> {
        sync_documents(
            self.collection.as_ref(),
            self.embedder.as_ref(),
            TextKind::Passage,
            Some(&self.bm25),
            tenant,
            scope,
            documents,
        )
    }

    /// Stores an agent's reply as an answer of the tenant's, searchable like
    /// an article (question and answer embedded together); returns its id.
    pub fn approve(&self, approved: &ApprovedAnswer<'_>) -> anyhow::Result<String> {
        let id = point_id(approved.tenant, &format!("{APPROVED}/{}", approved.key));
        let article_id = format!("{APPROVED}-{id:016x}");
        let text = format!("{}\n{}", approved.question, approved.answer);
        let dense = self.embedder.embed_one(&text, TextKind::Passage)?;
        let value = json!({
            "kind": APPROVED,
            "tenant": approved.tenant,
            "language": approved.language,
            "article_id": article_id,
            "title": format!("Reply approved by {}", approved.agent),
            "categories": [approved.category.as_str()],
            "answer": approved.answer,
            "question": approved.question,
            "agent": approved.agent,
        });
        let Value::Object(payload) = value else {
            unreachable!("a JSON object literal")
        };
        self.collection.upsert(vec![Point {
            id,
            dense,
            sparse: Some(self.bm25.document(approved.language, &text)),
            payload,
        }])?;
        self.languages
            .write()
            .expect("language index lock")
            .entry(approved.tenant.to_string())
            .or_default()
            .insert(approved.language.to_string());
        Ok(article_id)
    }

    /// Removes the answer approved under `key`, if any (the agent rejected it after all).
    pub fn withdraw(&self, tenant: &str, key: &str) -> anyhow::Result<()> {
        self.collection
            .delete(&[point_id(tenant, &format!("{APPROVED}/{key}"))])
    }

    /// Removes an approved answer by its id; false when the tenant has none such.
    pub fn remove_approved(&self, tenant: &str, article_id: &str) -> anyhow::Result<bool> {
        let found: Vec<u64> = self
            .collection
            .scroll(
                &Filter::default()
                    .field("tenant", tenant)
                    .field("kind", APPROVED)
                    .field("article_id", article_id),
            )?
            .into_iter()
            .map(|p| p.id)
            .collect();
        self.collection.delete(&found)?;
        Ok(!found.is_empty())
    }

    /// The best articles for a query, in the buyer's language when the tenant
    /// has articles in it, otherwise in English.
    pub fn search(&self, request: &SearchRequest<'_>) -> anyhow::Result<Vec<KnowledgeHit>> {
        let language = self.search_language(request.tenant, request.language);
        let filter = Filter::default()
            .field("tenant", request.tenant)
            .field("language", &language);
        let sparse = self.bm25.query(&language, request.text);
        let points =
            self.collection
                .search_hybrid(request.vector, &sparse, &filter, request.limit)?;
        Ok(points
            .into_iter()
            .map(|p| hit(&p.payload, p.score, p.similarity))
            .collect())
    }

    fn search_language(&self, tenant: &str, language: &str) -> String {
        let languages = self.languages.read().expect("language index lock");
        match languages.get(tenant) {
            Some(set) if set.contains(language) => language.to_string(),
            _ => "en".to_string(),
        }
    }

    /// Re-reads the languages of one tenant's articles and answers, after
    /// that tenant's knowledge changed.
    fn refresh_tenant_languages(&self, tenant: &str) -> anyhow::Result<()> {
        let languages: HashSet<String> = self
            .collection
            .scroll(&Filter::default().field("tenant", tenant))?
            .iter()
            .filter_map(|p| p.payload.get("language").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let mut index = self.languages.write().expect("language index lock");
        if languages.is_empty() {
            index.remove(tenant);
        } else {
            index.insert(tenant.to_string(), languages);
        }
        Ok(())
    }

    fn refresh_languages(&self) -> anyhow::Result<()> {
        let mut index: HashMap<String, HashSet<String>> = HashMap::new();
        for point in self.collection.scroll(&Filter::default())? {
            let get = |key: &str| {
                point
                    .payload
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let (Some(tenant), Some(language)) = (get("tenant"), get("language")) {
                index.entry(tenant).or_default().insert(language);
            }
        }
        *self.languages.write().expect("language index lock") = index;
        Ok(())
    }
}

/// An article or approved answer as stored.
fn hit(payload: &Map<String, Value>, score: f32, similarity: f32) -> KnowledgeHit {
    let text = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let categories = payload
        .get("categories")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(Category::parse)
                .collect()
        })
        .unwrap_or_default();
    KnowledgeHit {
        article_id: text("article_id"),
        title: text("title"),
        score,
        similarity,
        answer: text("answer"),
        language: text("language"),
        categories,
        agent_approved: text("kind") == APPROVED,
    }
}

/// The written articles of a tenant (not its approved answers).
fn articles_of(tenant: &str) -> Filter {
    Filter::default()
        .field("tenant", tenant)
        .field("kind", "article")
}

fn document(article: &Article) -> Document {
    Document {
        key: article.id.clone(),
        text: article.search_text(),
        language: article.language.clone(),
        payload: payload(article),
    }
}

/// Payload `kind` of an agent-approved answer.
const APPROVED: &str = "approved";

/// A reply an agent sent, offered again for similar inquiries.
#[derive(Debug, Clone)]
pub struct ApprovedAnswer<'a> {
    pub tenant: &'a str,
    /// Unique per tenant: the same key replaces the earlier answer.
    pub key: &'a str,
    pub question: &'a str,
    pub answer: &'a str,
    pub language: &'a str,
    pub category: Category,
    pub agent: &'a str,
}

fn payload(article: &Article) -> Map<String, Value> {
    let categories: Vec<&str> = article.categories.iter().map(|c| c.as_str()).collect();
    let value = json!({
        "kind": "article",
        "article_id": article.id,
        "title": article.title,
        "categories": categories,
        "tags": article.tags,
        "answer": article.answer,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_front_matter_and_unwraps_lines() {
        let text = "---\nid: a-en\ntitle: T\nlanguage: en\ncategories: [shipping_status]\ntags: [x, y]\n---\nLine one\nline two.\n\nNext.\n";
        let article = Article::parse(text).unwrap();
        assert_eq!(article.id, "a-en");
        assert_eq!(article.categories, vec![Category::ShippingStatus]);
        assert_eq!(article.answer, "Line one line two.\n\nNext.");
    }

    #[test]
    fn rejects_unknown_categories_and_missing_front_matter() {
        assert!(Article::parse("no front matter").is_err());
        let bad = "---\nid: a\ntitle: T\nlanguage: en\ncategories: [nope]\n---\nText";
        assert!(Article::parse(bad).is_err());
    }

    #[test]
    fn the_shipped_knowledge_base_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/articles");
        let articles = load_articles(&dir).unwrap();
        assert!(!articles.is_empty());
    }
}

//! Intent and tier. The intent is voted by the nearest labelled examples
//! (`knowledge-base/intents/<lang>.toml`, stored in the vector store) and
//! sharpened by lexical keywords; the tier starts from the category and is
//! raised for threats, anger, VIP buyers and negative feedback.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::{Category, EmotionKind, Inquiry, IntentGuess, Polarity, Sentiment, Tier};
use crate::embed::{Embedder, TextKind};
use crate::ingest::{sync_documents, Document, IngestReport};
use crate::signals::Signals;
use crate::store::{Collection, Filter};

/// One labelled example inquiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub language: String,
    pub category: Category,
    pub text: String,
}

#[derive(Debug, Deserialize)]
struct ExamplesFile {
    language: String,
    examples: HashMap<String, Vec<String>>,
}

/// Reads every `<lang>.toml` and labelled `*.csv` of examples in `dir`.
pub fn load_examples(dir: &Path) -> anyhow::Result<Vec<Example>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "toml" || ext == "csv")
        })
        .collect();
    paths.sort();
    let mut examples = Vec::new();
    for path in paths {
        if path.extension().is_some_and(|ext| ext == "csv") {
            // Labelled CSV (`text`/`instruction`, `category`/`intent`, `language`), English by default.
            examples.extend(
                crate::eval::read_labelled(&path)?
                    .into_iter()
                    .map(|row| Example {
                        language: row.language.unwrap_or_else(|| "en".to_string()),
                        category: row.category,
                        text: row.text,
                    }),
            );
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let file: ExamplesFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (name, texts) in file.examples {
            let category = Category::parse(&name)
                .with_context(|| format!("unknown category {name:?} in {}", path.display()))?;
            examples.extend(texts.into_iter().map(|text| Example {
                language: file.language.clone(),
                category,
                text,
            }));
        }
    }
    Ok(examples)
}

/// What the classifier sees of an inquiry.
#[derive(Debug, Clone, Copy)]
pub struct IntentQuery<'a> {
    pub text: &'a str,
    pub language: &'a str,
    /// The inquiry's embedding, shared with retrieval.
    pub vector: &'a [f32],
}

pub trait IntentClassifier: Send + Sync {
    fn classify(&self, query: &IntentQuery<'_>) -> anyhow::Result<IntentGuess>;
    /// Categories with keyword evidence, strongest first: fast enough for
    /// the acknowledgement.
    fn keyword_categories(&self, text: &str, language: &str) -> Vec<Category>;
    /// Stores labelled examples, embedding only new or changed ones.
    fn ingest_examples(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<IngestReport>;
}

/// Nearest-neighbour vote over labelled examples, plus keyword evidence.
pub struct KnnIntentClassifier {
    collection: Arc<dyn Collection>,
    signals: Arc<Signals>,
    neighbours: usize,
    /// Weight of one keyword hit, in logits.
    keyword_weight: f32,
    /// Softmax temperature over cosine similarities.
    temperature: f32,
    /// Divides the final logits: below 1 sharpens an under-confident vote.
    calibration: f32,
}

/// Tenant under which the shipped examples are stored.
const SEED_TENANT: &str = "_seed";
/// Probability floor of the neighbour vote, so keywords can still lift a
/// category no neighbour voted for.
const KNN_FLOOR: f32 = 0.003;

impl KnnIntentClassifier {
    pub fn new(
        collection: Arc<dyn Collection>,
        signals: Arc<Signals>,
        settings: &crate::config::IntentSettings,
    ) -> KnnIntentClassifier {
        KnnIntentClassifier {
            collection,
            signals,
            neighbours: settings.neighbours,
            keyword_weight: settings.keyword_weight,
            temperature: settings.temperature.max(1e-3),
            calibration: settings.calibration_temperature.max(1e-3),
        }
    }

    fn keyword_hits(&self, text: &str, language: &str) -> [f32; 10] {
        let lowered = text.to_lowercase();
        let mut hits = [0.0f32; 10];
        for set in self.signals.for_language(language) {
            for (category, phrases) in &set.intents {
                // Several hits of one category count less than the first.
                let n = phrases.iter().filter(|p| p.occurs_in(&lowered)).count() as f32;
                hits[category.index()] += n.min(3.0);
            }
        }
        hits
    }
}

impl IntentClassifier for KnnIntentClassifier {
    fn classify(&self, query: &IntentQuery<'_>) -> anyhow::Result<IntentGuess> {
        let neighbours = self.collection.search_dense(
            query.vector,
            &Filter::default().field("kind", "example"),
            self.neighbours,
        )?;
        let mut logits = [f32::NEG_INFINITY; 10];
        let top = neighbours.first().map_or(0.0, |n| n.score);
        let mut votes = [0.0f32; 10];
        for neighbour in &neighbours {
            let Some(category) = neighbour
                .payload
                .get("intent")
                .and_then(Value::as_str)
                .and_then(Category::parse)
            else {
                continue;
            };
            votes[category.index()] += ((neighbour.score - top) / self.temperature).exp();
        }
        let total: f32 = votes.iter().sum();
        let keywords = self.keyword_hits(query.text, query.language);
        for (slot, logit) in logits.iter_mut().enumerate() {
            // A small floor keeps categories without neighbours reachable by keywords.
            let knn = if total > 0.0 {
                votes[slot] / total
            } else {
                0.1
            };
            *logit = (knn + KNN_FLOOR).ln() + self.keyword_weight * keywords[slot];
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits
            .iter()
            .map(|l| ((l - max) / self.calibration).exp())
            .collect();
        let sum: f32 = exp.iter().sum();
        let (best, p) = exp
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, e)| (i, e / sum))
            .context("no categories")?;
        Ok(IntentGuess {
            category: Category::ALL[best],
            confidence: p,
        })
    }

    fn keyword_categories(&self, text: &str, language: &str) -> Vec<Category> {
        let hits = self.keyword_hits(text, language);
        let mut found: Vec<(Category, f32)> = Category::ALL
            .into_iter()
            .zip(hits)
            .filter(|(_, n)| *n > 0.0)
            .collect();
        // Ties go to the more urgent category: the safer acknowledgement.
        found.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(a.0.base_tier().cmp(&b.0.base_tier()))
        });
        found.into_iter().map(|(c, _)| c).collect()
    }

    fn ingest_examples(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<IngestReport> {
        let documents: Vec<Document> = examples
            .iter()
            .map(|example| Document {
                key: format!("{}/{}/{}", example.language, example.category, example.text),
                text: example.text.clone(),
                language: example.language.clone(),
                payload: example_payload(example.category),
            })
            .collect();
        let scope = Filter::default()
            .field("tenant", SEED_TENANT)
            .field("kind", "example");
        sync_documents(
            self.collection.as_ref(),
            embedder,
            TextKind::Query,
            None,
            SEED_TENANT,
            &scope,
            &documents,
        )
    }
}

/// The payload of a labelled example point: what the neighbour vote reads.
pub fn example_payload(category: Category) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("kind".into(), "example".into());
    payload.insert("intent".into(), category.as_str().into());
    payload
}

/// The tier: the category's, raised for what DOMAIN.md names.
pub fn assign_tier(category: Category, sentiment: &Sentiment, inquiry: &Inquiry) -> Tier {
    let mut tier = category.base_tier();
    if sentiment.emotion(EmotionKind::Threat) >= 0.4 {
        return Tier::P1Urgent;
    }
    if sentiment.emotion(EmotionKind::Anger) >= 0.4 || sentiment.score <= -0.85 {
        tier = tier.raised();
    }
    if inquiry.customer.vip {
        tier = tier.raised();
    }
    tier
}

/// The category once the sentiment is known: unhappy feedback ("two stars,
/// the strap broke in a week") is a complaint, and is handled as one.
pub fn settle_category(category: Category, sentiment: &Sentiment) -> Category {
    if category == Category::Feedback && sentiment.label == Polarity::Negative {
        Category::Complaint
    } else {
        category
    }
}

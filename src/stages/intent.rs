//! Intent and tier. The intent is voted by the nearest labelled examples
//! (`knowledge-base/intents/<lang>.toml`, stored in the vector store), scored
//! by a linear head trained on them (`head.rs`) and voted by the tenant's own
//! agent corrections (stored there too, as they arrive), then sharpened by
//! lexical keywords; the tier starts from the category and
//! is raised for threats, anger and VIP buyers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context;
use serde_json::{Map, Value};

use crate::config::TierSettings;
use crate::domain::{Category, EmotionKind, Inquiry, IntentGuess, Polarity, Risk, Sentiment, Tier};
use crate::embed::{Embedder, TextKind};
use crate::feedback::CORRECTION;
use crate::ingest::{point_id, sync_seed_examples, Document, IngestReport, SEED_TENANT};
use crate::labelled::{files_in, Labelled, LabelledFile};
use crate::signals::Signals;
use crate::stages::head::{fit_stored, LinearHead};
use crate::store::{Collection, Filter, ScoredPoint};

/// One labelled example inquiry.
pub type Example = Labelled<Category>;

/// Reads every `<lang>.toml` and labelled `*.csv` or `*.jsonl` of examples
/// in `dir` and in its `sets` folder (evaluation sets, once read, teach).
pub fn load_examples(dir: &Path) -> anyhow::Result<Vec<Example>> {
    Ok(load_tiered_examples(dir)?
        .into_iter()
        .map(|(example, _)| example)
        .collect())
}

/// The examples of `load_examples`, with the tier of those labelled with
/// one: an example labelled urgent (P1) may tell a threat, a hazard or a
/// taken-over account, so it is not an everyday message for the risk head.
pub fn load_tiered_examples(dir: &Path) -> anyhow::Result<Vec<(Example, Option<Tier>)>> {
    let mut paths = files_in(dir, &["toml", "csv", "jsonl"])?;
    let sets = dir.join(SETS);
    if sets.is_dir() {
        paths.extend(files_in(&sets, &["csv", "jsonl"])?);
    }
    let mut examples = Vec::new();
    for path in paths {
        if path.extension().is_some_and(|ext| ext != "toml") {
            // Labelled rows (`text`/`instruction`, `category`/`intent`,
            // `language`, `tier`), English by default.
            examples.extend(crate::eval::read_labelled(&path)?.into_iter().map(|row| {
                let example = Example {
                    language: row.language.unwrap_or_else(|| "en".to_string()),
                    label: row.category,
                    text: row.text,
                };
                (example, row.tier)
            }));
            continue;
        }
        let file = LabelledFile::read(&path)?;
        for (name, texts) in file.examples {
            let category = Category::parse(&name)
                .with_context(|| format!("unknown category {name:?} in {}", path.display()))?;
            examples.extend(texts.into_iter().map(|text| {
                let example = Example {
                    language: file.language.clone(),
                    label: category,
                    text,
                };
                (example, None)
            }));
        }
    }
    Ok(examples)
}

/// The folder of labelled inquiry sets among the examples.
const SETS: &str = "sets";

/// What the classifier sees of an inquiry.
#[derive(Debug, Clone, Copy)]
pub struct IntentQuery<'a> {
    pub text: &'a str,
    pub language: &'a str,
    /// The inquiry's embedding, shared with retrieval.
    pub vector: &'a [f32],
    /// Whose agent corrections count; empty: none.
    pub tenant: &'a str,
    /// The text's keyword hits, found once when the inquiry was prepared.
    pub keywords: KeywordHits,
}

/// Keyword hits per category (`Category::index` order), at most 3 each.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeywordHits(pub [f32; 10]);

impl KeywordHits {
    /// Categories with a hit, strongest first. Ties go to the more urgent
    /// category: the safer acknowledgement.
    pub fn categories(&self) -> Vec<Category> {
        let mut found: Vec<(Category, f32)> = Category::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0.0)
            .collect();
        found.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(a.0.base_tier().cmp(&b.0.base_tier()))
        });
        found.into_iter().map(|(c, _)| c).collect()
    }
}

pub trait IntentClassifier: Send + Sync {
    fn classify(&self, query: &IntentQuery<'_>) -> anyhow::Result<IntentGuess>;
    /// The keyword evidence for each category: fast enough for the
    /// acknowledgement, and handed back to `classify` in the query.
    fn keyword_hits(&self, text: &str, language: &str) -> KeywordHits;
    /// Stores labelled examples, embedding only new or changed ones.
    fn ingest_examples(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<IngestReport>;
    /// The embeddings of `examples`, in order: the stored ones where they
    /// are stored, the others embedded now.
    fn example_vectors(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// Nearest-neighbour vote over labelled examples and a linear head trained on
/// them, plus keyword evidence.
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
    /// Weight of the head's log-probabilities; 0: no head.
    head_weight: f32,
    /// Trained (or loaded from `head_cache`) when the examples are ingested.
    head: RwLock<Option<Arc<LinearHead>>>,
    head_cache: Option<PathBuf>,
}

/// A correction votes like this many labelled examples at its place.
const CORRECTION_WEIGHT: f32 = 20.0;
/// Share of the shipped examples' vote above which a category counts as
/// strongly supported: one agent alone cannot overturn it.
const STRONG_SUPPORT: f32 = 0.9;
/// Distinct agents needed to overturn a strongly supported category.
const AGENTS_TO_OVERTURN: usize = 2;
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
            head_weight: settings.head_weight.max(0.0),
            head: RwLock::new(None),
            head_cache: None,
        }
    }

    /// Caches the trained head at `path`, so a restart with the same examples
    /// and model does not retrain it.
    pub fn with_head_cache(mut self, path: PathBuf) -> KnnIntentClassifier {
        self.head_cache = Some(path);
        self
    }

    /// Trains the head on these examples (used where the examples are not the
    /// stored ones, as in `firstreply eval`'s folds); a no-op with no head.
    pub fn train_head(&self, vectors: &[&[f32]], labels: &[Category]) -> anyhow::Result<()> {
        if self.head_weight > 0.0 {
            self.set_head(train_head(vectors, labels)?);
        }
        Ok(())
    }

    fn set_head(&self, head: LinearHead) {
        *self.head.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(head));
    }

    /// The head for the stored examples (`labelled`: point id and category
    /// index), cached or trained now.
    fn fit_head(&self, model_id: &str, labelled: HashMap<u64, usize>) -> anyhow::Result<()> {
        if labelled.is_empty() {
            return Ok(());
        }
        let ids: Vec<u64> = labelled.keys().copied().collect();
        let head = fit_stored(
            self.collection.as_ref(),
            &LinearHead::fingerprint(model_id, 1.0, &ids),
            || labelled,
            Category::ALL.len(),
            |stored| LinearHead::train(stored.vectors, stored.labels, Category::ALL.len(), 1.0),
            (self.head_cache.as_deref(), "intent"),
        )?;
        self.set_head(head);
        Ok(())
    }
}

/// The key an example is stored under (its point id is the seed tenant's
/// id for this key).
pub fn example_key(example: &Example) -> String {
    format!("{}/{}/{}", example.language, example.label, example.text)
}

/// A head over the categories, trained on `vectors` labelled `labels`.
fn train_head(vectors: &[&[f32]], labels: &[Category]) -> anyhow::Result<LinearHead> {
    let indices: Vec<usize> = labels.iter().map(|c| c.index()).collect();
    LinearHead::train(vectors, &indices, Category::ALL.len(), 1.0)
}

impl IntentClassifier for KnnIntentClassifier {
    fn classify(&self, query: &IntentQuery<'_>) -> anyhow::Result<IntentGuess> {
        let neighbours = self.collection.search_dense(
            query.vector,
            &Filter::default().field("kind", "example"),
            self.neighbours,
        )?;
        let corrections = if query.tenant.is_empty() {
            Vec::new()
        } else {
            self.collection.search_dense(
                query.vector,
                &Filter::default()
                    .field("kind", CORRECTION)
                    .field("tenant", query.tenant),
                self.neighbours,
            )?
        };
        let mut logits = [f32::NEG_INFINITY; 10];
        let top = neighbours
            .iter()
            .chain(&corrections)
            .map(|n| n.score)
            .fold(f32::NEG_INFINITY, f32::max);
        let weight = |score: f32| ((score - top) / self.temperature).exp();
        let mut votes = [0.0f32; 10];
        for neighbour in &neighbours {
            if let Some(category) = intent_of(neighbour) {
                votes[category.index()] += weight(neighbour.score);
            }
        }
        let total: f32 = votes.iter().sum();
        let keywords = query.keywords.0;
        let head = self
            .head
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .map(|head| head.probabilities(query.vector));
        for (slot, logit) in logits.iter_mut().enumerate() {
            // A small floor keeps categories without neighbours reachable by keywords.
            let knn = if total > 0.0 {
                votes[slot] / total
            } else {
                0.1
            };
            *logit = (knn + KNN_FLOOR).ln() + self.keyword_weight * keywords[slot];
            if let Some(head) = &head {
                *logit += self.head_weight * head[slot].max(1e-6).ln();
            }
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits
            .iter()
            .map(|l| ((l - max) / self.calibration).exp())
            .collect();
        let sum: f32 = exp.iter().sum();
        let strong = exp
            .iter()
            .position(|e| e / sum >= STRONG_SUPPORT)
            .map(|i| Category::ALL[i]);
        let corrected = correction_votes(strong, &corrections, weight);
        let corrected_mass: f32 = corrected.iter().sum();
        // The tenant's corrections are the agents' verdict on texts like this
        // one, keywords included: they take their share of the vote's weight
        // after the keywords have spoken.
        let share = corrected_mass / (corrected_mass + total).max(f32::MIN_POSITIVE);
        let probabilities: Vec<f32> = exp
            .iter()
            .zip(&corrected)
            .map(|(e, c)| {
                (1.0 - share) * e / sum + share * c / corrected_mass.max(f32::MIN_POSITIVE)
            })
            .collect();
        let (best, p) = probabilities
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .context("no categories")?;
        let urgent = Category::ALL
            .iter()
            .zip(&probabilities)
            .filter(|(category, _)| category.base_tier() == Tier::P1Urgent)
            .map(|(_, p)| p)
            .sum();
        Ok(IntentGuess {
            category: Category::ALL[best],
            confidence: p,
            urgent,
        })
    }

    fn keyword_hits(&self, text: &str, language: &str) -> KeywordHits {
        keyword_hits(&self.signals, text, language)
    }

    fn ingest_examples(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<IngestReport> {
        let documents: Vec<Document> = examples
            .iter()
            .map(|example| Document {
                key: example_key(example),
                text: example.text.clone(),
                language: example.language.clone(),
                payload: example_payload(example.label),
            })
            .collect();
        let report = sync_seed_examples(self.collection.as_ref(), embedder, "example", &documents)?;
        if self.head_weight > 0.0 {
            let labelled: HashMap<u64, usize> = examples
                .iter()
                .zip(&documents)
                .map(|(example, document)| {
                    (point_id(SEED_TENANT, &document.key), example.label.index())
                })
                .collect();
            self.fit_head(embedder.model_id(), labelled)?;
        }
        Ok(report)
    }

    fn example_vectors(
        &self,
        embedder: &dyn Embedder,
        examples: &[Example],
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        let ids: Vec<u64> = examples
            .iter()
            .map(|example| point_id(SEED_TENANT, &example_key(example)))
            .collect();
        let mut stored: HashMap<u64, Vec<f32>> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1024) {
            stored.extend(self.collection.dense_vectors(chunk)?);
        }
        let missing: Vec<&str> = examples
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !stored.contains_key(id))
            .map(|(example, _)| example.text.as_str())
            .collect();
        // Examples are stored as queries (see `sync_seed_examples`).
        let mut embedded = if missing.is_empty() {
            Vec::new()
        } else {
            embedder.embed(&missing, TextKind::Query)?
        }
        .into_iter();
        ids.iter()
            .map(|id| match stored.get(id) {
                // An example may be listed twice (the same text in two sets).
                Some(vector) => Ok(vector.clone()),
                None => embedded
                    .next()
                    .context("the embedder returned fewer vectors than texts"),
            })
            .collect()
    }
}

fn intent_of(point: &ScoredPoint) -> Option<Category> {
    point
        .payload
        .get("intent")
        .and_then(Value::as_str)
        .and_then(Category::parse)
}

/// The votes of the tenant's corrections, beside the examples' `votes`. Each
/// agent counts once per category (their nearest correction), as
/// `CORRECTION_WEIGHT` examples at its place. A category that examples and
/// keywords support `strong`ly (a probability of `STRONG_SUPPORT` or more) is
/// overturned only by `AGENTS_TO_OVERTURN` different agents: one agent's
/// single correction cannot poison it.
fn correction_votes(
    strong: Option<Category>,
    corrections: &[ScoredPoint],
    weight: impl Fn(f32) -> f32,
) -> [f32; 10] {
    let mut corrected = [0.0f32; 10];
    // category -> agent -> weight of that agent's nearest correction
    let mut by_category: HashMap<Category, HashMap<&str, f32>> = HashMap::new();
    for correction in corrections {
        let Some(category) = intent_of(correction) else {
            continue;
        };
        let agent = correction
            .payload
            .get("agent")
            .and_then(Value::as_str)
            .unwrap_or("");
        let w = CORRECTION_WEIGHT * weight(correction.score);
        let slot = by_category
            .entry(category)
            .or_default()
            .entry(agent)
            .or_insert(0.0);
        *slot = slot.max(w);
    }
    for (category, agents) in by_category {
        let overturns = strong.is_some_and(|s| s != category);
        if overturns && agents.len() < AGENTS_TO_OVERTURN {
            continue;
        }
        corrected[category.index()] += agents.values().sum::<f32>();
    }
    corrected
}

/// Keyword hits per category (`Category::index` order), at most 3 each.
fn keyword_hits(signals: &Signals, text: &str, language: &str) -> KeywordHits {
    let lowered = text.to_lowercase();
    let sets = signals.for_language(language);
    // A keyword inside a threat is not the buyer's ask: "再不发货我就去
    // 平台投诉" threatens a complaint about a parcel that has not come.
    let threats: Vec<std::ops::Range<usize>> = sets
        .iter()
        .filter_map(|set| set.emotions.get(&EmotionKind::Threat))
        .flatten()
        .flat_map(|threat| threat.spans(&lowered))
        .collect();
    let outside_threats = |span: std::ops::Range<usize>| {
        !threats
            .iter()
            .any(|threat| threat.start <= span.start && span.end <= threat.end)
    };
    let mut hits = [0.0f32; 10];
    for set in sets {
        for (category, phrases) in &set.intents {
            // Several hits of one category count less than the first.
            let n = phrases
                .iter()
                .filter(|p| p.spans(&lowered).any(&outside_threats))
                .count() as f32;
            hits[category.index()] += n.min(3.0);
        }
    }
    KeywordHits(hits)
}

/// The payload of a labelled example point: what the neighbour vote reads.
pub fn example_payload(category: Category) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("kind".into(), "example".into());
    payload.insert("intent".into(), category.as_str().into());
    payload
}

/// The categories a message's words name, besides the classifier's reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mentions<'a> {
    /// Every category with a keyword in the message, strongest first.
    pub keywords: &'a [Category],
    /// Categories whose ask is told in words only that ask uses
    /// (`[hidden_ask]` in the signals): "tags still on" is an exchange.
    pub hidden_asks: &'a [Category],
}

impl<'a> Mentions<'a> {
    /// Every category named: the keywords', strongest first, then those of
    /// asks told in their own words, each once.
    pub fn categories(self) -> impl Iterator<Item = Category> + 'a {
        let keywords = self.keywords;
        keywords.iter().copied().chain(
            self.hidden_asks
                .iter()
                .copied()
                .filter(move |category| !keywords.contains(category)),
        )
    }
}

/// The tier: the category's, raised for what DOMAIN.md names.
pub fn assign_tier(
    intent: &IntentGuess,
    sentiment: &Sentiment,
    inquiry: &Inquiry,
    risks: &[Risk],
    mentions: Mentions<'_>,
    settings: &TierSettings,
) -> Tier {
    let category = intent.category;
    let mut tier = category.base_tier();
    if sentiment.emotion(EmotionKind::Threat) >= 0.4
        || risks.iter().any(|r| r.is_urgent())
        || intent.urgent >= settings.urgent_probability
        || hides_an_urgent_ask(category, mentions)
    {
        return Tier::P1Urgent;
    }
    // Strong anger raises a step; so does a shipped parcel gone wrong on a
    // shipping question (DOMAIN.md: logistics anomalies are "important"),
    // but not both: the anger of a late-parcel message is about that parcel.
    // (The same words in a complaint or a refund are already its tier.)
    let angry = sentiment.emotion(EmotionKind::Anger) >= 0.4 || sentiment.score <= -0.85;
    let parcel_gone_wrong =
        category == Category::ShippingStatus && risks.contains(&Risk::LogisticsAnomaly);
    if angry || parcel_gone_wrong {
        tier = tier.raised();
    }
    if inquiry.customer.vip || risks.contains(&Risk::RepeatCustomer) {
        tier = tier.raised();
    }
    if risks.contains(&Risk::HighValue) {
        tier = tier.raised();
    }
    // Unhappy feedback is a complaint in the making. (Relabelling it as a
    // complaint cost 29 of 122 Bitext reviews: "I want to leave a bad review"
    // is feedback.)
    if category == Category::Feedback && sentiment.label == Polarity::Negative {
        tier = tier.raised();
    }
    tier
}

/// An urgent ask told as another category's message
/// (`knowledge-base/intents/README.md`): a refund named in a payment
/// question is a promised refund not yet on the card; a cancellation or a
/// change named in thanks is a change of plans; an unused item that arrived
/// and does not fit, asked about as a stock question, is an exchange. Over
/// the read sets a refund named in what reads as a payment question was
/// urgent 6 times in 20; the neighbour vote, sure of the payment, had missed
/// every one.
fn hides_an_urgent_ask(category: Category, mentions: Mentions<'_>) -> bool {
    let told_in_its_own_words = mentions
        .hidden_asks
        .iter()
        .any(|ask| ask.base_tier() == Tier::P1Urgent);
    told_in_its_own_words
        || match category {
            Category::PaymentBilling => mentions.keywords.contains(&Category::RefundReturn),
            Category::Feedback => mentions.keywords.contains(&Category::OrderChange),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tier of a calm inquiry read as `category`, with `urgent` the
    /// probability of an order change or refund, under the default settings.
    fn calm_tier(category: Category, urgent: f32, risks: &[Risk]) -> Tier {
        let calm = Sentiment {
            label: Polarity::Neutral,
            score: 0.0,
            emotions: Vec::new(),
        };
        let inquiry = crate::eval::labelled_inquiry(0, "text", "", chrono::Utc::now());
        let intent = IntentGuess {
            category,
            confidence: 1.0 - urgent,
            urgent,
        };
        assign_tier(
            &intent,
            &calm,
            &inquiry,
            risks,
            Mentions::default(),
            &default_tier_settings(),
        )
    }

    fn default_tier_settings() -> TierSettings {
        crate::config::Settings::load(None).unwrap().tier
    }

    #[test]
    fn hazards_and_taken_over_accounts_are_urgent_customer_and_value_raise_a_step() {
        let tier = |category, risks: &[Risk]| calm_tier(category, 0.0, risks);
        assert_eq!(tier(Category::ProductQuestion, &[]), Tier::P3Normal);
        assert_eq!(tier(Category::Feedback, &[Risk::Safety]), Tier::P1Urgent);
        assert_eq!(
            tier(Category::Account, &[Risk::AccountTakeover]),
            Tier::P1Urgent
        );
        assert_eq!(
            tier(Category::Complaint, &[Risk::RepeatCustomer]),
            Tier::P1Urgent
        );
        assert_eq!(
            tier(Category::ShippingStatus, &[Risk::HighValue]),
            Tier::P2High
        );
        assert_eq!(
            tier(
                Category::ShippingStatus,
                &[Risk::RepeatCustomer, Risk::HighValue]
            ),
            Tier::P1Urgent
        );
    }

    #[test]
    fn a_parcel_gone_wrong_raises_a_shipping_question_once_with_anger() {
        let tier = |category, risks: &[Risk]| calm_tier(category, 0.0, risks);
        let anomaly = Risk::LogisticsAnomaly;
        assert_eq!(tier(Category::ShippingStatus, &[anomaly]), Tier::P2High);
        assert_eq!(
            tier(Category::ShippingStatus, &[anomaly, Risk::RepeatCustomer]),
            Tier::P1Urgent
        );
        // A complaint about the same parcel is already its category's tier.
        assert_eq!(tier(Category::Complaint, &[anomaly]), Tier::P2High);
        // The anger of a late-parcel message is about that parcel: one step.
        let furious = Sentiment {
            label: Polarity::Negative,
            score: -0.9,
            emotions: vec![(EmotionKind::Anger, 0.8)],
        };
        let inquiry = crate::eval::labelled_inquiry(0, "text", "", chrono::Utc::now());
        let intent = IntentGuess {
            category: Category::ShippingStatus,
            confidence: 1.0,
            urgent: 0.0,
        };
        let settings = default_tier_settings();
        let angry = |risks: &[Risk]| {
            assign_tier(
                &intent,
                &furious,
                &inquiry,
                risks,
                Mentions::default(),
                &settings,
            )
        };
        assert_eq!(angry(&[]), Tier::P2High);
        assert_eq!(angry(&[anomaly]), Tier::P2High);
    }

    #[test]
    fn urgent_asks_told_as_other_messages_are_urgent() {
        let calm = Sentiment {
            label: Polarity::Neutral,
            score: 0.0,
            emotions: Vec::new(),
        };
        let inquiry = crate::eval::labelled_inquiry(0, "text", "", chrono::Utc::now());
        let settings = default_tier_settings();
        let tier = |category, also: &[Category]| {
            let intent = IntentGuess {
                category,
                confidence: 1.0,
                urgent: 0.0,
            };
            let mentions = Mentions {
                keywords: also,
                hidden_asks: &[],
            };
            assign_tier(&intent, &calm, &inquiry, &[], mentions, &settings)
        };
        let refund = [Category::RefundReturn];
        assert_eq!(tier(Category::PaymentBilling, &refund), Tier::P1Urgent);
        assert_eq!(tier(Category::PaymentBilling, &[]), Tier::P2High);
        assert_eq!(
            tier(Category::Feedback, &[Category::OrderChange]),
            Tier::P1Urgent
        );
        // Elsewhere a refund word is not the ask by itself.
        assert_eq!(tier(Category::ShippingStatus, &refund), Tier::P3Normal);
        // Words only an exchange uses make any reading urgent.
        let hidden = Mentions {
            keywords: &[],
            hidden_asks: &refund,
        };
        let stock_question = IntentGuess {
            category: Category::ProductQuestion,
            confidence: 1.0,
            urgent: 0.0,
        };
        let tier =
            |mentions| assign_tier(&stock_question, &calm, &inquiry, &[], mentions, &settings);
        assert_eq!(tier(hidden), Tier::P1Urgent);
        assert_eq!(tier(Mentions::default()), Tier::P3Normal);
    }

    #[test]
    fn a_keyword_inside_a_threat_is_not_the_ask() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/signals");
        let signals = Signals::load(&dir).unwrap();
        let complaint = Category::Complaint.index();
        // "投诉" (complain) is a complaint keyword, and part of the threat.
        let threat = keyword_hits(&signals, "一个月了还没到，再不发货我就去平台投诉", "zh");
        assert_eq!(threat.0[complaint], 0.0);
        assert!(threat.0[Category::ShippingStatus.index()] > 0.0);
        let plain = keyword_hits(&signals, "我要投诉，收到的杯子碎了", "zh");
        assert!(plain.0[complaint] > 0.0);
    }

    #[test]
    fn a_likely_enough_order_change_or_refund_is_urgent() {
        let at = default_tier_settings().urgent_probability;
        let tier = |urgent| calm_tier(Category::ProductQuestion, urgent, &[]);
        assert_eq!(tier(at), Tier::P1Urgent);
        assert_eq!(tier(at - 0.01), Tier::P3Normal);
    }

    fn correction(category: Category, agent: &str, score: f32) -> ScoredPoint {
        let mut payload = Map::new();
        payload.insert("intent".into(), category.as_str().into());
        payload.insert("agent".into(), agent.into());
        ScoredPoint {
            id: 0,
            score,
            similarity: score,
            payload,
        }
    }

    #[test]
    fn an_agent_counts_once_per_category_and_alone_cannot_overturn_strong_support() {
        let weight = |score: f32| score;
        let twice = [
            correction(Category::RefundReturn, "ana", 0.5),
            correction(Category::RefundReturn, "ana", 0.9),
        ];
        let votes = correction_votes(None, &twice, weight);
        assert_eq!(
            votes[Category::RefundReturn.index()],
            CORRECTION_WEIGHT * 0.9
        );

        let strong = Some(Category::ShippingStatus);
        assert_eq!(correction_votes(strong, &twice, weight), [0.0; 10]);
        let two_agents = [
            correction(Category::RefundReturn, "ana", 0.9),
            correction(Category::RefundReturn, "ben", 0.8),
        ];
        let votes = correction_votes(strong, &two_agents, weight);
        assert!((votes[Category::RefundReturn.index()] - CORRECTION_WEIGHT * 1.7).abs() < 1e-4);
        // Agreeing with the strong category needs no second agent.
        let agreeing = [correction(Category::ShippingStatus, "ana", 1.0)];
        assert!(
            correction_votes(strong, &agreeing, weight)[Category::ShippingStatus.index()] > 0.0
        );
    }
}

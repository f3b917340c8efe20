//! Risks told in words no phrase list has. The lexical signals catch "it
//! caught fire" and "chargeback"; buyers also write "the plug end went black
//! and it smelled like melting plastic" or "my bank will sort this out". Once
//! the inquiry is embedded, a linear head trained on labelled risk examples
//! (`knowledge-base/risks/<lang>.toml`: hazards, threats, taken-over accounts,
//! and close calls that are none of these) reads the risk from the embedding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value};

use crate::config::RiskSettings;
use crate::domain::{EmotionKind, Risk, Sentiment};
use crate::embed::{Embedder, TextKind};
use crate::ingest::{point_id, sync_seed_examples, Document, IngestReport, SEED_TENANT};
use crate::labelled::{read_labelled_dir, Labelled};
use crate::signals::is_unspaced_script;
use crate::stages::head::{fit_stored, LinearHead, Stored};
use crate::store::Collection;

/// What a labelled risk example tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskLabel {
    /// A product hazard to a person, a pet or a home.
    Safety,
    /// A chargeback, a marketplace claim, a public review, legal action.
    Threat,
    /// Someone else in the buyer's account or using their payment.
    AccountTakeover,
    /// None of these, however close it comes.
    None,
}

impl RiskLabel {
    pub const ALL: [RiskLabel; 4] = [
        RiskLabel::Safety,
        RiskLabel::Threat,
        RiskLabel::AccountTakeover,
        RiskLabel::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLabel::Safety => "safety",
            RiskLabel::Threat => "threat",
            RiskLabel::AccountTakeover => "account_takeover",
            RiskLabel::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<RiskLabel> {
        RiskLabel::ALL
            .into_iter()
            .find(|label| label.as_str() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One labelled risk example.
pub type RiskExample = Labelled<RiskLabel>;

/// Reads every `<lang>.toml` of risk examples in `dir`.
pub fn load_risk_examples(dir: &Path) -> anyhow::Result<Vec<RiskExample>> {
    read_labelled_dir(
        dir,
        RiskLabel::parse,
        "safety, threat, account_takeover or none",
    )
}

const KIND: &str = "risk";

/// The class index everyday messages are trained under: none of the risks,
/// once those that read as one are left out (`train_risk_head`).
const EVERYDAY: usize = RiskLabel::ALL.len();

/// Bumped whenever `train_risk_head` changes, so cached heads are retrained.
const TRAINING_VERSION: u64 = 2;

/// The everyday messages the risk head learns as none of the risks: stored
/// points `pick` chooses among `candidates`. `pick` is called only when the
/// head must be trained, so `version` must change whenever it could choose
/// differently among the same candidates.
pub struct Background<'a> {
    pub candidates: &'a [u64],
    pub version: u64,
    pub pick: Pick<'a>,
}

/// Chooses the everyday messages among the candidate point ids.
pub type Pick<'a> = Box<dyn FnOnce(&[u64]) -> Vec<u64> + 'a>;

/// What storing the risk examples did.
#[derive(Debug)]
pub struct RiskIngest {
    pub report: IngestReport,
    /// The everyday messages left out of the head's training because they
    /// read as a risk; empty when a cached head was loaded.
    pub left_out: Vec<u64>,
}

/// A linear head on the embedding, trained on the labelled risk examples
/// and, as none of the risks, on the everyday messages the intent examples
/// are. A message is mostly about its topic ("three weeks late"), with the
/// risk a clause of it ("… or I report you to Shopee"): nearest neighbours
/// follow the topic, while a linear head learns the directions that tell a
/// risk whatever the topic.
pub struct RiskReader {
    collection: Arc<dyn Collection>,
    settings: RiskSettings,
    head: RwLock<Option<Arc<LinearHead>>>,
    head_cache: Option<PathBuf>,
}

impl RiskReader {
    pub fn new(collection: Arc<dyn Collection>, settings: &RiskSettings) -> RiskReader {
        RiskReader {
            collection,
            settings: settings.clone(),
            head: RwLock::new(None),
            head_cache: None,
        }
    }

    /// Caches the trained head at `path`, so a restart with the same
    /// examples loads it instead of training it again.
    pub fn with_head_cache(mut self, path: PathBuf) -> RiskReader {
        self.head_cache = Some(path);
        self
    }

    /// Stores the labelled examples, embedding only new or changed ones, and
    /// fits the head on them and on the `background`'s everyday messages.
    pub fn ingest(
        &self,
        embedder: &dyn Embedder,
        examples: &[RiskExample],
        background: Background<'_>,
    ) -> anyhow::Result<RiskIngest> {
        let documents: Vec<Document> = examples
            .iter()
            .map(|example| {
                example.document(KIND, example.label.as_str(), risk_payload(example.label))
            })
            .collect();
        let report = sync_seed_examples(self.collection.as_ref(), embedder, KIND, &documents)?;
        if examples.is_empty() {
            return Ok(RiskIngest {
                report,
                left_out: Vec::new(),
            });
        }
        let labelled: Vec<(u64, usize)> = examples
            .iter()
            .zip(&documents)
            .map(|(example, document)| {
                (point_id(SEED_TENANT, &document.key), example.label.index())
            })
            .collect();
        // What decides the training points: the examples, the candidates,
        // the version of the choice among them and how everyday messages
        // are left out.
        let Background {
            candidates,
            version,
            pick,
        } = background;
        let basis: Vec<u64> = labelled
            .iter()
            .map(|(id, _)| *id)
            .chain(candidates.iter().copied())
            .chain([
                version,
                TRAINING_VERSION,
                u64::from(self.settings.everyday_max_risk.to_bits()),
            ])
            .collect();
        let left_out = self.fit_head(embedder.model_id(), &basis, || {
            pick(candidates)
                .into_iter()
                .map(|id| (id, EVERYDAY))
                .chain(labelled)
                .collect()
        })?;
        Ok(RiskIngest { report, left_out })
    }

    /// The head for the stored points `labelled` gives (point id and label
    /// index, or `EVERYDAY`), cached under the fingerprint of `basis` (what
    /// decides those points) or trained now. Returns the everyday messages
    /// training left out.
    fn fit_head(
        &self,
        model_id: &str,
        basis: &[u64],
        labelled: impl FnOnce() -> HashMap<u64, usize>,
    ) -> anyhow::Result<Vec<u64>> {
        let settings = &self.settings;
        let mut left_out = Vec::new();
        let head = fit_stored(
            self.collection.as_ref(),
            &LinearHead::fingerprint(model_id, settings.balance, basis),
            labelled,
            RiskLabel::ALL.len(),
            |stored| {
                let (head, out) =
                    train_risk_head(&stored, settings.balance, settings.everyday_max_risk)?;
                left_out = out;
                Ok(head)
            },
            (self.head_cache.as_deref(), "risk"),
        )?;
        *self.head.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(head));
        Ok(left_out)
    }

    /// The risks the head reads in `vector`: those at least as likely as
    /// the setting; none before it is trained.
    pub fn risks(&self, vector: &[f32]) -> Vec<RiskLabel> {
        let Some(head) = self.head() else {
            return Vec::new();
        };
        at_least(&head.probabilities(vector), |_| {
            self.settings.min_probability
        })
    }

    /// The risks the head reads in the sentences of `text` one by one
    /// (`clauses`), each at least as likely as the clause settings; none for
    /// a message of one sentence, or before the head is trained. A hazard or
    /// an order nobody placed told in passing is one sentence of a delivery
    /// question, and the whole message's embedding follows its topic.
    pub fn clause_risks(
        &self,
        embedder: &dyn Embedder,
        text: &str,
    ) -> anyhow::Result<Vec<RiskLabel>> {
        let settings = &self.settings;
        if settings.clause_min_probability > 1.0 && settings.clause_threat_probability > 1.0 {
            return Ok(Vec::new());
        }
        let clauses = clauses(text);
        let Some(head) = self.head().filter(|_| !clauses.is_empty()) else {
            return Ok(Vec::new());
        };
        // One sentence out of its message reads a threat easily ("I'm a
        // reporter for a regional paper"): a threat must be plainer than a
        // hazard or a stranger's order.
        let min = |label| {
            if label == RiskLabel::Threat {
                settings.clause_threat_probability
            } else {
                settings.clause_min_probability
            }
        };
        let mut read = Vec::new();
        for vector in embedder.embed(&clauses, TextKind::Query)? {
            for label in at_least(&head.probabilities(&vector), min) {
                if !read.contains(&label) {
                    read.push(label);
                }
            }
        }
        Ok(read)
    }

    fn head(&self) -> Option<Arc<LinearHead>> {
        self.head
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The risks (not `None`), in `RiskLabel` order, at least `min(label)`
/// likely in `probabilities`.
fn at_least(probabilities: &[f32], min: impl Fn(RiskLabel) -> f32) -> Vec<RiskLabel> {
    RiskLabel::ALL
        .into_iter()
        .filter(|label| *label != RiskLabel::None)
        .filter(|label| probabilities[label.index()] >= min(*label))
        .collect()
}

/// The sentences of `text` long enough to tell a risk of their own; empty
/// for a message of fewer than two.
pub fn clauses(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let ends = match c {
            '\n' | '!' | '?' | ';' | '。' | '！' | '？' | '；' => true,
            // Not inside "1.250,00" or "amazon.de".
            '.' => chars.peek().is_none_or(|&(_, next)| next.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = at + c.len_utf8();
            sentences.push(&text[start..end]);
            start = end;
        }
    }
    sentences.push(&text[start..]);
    let clauses: Vec<&str> = sentences
        .into_iter()
        .map(str::trim)
        .filter(|sentence| tells_enough(sentence))
        .collect();
    if clauses.len() < 2 {
        Vec::new()
    } else {
        clauses
    }
}

/// Whether a sentence is more than a greeting or a sign-off: four words, or
/// eight characters of a script without spaces.
fn tells_enough(sentence: &str) -> bool {
    sentence.split_whitespace().count() >= 4
        || sentence.chars().filter(|c| is_unspaced_script(*c)).count() >= 8
}

/// Trains the risk head on `stored`, whose everyday messages (`EVERYDAY`)
/// count as none of the risks. An everyday message can tell a risk no
/// phrase names ("someone logged in to my account from Jakarta" is also an
/// account example): learnt as none, it would teach the head to miss that
/// very risk. So each half of the everyday messages is read by a head
/// trained without it, and a message that head gives a risk at least
/// `max_risk` is left out; the head is then trained on the rest. Returns it
/// and the point ids left out.
fn train_risk_head(
    stored: &Stored<'_>,
    balance: f32,
    max_risk: f32,
) -> anyhow::Result<(LinearHead, Vec<u64>)> {
    let none = RiskLabel::None.index();
    let count = stored.labels.len();
    let everyday = |i: usize| stored.labels[i] == EVERYDAY;
    // The head on the points `include` admits, everyday messages as none.
    let train_on = |include: &dyn Fn(usize) -> bool| {
        let (vectors, labels): (Vec<&[f32]>, Vec<usize>) = (0..count)
            .filter(|&i| include(i))
            .map(|i| {
                let label = if everyday(i) { none } else { stored.labels[i] };
                (stored.vectors[i], label)
            })
            .unzip();
        LinearHead::train(&vectors, &labels, RiskLabel::ALL.len(), balance)
    };
    let mut keep = vec![true; count];
    if max_risk < 1.0 {
        for half in 0..2 {
            let head = train_on(&|i| !everyday(i) || i % 2 != half)?;
            for i in (half..count).step_by(2) {
                if everyday(i) && 1.0 - head.probabilities(stored.vectors[i])[none] >= max_risk {
                    keep[i] = false;
                }
            }
        }
    }
    let head = train_on(&|i| keep[i])?;
    let left_out = (0..count)
        .filter(|&i| !keep[i])
        .map(|i| stored.ids[i])
        .collect();
    Ok((head, left_out))
}

/// The payload of a labelled risk example point.
pub fn risk_payload(label: RiskLabel) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("kind".into(), KIND.into());
    payload.insert("risk".into(), label.as_str().into());
    payload
}

/// The risks named in words, with those the head read.
pub fn with_read_risks(risks: &[Risk], read: &[RiskLabel]) -> Vec<Risk> {
    let mut risks = risks.to_vec();
    risks.extend(read.iter().filter_map(|label| match label {
        RiskLabel::Safety => Some(Risk::Safety),
        RiskLabel::AccountTakeover => Some(Risk::AccountTakeover),
        RiskLabel::Threat | RiskLabel::None => None,
    }));
    risks.sort();
    risks.dedup();
    risks
}

/// A threat the head read is a threat however it is worded: at least
/// `intensity`, which raises the tier.
pub fn with_read_threat(sentiment: Sentiment, read: &[RiskLabel], intensity: f32) -> Sentiment {
    if !read.contains(&RiskLabel::Threat) || sentiment.emotion(EmotionKind::Threat) >= intensity {
        return sentiment;
    }
    let mut emotions: Vec<(EmotionKind, f32)> = sentiment
        .emotions
        .into_iter()
        .filter(|(kind, _)| *kind != EmotionKind::Threat)
        .chain([(EmotionKind::Threat, intensity)])
        .collect();
    emotions.sort_by(|a, b| b.1.total_cmp(&a.1));
    Sentiment {
        emotions,
        ..sentiment
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::domain::Polarity;
    use crate::store::{EdgeCollection, Point};

    #[test]
    fn head_reads_the_risk_of_the_examples_a_message_is_like() {
        let dir = tempfile::tempdir().unwrap();
        let collection = Arc::new(EdgeCollection::open(&dir.path().join("c"), 3).unwrap());
        // Safety along x, threats along y, everyday messages along z.
        let mut points = Vec::new();
        let mut labelled = HashMap::new();
        for (i, (base, label)) in [
            ([1.0, 0.0, 0.0], RiskLabel::Safety),
            ([0.0, 1.0, 0.0], RiskLabel::Threat),
            ([0.0, 0.0, 1.0], RiskLabel::None),
        ]
        .into_iter()
        .enumerate()
        {
            for j in 0..6u64 {
                let id = i as u64 * 10 + j;
                let jitter = j as f32 * 0.03;
                let dense = base.map(|x: f32| if x > 0.0 { 1.0 } else { jitter });
                points.push(Point {
                    id,
                    dense: dense.to_vec(),
                    sparse: None,
                    payload: risk_payload(label),
                });
                labelled.insert(id, label.index());
            }
        }
        collection.upsert(points).unwrap();
        let settings = RiskSettings {
            min_probability: 0.5,
            balance: 1.0,
            threat_intensity: 0.5,
            everyday_max_risk: 1.0,
            clause_min_probability: 1.1,
            clause_threat_probability: 1.1,
        };
        let reader = RiskReader::new(collection, &settings);
        assert!(
            reader.risks(&[1.0, 0.0, 0.0]).is_empty(),
            "no head before training"
        );
        let ids: Vec<u64> = labelled.keys().copied().collect();
        reader.fit_head("model", &ids, || labelled).unwrap();
        assert_eq!(reader.risks(&[0.9, 0.1, 0.2]), vec![RiskLabel::Safety]);
        assert_eq!(reader.risks(&[0.1, 0.9, 0.2]), vec![RiskLabel::Threat]);
        assert!(reader.risks(&[0.1, 0.1, 0.95]).is_empty());
        // Above 1, the head reads nothing.
        let off = RiskReader {
            settings: RiskSettings {
                min_probability: 1.1,
                ..settings
            },
            ..reader
        };
        assert!(off.risks(&[1.0, 0.0, 0.0]).is_empty());
    }

    #[test]
    fn a_message_is_read_sentence_by_sentence_without_its_greetings() {
        assert_eq!(
            clauses(
                "Hello,\n\nWhen will order 114-3928475 get to Austin? It was 1.250,00 € on amazon.de. \
                 Also my account shows a second order I never placed!!\nThanks, Marc"
            ),
            [
                "When will order 114-3928475 get to Austin?",
                "It was 1.250,00 € on amazon.de.",
                "Also my account shows a second order I never placed!"
            ]
        );
        assert_eq!(
            clauses("想问下我的降噪耳机什么时候能到？另外账号里多了一个寄到广州的订单，不是我下的"),
            [
                "想问下我的降噪耳机什么时候能到？",
                "另外账号里多了一个寄到广州的订单，不是我下的"
            ]
        );
        // One sentence is the whole message, already read.
        assert!(clauses("Where is my parcel? Thanks!").is_empty());
        assert!(clauses("The kettle I ordered sparks when I plug it in.").is_empty());
    }

    #[test]
    fn everyday_messages_that_read_as_a_risk_are_left_out_of_training() {
        // Takeovers along x, everyday messages along z; two everyday
        // messages (ids 100 and 101) are takeovers told in other words.
        let mut rows: Vec<(u64, [f32; 3], usize)> = (0..8u64)
            .map(|j| {
                (
                    j,
                    [1.0, j as f32 * 0.02, 0.0],
                    RiskLabel::AccountTakeover.index(),
                )
            })
            .chain((0..40u64).map(|j| (10 + j, [0.0, j as f32 * 0.01, 1.0], EVERYDAY)))
            .collect();
        rows.push((100, [0.97, 0.05, 0.1], EVERYDAY));
        rows.push((101, [0.95, 0.1, 0.05], EVERYDAY));
        rows.sort_by_key(|row| row.0);
        let ids: Vec<u64> = rows.iter().map(|row| row.0).collect();
        let vectors: Vec<&[f32]> = rows.iter().map(|row| row.1.as_slice()).collect();
        let labels: Vec<usize> = rows.iter().map(|row| row.2).collect();
        let stored = Stored {
            ids: &ids,
            vectors: &vectors,
            labels: &labels,
        };
        let takeover = |head: &LinearHead| {
            head.probabilities(&[0.9, 0.1, 0.1])[RiskLabel::AccountTakeover.index()]
        };
        let (cleaned, left_out) = train_risk_head(&stored, 0.0, 0.5).unwrap();
        assert_eq!(left_out, vec![100, 101]);
        let (kept_all, none_left_out) = train_risk_head(&stored, 0.0, 1.0).unwrap();
        assert!(none_left_out.is_empty());
        assert!(
            takeover(&cleaned) > takeover(&kept_all),
            "{} vs {}",
            takeover(&cleaned),
            takeover(&kept_all)
        );
    }

    #[test]
    fn read_risks_join_the_named_ones_and_a_read_threat_raises_the_emotion() {
        let risks = with_read_risks(&[Risk::HighValue], &[RiskLabel::Threat, RiskLabel::Safety]);
        assert_eq!(risks, vec![Risk::Safety, Risk::HighValue]);
        let calm = Sentiment {
            label: Polarity::Negative,
            score: -0.5,
            emotions: vec![(EmotionKind::Anger, 0.7), (EmotionKind::Threat, 0.2)],
        };
        let threatening = with_read_threat(calm.clone(), &[RiskLabel::Threat], 0.5);
        assert_eq!(threatening.emotion(EmotionKind::Threat), 0.5);
        assert_eq!(threatening.emotion(EmotionKind::Anger), 0.7);
        assert_eq!(threatening.emotions.len(), 2);
        assert_eq!(
            with_read_threat(calm.clone(), &[RiskLabel::Safety], 0.5),
            calm
        );
    }

    #[test]
    fn shipped_examples_cover_every_risk_in_the_market_languages() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/risks");
        let examples = load_risk_examples(&dir).unwrap();
        for language in [
            "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ja", "zh", "ko", "id", "ms",
        ] {
            for label in RiskLabel::ALL {
                let n = examples
                    .iter()
                    .filter(|e| e.language == language && e.label == label)
                    .count();
                assert!(n >= 10, "{language} has {n} {} examples", label.as_str());
            }
        }
    }
}

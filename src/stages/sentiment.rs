//! Sentiment and emotion. A fast lexical reading (multilingual signals,
//! emoji, exclamation, shouting) serves the acknowledgement; once the
//! inquiry is embedded, a vote of the nearest labelled sentiment examples
//! (`knowledge-base/sentiment/<lang>.toml`) adds what words alone miss:
//! "still not here after three weeks" is negative without a negative word.
//! Threats (chargeback, bad review, legal action) are an emotion of their
//! own: they always raise the tier.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::SentimentSettings;
use crate::domain::{Category, EmotionKind, IntentGuess, Polarity, Risk, Sentiment};
use crate::embed::Embedder;
use crate::ingest::{sync_seed_examples, Document, IngestReport};
use crate::labelled::{read_labelled_dir, Labelled};
use crate::signals::{LanguageSignals, Signals};
use crate::store::{Collection, Filter};

pub trait SentimentAnalyzer: Send + Sync {
    fn analyze(&self, text: &str, language: &str) -> Sentiment;
}

pub struct LexicalSentiment {
    signals: Arc<Signals>,
}

impl LexicalSentiment {
    pub fn new(signals: Arc<Signals>) -> LexicalSentiment {
        LexicalSentiment { signals }
    }
}

const POSITIVE_EMOJI: &[char] = &[
    '😊', '🙂', '😀', '😃', '😄', '😁', '😍', '🥰', '👍', '❤', '💕', '🙏', '✨', '🎉', '👌', '💯',
    '😘',
];
const NEGATIVE_EMOJI: &[char] = &[
    '😡', '🤬', '😠', '😤', '😞', '😢', '😭', '👎', '💔', '😩', '😫', '😒', '🙄', '😖', '😣',
];
const ANGRY_EMOJI: &[char] = &['😡', '🤬', '😠', '😤', '👎'];
const ANXIOUS_EMOJI: &[char] = &['😟', '😰', '😥', '😨', '🥺', '😬'];

/// Positive and negative hits, with a negator shortly before a word flipping it.
fn polarity_hits(set: &LanguageSignals, lowered: &str) -> (f32, f32) {
    let mut positive = 0.0;
    let mut negative = 0.0;
    let negated = |at: usize| {
        let window_start = lowered[..at]
            .char_indices()
            .rev()
            .nth(24)
            .map_or(0, |(i, _)| i);
        let window = &lowered[window_start..at];
        set.negators.iter().any(|n| n.occurs_in(window))
    };
    for phrase in &set.positive {
        for at in phrase.positions(lowered) {
            if negated(at) {
                negative += 1.0;
            } else {
                positive += 1.0;
            }
        }
    }
    for phrase in &set.negative {
        for at in phrase.positions(lowered) {
            if negated(at) {
                positive += 0.5;
            } else {
                negative += 1.0;
            }
        }
    }
    (positive, negative)
}

/// How many of `set`'s phrases for `kind` occur in `lowered`.
fn phrase_hits(set: &LanguageSignals, kind: EmotionKind, lowered: &str) -> f32 {
    let phrases = set
        .emotions
        .get(&kind)
        .map(Vec::as_slice)
        .unwrap_or_default();
    phrases.iter().filter(|ph| ph.occurs_in(lowered)).count() as f32
}

impl SentimentAnalyzer for LexicalSentiment {
    fn analyze(&self, text: &str, language: &str) -> Sentiment {
        let lowered = text.to_lowercase();
        let sets = self.signals.for_language(language);
        let mut positive = 0.0f32;
        let mut negative = 0.0f32;
        let (mut anger, mut anxiety, mut frustration) = (0.0f32, 0.0f32, 0.0f32);
        for set in &sets {
            let (p, n) = polarity_hits(set, &lowered);
            positive += p;
            negative += n;
            anger += phrase_hits(set, EmotionKind::Anger, &lowered);
            anxiety += phrase_hits(set, EmotionKind::Anxiety, &lowered);
            frustration += phrase_hits(set, EmotionKind::Frustration, &lowered);
        }
        // Threats are read in the sibling language's words too (Malay, Indonesian).
        let threat: f32 = sets
            .iter()
            .copied()
            .chain(self.signals.sibling_set(language))
            .map(|set| phrase_hits(set, EmotionKind::Threat, &lowered))
            .sum();
        let count = |set: &[char]| text.chars().filter(|c| set.contains(c)).count() as f32;
        positive += count(POSITIVE_EMOJI);
        negative += count(NEGATIVE_EMOJI);
        let exclamations = text.matches(['!', '！']).count() as f32;
        let shouting = shouted_words(text) as f32;

        // Three exclamation marks are emphasis; runs of marks, with nothing
        // kind said, are fury ("转人工！！！别再给我发自动回复了",
        // "你们是不是有病？？？…破的！！！"), the more so as exclamations:
        // "Quero falar com um atendente, JÁ! … robô!!!" is fury shown only
        // in its marks.
        let emphasis: f32 = if exclamations >= 3.0 { 0.5 } else { 0.0 };
        let runs = if positive == 0.0 {
            0.5 * (emphatic_runs(text) as f32).min(2.0)
        } else {
            0.0
        };
        let anger = anger + count(ANGRY_EMOJI) + 0.5 * shouting.min(3.0) + emphasis + runs;
        let anxiety = anxiety + count(ANXIOUS_EMOJI);
        // Emotions that are not neutral weigh on the polarity too.
        negative += 0.7 * (anger + frustration) + threat + 0.3 * anxiety;

        let intensity = 1.0 + 0.15 * exclamations.min(4.0);
        let raw = (positive - negative) * intensity;
        let score = (raw * 0.6).tanh();
        let label = label_of(score);
        let scale = |hits: f32| (1.0 - (-0.8 * hits).exp()).clamp(0.0, 1.0);
        let mut emotions: Vec<(EmotionKind, f32)> = [
            (EmotionKind::Anger, scale(anger)),
            (EmotionKind::Anxiety, scale(anxiety)),
            (EmotionKind::Frustration, scale(frustration)),
            (
                EmotionKind::Threat,
                if threat > 0.0 {
                    0.8 + 0.2 * scale(threat - 1.0)
                } else {
                    0.0
                },
            ),
        ]
        .into_iter()
        .filter(|(_, s)| *s > 0.0)
        .collect();
        emotions.sort_by(|a, b| b.1.total_cmp(&a.1));
        Sentiment {
            label,
            score,
            emotions,
        }
    }
}

/// Runs of three or more exclamation or question marks ("!!!", "?!?",
/// "？？？").
fn emphatic_runs(text: &str) -> usize {
    text.split(|c: char| !matches!(c, '!' | '！' | '?' | '？'))
        .filter(|run| run.chars().count() >= 3)
        .count()
}

/// Words of three or more letters written in capitals, when the text is not
/// all capitals. A lone short word in capitals is an acronym (VAT, USPS,
/// SARL, BPOM), not shouting: a capitalised word counts when it has five or
/// more letters or stands next to another capitalised word ("WHERE IS MY").
fn shouted_words(text: &str) -> usize {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .collect();
    let capitals = |w: &str| w.chars().all(char::is_uppercase);
    let long = words.iter().filter(|w| w.chars().count() >= 3).count();
    let shouted = (0..words.len())
        .filter(|&at| {
            let word = words[at];
            let letters = word.chars().count();
            let beside = |other: Option<&&str>| other.is_some_and(|w| capitals(w));
            letters >= 3
                && capitals(word)
                && (letters >= 5
                    || beside(at.checked_sub(1).and_then(|i| words.get(i)))
                    || beside(words.get(at + 1)))
        })
        .count();
    if shouted == long && long < 3 {
        0
    } else {
        shouted
    }
}

/// One labelled sentiment example.
pub type SentimentExample = Labelled<Polarity>;

/// Reads every `<lang>.toml` of sentiment examples in `dir`.
pub fn load_sentiment_examples(dir: &Path) -> anyhow::Result<Vec<SentimentExample>> {
    read_labelled_dir(dir, Polarity::parse, "negative, neutral or positive")
}

const KIND: &str = "sentiment";

/// Polarity shares of the nearest labelled examples: negative, neutral, positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolarityVote {
    pub negative: f32,
    pub neutral: f32,
    pub positive: f32,
}

/// Nearest-neighbour vote over labelled sentiment examples, in the same
/// vector space (and collection) as the intent examples.
pub struct PolarityVoter {
    collection: Arc<dyn Collection>,
    neighbours: usize,
    temperature: f32,
}

impl PolarityVoter {
    pub fn new(collection: Arc<dyn Collection>, settings: &SentimentSettings) -> PolarityVoter {
        PolarityVoter {
            collection,
            neighbours: settings.neighbours,
            temperature: settings.temperature.max(1e-3),
        }
    }

    /// Stores labelled examples, embedding only new or changed ones.
    pub fn ingest(
        &self,
        embedder: &dyn Embedder,
        examples: &[SentimentExample],
    ) -> anyhow::Result<IngestReport> {
        let documents: Vec<Document> = examples
            .iter()
            .map(|example| {
                example.document(
                    KIND,
                    example.label.as_str(),
                    sentiment_payload(example.label),
                )
            })
            .collect();
        sync_seed_examples(self.collection.as_ref(), embedder, KIND, &documents)
    }

    /// The vote of the examples nearest to `vector`; `None` when there are none.
    pub fn vote(&self, vector: &[f32]) -> anyhow::Result<Option<PolarityVote>> {
        let neighbours = self.collection.search_dense(
            vector,
            &Filter::default().field("kind", KIND),
            self.neighbours,
        )?;
        let top = neighbours.first().map_or(0.0, |n| n.score);
        let mut shares = [0.0f32; 3];
        for neighbour in &neighbours {
            let Some(polarity) = neighbour
                .payload
                .get("polarity")
                .and_then(Value::as_str)
                .and_then(Polarity::parse)
            else {
                continue;
            };
            let slot = match polarity {
                Polarity::Negative => 0,
                Polarity::Neutral => 1,
                Polarity::Positive => 2,
            };
            shares[slot] += ((neighbour.score - top) / self.temperature).exp();
        }
        let total: f32 = shares.iter().sum();
        if total <= 0.0 {
            return Ok(None);
        }
        let [negative, neutral, positive] = shares.map(|s| s / total);
        Ok(Some(PolarityVote {
            negative,
            neutral,
            positive,
        }))
    }
}

/// The payload of a labelled sentiment example point.
pub fn sentiment_payload(polarity: Polarity) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("kind".into(), KIND.into());
    payload.insert("polarity".into(), polarity.as_str().into());
    payload
}

/// Threshold of the score beyond which a text is no longer neutral.
const POLAR: f32 = 0.2;

/// The lexical reading with the examples' vote added as evidence: the vote
/// moves the score by up to `weight` (in the lexicon's logit units), so a
/// text with no telling word takes the polarity of the texts it resembles,
/// while strong words still outweigh a lukewarm vote. Emotions stay lexical.
pub fn with_vote(lexical: &Sentiment, vote: &PolarityVote, weight: f32) -> Sentiment {
    let evidence = lexical.score.clamp(-0.999, 0.999).atanh();
    let score = (evidence + weight * (vote.positive - vote.negative)).tanh();
    Sentiment {
        label: label_of(score),
        score,
        emotions: lexical.emotions.clone(),
    }
}

/// The score bad news told calmly has at most: negative, though not upset
/// on its own.
const BAD_NEWS_SCORE: f32 = -0.5;

/// How sure the classifier must be that a message is a complaint before its
/// sentiment is read as negative.
const COMPLAINT_CONFIDENCE: f32 = 0.8;

/// A product hazard or a taken-over account is bad news however calmly it is
/// told ("the charger sparked last night and left a scorch mark").
pub fn with_risks(sentiment: Sentiment, risks: &[Risk]) -> Sentiment {
    if risks.iter().any(|risk| risk.is_urgent()) {
        at_most_bad_news(sentiment)
    } else {
        sentiment
    }
}

/// A complaint reports a problem, and a problem is bad news however it is
/// told: "the lamp worked for one day, new bulbs, another socket, nothing"
/// has no negative word, and "I expected better quality" has a positive one.
/// (Of 351 labelled complaints in the evaluation sets, none is positive.)
pub fn with_intent(sentiment: Sentiment, intent: &IntentGuess) -> Sentiment {
    if intent.category == Category::Complaint && intent.confidence >= COMPLAINT_CONFIDENCE {
        at_most_bad_news(sentiment)
    } else {
        sentiment
    }
}

fn at_most_bad_news(sentiment: Sentiment) -> Sentiment {
    if sentiment.score > BAD_NEWS_SCORE {
        Sentiment {
            label: label_of(BAD_NEWS_SCORE),
            score: BAD_NEWS_SCORE,
            ..sentiment
        }
    } else {
        sentiment
    }
}

fn label_of(score: f32) -> Polarity {
    if score <= -POLAR {
        Polarity::Negative
    } else if score >= POLAR {
        Polarity::Positive
    } else {
        Polarity::Neutral
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::{EdgeCollection, Point};

    fn knowledge_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge-base")
    }

    fn lexical() -> LexicalSentiment {
        LexicalSentiment::new(Arc::new(
            Signals::load(&knowledge_dir().join("signals")).unwrap(),
        ))
    }

    #[test]
    fn a_hazard_or_a_taken_over_account_reads_negative_but_not_upset() {
        let calm = Sentiment {
            label: Polarity::Neutral,
            score: 0.1,
            emotions: Vec::new(),
        };
        let hazard = with_risks(calm.clone(), &[Risk::Safety]);
        assert_eq!(hazard.label, Polarity::Negative);
        assert!(!hazard.is_upset());
        assert_eq!(with_risks(calm.clone(), &[Risk::HighValue]), calm);
        let furious = Sentiment {
            label: Polarity::Negative,
            score: -0.95,
            emotions: Vec::new(),
        };
        assert_eq!(with_risks(furious.clone(), &[Risk::Safety]), furious);
    }

    #[test]
    fn a_sure_complaint_reads_negative_but_not_upset() {
        let hopeful = Sentiment {
            label: Polarity::Positive,
            score: 0.4,
            emotions: Vec::new(),
        };
        let guess = |category, confidence| IntentGuess {
            category,
            confidence,
            urgent: 0.0,
        };
        let complaint = with_intent(hopeful.clone(), &guess(Category::Complaint, 0.95));
        assert_eq!(complaint.label, Polarity::Negative);
        assert!(!complaint.is_upset());
        let unsure = guess(Category::Complaint, 0.6);
        assert_eq!(with_intent(hopeful.clone(), &unsure), hopeful);
        let question = guess(Category::ProductQuestion, 0.95);
        assert_eq!(with_intent(hopeful.clone(), &question), hopeful);
    }

    #[test]
    fn lexicon_reads_words_emoji_and_threats() {
        let sentiment = lexical();
        let happy = sentiment.analyze("Arrived fast, great quality, thank you! 😊", "en");
        assert_eq!(happy.label, Polarity::Positive);
        let angry = sentiment.analyze(
            "This is UNACCEPTABLE. Refund me or I file a chargeback!!!",
            "en",
        );
        assert_eq!(angry.label, Polarity::Negative);
        assert!(angry.emotion(EmotionKind::Threat) >= 0.8);
        assert!(angry.emotion(EmotionKind::Anger) > 0.0);
        let plain = sentiment.analyze("Do you ship to Canada?", "en");
        assert_eq!(plain.label, Polarity::Neutral);
        assert!(plain.emotions.is_empty());
    }

    #[test]
    fn malay_and_indonesian_threats_read_in_either() {
        let sentiment = lexical();
        // "1 bintang" is a Malay phrase, "viralin" an Indonesian one.
        for (text, language) in [
            ("Kalau tak settle, saya bagi 1 bintang.", "id"),
            ("Kalau ga diurus, aku viralin di tiktok.", "ms"),
        ] {
            let read = sentiment.analyze(text, language);
            assert!(
                read.emotion(EmotionKind::Threat) >= 0.8,
                "{text} in {language}"
            );
        }
    }

    #[test]
    fn runs_of_exclamation_marks_are_anger_unless_something_kind_is_said() {
        assert_eq!(emphatic_runs("转人工！！！别再给我发自动回复了！！！"), 2);
        assert_eq!(emphatic_runs("What?!? Why?! Now!"), 1);
        assert_eq!(emphatic_runs("Where is it??? Hello???"), 2);
        let sentiment = lexical();
        let anger = |text: &str| sentiment.analyze(text, "en").emotion(EmotionKind::Anger);
        assert!(anger("Stop sending me bots!!! Get me a person!!!") >= 0.4);
        assert!(anger("Get me a person! Now! Please!") < 0.4);
        // One run that is also three exclamations is fury; a run of
        // question marks alone is not.
        assert!(anger("Get me a person now!!!") >= 0.4);
        assert!(anger("Where is my parcel???") < 0.4);
        assert!(anger("Thank you!!! Love it!!!") < 0.4);
    }

    #[test]
    fn capitals_shout_but_acronyms_do_not() {
        assert_eq!(shouted_words("WHERE IS MY ORDER, I paid two weeks ago"), 2);
        assert_eq!(shouted_words("This is RIDICULOUS, answer me"), 1);
        assert_eq!(shouted_words("Is it coming with USPS or UPS?"), 0);
        assert_eq!(
            shouted_words("Invoice for SARL Atelier Bleu with our TVA number please"),
            0
        );
        assert_eq!(shouted_words("Poproszę fakturę VAT na firmę, NIP podam"), 0);
        assert_eq!(shouted_words("REFUND NOW"), 0, "a text all in capitals");
        let sentiment = lexical();
        let invoice = sentiment.analyze("Please send the VAT invoice to ACME GmbH.", "en");
        assert!(invoice.emotions.is_empty(), "{invoice:?}");
    }

    #[test]
    fn vote_decides_a_text_without_telling_words_but_not_against_strong_ones() {
        let neutral = Sentiment {
            label: Polarity::Neutral,
            score: 0.0,
            emotions: Vec::new(),
        };
        let negative_vote = PolarityVote {
            negative: 0.8,
            neutral: 0.2,
            positive: 0.0,
        };
        let refined = with_vote(&neutral, &negative_vote, 1.0);
        assert_eq!(refined.label, Polarity::Negative);
        assert!(refined.score < -0.5);

        let delighted = Sentiment {
            label: Polarity::Positive,
            score: 0.9,
            emotions: Vec::new(),
        };
        let lukewarm = PolarityVote {
            negative: 0.5,
            neutral: 0.5,
            positive: 0.0,
        };
        assert_eq!(
            with_vote(&delighted, &lukewarm, 1.0).label,
            Polarity::Positive
        );
        // At the default weight the vote alone is polar, never "upset".
        let default_weight = crate::config::Settings::defaults().sentiment.vote_weight;
        let unanimous = PolarityVote {
            negative: 1.0,
            neutral: 0.0,
            positive: 0.0,
        };
        let voted = with_vote(&neutral, &unanimous, default_weight);
        assert_eq!(voted.label, Polarity::Negative);
        assert!(!voted.is_upset(), "{voted:?}");
        // A vote of weight zero changes nothing.
        assert_eq!(
            with_vote(&neutral, &negative_vote, 0.0).label,
            Polarity::Neutral
        );
    }

    #[test]
    fn voter_weighs_the_nearest_examples_most() {
        let dir = tempfile::tempdir().unwrap();
        let collection = Arc::new(EdgeCollection::open(&dir.path().join("c"), 2).unwrap());
        let point = |id: u64, dense: Vec<f32>, polarity| Point {
            id,
            dense,
            sparse: None,
            payload: sentiment_payload(polarity),
        };
        collection
            .upsert(vec![
                point(1, vec![1.0, 0.0], Polarity::Negative),
                point(2, vec![0.98, 0.2], Polarity::Negative),
                point(3, vec![0.0, 1.0], Polarity::Positive),
                point(4, vec![0.6, 0.8], Polarity::Neutral),
            ])
            .unwrap();
        let settings = SentimentSettings {
            neighbours: 4,
            temperature: 0.05,
            vote_weight: 1.0,
        };
        let voter = PolarityVoter::new(collection, &settings);
        let vote = voter.vote(&[0.99, 0.1]).unwrap().unwrap();
        assert!(vote.negative > 0.9, "{vote:?}");
        let vote = voter.vote(&[0.1, 0.99]).unwrap().unwrap();
        assert!(
            vote.positive > vote.neutral && vote.neutral > vote.negative,
            "{vote:?}"
        );
    }

    #[test]
    fn shipped_examples_cover_every_polarity_in_the_market_languages() {
        let examples = load_sentiment_examples(&knowledge_dir().join("sentiment")).unwrap();
        for language in [
            "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ja", "zh", "ko", "id", "ms",
        ] {
            for polarity in [Polarity::Negative, Polarity::Neutral, Polarity::Positive] {
                let n = examples
                    .iter()
                    .filter(|e| e.language == language && e.label == polarity)
                    .count();
                assert!(n >= 20, "{language} has {n} {} examples", polarity.as_str());
            }
        }
    }
}

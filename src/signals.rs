//! Lexical signals per language (`knowledge-base/signals/<lang>.toml`):
//! sentiment words, emotion words and intent keywords, matched at word starts
//! (so a stem covers its inflections), or anywhere in scripts without spaces.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::{Category, EmotionKind, Risk};

#[derive(Debug, Deserialize)]
struct SignalsFile {
    language: String,
    sentiment: SentimentWords,
    emotion: EmotionWords,
    intent: HashMap<String, Vec<String>>,
    #[serde(default)]
    risk: RiskWords,
    /// Per category, words only its ask uses, however the message reads:
    /// "tags still on" under a stock question is an exchange.
    #[serde(default)]
    hidden_ask: HashMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct SentimentWords {
    positive: Vec<String>,
    negative: Vec<String>,
    negators: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct EmotionWords {
    anger: Vec<String>,
    anxiety: Vec<String>,
    frustration: Vec<String>,
    threat: Vec<String>,
}

/// Phrases that name a risk in the buyer's own words.
#[derive(Debug, Default, Deserialize)]
struct RiskWords {
    #[serde(default)]
    safety: Vec<String>,
    #[serde(default)]
    account_takeover: Vec<String>,
    #[serde(default)]
    repeat_customer: Vec<String>,
    #[serde(default)]
    logistics_anomaly: Vec<String>,
}

/// Marks a gap in a phrase: `"レビュー…書"` matches "レビューにそのまま書",
/// `"report … to amazon"` matches "report this seller to amazon".
pub const GAP: char = '…';

/// How far apart two parts of a gapped phrase may be: a few words in spaced
/// scripts ("report this seller to amazon", "cliente del vostro negozio da
/// molti anni"), a short clause in unspaced ones.
const GAP_WORDS: usize = 4;
const GAP_CHARS: usize = 16;

/// One phrase, lower-cased: one or more parts, in order, each part after the
/// first starting within `GAP_WORDS` words (`GAP_CHARS` characters in
/// unspaced scripts) of the end of the one before.
#[derive(Debug, Clone)]
pub struct Phrase {
    parts: Vec<String>,
    /// Written in a script without spaces between words: match anywhere.
    anywhere: bool,
}

impl Phrase {
    pub fn new(text: &str) -> Phrase {
        let text = text.trim().to_lowercase();
        let anywhere = text.chars().any(is_unspaced_script);
        let parts = text
            .split(GAP)
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        Phrase { parts, anywhere }
    }

    /// Whether a part may start at byte `at` of `lowered`: at a word start,
    /// or anywhere in unspaced scripts.
    fn starts_word(&self, lowered: &str, at: usize) -> bool {
        // Scripts without spaces glue words together: after one of their
        // characters a word ("打12315投诉", "我要refund") starts.
        self.anywhere
            || lowered[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() || is_unspaced_script(c))
    }

    /// Where the parts after the first end, following in order from byte
    /// `from`, or `None` if they do not.
    fn rest_ends(&self, lowered: &str, mut from: usize) -> Option<usize> {
        for part in &self.parts[1..] {
            // The part must start within the gap: the end of the window is
            // where the next part may start at the latest.
            let latest_start = if self.anywhere {
                lowered[from..]
                    .char_indices()
                    .nth(GAP_CHARS)
                    .map_or(lowered.len(), |(i, _)| from + i)
            } else {
                word_starts(&lowered[from..])
                    .nth(GAP_WORDS)
                    .map_or(lowered.len(), |i| from + i)
            };
            let found = lowered[from..]
                .match_indices(part.as_str())
                .map(|(at, _)| from + at)
                .take_while(|&at| at <= latest_start)
                .find(|&at| self.starts_word(lowered, at));
            from = found? + part.len();
        }
        Some(from)
    }

    /// Byte ranges of `lowered` the phrase covers, first part to last.
    pub fn spans<'a>(
        &'a self,
        lowered: &'a str,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        self.parts
            .first()
            .into_iter()
            .flat_map(move |first| lowered.match_indices(first.as_str()))
            .filter(move |&(at, _)| self.starts_word(lowered, at))
            .filter_map(move |(at, first)| Some(at..self.rest_ends(lowered, at + first.len())?))
    }

    /// Byte offsets in `lowered` where the phrase starts.
    pub fn positions<'a>(&'a self, lowered: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.spans(lowered).map(|span| span.start)
    }

    /// Whether the phrase occurs: stops at the first match.
    pub fn occurs_in(&self, lowered: &str) -> bool {
        self.positions(lowered).next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// The signals of one language.
#[derive(Debug, Default)]
pub struct LanguageSignals {
    pub positive: Vec<Phrase>,
    pub negative: Vec<Phrase>,
    pub negators: Vec<Phrase>,
    pub emotions: HashMap<EmotionKind, Vec<Phrase>>,
    pub intents: HashMap<Category, Vec<Phrase>>,
    pub risks: HashMap<Risk, Vec<Phrase>>,
    pub hidden_asks: HashMap<Category, Vec<Phrase>>,
}

/// Every language's signals.
#[derive(Debug, Default)]
pub struct Signals {
    by_language: HashMap<String, LanguageSignals>,
}

impl Signals {
    /// Reads every `<lang>.toml` in `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Signals> {
        let mut by_language = HashMap::new();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            let file: SignalsFile =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let signals = LanguageSignals::from_file(&file)
                .with_context(|| format!("in {}", path.display()))?;
            by_language.insert(file.language, signals);
        }
        Ok(Signals { by_language })
    }

    /// The signal sets to match for a message in `language`: its own and
    /// English, which buyers mix into every language.
    pub fn for_language(&self, language: &str) -> Vec<&LanguageSignals> {
        let mut sets: Vec<&LanguageSignals> = self.by_language.get(language).into_iter().collect();
        if language != "en" {
            sets.extend(self.by_language.get("en"));
        }
        sets
    }

    /// The sets whose risk and threat phrases a message in `language` is
    /// read for: `for_language`'s, and for Malay and Indonesian the
    /// sibling's too. Buyers and detectors mix the two, and a threat or a
    /// hazard reads the same in both; their intent words do not ("tukar" is
    /// a change in Malay, an exchange in Indonesian), so intents and
    /// polarity keep to the language's own.
    pub fn for_risks(&self, language: &str) -> Vec<&LanguageSignals> {
        let mut sets = self.for_language(language);
        sets.extend(self.sibling_set(language));
        sets
    }

    /// The set of the language whose risk and threat phrases a message in
    /// `language` is also read for, if any: what `for_risks` adds to
    /// `for_language`.
    pub fn sibling_set(&self, language: &str) -> Option<&LanguageSignals> {
        risk_sibling(language).and_then(|code| self.by_language.get(code))
    }

    /// The risks a message in `language` names in words, in `Risk` order.
    pub fn risks(&self, text: &str, language: &str) -> Vec<Risk> {
        let sets = self.for_risks(language);
        named(&sets, |set| &set.risks, Risk::ALL, &text.to_lowercase())
    }

    /// The categories whose ask a message in `language` tells in words only
    /// that ask uses (`[hidden_ask]`), in `Category` order.
    pub fn hidden_asks(&self, text: &str, language: &str) -> Vec<Category> {
        let sets = self.for_language(language);
        named(
            &sets,
            |set| &set.hidden_asks,
            Category::ALL,
            &text.to_lowercase(),
        )
    }

    /// Whether a message in `language` names, in words, a risk that makes
    /// it urgent (a hazard, a taken-over account) or a threat.
    pub fn names_urgent_risk(&self, text: &str, language: &str) -> bool {
        let lowered = text.to_lowercase();
        self.for_risks(language).iter().any(|set| {
            let urgent = set
                .risks
                .iter()
                .filter(|(risk, _)| risk.is_urgent())
                .flat_map(|(_, phrases)| phrases);
            let threats = set.emotions.get(&EmotionKind::Threat).into_iter().flatten();
            urgent.chain(threats).any(|p| p.occurs_in(&lowered))
        })
    }

    /// A digest of the phrases `names_urgent_risk` asks: it changes whenever
    /// that answer could for some text.
    pub fn urgent_risk_version(&self) -> u64 {
        let mut hasher = Sha256::new();
        let mut languages: Vec<&String> = self.by_language.keys().collect();
        languages.sort();
        for language in languages {
            let set = &self.by_language[language];
            hasher.update(language.as_bytes());
            // Which other list a language's risks are also read in.
            hasher.update([0]);
            hasher.update(risk_sibling(language).unwrap_or_default().as_bytes());
            let urgent = Risk::ALL
                .iter()
                .filter(|risk| risk.is_urgent())
                .filter_map(|risk| set.risks.get(risk));
            for phrases in urgent.chain(set.emotions.get(&EmotionKind::Threat)) {
                hasher.update([1]);
                for phrase in phrases {
                    hasher.update([2]);
                    for part in &phrase.parts {
                        hasher.update(part.as_bytes());
                        hasher.update([3]);
                    }
                    hasher.update([u8::from(phrase.anywhere)]);
                }
            }
        }
        let digest = hasher.finalize();
        u64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_language.keys().map(String::as_str)
    }
}

impl LanguageSignals {
    fn from_file(file: &SignalsFile) -> anyhow::Result<LanguageSignals> {
        let phrases = |list: &[String]| {
            list.iter()
                .map(|s| Phrase::new(s))
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        };
        let mut intents = HashMap::new();
        let mut owner: HashMap<String, &str> = HashMap::new();
        for (name, list) in &file.intent {
            let category = Category::parse(name)
                .with_context(|| format!("unknown intent category {name:?}"))?;
            for keyword in list {
                let key = keyword.trim().to_lowercase();
                if let Some(other) = owner.insert(key, name).filter(|other| *other != name) {
                    anyhow::bail!(
                        "intent keyword {keyword:?} is in both {other} and {name}: \
                         a keyword belongs to one category's list only"
                    );
                }
            }
            intents.insert(category, phrases(list));
        }
        let mut hidden_asks = HashMap::new();
        for (name, list) in &file.hidden_ask {
            let category = Category::parse(name)
                .with_context(|| format!("unknown hidden_ask category {name:?}"))?;
            hidden_asks.insert(category, phrases(list));
        }
        let emotions = HashMap::from([
            (EmotionKind::Anger, phrases(&file.emotion.anger)),
            (EmotionKind::Anxiety, phrases(&file.emotion.anxiety)),
            (EmotionKind::Frustration, phrases(&file.emotion.frustration)),
            (EmotionKind::Threat, phrases(&file.emotion.threat)),
        ]);
        let risks = HashMap::from([
            (Risk::Safety, phrases(&file.risk.safety)),
            (Risk::AccountTakeover, phrases(&file.risk.account_takeover)),
            (Risk::RepeatCustomer, phrases(&file.risk.repeat_customer)),
            (
                Risk::LogisticsAnomaly,
                phrases(&file.risk.logistics_anomaly),
            ),
        ]);
        Ok(LanguageSignals {
            risks,
            positive: phrases(&file.sentiment.positive),
            negative: phrases(&file.sentiment.negative),
            negators: phrases(&file.sentiment.negators),
            emotions,
            intents,
            hidden_asks,
        })
    }
}

/// The keys, in `keys` order, whose phrase list (`lists` of any of `sets`)
/// has a phrase in `lowered`.
fn named<K: Copy + Eq + std::hash::Hash>(
    sets: &[&LanguageSignals],
    lists: fn(&LanguageSignals) -> &HashMap<K, Vec<Phrase>>,
    keys: impl IntoIterator<Item = K>,
    lowered: &str,
) -> Vec<K> {
    keys.into_iter()
        .filter(|key| {
            sets.iter().any(|set| {
                lists(set)
                    .get(key)
                    .is_some_and(|phrases| phrases.iter().any(|p| p.occurs_in(lowered)))
            })
        })
        .collect()
}

/// Byte offsets where a word (a run of non-whitespace) starts in `text`,
/// counting the start of `text` if a word is cut there.
fn word_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    let mut previous_space = true;
    text.char_indices().filter_map(move |(i, c)| {
        let starts = previous_space && !c.is_whitespace();
        previous_space = c.is_whitespace();
        starts.then_some(i)
    })
}

/// The language whose risk and threat phrases a message in `language` is
/// also read for (see `Signals::for_risks`).
fn risk_sibling(language: &str) -> Option<&'static str> {
    match language {
        "ms" => Some("id"),
        "id" => Some("ms"),
        _ => None,
    }
}

/// Han, kana, Hangul syllables and Thai: scripts matched without word boundaries.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF | 0x0E00..=0x0E7F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_match_at_word_starts_or_anywhere_in_unspaced_scripts() {
        let refund = Phrase::new("Refund");
        assert!(refund.occurs_in("i want a refunded order"));
        assert!(!refund.occurs_in("nonrefundable"));
        let cjk = Phrase::new("退款");
        assert!(cjk.occurs_in("我要求退款！"));
        // A Latin or digit phrase inside unspaced text starts after its
        // last character.
        assert!(Phrase::new("12315").occurs_in("不给个说法我就打12315投诉"));
        assert!(Phrase::new("refund").occurs_in("我要refund"));
        assert!(!Phrase::new("refund").occurs_in("我要nonrefundable"));
    }

    #[test]
    fn gapped_phrases_match_parts_in_order_a_few_words_apart() {
        let review = Phrase::new("レビュー…書");
        assert!(review.occurs_in("楽天のレビューにそのまま書かせていただきます"));
        assert!(!review.occurs_in("書いたレビュー"));
        let report = Phrase::new("report … to amazon");
        assert!(report.occurs_in("i will report this seller to amazon today"));
        assert!(!report.occurs_in("i will report it. later i may write to amazon"));
        assert!(
            !report.occurs_in("the report from the courier says the parcel went back to amazon")
        );
        // Parts keep to word starts in spaced scripts.
        assert!(!Phrase::new("leave … star").occurs_in("leave it, it's a mustard colour"));
        assert!(Phrase::new("리뷰…쓸").occurs_in("리뷰에 전부 쓸 겁니다"));
    }

    /// An English signals file with only these anger and threat phrases and
    /// these intent lines.
    fn english_file(anger: &[&str], threat: &[&str], intents: &str) -> SignalsFile {
        toml::from_str(&format!(
            "language = \"en\"\n\
             [sentiment]\npositive = []\nnegative = []\nnegators = []\n\
             [emotion]\nanger = {anger:?}\nanxiety = []\nfrustration = []\nthreat = {threat:?}\n\
             [intent]\n{intents}\n"
        ))
        .unwrap()
    }

    #[test]
    fn an_intent_keyword_in_two_categories_is_refused() {
        let file = english_file(
            &[],
            &[],
            "refund_return = [\"refund\", \"Money back\"]\ncomplaint = [\"broken\", \"money back \"]",
        );
        let error = LanguageSignals::from_file(&file).unwrap_err().to_string();
        assert!(error.to_lowercase().contains("money back"), "{error}");
        assert!(
            error.contains("refund_return") && error.contains("complaint"),
            "{error}"
        );
    }

    #[test]
    fn the_urgent_risk_version_follows_the_phrases_names_urgent_risk_asks() {
        let signals = |threat: &str, anger: &str| {
            let language = LanguageSignals::from_file(&english_file(&[anger], &[threat], ""));
            Signals {
                by_language: HashMap::from([("en".to_string(), language.unwrap())]),
            }
        };
        let base = signals("chargeback", "furious");
        assert_eq!(
            base.urgent_risk_version(),
            signals("chargeback", "furious").urgent_risk_version()
        );
        assert_eq!(
            base.urgent_risk_version(),
            signals("chargeback", "livid").urgent_risk_version(),
            "anger is not asked"
        );
        assert_ne!(
            base.urgent_risk_version(),
            signals("charge back", "furious").urgent_risk_version()
        );
    }

    #[test]
    fn malay_and_indonesian_read_each_others_phrases() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/signals");
        let signals = Signals::load(&dir).unwrap();
        // "1 bintang" is in the Malay list, "viralin" in the Indonesian one.
        let malay = "Kalau tak settle, saya bagi 1 bintang.";
        let indonesian = "Kalau ga diurus, aku viralin di tiktok.";
        for language in ["ms", "id"] {
            assert!(signals.names_urgent_risk(malay, language), "{language}");
            assert!(
                signals.names_urgent_risk(indonesian, language),
                "{language}"
            );
        }
        assert!(!signals.names_urgent_risk(malay, "pl"));
    }

    #[test]
    fn risks_are_named_in_the_message_language_or_english() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/signals");
        let signals = Signals::load(&dir).unwrap();
        assert_eq!(
            signals.risks("The charger started to SMOKE and melted the plug", "en"),
            [Risk::Safety]
        );
        assert_eq!(
            signals.risks(
                "Jemand hat sich in mein Konto eingeloggt und die E-Mail geändert",
                "de"
            ),
            [Risk::AccountTakeover]
        );
        assert_eq!(
            signals.risks("届いたモバイルバッテリーが膨らんでいて怖いです", "ja"),
            [Risk::Safety]
        );
        assert!(signals
            .risks("Where is my order 1234? Thanks!", "en")
            .is_empty());
    }

    #[test]
    fn a_parcel_gone_wrong_is_named_but_a_plain_status_question_is_not() {
        let signals = shipped();
        let anomaly = [Risk::LogisticsAnomaly];
        for (text, language) in [
            (
                "Tracking says delivered but there is nothing at my door",
                "en",
            ),
            ("Laut DHL zugestellt, aber ich habe nichts erhalten", "de"),
            ("Le colis est bloqué en douane depuis deux semaines", "fr"),
            ("物流一直没更新，已经半个月了", "zh"),
            ("배송완료라고 떴는데 택배를 못 받았어요", "ko"),
            ("Paket saya nyangkut di gudang sortir sudah 2 minggu", "id"),
        ] {
            assert_eq!(signals.risks(text, language), anomaly, "{text}");
        }
        for (text, language) in [
            ("When will my order arrive? It shipped yesterday", "en"),
            ("Wann kommt meine Bestellung an?", "de"),
            ("我的包裹什么时候到？", "zh"),
        ] {
            assert!(signals.risks(text, language).is_empty(), "{text}");
        }
    }

    fn shipped() -> Signals {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/signals");
        Signals::load(&dir).unwrap()
    }

    #[test]
    fn an_order_the_buyer_never_placed_is_a_taken_over_account() {
        let signals = shipped();
        for (text, language) in [
            (
                "When does my kettle arrive? Also I got a shipping email for a drone I never ordered",
                "en",
            ),
            (
                "¿Cuándo llega mi pedido? Por cierto, me llegó un correo de un pedido que yo no hice",
                "es",
            ),
            ("我的快递到哪了？另外我收到一个订单通知，我根本没买过", "zh"),
            (
                "Bila parcel saya sampai? Ada notifikasi order blender yang saya tak pernah beli",
                "ms",
            ),
        ] {
            let risks = signals.risks(text, language);
            assert!(risks.contains(&Risk::AccountTakeover), "{text}: {risks:?}");
        }
        for (text, language) in [
            ("You sent me the blue one, this is not what I ordered", "en"),
            ("I never received my order, where is it?", "en"),
        ] {
            let risks = signals.risks(text, language);
            assert!(!risks.contains(&Risk::AccountTakeover), "{text}: {risks:?}");
        }
    }

    #[test]
    fn an_unused_item_that_does_not_fit_hides_an_exchange_but_a_question_before_buying_does_not() {
        let signals = shipped();
        let exchange = [Category::RefundReturn];
        for (text, language) in [
            (
                "Do you have the jacket in XL? The L that arrived is too tight, tags still on",
                "en",
            ),
            (
                "Gibt es die Hose auch in 34? Die 32 ist zu eng, nur anprobiert",
                "de",
            ),
            (
                "Ada ukuran 42 kak? Yang dateng kekecilan, belum dipakai sama sekali",
                "id",
            ),
        ] {
            assert_eq!(signals.hidden_asks(text, language), exchange, "{text}");
        }
        for (text, language) in [
            (
                "Does the jacket run small? What is your return policy?",
                "en",
            ),
            (
                "Fällt die Hose klein aus? Welche Größe empfehlen Sie?",
                "de",
            ),
        ] {
            assert!(signals.hidden_asks(text, language).is_empty(), "{text}");
        }
    }
}

//! Sentiment and emotion from multilingual lexical signals, emoji,
//! exclamation and shouting. Threats (chargeback, bad review, legal action)
//! are an emotion of their own: they always raise the tier.

use std::sync::Arc;

use crate::domain::{EmotionKind, Polarity, Sentiment};
use crate::signals::{LanguageSignals, Signals};

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

impl SentimentAnalyzer for LexicalSentiment {
    fn analyze(&self, text: &str, language: &str) -> Sentiment {
        let lowered = text.to_lowercase();
        let sets = self.signals.for_language(language);
        let mut positive = 0.0f32;
        let mut negative = 0.0f32;
        let mut emotion_hits = [0.0f32; 4];
        for set in &sets {
            let (p, n) = polarity_hits(set, &lowered);
            positive += p;
            negative += n;
            for (slot, kind) in EmotionKind::ALL.iter().enumerate() {
                let phrases = set
                    .emotions
                    .get(kind)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                emotion_hits[slot] +=
                    phrases.iter().filter(|ph| ph.occurs_in(&lowered)).count() as f32;
            }
        }
        let count = |set: &[char]| text.chars().filter(|c| set.contains(c)).count() as f32;
        positive += count(POSITIVE_EMOJI);
        negative += count(NEGATIVE_EMOJI);
        let exclamations = text.matches(['!', '！']).count() as f32;
        let shouting = shouted_words(text) as f32;

        let [anger, anxiety, frustration, threat] = emotion_hits;
        let anger = anger
            + count(ANGRY_EMOJI)
            + 0.5 * shouting.min(3.0)
            + if exclamations >= 3.0 { 0.5 } else { 0.0 };
        let anxiety = anxiety + count(ANXIOUS_EMOJI);
        // Emotions that are not neutral weigh on the polarity too.
        negative += 0.7 * (anger + frustration) + threat + 0.3 * anxiety;

        let intensity = 1.0 + 0.15 * exclamations.min(4.0);
        let raw = (positive - negative) * intensity;
        let score = (raw * 0.6).tanh();
        let label = if score <= -0.2 {
            Polarity::Negative
        } else if score >= 0.2 {
            Polarity::Positive
        } else {
            Polarity::Neutral
        };
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

/// Words of three or more letters written in capitals, when the text is not all capitals.
fn shouted_words(text: &str) -> usize {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .collect();
    let shouted = words
        .iter()
        .filter(|w| w.chars().all(|c| c.is_uppercase()))
        .count();
    if shouted == words.len() && words.len() < 3 {
        0
    } else {
        shouted
    }
}

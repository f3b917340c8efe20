//! The LLM's prompts, from `prompts/llm/` (checked at start-up: a missing file
//! or a stray placeholder fails start-up naming the file), and the token
//! budget that keeps a prompt and its answer inside the model's context.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use tiktoken_rs::CoreBPE;

use crate::domain::{EmotionKind, Polarity, Sentiment};
use crate::prompts::placeholders;

#[derive(Debug, Clone)]
pub struct LlmPrompts {
    pub system: String,
    pub auto_reply: String,
    pub handoff_draft: String,
    pub translate: String,
    tone: HashMap<String, String>,
}

/// Each template and the placeholders it must use (all of them: a template
/// that drops the buyer's message or the facts is a mistake).
const TEMPLATES: [(&str, &[&str]); 4] = [
    ("system.md", &["language_name"]),
    (
        "auto_reply.md",
        &[
            "tone",
            "order",
            "knowledge",
            "buyer_message",
            "language_name",
        ],
    ),
    (
        "handoff_draft.md",
        &[
            "tone",
            "reasons",
            "order",
            "knowledge",
            "buyer_message",
            "language_name",
        ],
    ),
    (
        "translate.md",
        &["source_language_name", "target_language_name", "text"],
    ),
];
const TONES: [&str; 7] = [
    "threat",
    "anger",
    "frustration",
    "anxiety",
    "negative",
    "neutral",
    "positive",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToneFile {
    tone: HashMap<String, String>,
}

impl LlmPrompts {
    /// Loads and checks `dir/*.md` and `dir/tone.toml`.
    pub fn load(dir: &Path) -> anyhow::Result<LlmPrompts> {
        let mut texts = HashMap::new();
        for (file, required) in TEMPLATES {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading LLM prompt {}", path.display()))?;
            let used = placeholders(&text);
            for name in &used {
                if !required.contains(name) {
                    bail!(
                        "bad LLM prompt {}: {{{name}}} is not one of {required:?}",
                        path.display()
                    );
                }
            }
            for name in required {
                if !used.contains(name) {
                    bail!("bad LLM prompt {}: {{{name}}} is missing", path.display());
                }
            }
            texts.insert(file, text.trim().to_string());
        }
        let path = dir.join("tone.toml");
        let tone: ToneFile = toml::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading LLM prompt {}", path.display()))?,
        )
        .with_context(|| format!("bad LLM prompt {}", path.display()))?;
        for name in TONES {
            if tone.tone.get(name).is_none_or(|t| t.trim().is_empty()) {
                bail!("bad LLM prompt {}: tone.{name} is missing", path.display());
            }
        }
        let mut take = |file: &str| texts.remove(file).unwrap_or_default();
        Ok(LlmPrompts {
            system: take("system.md"),
            auto_reply: take("auto_reply.md"),
            handoff_draft: take("handoff_draft.md"),
            translate: take("translate.md"),
            tone: tone.tone,
        })
    }

    /// The tone instruction for a buyer's sentiment: soothe first, then solve.
    pub fn tone(&self, sentiment: &Sentiment) -> &str {
        let strongest = [
            (EmotionKind::Threat, "threat"),
            (EmotionKind::Anger, "anger"),
            (EmotionKind::Frustration, "frustration"),
            (EmotionKind::Anxiety, "anxiety"),
        ]
        .into_iter()
        .find(|(kind, _)| sentiment.emotion(*kind) >= 0.4)
        .map(|(_, name)| name)
        .unwrap_or(match sentiment.label {
            Polarity::Negative => "negative",
            Polarity::Neutral => "neutral",
            Polarity::Positive => "positive",
        });
        self.tone.get(strongest).map_or("", String::as_str)
    }
}

/// Counts prompt tokens and fits the buyer's message and the knowledge into
/// the context: the message first (cut at its end if it must be), then the
/// knowledge by rank, the first that does not fit cut and the rest left out.
pub struct TokenBudget {
    bpe: &'static CoreBPE,
    /// Tokens a prompt may use: the context minus the answer, over the margin.
    prompt_tokens: usize,
    margin: f32,
}

/// Below this many tokens left, a knowledge answer is left out, not cut.
const MIN_KNOWLEDGE_TOKENS: usize = 24;

impl TokenBudget {
    pub fn new(context_tokens: usize, max_answer_tokens: usize, margin: f32) -> TokenBudget {
        TokenBudget {
            bpe: tiktoken_rs::cl100k_base_singleton(),
            prompt_tokens: context_tokens.saturating_sub(max_answer_tokens),
            margin: margin.max(1.0),
        }
    }

    /// Tokens of `text` in cl100k.
    pub fn raw_count(&self, text: &str) -> u64 {
        self.bpe.encode_ordinary(text).len() as u64
    }

    /// Tokens of `text` as the serving model may count them.
    pub fn count(&self, text: &str) -> usize {
        (self.bpe.encode_ordinary(text).len() as f32 * self.margin).ceil() as usize
    }

    /// The longest beginning of `text` within `tokens`.
    pub fn truncate(&self, text: &str, tokens: usize) -> String {
        if self.count(text) <= tokens {
            return text.to_string();
        }
        let raw = ((tokens as f32) / self.margin).floor() as usize;
        let ids = self.bpe.encode_ordinary(text);
        let mut kept = raw.min(ids.len());
        // A cut inside a multi-byte character does not decode: step back.
        loop {
            let bytes = self.bpe.decode_bytes(&ids[..kept]).unwrap_or_default();
            if let Ok(prefix) = String::from_utf8(bytes) {
                return prefix;
            }
            if kept == 0 {
                return String::new();
            }
            kept -= 1;
        }
    }

    /// Fits `buyer` and `knowledge` (best first) beside `fixed` (the rest of
    /// the prompt): returns the buyer's text, cut at its end only if it alone
    /// overflows, and how many knowledge texts to keep, the last possibly cut.
    pub fn fit(&self, fixed: &str, buyer: &str, knowledge: &[String]) -> (String, Vec<String>) {
        let mut left = self.prompt_tokens.saturating_sub(self.count(fixed));
        let buyer = self.truncate(buyer, left);
        left = left.saturating_sub(self.count(&buyer));
        let mut kept = Vec::new();
        for text in knowledge {
            let tokens = self.count(text);
            if tokens <= left {
                kept.push(text.clone());
                left -= tokens;
            } else {
                if left >= MIN_KNOWLEDGE_TOKENS {
                    kept.push(self.truncate(text, left));
                }
                break;
            }
        }
        (buyer, kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn shipped_llm_prompts_load() {
        let prompts = LlmPrompts::load(&root().join("prompts/llm")).unwrap();
        assert!(prompts.system.contains("{language_name}"));
        let calm = Sentiment {
            label: Polarity::Neutral,
            score: 0.0,
            emotions: vec![],
        };
        let angry = Sentiment {
            label: Polarity::Negative,
            score: -0.9,
            emotions: vec![(EmotionKind::Anger, 0.8)],
        };
        assert!(prompts.tone(&angry).contains("apolog"));
        assert_ne!(prompts.tone(&calm), prompts.tone(&angry));
    }

    #[test]
    fn a_prompt_without_the_buyer_message_fails_start_up_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(root().join("prompts/llm")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let draft = std::fs::read_to_string(dir.path().join("handoff_draft.md")).unwrap();
        std::fs::write(
            dir.path().join("handoff_draft.md"),
            draft.replace("{buyer_message}", "{buyer_mesage}"),
        )
        .unwrap();
        let error = format!("{:#}", LlmPrompts::load(dir.path()).unwrap_err());
        assert!(error.contains("handoff_draft.md"), "{error}");
        assert!(error.contains("buyer_mesage"), "{error}");
    }

    #[test]
    fn the_budget_keeps_the_inquirys_beginning_and_cuts_knowledge_by_rank() {
        let budget = TokenBudget::new(300, 100, 1.0);
        let fixed = "You write replies.";
        let buyer = "Where is my order 4411? ".repeat(5);
        let knowledge = vec![
            "First article. ".repeat(20),
            "Second article. ".repeat(40),
            "Third article.".to_string(),
        ];
        let (kept_buyer, kept) = budget.fit(fixed, &buyer, &knowledge);
        assert_eq!(kept_buyer, buyer);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0], knowledge[0]);
        assert!(knowledge[1].starts_with(&kept[1]) && kept[1].len() < knowledge[1].len());
        // An inquiry longer than the whole budget keeps its beginning.
        let long = format!("START {}", "lorem ipsum ".repeat(400));
        let (cut, kept) = budget.fit(fixed, &long, &knowledge);
        assert!(cut.starts_with("START") && cut.len() < long.len());
        assert!(kept.is_empty());
        let total = budget.count(fixed) + budget.count(&cut);
        assert!(total <= 200, "{total}");
    }
}

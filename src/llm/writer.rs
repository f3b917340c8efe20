//! Writing with the LLM: builds the grounded prompt (redacted buyer text,
//! order data, knowledge by rank, within the token budget), streams the
//! answer, checks every piece before anyone sees it, and checks the whole.

use std::sync::Arc;

use crate::config::Settings;
use crate::domain::{HandoffReason, KnowledgeHit, Order, Sentiment};
use crate::guard::{Check, Grounding, GuardFailure, Guardrails, Redaction, ReplyKind};
use crate::metrics;
use crate::prompts::fill;
use crate::stages::language::{language_name, LanguageDetector};

use super::{Completion, LlmClient, LlmError, LlmPrompts, TokenBudget};

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub kind: ReplyKind,
    /// The buyer's language (ISO 639-1): the reply's.
    pub language: &'a str,
    /// The buyer's message as analysed (subject and normalized body).
    pub buyer_text: &'a str,
    pub order: Option<&'a Order>,
    /// Knowledge-base answers, best first.
    pub knowledge: &'a [KnowledgeHit],
    pub sentiment: &'a Sentiment,
    /// Why a person must answer (drafts).
    pub reasons: &'a [HandoffReason],
}

/// What is sent to the LLM, and what its answer is checked against.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub system: String,
    pub user: String,
    /// Knowledge-base article ids the prompt carries, and "order".
    pub citations: Vec<String>,
    redaction: Redaction,
    order: Vec<String>,
    knowledge: Vec<String>,
    echo: Vec<String>,
}

/// A checked LLM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub text: String,
    /// Knowledge-base article ids the prompt carried, and "order" for order data.
    pub citations: Vec<String>,
}

/// A checked translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub text: String,
    pub source_language: String,
}

/// Why there is no LLM text: the caller falls back to the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("the LLM's text was refused: {0}")]
    Refused(GuardFailure),
    #[error("no LLM wording for language {0:?}")]
    Unsupported(String),
}

impl WriteError {
    /// A dependency failed (as opposed to its output being refused).
    pub fn is_dependency_failure(&self) -> bool {
        matches!(self, WriteError::Llm(_))
    }
}

pub struct LlmWriter {
    client: LlmClient,
    prompts: LlmPrompts,
    guardrails: Guardrails,
    budget: TokenBudget,
    detector: Arc<dyn LanguageDetector>,
}

/// Characters after which a streamed piece may end: whitespace and the
/// punctuation of scripts written without spaces.
fn is_break(c: char) -> bool {
    c.is_whitespace() || matches!(c, '。' | '、' | '，' | '！' | '？' | '；' | '：')
}

impl LlmWriter {
    /// Loads and checks the LLM's prompts and guardrails (so a bad template
    /// fails start-up even before an LLM is configured), then connects to
    /// the configured endpoint; `None` when no LLM URL is set.
    pub fn from_settings(
        settings: &Settings,
        detector: Arc<dyn LanguageDetector>,
    ) -> anyhow::Result<Option<LlmWriter>> {
        let dir = settings.prompts_dir.join("llm");
        let prompts = LlmPrompts::load(&dir)?;
        let guardrails =
            Guardrails::load(&dir.join("guardrails.toml"), settings.llm.max_output_chars)?;
        let llm = &settings.llm;
        Ok(LlmClient::from_settings(llm).map(|client| {
            LlmWriter::new(
                client,
                prompts,
                guardrails,
                TokenBudget::new(llm.context_tokens, llm.max_answer_tokens, llm.token_margin),
                detector,
            )
        }))
    }

    pub fn new(
        client: LlmClient,
        prompts: LlmPrompts,
        guardrails: Guardrails,
        budget: TokenBudget,
        detector: Arc<dyn LanguageDetector>,
    ) -> LlmWriter {
        LlmWriter {
            client,
            prompts,
            guardrails,
            budget,
            detector,
        }
    }

    pub fn model(&self) -> &str {
        self.client.model()
    }

    /// The prompt for `request`: the buyer's text with its PII redacted,
    /// the order's facts and the knowledge by rank, within the token budget.
    pub fn prompt(&self, request: &WriteRequest<'_>) -> Result<Prompt, WriteError> {
        let language_name = language_name(request.language)
            .ok_or_else(|| WriteError::Unsupported(request.language.to_string()))?;
        let fields = order_fields(request.order);
        let order_lines: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        let keep: Vec<&str> = request
            .order
            .into_iter()
            .flat_map(|o| [o.order_id.as_deref(), o.tracking_number.as_deref()])
            .flatten()
            .collect();
        let redaction = Redaction::new(request.buyer_text, &keep);
        let system = fill(&self.prompts.system, &[("language_name", &language_name)]);
        let (template, reasons) = match request.kind {
            ReplyKind::AutoReply => (&self.prompts.auto_reply, String::new()),
            ReplyKind::Draft => (
                &self.prompts.handoff_draft,
                request
                    .reasons
                    .iter()
                    .map(|r| r.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        let order = if order_lines.is_empty() {
            "none".to_string()
        } else {
            order_lines.join("\n")
        };
        let tone = self.prompts.tone(request.sentiment);
        let slots = |buyer: &str, knowledge: &str| {
            fill(
                template,
                &[
                    ("tone", tone),
                    ("reasons", &reasons),
                    ("order", &order),
                    ("knowledge", knowledge),
                    ("buyer_message", buyer),
                    ("language_name", &language_name),
                ],
            )
        };
        let entries: Vec<String> = request
            .knowledge
            .iter()
            .map(|hit| format!("[{}] {}: {}", hit.article_id, hit.title, hit.answer))
            .collect();
        let fixed = format!("{system}\n{}", slots("", ""));
        let (buyer, knowledge) = self.budget.fit(&fixed, &redaction.text, &entries);
        let user = slots(
            &buyer,
            &if knowledge.is_empty() {
                "none".to_string()
            } else {
                knowledge.join("\n\n")
            },
        );
        let mut citations: Vec<String> = request.knowledge[..knowledge.len()]
            .iter()
            .map(|hit| hit.article_id.clone())
            .collect();
        if !order_lines.is_empty() {
            citations.push("order".to_string());
        }
        let mut echo = scaffolding(&self.prompts.system);
        echo.extend(scaffolding(template));
        echo.extend(
            request.knowledge[..knowledge.len()]
                .iter()
                .map(|hit| format!("[{}]", hit.article_id)),
        );
        Ok(Prompt {
            system,
            user,
            citations,
            redaction,
            order: fields.into_iter().map(|(_, value)| value).collect(),
            knowledge,
            echo,
        })
    }

    /// Writes a reply or draft. Draft pieces go to `on_chunk` as they are
    /// written, each checked (PII, numbers, structure) before it is passed
    /// on; auto-replies reach nobody until the whole text is checked.
    pub async fn write(
        &self,
        request: &WriteRequest<'_>,
        mut on_chunk: impl FnMut(&str),
    ) -> Result<Written, WriteError> {
        let Prompt {
            system,
            user,
            citations,
            redaction,
            order,
            knowledge,
            echo,
        } = self.prompt(request)?;
        let grounding = Grounding {
            buyer: request.buyer_text,
            order,
            knowledge: knowledge.iter().map(String::as_str).collect(),
            echo,
        };

        metrics::count(
            "firstreply_llm_tokens_total",
            &["prompt"],
            self.budget.raw_count(&system) + self.budget.raw_count(&user),
        );
        let mut raw = String::new();
        let mut emitted = 0;
        let mut refused = None;
        let streaming = request.kind == ReplyKind::Draft;
        let completion = self
            .client
            .complete(&system, &user, |delta| {
                raw.push_str(delta);
                if !streaming {
                    return true;
                }
                let Some(end) = raw.rfind(is_break) else {
                    return true;
                };
                let checked = redaction.restore(&raw[..end]).and_then(|piece| {
                    self.guardrails
                        .check_partial(&piece, request.kind, request.language, &grounding)
                        .map(|()| piece)
                });
                match checked {
                    Ok(piece) => {
                        if piece.len() > emitted {
                            on_chunk(&piece[emitted..]);
                            emitted = piece.len();
                        }
                        true
                    }
                    Err(failure) => {
                        refused = Some(failure);
                        false
                    }
                }
            })
            .await?;
        if let Some(failure) = refused {
            return Err(WriteError::Refused(failure));
        }
        metrics::count(
            "firstreply_llm_tokens_total",
            &["completion"],
            self.budget.raw_count(&completion.text),
        );
        let text = complete_sentences(&completion)?;
        let text = redaction.restore(text).map_err(WriteError::Refused)?;
        self.guardrails
            .check(
                &text,
                request.kind,
                request.language,
                &grounding,
                self.detector.as_ref(),
            )
            .map_err(WriteError::Refused)?;
        Ok(Written { text, citations })
    }

    /// Renders `text` (in `source`) in `target`: checked like a draft
    /// against the text itself, and in the target language.
    pub async fn translate(
        &self,
        text: &str,
        source: &str,
        target: &str,
    ) -> Result<Translation, WriteError> {
        let source_name =
            language_name(source).ok_or_else(|| WriteError::Unsupported(source.to_string()))?;
        let target_name =
            language_name(target).ok_or_else(|| WriteError::Unsupported(target.to_string()))?;
        let redaction = Redaction::new(text, &[]);
        let system = fill(&self.prompts.system, &[("language_name", &target_name)]);
        let slots = |body: &str| {
            fill(
                &self.prompts.translate,
                &[
                    ("source_language_name", &source_name),
                    ("target_language_name", &target_name),
                    ("text", body),
                ],
            )
        };
        let fixed = format!("{system}\n{}", slots(""));
        let (body, _) = self.budget.fit(&fixed, &redaction.text, &[]);
        let completion = self
            .client
            .complete(&system, &slots(&body), |_| true)
            .await?;
        let output = complete_sentences(&completion)?
            .trim()
            .trim_start_matches("<<<TEXT")
            .trim_end_matches("TEXT>>>")
            .trim();
        let translated = redaction.restore(output).map_err(WriteError::Refused)?;
        let grounding = Grounding {
            buyer: text,
            order: Vec::new(),
            knowledge: Vec::new(),
            echo: scaffolding(&self.prompts.translate),
        };
        self.guardrails
            .check(
                &translated,
                ReplyKind::Draft,
                target,
                &grounding,
                self.detector.as_ref(),
            )
            .map_err(WriteError::Refused)?;
        Ok(Translation {
            text: translated,
            source_language: source.to_string(),
        })
    }
}

/// The answer's text; one the token limit cut off ends at its last full
/// sentence, and one without a full sentence is refused.
fn complete_sentences(completion: &Completion) -> Result<&str, WriteError> {
    let text = completion.text.trim();
    if !completion.truncated {
        return Ok(text);
    }
    let end = text
        .char_indices()
        .rfind(|(_, c)| matches!(c, '.' | '!' | '?' | '。' | '！' | '？'))
        .map(|(at, c)| at + c.len_utf8());
    match end {
        Some(end) => Ok(text[..end].trim()),
        None => Err(WriteError::Refused(GuardFailure::new(
            Check::Malformed,
            "cut off at the token limit before a full sentence",
        ))),
    }
}

/// Fragments of a template's own wording long enough that an answer
/// containing one is repeating the prompt: its lines, split at placeholders.
fn scaffolding(template: &str) -> Vec<String> {
    template
        .lines()
        .flat_map(|line| line.split(['{', '}']).step_by(2))
        .map(str::trim)
        .filter(|piece| piece.chars().count() >= 16 || piece.ends_with(':'))
        .filter(|piece| piece.chars().count() >= 6)
        .map(str::to_string)
        .collect()
}

/// The order's fields a reply may quote, named; dates as `YYYY-MM-DD`.
fn order_fields(order: Option<&Order>) -> Vec<(&'static str, String)> {
    let Some(order) = order else {
        return Vec::new();
    };
    let date = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d").to_string();
    [
        ("order number", order.order_id.clone()),
        ("status", order.status.clone()),
        ("carrier", order.carrier.clone()),
        ("tracking number", order.tracking_number.clone()),
        ("tracking link", order.tracking_url.clone()),
        ("shipped on", order.shipped_at.as_ref().map(date)),
        (
            "estimated delivery",
            order.estimated_delivery.as_ref().map(date),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

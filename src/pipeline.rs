//! The pipeline, top to bottom as the data flows: normalize → language →
//! sentiment → (acknowledge) → embed → intent and tier → SLA → knowledge →
//! decide → compose. The fast stages run first so the acknowledgement never
//! waits for the model; a failing model or store degrades to a hand-off.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tracing::{debug, info, info_span, warn};

use crate::backlog::{evaluate_backlog, BacklogReport, OpenInquiry};
use crate::config::Settings;
use crate::domain::{
    Acknowledgement, Category, Customer, Draft, DraftAction, DraftSource, Feedback, HandoffReason,
    Inquiry, IntentGuess, KnowledgeHit, LanguageGuess, Outcome, ReasonCode, Risk, Sentiment, Tier,
    Triage,
};
use crate::embed::{
    BatchingEmbedder, CandleEmbedder, E5Embedder, Embedder, OpenAiEmbedder, TextKind,
};
use crate::feedback::FeedbackStore;
use crate::guard::ReplyKind;
use crate::ingest::{point_id, IngestReport, SEED_TENANT};
use crate::llm::{LlmWriter, WriteError, WriteRequest};
use crate::metrics;
use crate::pool::WorkPool;
use crate::prompts::Prompts;
use crate::report::{
    build_report, edit_distance, OutcomeLog, OutcomeRecord, Report, OUTCOME_DIMENSION,
};
use crate::signals::Signals;
use crate::stages::compose::{AckInput, AutoReplyInput, Composer};
use crate::stages::decide::{decide, DecideInput, DecideRules, Decision};
use crate::stages::intent::{
    assign_tier, example_key, load_tiered_examples, Example, IntentClassifier, IntentQuery,
    KeywordHits, KnnIntentClassifier, Mentions,
};
use crate::stages::knowledge::{
    load_articles, ApprovedAnswer, Article, KnowledgeBase, SearchRequest,
};
use crate::stages::language::{LanguageDetector, LanguageHints, LinguaDetector};
use crate::stages::money::{amounts, reaches_mark};
use crate::stages::normalize::{NormalizeError, Normalizer, TextNormalizer};
use crate::stages::risk::{
    load_risk_examples, with_read_risks, with_read_threat, Background, RiskReader,
};
use crate::stages::sentiment::{
    load_sentiment_examples, with_intent, with_risks, with_vote, LexicalSentiment, PolarityVoter,
    SentimentAnalyzer,
};
use crate::stages::sla::{PolicySla, SlaInput, SlaPolicy};
use crate::store::{Collection, EdgeCollection, QdrantServer};

/// Why an inquiry cannot be handled as sent.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("text: {0}")]
    EmptyText(#[from] NormalizeError),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// An inquiry after the fast stages: enough to acknowledge it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub inquiry: Inquiry,
    /// The normalized message body.
    pub text: String,
    /// Subject and body: what intent and retrieval read.
    pub analysed_text: String,
    pub language: LanguageGuess,
    pub sentiment: Sentiment,
    /// Every category with a keyword in the message, strongest first.
    pub keyword_categories: Vec<Category>,
    /// The keyword evidence itself, for the classifier.
    pub keyword_hits: KeywordHits,
    /// Categories whose ask the message tells in words only it uses.
    pub hidden_asks: Vec<Category>,
    /// Tier-raising risks, from the words and the customer and order data.
    pub risks: Vec<Risk>,
}

impl Prepared {
    /// The categories the message's words name, for the tier and the decision.
    pub fn mentions(&self) -> Mentions<'_> {
        Mentions {
            keywords: &self.keyword_categories,
            hidden_asks: &self.hidden_asks,
        }
    }

    /// The category keywords point to most strongly, if any.
    pub fn keyword_category(&self) -> Option<Category> {
        self.keyword_categories.first().copied()
    }

    /// The intent from keywords alone: a guess, never confident enough to
    /// auto-reply, for the acknowledgement and when the model cannot run.
    pub fn keyword_guess(&self) -> IntentGuess {
        IntentGuess {
            category: self.keyword_category().unwrap_or(Category::Other),
            confidence: 0.3,
            urgent: 0.0,
        }
    }
}

/// The sentiment score from which a message is too happy to tell of a risk
/// no phrase names.
const CLEARLY_POSITIVE: f32 = 0.5;

/// The sentiment and risks once the inquiry is embedded: with the vote of
/// the nearest sentiment examples, and the risks the risk head reads.
#[derive(Debug, Clone)]
pub struct Reading {
    pub sentiment: Sentiment,
    /// The risks named in words, and those the risk head reads.
    pub risks: Vec<Risk>,
}

/// What became of an agent's feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackReceipt {
    pub feedback_id: u64,
    /// A corrected intent now votes for the tenant's next inquiries.
    pub learned: bool,
    /// The id of the agent-approved answer an accepted or edited draft became.
    pub approved_answer_id: Option<String>,
}

/// The triage, and what failed on the way, if anything.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub triage: Triage,
    /// Dependencies that failed; non-empty means the result is degraded.
    pub degraded: Vec<String>,
}

pub struct Pipeline {
    settings: Settings,
    normalizer: Box<dyn Normalizer>,
    language: Arc<dyn LanguageDetector>,
    sentiment: Box<dyn SentimentAnalyzer>,
    polarity: PolarityVoter,
    risk_reader: RiskReader,
    embedder: Arc<dyn Embedder>,
    signals: Arc<Signals>,
    classifier: Box<dyn IntentClassifier>,
    feedback: FeedbackStore,
    outcomes: OutcomeLog,
    /// The store is a server other replicas may share.
    shared_store: bool,
    knowledge: KnowledgeBase,
    sla: PolicySla,
    composer: Composer,
    /// Runs the server's blocking calls at a lowered priority.
    work_pool: WorkPool,
}

impl Pipeline {
    /// Loads models, wording and signals, opens the embedded store and brings
    /// the knowledge base and intent examples up to date (incrementally).
    pub fn build(settings: Settings) -> anyhow::Result<Pipeline> {
        let prompts = Prompts::load(&settings.prompts_dir)?;
        let signals = Arc::new(Signals::load(&settings.knowledge_dir.join("signals"))?);
        let model: Arc<dyn Embedder> = match settings.embedding.backend.as_str() {
            "e5" => {
                let mut e5 = E5Embedder::load(
                    &settings.model_dir.join(&settings.embedding.model),
                    &settings.embedding.model,
                )?;
                if !settings.embedding.kernel.is_empty() {
                    e5.use_kernel(&settings.embedding.kernel)?;
                }
                tracing::info!(kernel = e5.kernel(), "embedding model loaded");
                Arc::new(e5)
            }
            "candle" => Arc::new(CandleEmbedder::load(
                &settings.model_dir.join(&settings.embedding.model),
                &settings.embedding.model,
                settings.embedding.max_tokens,
            )?),
            "openai" => Arc::new(OpenAiEmbedder::connect(&settings.embedding)?),
            other => {
                anyhow::bail!(
                    "unknown embedding backend {other:?} (expected \"e5\", \"candle\" or \"openai\")"
                )
            }
        };
        let embedder: Arc<dyn Embedder> =
            Arc::new(BatchingEmbedder::new(model, settings.embedding.max_batch)?);
        let server = if settings.qdrant.url.trim().is_empty() {
            None
        } else {
            Some(QdrantServer::connect(&settings.qdrant)?)
        };
        // A collection per purpose and embedding model: a model change starts
        // fresh ones. The outcome log has no model.
        let open_store = |name: &str, dimension: usize| -> anyhow::Result<Arc<dyn Collection>> {
            Ok(match &server {
                Some(server) => Arc::new(server.open(name, dimension)?),
                None => Arc::new(EdgeCollection::open(
                    &settings.data_dir.join("qdrant").join(name),
                    dimension,
                )?),
            })
        };
        let open = |name: &str| {
            open_store(
                &format!("{name}-{}", slug(embedder.model_id())),
                embedder.dimension(),
            )
        };
        let knowledge = KnowledgeBase::new(open("knowledge")?, embedder.clone())?;
        // Intent and sentiment examples share one collection, told apart by `kind`.
        let examples = open("intents")?;
        let classifier =
            KnnIntentClassifier::new(examples.clone(), signals.clone(), &settings.intent)
                .with_head_cache(
                    settings
                        .data_dir
                        .join(format!("intent-head-{}.bin", slug(embedder.model_id()))),
                );
        let polarity = PolarityVoter::new(examples.clone(), &settings.sentiment);
        let risk_reader = RiskReader::new(examples.clone(), &settings.risk).with_head_cache(
            settings
                .data_dir
                .join(format!("risk-head-{}.bin", slug(embedder.model_id()))),
        );
        let feedback = FeedbackStore::new(examples);
        // Capped at a century, so any setting stays a valid date offset.
        let retention = settings.outcomes.retention_days.min(36_500) as i64;
        let outcomes = OutcomeLog::new(
            open_store("outcomes", OUTCOME_DIMENSION)?,
            (retention > 0).then(|| chrono::Duration::days(retention)),
        )?;
        let shared_store = server.is_some();

        let language: Arc<dyn LanguageDetector> = Arc::new(LinguaDetector::new(
            settings.language.min_letters,
            settings.language.min_confidence,
        ));
        let pipeline = Pipeline {
            normalizer: Box::new(TextNormalizer::new(settings.normalize.max_chars)),
            language,
            sentiment: Box::new(LexicalSentiment::new(signals.clone())),
            polarity,
            risk_reader,
            signals,
            classifier: Box::new(classifier),
            feedback,
            outcomes,
            shared_store,
            knowledge,
            sla: if settings.policy_file.as_os_str().is_empty() {
                PolicySla::builtin()
            } else {
                PolicySla::load(&settings.policy_file)?
            },
            composer: Composer::new(prompts),
            embedder,
            // One thread per call let in at once: a call waiting on the
            // embedding batch holds its thread.
            work_pool: WorkPool::new(settings.server.max_in_flight),
            settings,
        };
        pipeline.ingest_examples()?;
        pipeline.ingest_knowledge(None)?;
        Ok(pipeline)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    pub fn signals(&self) -> Arc<Signals> {
        self.signals.clone()
    }

    pub fn classifier(&self) -> &dyn IntentClassifier {
        self.classifier.as_ref()
    }

    fn ingest_examples(&self) -> anyhow::Result<()> {
        let intents_dir = self.settings.knowledge_dir.join("intents");
        let (intent_examples, tiers): (Vec<Example>, Vec<Option<Tier>>) =
            load_tiered_examples(&intents_dir)?.into_iter().unzip();
        let report = self
            .classifier
            .ingest_examples(self.embedder.as_ref(), &intent_examples)?;
        info!(
            examples = intent_examples.len(),
            ?report,
            "intent examples up to date"
        );
        let examples = load_sentiment_examples(&self.settings.knowledge_dir.join("sentiment"))?;
        let report = self.polarity.ingest(self.embedder.as_ref(), &examples)?;
        info!(
            examples = examples.len(),
            ?report,
            "sentiment examples up to date"
        );
        // The intent examples no phrase list reads a risk in are everyday
        // messages: what the risk head learns to tell a risk from. Reading
        // them all takes about half a second, so only to train the head.
        // Those labelled urgent may tell a risk in words no list has.
        let urgent: HashSet<&str> = intent_examples
            .iter()
            .zip(&tiers)
            .filter(|(_, tier)| **tier == Some(Tier::P1Urgent))
            .map(|(example, _)| example.text.as_str())
            .collect();
        let everyday: Vec<&Example> = intent_examples
            .iter()
            .filter(|example| !urgent.contains(example.text.as_str()))
            .collect();
        let candidates: Vec<u64> = everyday
            .iter()
            .map(|example| point_id(SEED_TENANT, &example_key(example)))
            .collect();
        let background = Background {
            candidates: &candidates,
            version: self.signals.urgent_risk_version(),
            pick: Box::new(|candidates| {
                everyday
                    .iter()
                    .zip(candidates)
                    .filter(|(example, _)| {
                        !self
                            .signals
                            .names_urgent_risk(&example.text, &example.language)
                    })
                    .map(|(_, id)| *id)
                    .collect()
            }),
        };
        let examples = load_risk_examples(&self.settings.knowledge_dir.join("risks"))?;
        let ingest = self
            .risk_reader
            .ingest(self.embedder.as_ref(), &examples, background)?;
        info!(
            examples = examples.len(),
            background_candidates = candidates.len(),
            left_out = ingest.left_out.len(),
            report = ?ingest.report,
            "risk examples up to date"
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            let left_out: HashSet<u64> = ingest.left_out.into_iter().collect();
            for (example, id) in everyday.iter().zip(&candidates) {
                if left_out.contains(id) {
                    debug!(
                        language = %example.language,
                        intent = example.label.as_str(),
                        text = %example.text,
                        "intent example read as a risk, left out of the risk head's training"
                    );
                }
            }
        }
        Ok(())
    }

    /// The fast stages' sentiment and risks of `prepared`, with what its
    /// embedding adds: the vote of the nearest sentiment examples, and the
    /// hazards, threats and taken-over accounts no phrase named, as the risk
    /// head reads them.
    pub fn read(
        &self,
        prepared: &Prepared,
        vector: &[f32],
        intent: &IntentGuess,
    ) -> anyhow::Result<Reading> {
        let sentiment = match self.polarity.vote(vector)? {
            Some(vote) => with_vote(
                &prepared.sentiment,
                &vote,
                self.settings.sentiment.vote_weight,
            ),
            None => prepared.sentiment.clone(),
        };
        let sentiment = with_intent(sentiment, intent);
        // A risk is bad news: a message that reads clearly positive ("the
        // candles smell divine", "I have 20k followers, shall we
        // collaborate?") has none the phrases did not name. ("Fine. My bank
        // can sort this out then" reads a little positive.)
        let unnamed = if sentiment.score < CLEARLY_POSITIVE {
            let mut read = self.risk_reader.risks(vector);
            for label in self
                .risk_reader
                .clause_risks(self.embedder.as_ref(), &prepared.analysed_text)?
            {
                if !read.contains(&label) {
                    read.push(label);
                }
            }
            read
        } else {
            Vec::new()
        };
        let risks = with_read_risks(&prepared.risks, &unnamed);
        let sentiment = with_read_threat(
            with_risks(sentiment, &risks),
            &unnamed,
            self.settings.risk.threat_intensity,
        );
        Ok(Reading { sentiment, risks })
    }

    /// Re-reads the articles (from `dir`, or the configured folder) and
    /// updates the default tenant's knowledge base; then every tenant folder
    /// (`knowledge-base/tenants/<tenant>/`) updates its tenant's.
    pub fn ingest_knowledge(&self, dir: Option<PathBuf>) -> anyhow::Result<IngestReport> {
        let dir = dir.unwrap_or_else(|| self.settings.knowledge_dir.join("articles"));
        let report = self.ingest_folder(&self.settings.default_tenant, &dir)?;
        let tenants = self.settings.knowledge_dir.join("tenants");
        if tenants.is_dir() {
            for entry in std::fs::read_dir(&tenants)? {
                let path = entry?.path();
                if let Some(tenant) = path.is_dir().then(|| path.file_name()).flatten() {
                    self.ingest_folder(&tenant.to_string_lossy(), &path)?;
                }
            }
        }
        Ok(report)
    }

    /// Makes `tenant`'s articles equal those of `dir`.
    fn ingest_folder(&self, tenant: &str, dir: &std::path::Path) -> anyhow::Result<IngestReport> {
        let articles = load_articles(dir)?;
        let report = self.knowledge.ingest(tenant, &articles)?;
        info!(
            tenant,
            articles = articles.len(),
            ?report,
            "knowledge base up to date"
        );
        Ok(report)
    }

    /// Re-reads the tenant's folder (the default tenant's is the configured
    /// articles folder); `None` when the tenant has no folder.
    pub fn reindex_tenant(&self, tenant: &str) -> anyhow::Result<Option<IngestReport>> {
        let tenant = self.tenant_or_default(tenant);
        let dir = if tenant == self.settings.default_tenant {
            self.settings.knowledge_dir.join("articles")
        } else {
            self.settings.knowledge_dir.join("tenants").join(tenant)
        };
        if !dir.is_dir() {
            return Ok(None);
        }
        self.ingest_folder(tenant, &dir).map(Some)
    }

    /// Adds or replaces articles of a tenant's, leaving its others alone.
    pub fn upsert_articles(
        &self,
        tenant: &str,
        articles: &[Article],
    ) -> anyhow::Result<IngestReport> {
        self.knowledge
            .upsert(self.tenant_or_default(tenant), articles)
    }

    /// Deletes articles of a tenant's; returns how many existed.
    pub fn delete_articles(&self, tenant: &str, ids: &[String]) -> anyhow::Result<usize> {
        self.knowledge.delete(self.tenant_or_default(tenant), ids)
    }

    /// A tenant's articles and agent-approved answers.
    pub fn list_articles(&self, tenant: &str) -> anyhow::Result<Vec<KnowledgeHit>> {
        self.knowledge.list(self.tenant_or_default(tenant))
    }

    /// Normalize, detect the language, read the sentiment: microseconds to
    /// milliseconds, no model call.
    pub fn prepare(&self, inquiry: Inquiry) -> Result<Prepared, PipelineError> {
        let _span = info_span!("prepare", inquiry = %inquiry.id).entered();
        let text = stage("normalize", || self.normalizer.normalize(&inquiry.text))?;
        let subject = inquiry.subject.trim();
        let analysed_text = if subject.is_empty() {
            text.clone()
        } else {
            format!("{subject}\n{text}")
        };
        let language = stage("language", || {
            self.language.detect(
                &analysed_text,
                LanguageHints {
                    customer: &inquiry.customer,
                    marketplace: &inquiry.marketplace,
                },
            )
        });
        let risks = self.risks(&inquiry, &analysed_text, &language.code);
        let sentiment = stage("sentiment", || {
            with_risks(
                self.sentiment.analyze(&analysed_text, &language.code),
                &risks,
            )
        });
        let keyword_hits = self.classifier.keyword_hits(&analysed_text, &language.code);
        let keyword_categories = keyword_hits.categories();
        let hidden_asks = self.signals.hidden_asks(&analysed_text, &language.code);
        Ok(Prepared {
            hidden_asks,
            risks,
            keyword_categories,
            keyword_hits,
            inquiry,
            text,
            analysed_text,
            language,
            sentiment,
        })
    }

    /// Risks named in the text, plus a repeat buyer or a high-value order
    /// from the caller's data (or, without an order value, from an amount
    /// the buyer wrote).
    fn risks(&self, inquiry: &Inquiry, text: &str, language: &str) -> Vec<Risk> {
        let mut risks = self.signals.risks(text, language);
        if inquiry.customer.repeat_buyer {
            risks.push(Risk::RepeatCustomer);
        }
        let marks = &self.settings.tier.high_order_value;
        let high_value = match inquiry
            .order
            .as_ref()
            .and_then(|order| order.value.as_ref())
        {
            Some(value) => reaches_mark(value, marks),
            // Each written amount against its own currency's mark: the
            // largest number may be the smallest sum ("$600 … ¥5,000").
            None => amounts(text, language)
                .iter()
                .any(|value| reaches_mark(value, marks)),
        };
        if high_value {
            risks.push(Risk::HighValue);
        }
        risks.sort();
        risks.dedup();
        risks
    }

    /// The instant acknowledgement, from the fast stages only.
    pub fn acknowledge(&self, prepared: &Prepared, now: DateTime<Utc>) -> Acknowledgement {
        let keywords = prepared.keyword_guess();
        let category = keywords.category;
        let tier = assign_tier(
            &keywords,
            &prepared.sentiment,
            &prepared.inquiry,
            &prepared.risks,
            prepared.mentions(),
            &self.settings.tier,
        );
        let sla = self.sla.due(&SlaInput {
            tenant: self.tenant(&prepared.inquiry),
            category,
            tier,
            channel: prepared.inquiry.channel,
            marketplace: &prepared.inquiry.marketplace,
            received_at: prepared.inquiry.received_at,
        });
        self.composer.acknowledgement(&AckInput {
            inquiry: &prepared.inquiry,
            language: &prepared.language.code,
            category: prepared.keyword_category(),
            upset: prepared.sentiment.is_upset(),
            reply_by: sla.first_response_due.max(now),
            counts_as_response: sla.ack_counts_as_response,
            now,
        })
    }

    /// Intent, tier, SLA and knowledge. Blocking: runs the embedding model.
    pub fn analyze(&self, prepared: &Prepared) -> Analysis {
        let _span = info_span!("analyze", inquiry = %prepared.inquiry.id).entered();
        let mut degraded = Vec::new();
        let vector = stage("embed", || {
            self.embedder
                .embed_one(&prepared.analysed_text, TextKind::Query)
        })
        .map_err(|e| {
            warn!(error = %format!("{e:#}"), "embedding failed");
            degraded.push(format!("embedding model failed: {e:#}"))
        })
        .ok();
        let intent = vector
            .as_ref()
            .and_then(|vector| {
                stage("intent", || {
                    self.classifier.classify(&IntentQuery {
                        text: &prepared.analysed_text,
                        language: &prepared.language.code,
                        vector,
                        tenant: self.tenant(&prepared.inquiry),
                        keywords: prepared.keyword_hits,
                    })
                })
                .map_err(|e| degraded.push(format!("intent classifier failed: {e:#}")))
                .ok()
            })
            .unwrap_or_else(|| prepared.keyword_guess());
        let Reading { sentiment, risks } = vector
            .as_ref()
            .and_then(|vector| {
                stage("example_vote", || self.read(prepared, vector, &intent))
                    .map_err(|e| degraded.push(format!("example vote failed: {e:#}")))
                    .ok()
            })
            .unwrap_or_else(|| Reading {
                sentiment: prepared.sentiment.clone(),
                risks: prepared.risks.clone(),
            });
        let knowledge = vector
            .as_ref()
            .and_then(|vector| {
                stage("knowledge", || {
                    self.knowledge.search(&SearchRequest {
                        tenant: self.tenant(&prepared.inquiry),
                        text: &prepared.analysed_text,
                        vector,
                        language: &prepared.language.code,
                        limit: self.settings.knowledge.top_k,
                    })
                })
                .map_err(|e| {
                    warn!(error = %format!("{e:#}"), "knowledge search failed");
                    degraded.push(format!("knowledge base unavailable: {e:#}"))
                })
                .ok()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|hit| hit.score >= self.settings.knowledge.min_score)
            .collect();
        let tier = assign_tier(
            &intent,
            &sentiment,
            &prepared.inquiry,
            &risks,
            prepared.mentions(),
            &self.settings.tier,
        );
        let sla = self.sla.due(&SlaInput {
            tenant: self.tenant(&prepared.inquiry),
            category: intent.category,
            tier,
            channel: prepared.inquiry.channel,
            marketplace: &prepared.inquiry.marketplace,
            received_at: prepared.inquiry.received_at,
        });
        Analysis {
            triage: Triage {
                inquiry_id: prepared.inquiry.id.clone(),
                normalized_text: prepared.text.clone(),
                language: prepared.language.clone(),
                sentiment,
                intent,
                tier,
                risks,
                sla,
                knowledge,
            },
            degraded,
        }
    }

    /// Auto-reply or hand-off, with the reply or draft composed.
    pub fn conclude(&self, prepared: &Prepared, analysis: &Analysis) -> Outcome {
        let _span = info_span!("decide", inquiry = %prepared.inquiry.id).entered();
        let triage = &analysis.triage;
        let decision = if analysis.degraded.is_empty() {
            decide(
                &DecideInput {
                    inquiry: &prepared.inquiry,
                    intent: &triage.intent,
                    sentiment: &triage.sentiment,
                    language: &triage.language.code,
                    knowledge: &triage.knowledge,
                    mentions: prepared.mentions(),
                    risks: &triage.risks,
                    can_reply_in_language: self
                        .composer
                        .prompts()
                        .has_language(&triage.language.code),
                    auto_reply_categories: &self.auto_reply_categories(prepared, triage),
                },
                &self.decide_rules(),
            )
        } else {
            Decision::Handoff {
                reasons: analysis
                    .degraded
                    .iter()
                    .map(|why| HandoffReason::new(ReasonCode::Degraded, why.clone()))
                    .collect(),
            }
        };
        match decision {
            Decision::AutoReply { use_order, article } => {
                let reply = self.composer.auto_reply(&AutoReplyInput {
                    inquiry: &prepared.inquiry,
                    language: &triage.language.code,
                    use_order,
                    article: article.as_ref(),
                });
                Outcome::AutoReply {
                    text: reply.text,
                    citations: reply.citations,
                    language: reply.language,
                    source: DraftSource::Template,
                    fallback_reason: None,
                }
            }
            Decision::Handoff { mut reasons } => {
                let outside_hours = !triage.sla.within_team_hours;
                let on_call = outside_hours && triage.tier == Tier::P1Urgent;
                let queued_until = outside_hours.then(|| {
                    self.sla.next_team_opening(
                        self.tenant(&prepared.inquiry),
                        prepared.inquiry.received_at,
                    )
                });
                if let Some(opening) = queued_until {
                    reasons.push(HandoffReason::new(
                        ReasonCode::OutsideHours,
                        format!(
                            "outside the team's hours: queued for the shift opening at {} UTC, in line by tier {}",
                            opening.format("%Y-%m-%d %H:%M"),
                            triage.tier.as_str()
                        ),
                    ));
                }
                if on_call {
                    reasons.push(HandoffReason::new(
                        ReasonCode::OnCall,
                        "urgent outside the team's hours: page the on-call person",
                    ));
                }
                Outcome::Handoff {
                    draft: self.composer.template_draft(
                        &prepared.inquiry,
                        &triage.language.code,
                        &triage.sentiment,
                        &triage.knowledge,
                    ),
                    degraded: !analysis.degraded.is_empty(),
                    on_call,
                    queued_until,
                    reasons,
                }
            }
        }
    }

    /// The language detector, shared with the LLM's language check.
    pub fn language_detector(&self) -> Arc<dyn LanguageDetector> {
        self.language.clone()
    }

    /// Has the LLM write the outcome's text instead of the template: a
    /// hand-off's draft is streamed to `on_chunk` piece by piece as it is
    /// written and checked. Whatever fails (the LLM, or a guardrail refusing
    /// its text) keeps the template and says why.
    pub async fn write_with_llm(
        &self,
        writer: &LlmWriter,
        prepared: &Prepared,
        triage: &Triage,
        outcome: Outcome,
        on_chunk: impl FnMut(&str),
    ) -> Outcome {
        let llm = &self.settings.llm;
        let order = prepared.inquiry.order.as_ref();
        match outcome {
            Outcome::AutoReply {
                text,
                citations,
                language,
                ..
            } if llm.auto_replies => {
                let knowledge: Vec<_> = triage
                    .knowledge
                    .iter()
                    .filter(|hit| citations.contains(&hit.article_id))
                    .cloned()
                    .collect();
                let request = WriteRequest {
                    kind: ReplyKind::AutoReply,
                    language: &language,
                    buyer_text: &prepared.analysed_text,
                    order: order.filter(|_| citations.iter().any(|c| c == "order")),
                    knowledge: &knowledge,
                    sentiment: &triage.sentiment,
                    reasons: &[],
                };
                let started = Instant::now();
                let written = writer.write(&request, |_| {}).await;
                metrics::observe_stage("llm", started.elapsed());
                llm_result("auto_reply", &written);
                match written {
                    Ok(written) => Outcome::AutoReply {
                        text: written.text,
                        citations: written.citations,
                        language,
                        source: DraftSource::Llm,
                        fallback_reason: None,
                    },
                    Err(error) => {
                        warn!(inquiry = %prepared.inquiry.id, %error, "LLM auto-reply not used");
                        Outcome::AutoReply {
                            text,
                            citations,
                            language,
                            source: DraftSource::Template,
                            fallback_reason: Some(error.to_string()),
                        }
                    }
                }
            }
            Outcome::Handoff {
                reasons,
                draft,
                degraded,
                on_call,
                queued_until,
            } if llm.drafts => {
                let request = WriteRequest {
                    kind: ReplyKind::Draft,
                    language: &triage.language.code,
                    buyer_text: &prepared.analysed_text,
                    order,
                    knowledge: &triage.knowledge,
                    sentiment: &triage.sentiment,
                    reasons: &reasons,
                };
                let started = Instant::now();
                let written = writer.write(&request, on_chunk).await;
                metrics::observe_stage("llm", started.elapsed());
                llm_result("draft", &written);
                let (draft, failed) = match written {
                    Ok(written) => (
                        Draft {
                            text: written.text,
                            citations: written.citations,
                            source: DraftSource::Llm,
                            language: triage.language.code.clone(),
                            fallback_reason: None,
                        },
                        false,
                    ),
                    Err(error) => {
                        warn!(inquiry = %prepared.inquiry.id, %error, "LLM draft not used");
                        let failed = error.is_dependency_failure();
                        (
                            Draft {
                                fallback_reason: Some(error.to_string()),
                                ..draft
                            },
                            failed,
                        )
                    }
                };
                Outcome::Handoff {
                    reasons,
                    draft,
                    degraded: degraded || failed,
                    on_call,
                    queued_until,
                }
            }
            other => other,
        }
    }

    /// The language of `text`, without hints.
    pub fn detect_language(&self, text: &str) -> String {
        self.language
            .detect(
                text,
                LanguageHints {
                    customer: &Customer::default(),
                    marketplace: "",
                },
            )
            .code
    }

    /// Stores an agent's feedback; a corrected intent teaches the classifier
    /// for the feedback's tenant at once. Blocking: embeds the buyer's text.
    pub fn submit_feedback(&self, mut feedback: Feedback) -> anyhow::Result<FeedbackReceipt> {
        if feedback.tenant.is_empty() {
            feedback.tenant = self.settings.default_tenant.clone();
        }
        let vector = self
            .embedder
            .embed_one(&feedback.text, TextKind::Query)
            .context("embedding the feedback's text")?;
        let sent = matches!(feedback.action, DraftAction::Accepted | DraftAction::Edited);
        let key = format!("{}/{}", feedback.inquiry_id, feedback.agent);
        let approved_answer_id = if sent {
            let language = feedback.language.clone().unwrap_or_else(|| {
                self.language
                    .detect(
                        &feedback.text,
                        LanguageHints {
                            customer: &Customer::default(),
                            marketplace: "",
                        },
                    )
                    .code
            });
            let category = match feedback.corrected_intent {
                Some(category) => category,
                None => {
                    self.classifier
                        .classify(&IntentQuery {
                            text: &feedback.text,
                            language: &language,
                            vector: &vector,
                            tenant: &feedback.tenant,
                            keywords: self.classifier.keyword_hits(&feedback.text, &language),
                        })?
                        .category
                }
            };
            Some(self.knowledge.approve(&ApprovedAnswer {
                tenant: &feedback.tenant,
                key: &key,
                question: &feedback.text,
                answer: &feedback.final_text,
                language: &language,
                category,
                agent: &feedback.agent,
            })?)
        } else {
            // A later rejection of the same draft withdraws its approval.
            self.knowledge.withdraw(&feedback.tenant, &key)?;
            None
        };
        let id = self.feedback.record(&feedback, vector)?;
        metrics::count("firstreply_feedback_total", &[feedback.action.as_str()], 1);
        if feedback.action == DraftAction::Edited {
            match self.outcomes.get(&feedback.tenant, &feedback.inquiry_id) {
                Ok(Some(outcome)) => metrics::observe_edit_distance(edit_distance(
                    &outcome.text,
                    &feedback.final_text,
                )),
                Ok(None) => {}
                Err(error) => warn!(error = %format!("{error:#}"), "outcome lookup failed"),
            }
        }
        info!(
            inquiry = %feedback.inquiry_id,
            agent = %feedback.agent,
            action = feedback.action.as_str(),
            corrected_intent = feedback.corrected_intent.map(Category::as_str),
            approved_answer = approved_answer_id.as_deref(),
            "feedback stored"
        );
        Ok(FeedbackReceipt {
            feedback_id: id,
            learned: feedback.corrected_intent.is_some(),
            approved_answer_id,
        })
    }

    /// Records what became of a handled inquiry, for the automation report
    /// and for replaying to a retry (`replay`: what the caller got);
    /// handling the same inquiry again replaces the record.
    pub fn record_outcome(
        &self,
        triage: &Triage,
        inquiry: &Inquiry,
        outcome: &Outcome,
        replay: String,
    ) {
        let (auto_reply, reasons, text) = match outcome {
            Outcome::AutoReply { text, .. } => (true, Vec::new(), text.clone()),
            Outcome::Handoff { reasons, draft, .. } => (
                false,
                reasons.iter().map(|r| r.code).collect(),
                draft.text.clone(),
            ),
        };
        let record = OutcomeRecord {
            tenant: self.tenant(inquiry).to_string(),
            inquiry_id: inquiry.id.clone(),
            received_at: inquiry.received_at,
            category: triage.intent.category,
            language: triage.language.code.clone(),
            auto_reply,
            reasons,
            text,
            handled_at: Utc::now(),
            replay,
        };
        metrics::count(
            "firstreply_inquiries_total",
            &[&record.language, record.category.as_str()],
            1,
        );
        match outcome {
            Outcome::AutoReply { .. } => {
                metrics::count("firstreply_decisions_total", &["auto_reply"], 1)
            }
            Outcome::Handoff {
                reasons, degraded, ..
            } => {
                metrics::count("firstreply_decisions_total", &["handoff"], 1);
                for reason in reasons {
                    metrics::count(
                        "firstreply_handoff_reasons_total",
                        &[reason.code.as_str()],
                        1,
                    );
                }
                if *degraded {
                    let failed = if reasons.iter().any(|r| r.code == ReasonCode::Degraded) {
                        "model_or_store"
                    } else {
                        "llm"
                    };
                    metrics::count("firstreply_degraded_total", &[failed], 1);
                }
            }
        }
        self.outcomes.record(&record);
    }

    /// Whether other replicas may share the store (a Qdrant server): an
    /// inquiry id this one has not seen may still have been handled.
    pub fn shared_store(&self) -> bool {
        self.shared_store
    }

    /// Waits until every outcome recorded so far is stored.
    pub fn flush_outcomes(&self) {
        self.outcomes.flush();
    }

    /// The inquiries handled at or after `since`, as (tenant, inquiry id,
    /// handled at): what a retry after a restart must still find.
    pub fn handled_since(
        &self,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(String, String, DateTime<Utc>)>> {
        Ok(self
            .outcomes
            .handled_since(since)?
            .into_iter()
            .map(|o| (o.tenant, o.inquiry_id, o.handled_at))
            .collect())
    }

    /// What the caller got for inquiry `id` of `tenant` if it was handled
    /// within the last `window`: a retry gets that again, not a second answer.
    pub fn recent_result(
        &self,
        tenant: &str,
        id: &str,
        window: chrono::Duration,
    ) -> anyhow::Result<Option<String>> {
        let tenant = self.tenant_or_default(tenant);
        Ok(self
            .outcomes
            .get(tenant, id)?
            .filter(|o| !o.replay.is_empty() && Utc::now() - o.handled_at <= window)
            .map(|o| o.replay))
    }

    /// The tenant's automation report for `[from, to)`.
    pub fn report(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Report> {
        let tenant = self.tenant_or_default(tenant);
        let outcomes = self.outcomes.list(tenant)?;
        let feedback = self.feedback.list(tenant, from, to)?;
        Ok(build_report(tenant, from, to, &outcomes, &feedback))
    }

    /// Removes an agent-approved answer; false when the tenant has none such.
    pub fn remove_approved_answer(&self, tenant: &str, article_id: &str) -> anyhow::Result<bool> {
        let tenant = self.tenant_or_default(tenant);
        self.knowledge.remove_approved(tenant, article_id)
    }

    /// Whether the daytime rule would answer `prepared` itself with this
    /// intent and reading, from its order data and no knowledge-base
    /// article, at the intent-confidence threshold `min_confidence`: what
    /// `firstreply eval` measures auto-reply safety with.
    pub fn would_auto_reply(
        &self,
        prepared: &Prepared,
        intent: &IntentGuess,
        reading: &Reading,
        min_confidence: f32,
    ) -> bool {
        let input = DecideInput {
            inquiry: &prepared.inquiry,
            intent,
            sentiment: &reading.sentiment,
            language: &prepared.language.code,
            knowledge: &[],
            mentions: prepared.mentions(),
            risks: &reading.risks,
            can_reply_in_language: self
                .composer
                .prompts()
                .has_language(&prepared.language.code),
            auto_reply_categories: &[Category::ShippingStatus],
        };
        let rules = DecideRules {
            min_confidence,
            ..self.decide_rules()
        };
        matches!(decide(&input, &rules), Decision::AutoReply { .. })
    }

    fn decide_rules(&self) -> DecideRules {
        DecideRules {
            min_confidence: self.settings.decide.auto_reply_min_confidence,
            min_knowledge_similarity: self.settings.decide.auto_reply_min_knowledge_score,
        }
    }

    /// Shipping status always; overnight, the policy's wider set.
    fn auto_reply_categories(&self, prepared: &Prepared, triage: &Triage) -> Vec<Category> {
        let mut categories = vec![Category::ShippingStatus];
        if triage.sla.overnight {
            categories.extend(
                self.sla
                    .overnight_auto_reply_categories(self.tenant(&prepared.inquiry)),
            );
        }
        categories
    }

    /// Alerts and at-risk inquiries for a tenant's open backlog.
    pub fn evaluate_backlog(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        open: &[OpenInquiry],
    ) -> BacklogReport {
        let tenant = self.tenant_or_default(tenant);
        evaluate_backlog(self.sla.policy(tenant), now, open)
    }

    fn tenant<'a>(&'a self, inquiry: &'a Inquiry) -> &'a str {
        self.tenant_or_default(&inquiry.tenant)
    }

    /// `tenant`, or the default tenant where it is empty.
    pub fn tenant_or_default<'a>(&'a self, tenant: &'a str) -> &'a str {
        if tenant.is_empty() {
            &self.settings.default_tenant
        } else {
            tenant
        }
    }
}

/// Counts an LLM text as written or replaced by the template.
fn llm_result<T>(kind: &str, result: &Result<T, WriteError>) {
    let outcome = match result {
        Ok(_) => "written",
        Err(WriteError::Refused(_)) => "refused",
        Err(_) => "failed",
    };
    metrics::count("firstreply_llm_texts_total", &[kind, outcome], 1);
}

/// Runs one stage of the pipeline in its tracing span and records its time.
fn stage<T>(name: &'static str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = info_span!("stage", stage = name).in_scope(work);
    metrics::observe_stage(name, started.elapsed());
    out
}

/// A model id as a collection-name part: lowercase letters, digits and '-'.
fn slug(model_id: &str) -> String {
    model_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Runs blocking pipeline work off the async runtime, on the pipeline's
/// lowered-priority threads.
pub async fn blocking<T, F>(pipeline: &Arc<Pipeline>, work: F) -> anyhow::Result<T>
where
    F: FnOnce(&Pipeline) -> T + Send + 'static,
    T: Send + 'static,
{
    let task = pipeline.clone();
    Ok(pipeline.work_pool.run(move || work(&task)).await?)
}

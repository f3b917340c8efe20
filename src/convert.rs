//! Conversion between the wire types (`api`) and the domain: requests are
//! validated here, field by field, so the pipeline only sees valid values.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::api;
use crate::backlog::{BacklogReport, OpenInquiry};
use crate::domain::{
    Acknowledgement, Category, Channel, Customer, Draft, DraftAction, DraftSource, Feedback,
    Inquiry, KnowledgeHit, Money, Order, Outcome, Polarity, ReasonCode, Tier, Triage,
};
use crate::error::FieldViolation;
use crate::report::{Figures, Report};
use crate::stages::knowledge::Article;

/// Longest accepted raw message body; the normalizer caps what it analyses.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
const MAX_ID_CHARS: usize = 200;

fn non_empty(value: String) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn timestamp(
    value: Option<pbjson_types::Timestamp>,
    field: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<DateTime<Utc>> {
    let ts = value?;
    match DateTime::<Utc>::try_from(ts) {
        Ok(at) => Some(at),
        Err(_) => {
            violations.push(FieldViolation::new(field, "not a valid timestamp"));
            None
        }
    }
}

/// A tenant name: at most 128 of A-Z a-z 0-9 - _ . (empty is the default tenant).
fn tenant_from_api(value: &str, violations: &mut Vec<FieldViolation>) -> String {
    let tenant = value.trim().to_string();
    if tenant.len() > 128
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        violations.push(FieldViolation::new(
            "tenant",
            "must be at most 128 of A-Z a-z 0-9 - _ .",
        ));
    }
    tenant
}

/// Validates an inquiry from the wire; `now` stands in for a missing `received_at`.
pub fn inquiry_from_api(
    inquiry: api::Inquiry,
    now: DateTime<Utc>,
) -> Result<Inquiry, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let id = inquiry.id.trim().to_string();
    if id.is_empty() {
        violations.push(FieldViolation::new("id", "is required"));
    } else if id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        violations.push(FieldViolation::new(
            "id",
            format!("must be at most {MAX_ID_CHARS} printable characters"),
        ));
    }
    if inquiry.text.trim().is_empty() {
        violations.push(FieldViolation::new(
            "text",
            "is required and must not be blank",
        ));
    } else if inquiry.text.len() > MAX_TEXT_BYTES {
        violations.push(FieldViolation::new(
            "text",
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    let channel = match api::Channel::try_from(inquiry.channel) {
        Ok(api::Channel::Chat) => Channel::Chat,
        Ok(api::Channel::Email | api::Channel::Unspecified) => Channel::Email,
        Ok(api::Channel::Marketplace) => Channel::Marketplace,
        Ok(api::Channel::Social) => Channel::Social,
        Ok(api::Channel::Voice) => Channel::Voice,
        Err(_) => {
            violations.push(FieldViolation::new(
                "channel",
                format!("unknown channel {}", inquiry.channel),
            ));
            Channel::Email
        }
    };
    let marketplace = inquiry.marketplace.trim().to_lowercase();
    if marketplace.len() > 64 {
        violations.push(FieldViolation::new(
            "marketplace",
            "must be at most 64 characters",
        ));
    }
    let tenant = tenant_from_api(&inquiry.tenant, &mut violations);
    let received_at = timestamp(inquiry.received_at, "received_at", &mut violations).unwrap_or(now);
    let customer = customer_from_api(inquiry.customer.unwrap_or_default(), &mut violations);
    let order = inquiry
        .order
        .map(|order| order_from_api(order, &mut violations));
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Inquiry {
        id,
        text: inquiry.text,
        subject: inquiry.subject,
        channel,
        marketplace,
        received_at,
        customer,
        order: order.filter(|o| *o != Order::default()),
        tenant,
    })
}

fn customer_from_api(customer: api::Customer, violations: &mut Vec<FieldViolation>) -> Customer {
    let timezone = non_empty(customer.timezone).and_then(|name| match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            violations.push(FieldViolation::new(
                "customer.timezone",
                format!("{name:?} is not an IANA time zone such as \"Europe/Berlin\""),
            ));
            None
        }
    });
    let (mut locale_language, mut locale_region) = (None, None);
    if let Some(locale) = non_empty(customer.locale) {
        let mut parts = locale.split(['-', '_']);
        let language = parts.next().unwrap_or("");
        if (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic()) {
            locale_language = Some(language.to_ascii_lowercase());
            locale_region = parts
                .find(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_alphabetic()))
                .map(str::to_ascii_uppercase);
        } else {
            violations.push(FieldViolation::new(
                "customer.locale",
                format!("{locale:?} is not a BCP 47 locale such as \"de-DE\""),
            ));
        }
    }
    Customer {
        timezone,
        locale_language,
        locale_region,
        vip: customer.vip,
        repeat_buyer: customer.repeat_buyer,
    }
}

/// The order's total; zero and no currency mean "not given".
fn order_value(amount: f64, currency: &str, violations: &mut Vec<FieldViolation>) -> Option<Money> {
    let currency = currency.trim();
    if amount == 0.0 && currency.is_empty() {
        return None;
    }
    if !amount.is_finite() || amount < 0.0 {
        violations.push(FieldViolation::new(
            "order.value",
            "must be a finite amount of zero or more",
        ));
        return None;
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        violations.push(FieldViolation::new(
            "order.currency",
            format!("{currency:?} is not an ISO 4217 code such as \"EUR\""),
        ));
        return None;
    }
    Some(Money {
        amount,
        currency: currency.to_ascii_uppercase(),
    })
}

fn order_from_api(order: api::Order, violations: &mut Vec<FieldViolation>) -> Order {
    let tracking_url = non_empty(order.tracking_url).filter(|url| {
        let ok = url.starts_with("https://") || url.starts_with("http://");
        if !ok {
            violations.push(FieldViolation::new(
                "order.tracking_url",
                "must be an http(s) URL",
            ));
        }
        ok
    });
    Order {
        order_id: non_empty(order.order_id),
        status: non_empty(order.status).map(|s| s.to_lowercase()),
        carrier: non_empty(order.carrier),
        tracking_number: non_empty(order.tracking_number),
        value: order_value(order.value, &order.currency, violations),
        tracking_url,
        shipped_at: timestamp(order.shipped_at, "order.shipped_at", violations),
        estimated_delivery: timestamp(
            order.estimated_delivery,
            "order.estimated_delivery",
            violations,
        ),
    }
}

fn ts(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    at.into()
}

fn tier_to_api(tier: Tier) -> api::Tier {
    match tier {
        Tier::P1Urgent => api::Tier::P1Urgent,
        Tier::P2High => api::Tier::P2High,
        Tier::P3Normal => api::Tier::P3Normal,
        Tier::P4Low => api::Tier::P4Low,
    }
}

pub fn triage_to_api(triage: &Triage) -> api::TriageResult {
    let sentiment = &triage.sentiment;
    api::TriageResult {
        id: triage.inquiry_id.clone(),
        language: Some(api::Language {
            code: triage.language.code.clone(),
            confidence: triage.language.confidence,
        }),
        sentiment: Some(api::Sentiment {
            label: match sentiment.label {
                Polarity::Negative => api::SentimentLabel::Negative,
                Polarity::Neutral => api::SentimentLabel::Neutral,
                Polarity::Positive => api::SentimentLabel::Positive,
            } as i32,
            score: sentiment.score,
            emotions: sentiment
                .emotions
                .iter()
                .map(|(kind, score)| api::Emotion {
                    name: kind.as_str().to_string(),
                    score: *score,
                })
                .collect(),
        }),
        intent: Some(api::Intent {
            name: triage.intent.category.as_str().to_string(),
            confidence: triage.intent.confidence,
        }),
        tier: tier_to_api(triage.tier) as i32,
        risks: triage
            .risks
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        sla: Some(api::Sla {
            first_response_due: Some(ts(triage.sla.first_response_due)),
            resolution_due: triage.sla.resolution_due.map(ts),
            within_team_hours: triage.sla.within_team_hours,
            overnight: triage.sla.overnight,
            calendar_hours: triage.sla.calendar_hours,
        }),
        knowledge: triage
            .knowledge
            .iter()
            .map(|hit| api::KnowledgeHit {
                article_id: hit.article_id.clone(),
                title: hit.title.clone(),
                score: hit.score,
                answer: hit.answer.clone(),
                agent_approved: hit.agent_approved,
            })
            .collect(),
        normalized_text: triage.normalized_text.clone(),
    }
}

pub fn acknowledgement_to_api(ack: &Acknowledgement) -> api::Acknowledgement {
    api::Acknowledgement {
        text: ack.text.clone(),
        language: ack.language.clone(),
        reply_by: Some(ts(ack.reply_by)),
        counts_as_response: ack.counts_as_response,
        duplicate: false,
    }
}

fn source_to_api(source: DraftSource) -> i32 {
    let source = match source {
        DraftSource::Template => api::DraftSource::Template,
        DraftSource::Llm => api::DraftSource::Llm,
    };
    source as i32
}

fn draft_to_api(draft: &Draft) -> api::Draft {
    api::Draft {
        text: draft.text.clone(),
        citations: draft.citations.clone(),
        source: source_to_api(draft.source),
        language: draft.language.clone(),
        fallback_reason: draft.fallback_reason.clone().unwrap_or_default(),
    }
}

/// The outcome as the last `HandleEvent`.
pub fn outcome_to_api(outcome: &Outcome) -> api::handle_event::Event {
    match outcome {
        Outcome::AutoReply {
            text,
            citations,
            language,
            source,
            fallback_reason,
        } => api::handle_event::Event::AutoReply(api::AutoReply {
            text: text.clone(),
            citations: citations.clone(),
            language: language.clone(),
            source: source_to_api(*source),
            fallback_reason: fallback_reason.clone().unwrap_or_default(),
        }),
        Outcome::Handoff {
            reasons,
            draft,
            degraded,
            on_call,
            queued_until,
        } => api::handle_event::Event::Handoff(api::Handoff {
            reasons: reasons.iter().map(|r| r.detail.clone()).collect(),
            reason_codes: reasons
                .iter()
                .map(|r| r.code.as_str().to_string())
                .collect(),
            draft: Some(draft_to_api(draft)),
            degraded: *degraded,
            on_call: *on_call,
            queued_until: queued_until.map(ts),
        }),
    }
}

/// Acknowledgement, triage and outcome in one object, for batch output.
pub fn handle_result_to_api(
    ack: &Acknowledgement,
    triage: &Triage,
    outcome: &Outcome,
) -> api::HandleResult {
    let (auto_reply, handoff) = match outcome_to_api(outcome) {
        api::handle_event::Event::AutoReply(reply) => (Some(reply), None),
        api::handle_event::Event::Handoff(handoff) => (None, Some(handoff)),
        api::handle_event::Event::Acknowledgement(_)
        | api::handle_event::Event::Triage(_)
        | api::handle_event::Event::DraftChunk(_) => (None, None),
    };
    api::HandleResult {
        id: triage.inquiry_id.clone(),
        acknowledgement: Some(acknowledgement_to_api(ack)),
        triage: Some(triage_to_api(triage)),
        auto_reply,
        handoff,
    }
}

/// Validates a backlog request: `now` (default `clock_now`), tenant, inquiries.
pub fn backlog_from_api(
    request: api::BacklogRequest,
    clock_now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, String, Vec<OpenInquiry>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let now = timestamp(request.now, "now", &mut violations).unwrap_or(clock_now);
    let mut open = Vec::with_capacity(request.inquiries.len());
    for (i, inquiry) in request.inquiries.into_iter().enumerate() {
        let field = |name: &str| format!("inquiries[{i}].{name}");
        let before = violations.len();
        if inquiry.id.trim().is_empty() {
            violations.push(FieldViolation::new(field("id"), "is required"));
        }
        let tier = match api::Tier::try_from(inquiry.tier) {
            Ok(api::Tier::P1Urgent) => Some(Tier::P1Urgent),
            Ok(api::Tier::P2High) => Some(Tier::P2High),
            Ok(api::Tier::P3Normal) => Some(Tier::P3Normal),
            Ok(api::Tier::P4Low) => Some(Tier::P4Low),
            Ok(api::Tier::Unspecified) | Err(_) => {
                violations.push(FieldViolation::new(
                    field("tier"),
                    "must be P1_URGENT, P2_HIGH, P3_NORMAL or P4_LOW",
                ));
                None
            }
        };
        let category = Category::parse(inquiry.category.trim());
        if category.is_none() {
            violations.push(FieldViolation::new(
                field("category"),
                format!(
                    "{:?} is not a category such as \"refund_return\"",
                    inquiry.category
                ),
            ));
        }
        let received_at = timestamp(inquiry.received_at, &field("received_at"), &mut violations);
        if inquiry.received_at.is_none() {
            violations.push(FieldViolation::new(field("received_at"), "is required"));
        }
        let first_response_at = timestamp(
            inquiry.first_response_at,
            &field("first_response_at"),
            &mut violations,
        );
        let channel = match api::Channel::try_from(inquiry.channel) {
            Ok(api::Channel::Unspecified) => None,
            Ok(api::Channel::Chat) => Some(Channel::Chat),
            Ok(api::Channel::Email) => Some(Channel::Email),
            Ok(api::Channel::Marketplace) => Some(Channel::Marketplace),
            Ok(api::Channel::Social) => Some(Channel::Social),
            Ok(api::Channel::Voice) => Some(Channel::Voice),
            Err(_) => {
                violations.push(FieldViolation::new(
                    field("channel"),
                    format!("unknown channel {}", inquiry.channel),
                ));
                None
            }
        };
        if let (true, Some(tier), Some(category), Some(received_at)) =
            (violations.len() == before, tier, category, received_at)
        {
            open.push(OpenInquiry {
                id: inquiry.id.trim().to_string(),
                tier,
                category,
                received_at,
                first_response_at,
                channel,
                marketplace: non_empty(inquiry.marketplace).map(|m| m.to_lowercase()),
            });
        }
    }
    if violations.is_empty() {
        Ok((now, request.tenant.trim().to_string(), open))
    } else {
        Err(violations)
    }
}

pub fn backlog_to_api(report: &BacklogReport) -> api::BacklogResponse {
    api::BacklogResponse {
        alerts: report
            .alerts
            .iter()
            .map(|a| api::BacklogAlert {
                level: a.level,
                rule: a.rule.clone(),
                inquiry_ids: a.inquiry_ids.clone(),
            })
            .collect(),
        at_risk: report
            .at_risk
            .iter()
            .map(|r| api::AtRisk {
                id: r.id.clone(),
                due: Some(ts(r.due)),
                breached: r.breached,
            })
            .collect(),
    }
}

/// Validates an agent's feedback.
pub fn feedback_from_api(
    feedback: api::Feedback,
    now: DateTime<Utc>,
) -> Result<Feedback, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let inquiry_id = feedback.inquiry_id.trim().to_string();
    if inquiry_id.is_empty() || inquiry_id.chars().count() > MAX_ID_CHARS {
        violations.push(FieldViolation::new(
            "inquiry_id",
            format!("is required, at most {MAX_ID_CHARS} characters"),
        ));
    }
    if feedback.text.trim().is_empty() {
        violations.push(FieldViolation::new(
            "text",
            "is required and must not be blank",
        ));
    } else if feedback.text.len() > MAX_TEXT_BYTES {
        violations.push(FieldViolation::new(
            "text",
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    let language = non_empty(feedback.language).map(|l| l.to_lowercase());
    if language
        .as_deref()
        .is_some_and(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase()))
    {
        violations.push(FieldViolation::new(
            "language",
            "must be an ISO 639-1 code such as \"de\"",
        ));
    }
    let action = match api::DraftAction::try_from(feedback.action) {
        Ok(api::DraftAction::Accepted) => Some(DraftAction::Accepted),
        Ok(api::DraftAction::Edited) => Some(DraftAction::Edited),
        Ok(api::DraftAction::Rejected) => Some(DraftAction::Rejected),
        Ok(api::DraftAction::Unspecified) | Err(_) => {
            violations.push(FieldViolation::new(
                "action",
                "must be ACCEPTED, EDITED or REJECTED",
            ));
            None
        }
    };
    if matches!(action, Some(DraftAction::Accepted | DraftAction::Edited))
        && feedback.final_text.trim().is_empty()
    {
        violations.push(FieldViolation::new(
            "final_text",
            "is required when the draft was accepted or edited",
        ));
    } else if feedback.final_text.len() > MAX_TEXT_BYTES {
        violations.push(FieldViolation::new(
            "final_text",
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    let corrected_intent = non_empty(feedback.corrected_intent).and_then(|name| {
        let category = Category::parse(&name);
        if category.is_none() {
            violations.push(FieldViolation::new(
                "corrected_intent",
                format!(
                    "{name:?} is not a category; expected one of {}",
                    Category::ALL.map(Category::as_str).join(", ")
                ),
            ));
        }
        category
    });
    let corrected_tier = match api::Tier::try_from(feedback.corrected_tier) {
        Ok(api::Tier::Unspecified) => None,
        Ok(api::Tier::P1Urgent) => Some(Tier::P1Urgent),
        Ok(api::Tier::P2High) => Some(Tier::P2High),
        Ok(api::Tier::P3Normal) => Some(Tier::P3Normal),
        Ok(api::Tier::P4Low) => Some(Tier::P4Low),
        Err(_) => {
            violations.push(FieldViolation::new(
                "corrected_tier",
                format!("unknown tier {}", feedback.corrected_tier),
            ));
            None
        }
    };
    let agent = feedback.agent.trim().to_string();
    if agent.is_empty() || agent.chars().count() > 200 || agent.chars().any(char::is_control) {
        violations.push(FieldViolation::new(
            "agent",
            "is required, at most 200 printable characters",
        ));
    }
    let tenant = tenant_from_api(&feedback.tenant, &mut violations);
    match action {
        Some(action) if violations.is_empty() => Ok(Feedback {
            inquiry_id,
            text: feedback.text,
            language,
            action,
            final_text: feedback.final_text,
            corrected_intent,
            corrected_tier,
            agent,
            tenant,
            received_at: now,
        }),
        _ => Err(violations),
    }
}

/// How far back a report reaches when the request gives no start.
const DEFAULT_REPORT_DAYS: i64 = 7;

/// Validates a report request: (tenant, from, to), `to` defaulting to `now`.
pub fn report_from_api(
    request: api::ReportRequest,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>, DateTime<Utc>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let tenant = tenant_from_api(&request.tenant, &mut violations);
    let to = timestamp(request.to, "to", &mut violations).unwrap_or(now);
    let from = timestamp(request.from, "from", &mut violations)
        .unwrap_or(to - chrono::Duration::days(DEFAULT_REPORT_DAYS));
    if from >= to {
        violations.push(FieldViolation::new("from", "must be before `to`"));
    }
    if violations.is_empty() {
        Ok((tenant, from, to))
    } else {
        Err(violations)
    }
}

fn figures_to_api(figures: &Figures) -> api::ReportFigures {
    let mut reasons: Vec<(&ReasonCode, &u32)> = figures.handoff_reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    api::ReportFigures {
        inquiries: figures.inquiries,
        auto_replies: figures.auto_replies,
        handoffs: figures.handoffs,
        automation_rate: figures.automation_rate(),
        drafts_accepted: figures.accepted,
        drafts_edited: figures.edited,
        drafts_rejected: figures.rejected,
        acceptance_rate: figures.acceptance_rate(),
        mean_edit_distance: figures.mean_edit_distance(),
        edits_measured: figures.edits_measured,
        handoff_reasons: reasons
            .into_iter()
            .map(|(code, count)| api::ReasonCount {
                code: code.as_str().to_string(),
                count: *count,
            })
            .collect(),
    }
}

pub fn report_to_api(report: &Report) -> api::ReportResponse {
    let slices = |by: &std::collections::BTreeMap<String, Figures>| {
        by.iter()
            .map(|(key, figures)| api::ReportSlice {
                key: key.clone(),
                figures: Some(figures_to_api(figures)),
            })
            .collect()
    };
    api::ReportResponse {
        tenant: report.tenant.clone(),
        from: Some(ts(report.from)),
        to: Some(ts(report.to)),
        overall: Some(figures_to_api(&report.overall)),
        by_category: slices(&report.by_category),
        by_language: slices(&report.by_language),
    }
}

/// Validates a translation request: (text, source language if given, target).
pub fn translation_from_api(
    request: api::TranslateDraftRequest,
) -> Result<(String, Option<String>, String), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    if request.text.trim().is_empty() {
        violations.push(FieldViolation::new(
            "text",
            "is required and must not be blank",
        ));
    } else if request.text.len() > MAX_TEXT_BYTES {
        violations.push(FieldViolation::new(
            "text",
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    let mut language = |field: &str, value: &str| {
        let code = value.trim().to_lowercase();
        if crate::stages::language::language_name(&code).is_none() {
            violations.push(FieldViolation::new(
                field,
                format!("{value:?} is not the ISO 639-1 code of a supported language"),
            ));
        }
        code
    };
    let target = language("target_language", &request.target_language);
    let source = non_empty(request.source_language).map(|s| language("source_language", &s));
    if violations.is_empty() {
        Ok((request.text, source, target))
    } else {
        Err(violations)
    }
}

/// Most articles in one UpsertArticles call.
const MAX_ARTICLES: usize = 500;

/// Validates an UpsertArticles request: (tenant, articles).
pub fn articles_from_api(
    request: api::UpsertArticlesRequest,
) -> Result<(String, Vec<Article>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let tenant = tenant_from_api(&request.tenant, &mut violations);
    if request.articles.is_empty() || request.articles.len() > MAX_ARTICLES {
        violations.push(FieldViolation::new(
            "articles",
            format!("must hold 1 to {MAX_ARTICLES} articles"),
        ));
    }
    let mut articles = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, article) in request.articles.into_iter().enumerate() {
        let field = |name: &str| format!("articles[{i}].{name}");
        let id = article.id.trim().to_string();
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                field("id"),
                format!("is required, at most {MAX_ID_CHARS} printable characters"),
            ));
        } else if !seen.insert(id.clone()) {
            violations.push(FieldViolation::new(field("id"), "is given twice"));
        }
        if article.title.trim().is_empty() {
            violations.push(FieldViolation::new(field("title"), "is required"));
        }
        let language = article.language.trim().to_lowercase();
        if language.len() != 2 || !language.chars().all(|c| c.is_ascii_lowercase()) {
            violations.push(FieldViolation::new(
                field("language"),
                "must be an ISO 639-1 code such as \"de\"",
            ));
        }
        let mut categories = Vec::new();
        for (j, name) in article.categories.iter().enumerate() {
            match Category::parse(name.trim()) {
                Some(category) => categories.push(category),
                None => violations.push(FieldViolation::new(
                    format!("articles[{i}].categories[{j}]"),
                    format!("{name:?} is not a category"),
                )),
            }
        }
        if article.answer.trim().is_empty() {
            violations.push(FieldViolation::new(field("answer"), "is required"));
        } else if article.answer.len() > MAX_TEXT_BYTES {
            violations.push(FieldViolation::new(
                field("answer"),
                format!("is longer than {MAX_TEXT_BYTES} bytes"),
            ));
        }
        articles.push(Article {
            id,
            title: article.title.trim().to_string(),
            language,
            categories,
            tags: article.tags,
            answer: article.answer.trim().to_string(),
        });
    }
    if violations.is_empty() {
        Ok((tenant, articles))
    } else {
        Err(violations)
    }
}

/// Validates a DeleteArticles request: (tenant, ids).
pub fn deletion_from_api(
    request: api::DeleteArticlesRequest,
) -> Result<(String, Vec<String>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let tenant = tenant_from_api(&request.tenant, &mut violations);
    if request.article_ids.is_empty() || request.article_ids.len() > MAX_ARTICLES {
        violations.push(FieldViolation::new(
            "article_ids",
            format!("must hold 1 to {MAX_ARTICLES} ids"),
        ));
    }
    let ids: Vec<String> = request
        .article_ids
        .iter()
        .map(|id| id.trim().to_string())
        .collect();
    if let Some(i) = ids.iter().position(String::is_empty) {
        violations.push(FieldViolation::new(
            format!("article_ids[{i}]"),
            "must not be empty",
        ));
    }
    if violations.is_empty() {
        Ok((tenant, ids))
    } else {
        Err(violations)
    }
}

/// Validates a tenant-only request (ListArticles, ReindexKnowledge).
pub fn tenant_request_from_api(tenant: &str) -> Result<String, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let tenant = tenant_from_api(tenant, &mut violations);
    if violations.is_empty() {
        Ok(tenant)
    } else {
        Err(violations)
    }
}

pub fn article_summary_to_api(hit: &KnowledgeHit) -> api::ArticleSummary {
    api::ArticleSummary {
        article_id: hit.article_id.clone(),
        title: hit.title.clone(),
        language: hit.language.clone(),
        categories: hit
            .categories
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        agent_approved: hit.agent_approved,
    }
}

/// Validates a request to remove an approved answer: (tenant, article id).
pub fn removal_from_api(
    request: api::RemoveApprovedAnswerRequest,
) -> Result<(String, String), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let tenant = tenant_from_api(&request.tenant, &mut violations);
    let article_id = request.article_id.trim().to_string();
    if article_id.is_empty() || article_id.len() > MAX_ID_CHARS {
        violations.push(FieldViolation::new(
            "article_id",
            format!("is required, at most {MAX_ID_CHARS} characters"),
        ));
    }
    if violations.is_empty() {
        Ok((tenant, article_id))
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2025-03-03T10:00:00Z".parse().unwrap()
    }

    fn fields(result: Result<Inquiry, Vec<FieldViolation>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn valid_inquiry_converts_with_defaults() {
        let inquiry = inquiry_from_api(
            api::Inquiry {
                id: " q1 ".into(),
                text: "Where is my order?".into(),
                marketplace: "Shopee_MY".into(),
                customer: Some(api::Customer {
                    timezone: "Asia/Kuala_Lumpur".into(),
                    locale: "ms-MY".into(),
                    ..Default::default()
                }),
                order: Some(api::Order::default()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(inquiry.id, "q1");
        assert_eq!(inquiry.marketplace, "shopee_my");
        assert_eq!(inquiry.channel, Channel::Email);
        assert_eq!(inquiry.received_at, now());
        assert_eq!(inquiry.customer.locale_language.as_deref(), Some("ms"));
        assert_eq!(inquiry.customer.locale_region.as_deref(), Some("MY"));
        assert!(inquiry.order.is_none());
    }

    #[test]
    fn every_bad_field_is_named() {
        let result = inquiry_from_api(
            api::Inquiry {
                id: "".into(),
                text: "  ".into(),
                channel: 42,
                customer: Some(api::Customer {
                    timezone: "Mars/Olympus".into(),
                    locale: "???".into(),
                    ..Default::default()
                }),
                order: Some(api::Order {
                    tracking_url: "javascript:alert(1)".into(),
                    value: 129.0,
                    currency: "euro".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            now(),
        );
        assert_eq!(
            fields(result),
            vec![
                "id",
                "text",
                "channel",
                "customer.timezone",
                "customer.locale",
                "order.tracking_url",
                "order.currency"
            ]
        );
    }
}

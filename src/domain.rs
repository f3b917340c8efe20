//! Domain types: what the pipeline reasons about, apart from the wire types.
//! Values here are already validated; `convert` builds them from the protos.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// What the buyer wants, as the categories of DOMAIN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    OrderChange,
    RefundReturn,
    Complaint,
    ShippingStatus,
    PaymentBilling,
    ProductQuestion,
    Account,
    HumanRequest,
    Feedback,
    Other,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::OrderChange,
        Category::RefundReturn,
        Category::Complaint,
        Category::ShippingStatus,
        Category::PaymentBilling,
        Category::ProductQuestion,
        Category::Account,
        Category::HumanRequest,
        Category::Feedback,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::OrderChange => "order_change",
            Category::RefundReturn => "refund_return",
            Category::Complaint => "complaint",
            Category::ShippingStatus => "shipping_status",
            Category::PaymentBilling => "payment_billing",
            Category::ProductQuestion => "product_question",
            Category::Account => "account",
            Category::HumanRequest => "human_request",
            Category::Feedback => "feedback",
            Category::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The tier DOMAIN.md gives the category before any raise.
    pub fn base_tier(self) -> Tier {
        match self {
            Category::OrderChange | Category::RefundReturn => Tier::P1Urgent,
            Category::Complaint | Category::PaymentBilling | Category::HumanRequest => Tier::P2High,
            Category::ShippingStatus
            | Category::ProductQuestion
            | Category::Account
            | Category::Other => Tier::P3Normal,
            Category::Feedback => Tier::P4Low,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Urgency tier; `P1Urgent` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    P1Urgent,
    P2High,
    P3Normal,
    P4Low,
}

impl Tier {
    /// One tier more urgent, saturating at P1.
    pub fn raised(self) -> Tier {
        match self {
            Tier::P1Urgent | Tier::P2High => Tier::P1Urgent,
            Tier::P3Normal => Tier::P2High,
            Tier::P4Low => Tier::P3Normal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::P1Urgent => "P1_URGENT",
            Tier::P2High => "P2_HIGH",
            Tier::P3Normal => "P3_NORMAL",
            Tier::P4Low => "P4_LOW",
        }
    }
}

/// The channel an inquiry arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Chat,
    Email,
    Marketplace,
    Social,
    Voice,
}

/// What is known about the buyer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    pub timezone: Option<Tz>,
    /// Primary language subtag of the account locale ("de" for "de-DE").
    pub locale_language: Option<String>,
    /// Region subtag of the account locale ("DE" for "de-DE").
    pub locale_region: Option<String>,
    pub vip: bool,
    /// Has ordered before: raises the tier like `vip`.
    pub repeat_buyer: bool,
}

/// The order an inquiry refers to. Empty strings are stored as `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    pub order_id: Option<String>,
    pub status: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub estimated_delivery: Option<DateTime<Utc>>,
    /// The order's total, for the high-value tier raise.
    pub value: Option<Money>,
}

/// An amount in an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub amount: f64,
    /// Upper-case ISO 4217 code, e.g. "EUR".
    pub currency: String,
}

impl Order {
    /// True when the order data says the parcel is with the carrier or delivered.
    pub fn has_shipped(&self) -> bool {
        self.tracking_number.is_some()
            || self.shipped_at.is_some()
            || matches!(
                self.status.as_deref(),
                Some("shipped" | "in_transit" | "out_for_delivery" | "delivered")
            )
    }
}

/// A validated buyer inquiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Inquiry {
    pub id: String,
    pub text: String,
    pub subject: String,
    pub channel: Channel,
    /// Lower-case marketplace, e.g. "amazon" or "shopee_my".
    pub marketplace: String,
    pub received_at: DateTime<Utc>,
    pub customer: Customer,
    pub order: Option<Order>,
    pub tenant: String,
}

/// A detected language: ISO 639-1 code and confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageGuess {
    pub code: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    Negative,
    Neutral,
    Positive,
}

impl Polarity {
    pub fn as_str(self) -> &'static str {
        match self {
            Polarity::Negative => "negative",
            Polarity::Neutral => "neutral",
            Polarity::Positive => "positive",
        }
    }

    /// Reads `negative`, `neutral` or `positive`, in any case.
    pub fn parse(label: &str) -> Option<Polarity> {
        match label.trim().to_ascii_lowercase().as_str() {
            "negative" => Some(Polarity::Negative),
            "neutral" => Some(Polarity::Neutral),
            "positive" => Some(Polarity::Positive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmotionKind {
    Anger,
    Anxiety,
    Frustration,
    Threat,
}

impl EmotionKind {
    pub const ALL: [EmotionKind; 4] = [
        EmotionKind::Anger,
        EmotionKind::Anxiety,
        EmotionKind::Frustration,
        EmotionKind::Threat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmotionKind::Anger => "anger",
            EmotionKind::Anxiety => "anxiety",
            EmotionKind::Frustration => "frustration",
            EmotionKind::Threat => "threat",
        }
    }
}

/// What in an inquiry, besides its category and emotions, raises its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Risk {
    /// The product endangers someone: fire, shock, choking, injury.
    Safety,
    /// Someone else used the buyer's account or payment.
    AccountTakeover,
    /// A repeat customer, by the customer record or in their own words.
    RepeatCustomer,
    /// The order's value reaches the high-value mark of its currency.
    HighValue,
    /// A shipped parcel gone wrong: delivered but not received, tracking
    /// stuck for days, held at customs, a failed attempt nobody made.
    LogisticsAnomaly,
}

impl Risk {
    pub const ALL: [Risk; 5] = [
        Risk::Safety,
        Risk::AccountTakeover,
        Risk::RepeatCustomer,
        Risk::HighValue,
        Risk::LogisticsAnomaly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Safety => "safety",
            Risk::AccountTakeover => "account_takeover",
            Risk::RepeatCustomer => "repeat_customer",
            Risk::HighValue => "high_value",
            Risk::LogisticsAnomaly => "logistics_anomaly",
        }
    }

    /// Risks that make an inquiry urgent whatever its category.
    pub fn is_urgent(self) -> bool {
        matches!(self, Risk::Safety | Risk::AccountTakeover)
    }
}

/// Polarity, its score in [-1, 1], and the emotions present.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentiment {
    pub label: Polarity,
    pub score: f32,
    /// Emotions with an intensity above zero, strongest first.
    pub emotions: Vec<(EmotionKind, f32)>,
}

impl Sentiment {
    pub fn emotion(&self, kind: EmotionKind) -> f32 {
        self.emotions
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, s)| *s)
    }

    /// The buyer is upset: strongly negative, or angry, threatening or
    /// frustrated. A message that only resembles negative examples ("still
    /// not here, is it lost?") is negative but not upset: the examples' vote
    /// alone stays above this score at the default weight.
    pub fn is_upset(&self) -> bool {
        self.score <= -0.8
            || self.emotion(EmotionKind::Anger) >= 0.4
            || self.emotion(EmotionKind::Threat) >= 0.4
            || self.emotion(EmotionKind::Frustration) >= 0.5
    }
}

/// What an agent did with a suggested draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftAction {
    Accepted,
    Edited,
    Rejected,
}

impl DraftAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DraftAction::Accepted => "accepted",
            DraftAction::Edited => "edited",
            DraftAction::Rejected => "rejected",
        }
    }

    pub fn parse(name: &str) -> Option<DraftAction> {
        [
            DraftAction::Accepted,
            DraftAction::Edited,
            DraftAction::Rejected,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// An agent's verdict on a draft, with corrections of the triage.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub inquiry_id: String,
    pub text: String,
    /// The buyer's language, if the caller knows it.
    pub language: Option<String>,
    pub action: DraftAction,
    pub final_text: String,
    pub corrected_intent: Option<Category>,
    pub corrected_tier: Option<Tier>,
    pub agent: String,
    pub tenant: String,
    pub received_at: DateTime<Utc>,
}

/// A category with its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentGuess {
    pub category: Category,
    pub confidence: f32,
    /// The probability that the buyer asks for what is urgent by category:
    /// an order change or a refund (DOMAIN.md's P1 categories).
    pub urgent: f32,
}

/// Due times for the first response and the resolution, and the facts of the
/// policy that shaped them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub first_response_due: DateTime<Utc>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// False where an automatic acknowledgement is not a valid response (Amazon):
    /// a person must still answer by `first_response_due`.
    pub ack_counts_as_response: bool,
    /// Whether the team was working when the inquiry arrived.
    pub within_team_hours: bool,
    /// Whether `first_response_due` was set by a rule counting every hour of
    /// every day (a marketplace) rather than the team's working hours.
    pub calendar_hours: bool,
    /// Whether the inquiry arrived in the team's night window.
    pub overnight: bool,
}

/// A knowledge-base article that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeHit {
    pub article_id: String,
    pub title: String,
    /// Fused (dense + BM25) rank score.
    pub score: f32,
    /// Cosine similarity of query and article: how well it answers.
    pub similarity: f32,
    pub answer: String,
    pub language: String,
    pub categories: Vec<Category>,
    /// An agent's accepted or edited reply, not a written article.
    pub agent_approved: bool,
}

/// The full analysis of one inquiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Triage {
    pub inquiry_id: String,
    pub normalized_text: String,
    pub language: LanguageGuess,
    pub sentiment: Sentiment,
    pub intent: IntentGuess,
    pub tier: Tier,
    /// What raised the tier besides category and emotion.
    pub risks: Vec<Risk>,
    pub sla: Sla,
    pub knowledge: Vec<KnowledgeHit>,
}

/// The instant acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgement {
    pub text: String,
    pub language: String,
    pub reply_by: DateTime<Utc>,
    /// False where the channel does not accept an automatic message as a response.
    pub counts_as_response: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftSource {
    Template,
    /// Written by the configured LLM and passed by the guardrails.
    Llm,
}

/// A suggested reply for an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub text: String,
    pub citations: Vec<String>,
    pub source: DraftSource,
    pub language: String,
    /// Why the LLM's text was not used, where an LLM is configured.
    pub fallback_reason: Option<String>,
}

/// Why an inquiry goes to a person, as a stable code for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// The buyer asks for a person.
    HumanRequest,
    /// The category is not one the bot answers (now).
    CategoryNeedsPerson,
    LowConfidence,
    /// A dispute, bad review or legal threat.
    Threat,
    Upset,
    /// The message also raises an urgent or high-tier matter.
    MixedRequest,
    UnsupportedLanguage,
    /// The order is delivered, cancelled, returned or lost.
    OrderSettled,
    /// Neither order data nor a knowledge-base answer to ground a reply.
    NoGrounding,
    OutsideHours,
    OnCall,
    /// A dependency (model, store) failed.
    Degraded,
    /// A product safety hazard or a taken-over account.
    UrgentRisk,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 13] = [
        ReasonCode::HumanRequest,
        ReasonCode::CategoryNeedsPerson,
        ReasonCode::LowConfidence,
        ReasonCode::Threat,
        ReasonCode::Upset,
        ReasonCode::MixedRequest,
        ReasonCode::UnsupportedLanguage,
        ReasonCode::OrderSettled,
        ReasonCode::NoGrounding,
        ReasonCode::OutsideHours,
        ReasonCode::OnCall,
        ReasonCode::Degraded,
        ReasonCode::UrgentRisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::HumanRequest => "human_request",
            ReasonCode::CategoryNeedsPerson => "category_needs_person",
            ReasonCode::LowConfidence => "low_confidence",
            ReasonCode::Threat => "threat",
            ReasonCode::Upset => "upset",
            ReasonCode::MixedRequest => "mixed_request",
            ReasonCode::UnsupportedLanguage => "unsupported_language",
            ReasonCode::OrderSettled => "order_settled",
            ReasonCode::NoGrounding => "no_grounding",
            ReasonCode::OutsideHours => "outside_hours",
            ReasonCode::OnCall => "on_call",
            ReasonCode::Degraded => "degraded",
            ReasonCode::UrgentRisk => "urgent_risk",
        }
    }

    pub fn parse(code: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// One reason for a hand-off: its code and a sentence for the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffReason {
    pub code: ReasonCode,
    pub detail: String,
}

impl HandoffReason {
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> HandoffReason {
        HandoffReason {
            code,
            detail: detail.into(),
        }
    }
}

/// How an inquiry ends: answered by the bot, or handed to a person.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    AutoReply {
        text: String,
        citations: Vec<String>,
        language: String,
        source: DraftSource,
        /// Why the LLM's text was not used, where an LLM is configured.
        fallback_reason: Option<String>,
    },
    Handoff {
        reasons: Vec<HandoffReason>,
        draft: Draft,
        degraded: bool,
        /// Urgent and outside the team's hours: page the on-call person.
        on_call: bool,
        /// Outside the team's hours: when the next shift opens.
        queued_until: Option<DateTime<Utc>>,
    },
}

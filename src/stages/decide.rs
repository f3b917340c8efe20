//! Decide: auto-reply only to routine shipping questions that we can answer
//! from facts (the order data or a knowledge-base answer in the buyer's
//! language), asked calmly and classified with confidence; everything else
//! goes to a person, with the reasons.

use crate::domain::{
    Category, EmotionKind, HandoffReason, Inquiry, IntentGuess, KnowledgeHit, ReasonCode, Risk,
    Sentiment, Tier,
};
use crate::stages::intent::Mentions;

#[derive(Debug, Clone, Copy)]
pub struct DecideRules {
    pub min_confidence: f32,
    pub min_knowledge_similarity: f32,
}

/// What the decision may use besides the triage.
#[derive(Debug, Clone)]
pub struct DecideInput<'a> {
    pub inquiry: &'a Inquiry,
    pub intent: &'a IntentGuess,
    pub sentiment: &'a Sentiment,
    /// The buyer's language (ISO 639-1).
    pub language: &'a str,
    pub knowledge: &'a [KnowledgeHit],
    /// The categories the message's words name: any but the intent's is
    /// another ask.
    pub mentions: Mentions<'a>,
    /// Tier-raising risks; a safety hazard or a taken-over account needs a person.
    pub risks: &'a [Risk],
    /// Whether replies can be written in the buyer's language.
    pub can_reply_in_language: bool,
    /// Categories the bot may answer now: shipping status, widened overnight.
    pub auto_reply_categories: &'a [Category],
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    AutoReply {
        use_order: bool,
        article: Option<KnowledgeHit>,
    },
    Handoff {
        reasons: Vec<HandoffReason>,
    },
}

/// Order states in which a "where is it" question is no longer routine.
const SETTLED_STATES: &[&str] = &[
    "delivered",
    "cancelled",
    "returned",
    "refunded",
    "lost",
    "exception",
];

fn needs_its_own_answer(category: Category) -> bool {
    category.base_tier() <= Tier::P2High
        || matches!(category, Category::ProductQuestion | Category::Other)
}

pub fn decide(input: &DecideInput<'_>, rules: &DecideRules) -> Decision {
    let intent = input.intent;
    let mut reasons = Vec::new();
    if intent.category == Category::HumanRequest {
        reasons.push(HandoffReason::new(
            ReasonCode::HumanRequest,
            "the buyer asks for a person",
        ));
    } else if !input.auto_reply_categories.contains(&intent.category) {
        reasons.push(HandoffReason::new(
            ReasonCode::CategoryNeedsPerson,
            format!("intent {} is answered by a person", intent.category),
        ));
    }
    if intent.confidence < rules.min_confidence {
        reasons.push(HandoffReason::new(
            ReasonCode::LowConfidence,
            format!(
                "intent confidence {:.2} is below the auto-reply threshold {:.2}",
                intent.confidence, rules.min_confidence
            ),
        ));
    }
    if input.sentiment.emotion(EmotionKind::Threat) >= 0.4 {
        reasons.push(HandoffReason::new(
            ReasonCode::Threat,
            "the buyer threatens a dispute, a bad review or legal action",
        ));
    } else if input.sentiment.is_upset() {
        reasons.push(HandoffReason::new(ReasonCode::Upset, "the buyer is upset"));
    }
    let urgent: Vec<&str> = input
        .risks
        .iter()
        .filter_map(|risk| match risk {
            Risk::Safety => Some("a product safety hazard"),
            Risk::AccountTakeover => Some("someone else using the buyer's account or payment"),
            Risk::RepeatCustomer | Risk::HighValue | Risk::LogisticsAnomaly => None,
        })
        .collect();
    if !urgent.is_empty() {
        reasons.push(HandoffReason::new(
            ReasonCode::UrgentRisk,
            format!("the message reports {}", urgent.join(" and ")),
        ));
    }
    // A reply answers one question: a message that also asks for what needs
    // its own answer (a change, a refund, a complaint, a product question)
    // goes to a person whole. (Product questions joined in session 8: none
    // of their keyword hits cost an auto-reply that was wrong; "other" in
    // session 12: a volume discount or wholesale terms beside a delivery
    // time is a sales conversation.)
    let extra: Vec<&str> = input
        .mentions
        .categories()
        .filter(|c| *c != intent.category && needs_its_own_answer(*c))
        .map(|c| c.as_str())
        .collect();
    if !extra.is_empty() {
        reasons.push(HandoffReason::new(
            ReasonCode::MixedRequest,
            format!("the message also mentions {}", extra.join(", ")),
        ));
    }
    if !input.can_reply_in_language {
        reasons.push(HandoffReason::new(
            ReasonCode::UnsupportedLanguage,
            format!(
                "no reply wording in the buyer's language ({})",
                input.language
            ),
        ));
    }
    let order = input.inquiry.order.as_ref();
    if let Some(status) = order.and_then(|o| o.status.as_deref()) {
        if SETTLED_STATES.contains(&status) {
            reasons.push(HandoffReason::new(
                ReasonCode::OrderSettled,
                format!("the order is {status}: the buyer needs a person to look into it"),
            ));
        }
    }
    if !reasons.is_empty() {
        return Decision::Handoff { reasons };
    }

    let use_order = intent.category == Category::ShippingStatus
        && order.is_some_and(|o| {
            o.order_id.is_some() && (o.tracking_number.is_some() || !o.has_shipped())
        });
    let has_tracking = order.is_some_and(|o| o.tracking_number.is_some());
    // With tracking the order data answers; general delivery times would be noise.
    let article = input
        .knowledge
        .iter()
        .filter(|_| !(use_order && has_tracking))
        .find(|hit| {
            hit.categories.contains(&intent.category)
                && hit.language == input.language
                && hit.similarity >= rules.min_knowledge_similarity
        })
        .cloned();
    if !use_order && article.is_none() {
        return Decision::Handoff {
            reasons: vec![HandoffReason::new(
                ReasonCode::NoGrounding,
                "no order data or knowledge-base answer to ground a reply",
            )],
        };
    }
    Decision::AutoReply { use_order, article }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Polarity;

    fn decide_with(keywords: &[Category], risks: &[Risk]) -> Decision {
        let mentions = Mentions {
            keywords,
            hidden_asks: &[],
        };
        decide_with_mentions(mentions, risks)
    }

    fn decide_with_mentions(mentions: Mentions<'_>, risks: &[Risk]) -> Decision {
        let inquiry = crate::eval::labelled_inquiry(0, "Where is it?", "", chrono::Utc::now());
        let intent = IntentGuess {
            category: Category::ShippingStatus,
            confidence: 0.99,
            urgent: 0.0,
        };
        let sentiment = Sentiment {
            label: Polarity::Neutral,
            score: 0.0,
            emotions: Vec::new(),
        };
        let input = DecideInput {
            inquiry: &inquiry,
            intent: &intent,
            sentiment: &sentiment,
            language: "en",
            knowledge: &[],
            mentions,
            risks,
            can_reply_in_language: true,
            auto_reply_categories: &[Category::ShippingStatus],
        };
        let rules = DecideRules {
            min_confidence: 0.9,
            min_knowledge_similarity: 0.45,
        };
        decide(&input, &rules)
    }

    fn codes(decision: &Decision) -> Vec<ReasonCode> {
        match decision {
            Decision::Handoff { reasons } => reasons.iter().map(|r| r.code).collect(),
            Decision::AutoReply { .. } => Vec::new(),
        }
    }

    #[test]
    fn a_shipping_question_alone_is_answered_one_asking_more_goes_to_a_person() {
        assert!(matches!(
            decide_with(&[Category::Feedback], &[]),
            Decision::AutoReply { .. }
        ));
        for other in [
            Category::ProductQuestion,
            Category::RefundReturn,
            Category::Other,
        ] {
            assert_eq!(
                codes(&decide_with(&[other], &[])),
                [ReasonCode::MixedRequest]
            );
        }
        assert_eq!(
            codes(&decide_with(&[], &[Risk::Safety, Risk::HighValue])),
            [ReasonCode::UrgentRisk]
        );
        assert!(matches!(
            decide_with(&[], &[Risk::HighValue]),
            Decision::AutoReply { .. }
        ));
    }

    #[test]
    fn an_ask_told_in_its_own_words_is_another_ask_named_once() {
        let refund = [Category::RefundReturn];
        let decision = decide_with_mentions(
            Mentions {
                keywords: &refund,
                hidden_asks: &refund,
            },
            &[],
        );
        let Decision::Handoff { reasons } = decision else {
            panic!("a hidden exchange beside a delivery question was answered");
        };
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].code, ReasonCode::MixedRequest);
        assert_eq!(reasons[0].detail, "the message also mentions refund_return");
        let hidden_only = decide_with_mentions(
            Mentions {
                keywords: &[],
                hidden_asks: &[Category::OrderChange],
            },
            &[],
        );
        assert_eq!(codes(&hidden_only), [ReasonCode::MixedRequest]);
    }
}

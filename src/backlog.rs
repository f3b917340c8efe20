//! The open backlog: escalation alerts from the policy's `[[backlog]]` rules,
//! and the unanswered inquiries that breach their first-response target next.
//! Stateless: the caller passes what is open and the current instant.

use std::cmp::Reverse;

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Category, Channel, Tier};
use crate::stages::sla::TenantPolicy;

/// An alert rule of the policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogRule {
    pub name: String,
    pub level: u32,
    /// The alert fires when at least this many inquiries match.
    pub min_count: usize,
    /// The categories the rule watches; `None` watches all.
    pub categories: Option<Vec<Category>>,
    pub condition: BacklogCondition,
}

/// What makes an open inquiry count towards a rule; ages are calendar time,
/// since the backlog also grows overnight (when on-call is alerted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogCondition {
    /// No first response, and received longer ago than this.
    UnansweredOver(Duration),
    /// Still open (answered or not), and received longer ago than this.
    UnresolvedOver(Duration),
}

/// An inquiry that is not resolved yet.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenInquiry {
    pub id: String,
    pub tier: Tier,
    pub category: Category,
    pub received_at: DateTime<Utc>,
    /// The first reply that counts as a response: where the marketplace does
    /// not accept acknowledgements (`Sla::ack_counts_as_response`), a person's.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Without a channel only the category and tier targets apply.
    pub channel: Option<Channel>,
    /// Consulted for `Channel::Marketplace` only.
    pub marketplace: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacklogReport {
    /// Most severe first, then in the policy's rule order.
    pub alerts: Vec<Alert>,
    /// Every unanswered inquiry, soonest first-response due time first (so
    /// already-breached ones lead).
    pub at_risk: Vec<AtRisk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub level: u32,
    /// The rule's name.
    pub rule: String,
    /// The matching inquiries, oldest first.
    pub inquiry_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AtRisk {
    pub id: String,
    pub due: DateTime<Utc>,
    /// The due time has passed.
    pub breached: bool,
}

/// Alerts and at-risk inquiries of one tenant's backlog at `now`.
pub fn evaluate_backlog(
    policy: &TenantPolicy,
    now: DateTime<Utc>,
    open: &[OpenInquiry],
) -> BacklogReport {
    let mut oldest_first: Vec<&OpenInquiry> = open.iter().collect();
    oldest_first.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));

    let mut alerts: Vec<Alert> = policy
        .backlog_rules()
        .iter()
        .filter_map(|rule| {
            let inquiry_ids: Vec<String> = oldest_first
                .iter()
                .filter(|inquiry| matches(rule, inquiry, now))
                .map(|inquiry| inquiry.id.clone())
                .collect();
            (inquiry_ids.len() >= rule.min_count).then(|| Alert {
                level: rule.level,
                rule: rule.name.clone(),
                inquiry_ids,
            })
        })
        .collect();
    // Stable: rules of one level keep the policy's order.
    alerts.sort_by_key(|alert| Reverse(alert.level));

    let mut at_risk: Vec<(AtRisk, Tier)> = open
        .iter()
        .filter(|inquiry| inquiry.first_response_at.is_none())
        .map(|inquiry| {
            let due = policy
                .due_with(
                    inquiry.category,
                    inquiry.tier,
                    inquiry.channel,
                    inquiry.marketplace.as_deref().unwrap_or_default(),
                    inquiry.received_at,
                )
                .first_response_due;
            let risk = AtRisk {
                id: inquiry.id.clone(),
                due,
                breached: now > due,
            };
            (risk, inquiry.tier)
        })
        .collect();
    // Equal due times: the more urgent tier first, then by id, so the order
    // is the same on every call.
    at_risk.sort_by(|(a, a_tier), (b, b_tier)| (a.due, a_tier, &a.id).cmp(&(b.due, b_tier, &b.id)));

    BacklogReport {
        alerts,
        at_risk: at_risk.into_iter().map(|(risk, _)| risk).collect(),
    }
}

/// Whether `inquiry` counts towards `rule` at `now`; ages are strictly "over".
fn matches(rule: &BacklogRule, inquiry: &OpenInquiry, now: DateTime<Utc>) -> bool {
    let watched = rule
        .categories
        .as_ref()
        .is_none_or(|categories| categories.contains(&inquiry.category));
    let age = now - inquiry.received_at;
    watched
        && match rule.condition {
            BacklogCondition::UnansweredOver(limit) => {
                inquiry.first_response_at.is_none() && age > limit
            }
            BacklogCondition::UnresolvedOver(limit) => age > limit,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::sla::PolicySla;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instant")
    }

    fn open(id: &str, category: Category, received_at: &str) -> OpenInquiry {
        OpenInquiry {
            id: id.to_string(),
            tier: category.base_tier(),
            category,
            received_at: at(received_at),
            first_response_at: None,
            channel: Some(Channel::Email),
            marketplace: None,
        }
    }

    fn answered(mut inquiry: OpenInquiry, when: &str) -> OpenInquiry {
        inquiry.first_response_at = Some(at(when));
        inquiry
    }

    /// Wednesday 18 November 2026, 14:00 in Shanghai (06:00 UTC): team at work.
    const NOW: &str = "2026-11-18T06:00:00Z";

    #[test]
    fn unanswered_backlog_and_order_problems_raise_both_levels() {
        let policy = PolicySla::builtin();
        // 10 questions unanswered since 11:30 Shanghai (2.5 h).
        let mut backlog: Vec<OpenInquiry> = (0..10)
            .map(|i| {
                open(
                    &format!("q{i}"),
                    Category::ShippingStatus,
                    "2026-11-18T03:30:00Z",
                )
            })
            .collect();
        // 5 order problems open since 09:00 (5 h), two of them answered.
        backlog.push(open("o1", Category::OrderChange, "2026-11-18T01:00:00Z"));
        backlog.push(open("o2", Category::RefundReturn, "2026-11-18T01:01:00Z"));
        backlog.push(open("o3", Category::Complaint, "2026-11-18T01:02:00Z"));
        backlog.push(answered(
            open("o4", Category::Complaint, "2026-11-18T01:03:00Z"),
            "2026-11-18T01:30:00Z",
        ));
        backlog.push(answered(
            open("o5", Category::OrderChange, "2026-11-18T01:04:00Z"),
            "2026-11-18T01:30:00Z",
        ));

        let report = evaluate_backlog(policy.policy(""), at(NOW), &backlog);

        assert_eq!(report.alerts.len(), 2);
        let order = &report.alerts[0];
        assert_eq!(
            (order.level, order.rule.as_str()),
            (2, "order_problems_unresolved")
        );
        assert_eq!(order.inquiry_ids, ["o1", "o2", "o3", "o4", "o5"]);
        let unanswered = &report.alerts[1];
        assert_eq!(
            (unanswered.level, unanswered.rule.as_str()),
            (1, "unanswered_backlog")
        );
        // The three unanswered order problems are oldest, then the questions.
        assert_eq!(unanswered.inquiry_ids.len(), 13);
        assert_eq!(unanswered.inquiry_ids[..3], ["o1", "o2", "o3"]);
    }

    #[test]
    fn below_the_thresholds_nothing_fires() {
        let policy = PolicySla::builtin();
        // 9 unanswered for 2.5 h, and 1 more at exactly 2 h: not "over".
        let mut backlog: Vec<OpenInquiry> = (0..9)
            .map(|i| open(&format!("q{i}"), Category::Other, "2026-11-18T03:30:00Z"))
            .collect();
        backlog.push(open("edge", Category::Other, "2026-11-18T04:00:00Z"));
        // 4 order problems over 4 h, and an older question the rule ignores.
        for i in 0..4 {
            backlog.push(open(
                &format!("o{i}"),
                Category::OrderChange,
                "2026-11-18T01:00:00Z",
            ));
        }
        backlog.push(answered(
            open("old", Category::ProductQuestion, "2026-11-18T01:00:00Z"),
            "2026-11-18T02:00:00Z",
        ));
        let report = evaluate_backlog(policy.policy(""), at(NOW), &backlog);
        let fired: Vec<&str> = report.alerts.iter().map(|a| a.rule.as_str()).collect();
        // 9 + 4 unanswered over 2 h is 13: level 1 fires, level 2 does not.
        assert_eq!(fired, ["unanswered_backlog"]);
        assert!(!report.alerts[0].inquiry_ids.contains(&"edge".to_string()));

        let quiet = evaluate_backlog(policy.policy(""), at(NOW), &backlog[..9]);
        assert!(quiet.alerts.is_empty());
    }

    #[test]
    fn at_risk_lists_unanswered_inquiries_soonest_due_first() {
        let policy = PolicySla::builtin();
        let mut amazon = open("amazon", Category::Feedback, "2026-11-17T07:00:00Z");
        amazon.channel = Some(Channel::Marketplace);
        amazon.marketplace = Some("amazon".to_string());
        let mut no_channel = open("no_channel", Category::Other, "2026-11-18T05:00:00Z");
        no_channel.channel = None;
        let backlog = vec![
            // Received 13:00 Shanghai: shipping 4 h → due 17:00 (09:00 UTC).
            open("shipping", Category::ShippingStatus, "2026-11-18T05:00:00Z"),
            // Received 11:00: refund 1 h → due 12:00, breached at 14:00.
            open("refund", Category::RefundReturn, "2026-11-18T03:00:00Z"),
            // Answered: never at risk, however old.
            answered(
                open("answered", Category::RefundReturn, "2026-11-17T01:00:00Z"),
                "2026-11-17T01:10:00Z",
            ),
            // Amazon, Tuesday 15:00: 24 calendar hours → due 15:00 today.
            amazon,
            // Received 10:00 (02:00 UTC): complaint 2 h → due 12:00, tied
            // with the refund but P2, so after it.
            open("complaint", Category::Complaint, "2026-11-18T02:00:00Z"),
            // No channel: 12 h of working time from 13:00 → Thu 16:00.
            no_channel,
        ];
        let report = evaluate_backlog(policy.policy(""), at(NOW), &backlog);
        let ids: Vec<&str> = report.at_risk.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["refund", "complaint", "amazon", "shipping", "no_channel"]
        );
        let breached: Vec<bool> = report.at_risk.iter().map(|r| r.breached).collect();
        assert_eq!(breached, [true, true, false, false, false]);
        assert_eq!(report.at_risk[0].due, at("2026-11-18T04:00:00Z"));
        assert_eq!(report.at_risk[2].due, at("2026-11-18T07:00:00Z"));
        assert_eq!(report.at_risk[3].due, at("2026-11-18T09:00:00Z"));
        assert_eq!(report.at_risk[4].due, at("2026-11-19T08:00:00Z"));
    }
}

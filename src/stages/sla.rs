//! SLA: when a person must first answer and resolve an inquiry, from the
//! category targets of DOMAIN.md, tightened by tier and capped by the channel.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Category, Channel, Sla, Tier};

/// What the due times depend on.
#[derive(Debug, Clone, Copy)]
pub struct SlaInput<'a> {
    pub category: Category,
    pub tier: Tier,
    pub channel: Channel,
    pub marketplace: &'a str,
    pub received_at: DateTime<Utc>,
}

pub trait SlaPolicy: Send + Sync {
    fn due(&self, input: &SlaInput<'_>) -> Sla;
}

/// Fixed calendar-time targets.
#[derive(Debug, Clone, Default)]
pub struct FixedSlaPolicy;

/// First response and resolution targets by category (DOMAIN.md).
fn category_targets(category: Category) -> (Duration, Option<Duration>) {
    let h = Duration::hours;
    match category {
        Category::OrderChange => (h(2), Some(h(4))),
        Category::RefundReturn => (h(1), Some(h(24))),
        Category::Complaint => (h(2), Some(h(48))),
        Category::ShippingStatus => (h(4), Some(h(24))),
        Category::PaymentBilling => (h(4), Some(h(24))),
        Category::ProductQuestion | Category::Account | Category::Other => (h(12), Some(h(48))),
        Category::HumanRequest => (h(2), None),
        Category::Feedback => (h(24), Some(h(72))),
    }
}

/// The first-response target of a tier, for inquiries raised above their category.
fn tier_target(tier: Tier) -> Duration {
    match tier {
        Tier::P1Urgent => Duration::hours(1),
        Tier::P2High => Duration::hours(2),
        Tier::P3Normal => Duration::hours(4),
        Tier::P4Low => Duration::hours(24),
    }
}

/// The longest first response a channel allows.
fn channel_cap(channel: Channel, marketplace: &str) -> Duration {
    match channel {
        Channel::Chat => Duration::minutes(2),
        Channel::Voice => Duration::hours(2),
        Channel::Social => Duration::hours(4),
        Channel::Email => Duration::hours(24),
        // Amazon counts 24 calendar hours, every day; others are no looser.
        Channel::Marketplace if marketplace.starts_with("amazon") => Duration::hours(24),
        Channel::Marketplace => Duration::hours(24),
    }
}

impl SlaPolicy for FixedSlaPolicy {
    fn due(&self, input: &SlaInput<'_>) -> Sla {
        let (first, resolution) = category_targets(input.category);
        let first = first
            .min(tier_target(input.tier))
            .min(channel_cap(input.channel, input.marketplace));
        Sla {
            first_response_due: input.received_at + first,
            resolution_due: resolution.map(|r| input.received_at + r.max(first)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(category: Category, tier: Tier, channel: Channel) -> SlaInput<'static> {
        SlaInput {
            category,
            tier,
            channel,
            marketplace: "amazon",
            received_at: "2025-03-03T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn targets_follow_category_tier_and_channel() {
        let policy = FixedSlaPolicy;
        let refund = policy.due(&input(
            Category::RefundReturn,
            Tier::P1Urgent,
            Channel::Email,
        ));
        assert_eq!(
            refund.first_response_due.to_rfc3339(),
            "2025-03-03T11:00:00+00:00"
        );
        assert_eq!(
            refund.resolution_due.unwrap().to_rfc3339(),
            "2025-03-04T10:00:00+00:00"
        );
        let raised = policy.due(&input(
            Category::ProductQuestion,
            Tier::P2High,
            Channel::Email,
        ));
        assert_eq!(
            raised.first_response_due.to_rfc3339(),
            "2025-03-03T12:00:00+00:00"
        );
        let chat = policy.due(&input(
            Category::ShippingStatus,
            Tier::P3Normal,
            Channel::Chat,
        ));
        assert_eq!(
            chat.first_response_due.to_rfc3339(),
            "2025-03-03T10:02:00+00:00"
        );
        let person = policy.due(&input(Category::HumanRequest, Tier::P2High, Channel::Email));
        assert!(person.resolution_due.is_none());
    }
}

//! Agents' feedback on drafts, stored durably as points of the intents
//! collection (the buyer's text embedded): a corrected intent is stored as
//! `kind = correction` and votes in the tenant's next classifications; the
//! rest as `kind = feedback`. Both feed the automation report.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{Category, DraftAction, Feedback};
use crate::ingest::point_id;
use crate::store::{Collection, Filter, Point};

/// Payload `kind` of an agent's correction: the classifier reads these.
pub const CORRECTION: &str = "correction";
/// Payload `kind` of feedback without a corrected intent.
const FEEDBACK: &str = "feedback";

/// Feedback as the report reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    pub inquiry_id: String,
    pub action: DraftAction,
    pub final_text: String,
    pub corrected_intent: Option<Category>,
    pub language: Option<String>,
    pub received_at: DateTime<Utc>,
}

pub struct FeedbackStore {
    collection: Arc<dyn Collection>,
}

impl FeedbackStore {
    pub fn new(collection: Arc<dyn Collection>) -> FeedbackStore {
        FeedbackStore { collection }
    }

    /// Stores `feedback` with the embedding of its buyer text; the same
    /// agent's feedback on the same inquiry replaces the earlier one.
    /// Returns the feedback's id.
    pub fn record(&self, feedback: &Feedback, vector: Vec<f32>) -> anyhow::Result<u64> {
        let id = point_id(
            &feedback.tenant,
            &format!("feedback/{}/{}", feedback.inquiry_id, feedback.agent),
        );
        let mut payload = Map::new();
        let kind = if feedback.corrected_intent.is_some() {
            CORRECTION
        } else {
            FEEDBACK
        };
        payload.insert("kind".into(), kind.into());
        payload.insert("tenant".into(), feedback.tenant.clone().into());
        if let Some(category) = feedback.corrected_intent {
            payload.insert("intent".into(), category.as_str().into());
        }
        if let Some(tier) = feedback.corrected_tier {
            payload.insert("tier".into(), tier.as_str().into());
        }
        for (key, value) in [
            ("inquiry_id", feedback.inquiry_id.as_str()),
            ("agent", &feedback.agent),
            ("action", feedback.action.as_str()),
            ("text", &feedback.text),
            ("final_text", &feedback.final_text),
            ("language", feedback.language.as_deref().unwrap_or("")),
        ] {
            payload.insert(key.into(), value.into());
        }
        payload.insert(
            "received_at".into(),
            feedback.received_at.to_rfc3339().into(),
        );
        self.collection.upsert(vec![Point {
            id,
            dense: vector,
            sparse: None,
            payload,
        }])?;
        Ok(id)
    }

    /// Every feedback of `tenant` received in `[from, to)`.
    pub fn list(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FeedbackRecord>> {
        let mut records = Vec::new();
        for kind in [FEEDBACK, CORRECTION] {
            let points = self.collection.scroll(
                &Filter::default()
                    .field("kind", kind)
                    .field("tenant", tenant),
            )?;
            records.extend(
                points
                    .iter()
                    .filter_map(|point| feedback_record(&point.payload))
                    .filter(|r| from <= r.received_at && r.received_at < to),
            );
        }
        records.sort_by_key(|r| r.received_at);
        Ok(records)
    }
}

fn feedback_record(payload: &Map<String, Value>) -> Option<FeedbackRecord> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    Some(FeedbackRecord {
        inquiry_id: text("inquiry_id")?.to_string(),
        action: DraftAction::parse(text("action")?)?,
        final_text: text("final_text").unwrap_or_default().to_string(),
        corrected_intent: text("intent").and_then(Category::parse),
        language: text("language")
            .filter(|l| !l.is_empty())
            .map(str::to_string),
        received_at: text("received_at")?.parse().ok()?,
    })
}

//! The automation report: what became of each handled inquiry (recorded by
//! `Handle` in an outcome log) joined with what agents did with the drafts
//! (the feedback store), for a tenant and a time window, overall, by
//! category and by language.

use std::collections::BTreeMap;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tracing::warn;

use crate::domain::{Category, DraftAction, ReasonCode};
use crate::feedback::FeedbackRecord;
use crate::ingest::point_id;
use crate::store::{Collection, Filter, Point, HANDLED_AT};

/// What became of one handled inquiry.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    pub tenant: String,
    pub inquiry_id: String,
    /// When the buyer sent it: the report's windows count by this.
    pub received_at: DateTime<Utc>,
    pub category: Category,
    pub language: String,
    pub auto_reply: bool,
    /// Empty for an auto-reply.
    pub reasons: Vec<ReasonCode>,
    /// The auto-reply sent or the draft suggested: edits are measured against it.
    pub text: String,
    /// When it was handled: a repeat of the inquiry id soon after is a retry.
    pub handled_at: DateTime<Utc>,
    /// What the caller got (proto3 JSON of a `HandleResult`), replayed to a retry.
    pub replay: String,
}

/// Outcomes are kept in a collection of their own with a one-dimensional
/// placeholder vector: they are listed, never searched by similarity.
pub const OUTCOME_DIMENSION: usize = 1;
const OUTCOME: &str = "outcome";
/// Records one write to the store carries at most.
const MAX_BATCH: usize = 256;
/// How often the writer deletes outcomes past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The outcome log. Records are written by one background thread in
/// batches, so handling an inquiry never waits on the store; reads see
/// every record handed over before them.
pub struct OutcomeLog {
    collection: Arc<dyn Collection>,
    queue: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

enum Write {
    Record(Point),
    /// Answered once everything queued before it is stored.
    Flush(mpsc::SyncSender<()>),
}

impl OutcomeLog {
    /// A log whose records older than `retention`, if given, are deleted
    /// by the writer, at start and then hourly.
    pub fn new(
        collection: Arc<dyn Collection>,
        retention: Option<chrono::Duration>,
    ) -> anyhow::Result<OutcomeLog> {
        let (queue, received) = mpsc::channel();
        let store = collection.clone();
        let writer = std::thread::Builder::new()
            .name("outcome-log".into())
            .spawn(move || write_batches(&*store, &received, retention))?;
        Ok(OutcomeLog {
            collection,
            queue: Mutex::new(Some(queue)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues `record` for storing; handling the same inquiry again replaces it.
    pub fn record(&self, record: &OutcomeRecord) {
        let mut payload = Map::new();
        payload.insert("kind".into(), OUTCOME.into());
        payload.insert("tenant".into(), record.tenant.clone().into());
        payload.insert("inquiry_id".into(), record.inquiry_id.clone().into());
        payload.insert("received_at".into(), record.received_at.to_rfc3339().into());
        payload.insert("category".into(), record.category.as_str().into());
        payload.insert("language".into(), record.language.clone().into());
        payload.insert("auto_reply".into(), record.auto_reply.into());
        payload.insert(
            "reasons".into(),
            record.reasons.iter().map(|r| r.as_str()).collect(),
        );
        payload.insert("text".into(), record.text.clone().into());
        payload.insert("handled_at".into(), record.handled_at.to_rfc3339().into());
        payload.insert(HANDLED_AT.into(), record.handled_at.timestamp().into());
        payload.insert("replay".into(), record.replay.clone().into());
        let point = Point {
            id: outcome_id(&record.tenant, &record.inquiry_id),
            dense: vec![1.0],
            sparse: None,
            payload,
        };
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue
            .as_ref()
            .is_none_or(|queue| queue.send(Write::Record(point)).is_err())
        {
            warn!(inquiry = %record.inquiry_id, "outcome log closed: outcome not recorded");
        }
    }

    /// Waits until every record queued so far is stored.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|queue| queue.send(Write::Flush(done)).is_ok());
        if sent {
            let _ = wait.recv();
        }
    }

    /// Stores what is queued and stops the writer; later records are lost.
    pub fn close(&self) {
        drop(
            self.queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(writer) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = writer.join();
        }
    }

    /// The outcome of one inquiry, if recorded: a lookup by id, whatever
    /// the size of the log.
    pub fn get(&self, tenant: &str, inquiry_id: &str) -> anyhow::Result<Option<OutcomeRecord>> {
        self.flush();
        let points = self
            .collection
            .retrieve(&[outcome_id(tenant, inquiry_id)])?;
        Ok(points
            .iter()
            .find_map(|point| outcome_record(&point.payload)))
    }

    /// Every outcome of `tenant`.
    pub fn list(&self, tenant: &str) -> anyhow::Result<Vec<OutcomeRecord>> {
        self.flush();
        self.records(
            &Filter::default()
                .field("kind", OUTCOME)
                .field("tenant", tenant),
        )
    }

    /// Every outcome, of any tenant, handled at or after `since` (to the second).
    pub fn handled_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<OutcomeRecord>> {
        self.flush();
        self.records(
            &Filter::default()
                .field("kind", OUTCOME)
                .at_least(HANDLED_AT, since.timestamp() as f64),
        )
    }

    fn records(&self, filter: &Filter) -> anyhow::Result<Vec<OutcomeRecord>> {
        Ok(self
            .collection
            .scroll(filter)?
            .iter()
            .filter_map(|point| outcome_record(&point.payload))
            .collect())
    }
}

impl Drop for OutcomeLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: stores what arrives, a batch at a time, until the
/// queue closes; with a retention, deletes what has outlived it when due.
fn write_batches(
    collection: &dyn Collection,
    received: &mpsc::Receiver<Write>,
    retention: Option<chrono::Duration>,
) {
    let mut next_prune = Instant::now();
    loop {
        let first = match retention {
            Some(retention) => {
                let now = Instant::now();
                if now >= next_prune {
                    if let Err(error) = prune_before(collection, Utc::now() - retention) {
                        warn!(error = %format!("{error:#}"), "old outcomes not deleted");
                    }
                    next_prune = now + PRUNE_EVERY;
                }
                match received.recv_timeout(next_prune.saturating_duration_since(now)) {
                    Ok(write) => write,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            None => match received.recv() {
                Ok(write) => write,
                Err(_) => return,
            },
        };
        let mut points = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Record(point) => points.push(point),
                Write::Flush(done) => flushes.push(done),
            }
            if points.len() < MAX_BATCH {
                next = received.try_recv().ok();
            }
        }
        let count = points.len();
        if let Err(error) = collection.upsert(points) {
            // The buyers have their answers; only the report misses these.
            warn!(error = %format!("{error:#}"), count, "outcomes not recorded");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn prune_before(collection: &dyn Collection, cutoff: DateTime<Utc>) -> anyhow::Result<()> {
    collection.delete_matching(
        &Filter::default()
            .field("kind", OUTCOME)
            .below(HANDLED_AT, cutoff.timestamp() as f64),
    )
}

fn outcome_id(tenant: &str, inquiry_id: &str) -> u64 {
    point_id(tenant, &format!("outcome/{inquiry_id}"))
}

fn outcome_record(payload: &Map<String, Value>) -> Option<OutcomeRecord> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    Some(OutcomeRecord {
        tenant: text("tenant")?.to_string(),
        inquiry_id: text("inquiry_id")?.to_string(),
        received_at: text("received_at")?.parse().ok()?,
        category: Category::parse(text("category")?)?,
        language: text("language")?.to_string(),
        auto_reply: payload.get("auto_reply")?.as_bool()?,
        reasons: payload
            .get("reasons")?
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().and_then(ReasonCode::parse))
            .collect(),
        text: text("text").unwrap_or_default().to_string(),
        handled_at: text("handled_at")
            .and_then(|at| at.parse().ok())
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        replay: text("replay").unwrap_or_default().to_string(),
    })
}

/// Counts for one slice of the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Inquiries handled (received in the window).
    pub inquiries: u32,
    pub auto_replies: u32,
    pub handoffs: u32,
    pub accepted: u32,
    pub edited: u32,
    pub rejected: u32,
    /// Sum of the edit distances of edited drafts whose draft is on record.
    pub edit_distance_total: u64,
    pub edits_measured: u32,
    /// Hand-offs by reason; one hand-off may count under several.
    pub handoff_reasons: BTreeMap<ReasonCode, u32>,
}

impl Figures {
    /// Auto-replies per handled inquiry.
    pub fn automation_rate(&self) -> f64 {
        ratio(self.auto_replies, self.inquiries)
    }

    /// Drafts sent unchanged per draft reviewed.
    pub fn acceptance_rate(&self) -> f64 {
        ratio(self.accepted, self.accepted + self.edited + self.rejected)
    }

    /// Mean edit distance (Unicode characters) of edited drafts.
    pub fn mean_edit_distance(&self) -> f64 {
        if self.edits_measured == 0 {
            0.0
        } else {
            self.edit_distance_total as f64 / f64::from(self.edits_measured)
        }
    }

    fn add_outcome(&mut self, outcome: &OutcomeRecord) {
        self.inquiries += 1;
        if outcome.auto_reply {
            self.auto_replies += 1;
        } else {
            self.handoffs += 1;
            for reason in &outcome.reasons {
                *self.handoff_reasons.entry(*reason).or_default() += 1;
            }
        }
    }

    fn add_feedback(&mut self, action: DraftAction, edit_distance: Option<usize>) {
        match action {
            DraftAction::Accepted => self.accepted += 1,
            DraftAction::Edited => self.edited += 1,
            DraftAction::Rejected => self.rejected += 1,
        }
        if let (DraftAction::Edited, Some(distance)) = (action, edit_distance) {
            self.edit_distance_total += distance as u64;
            self.edits_measured += 1;
        }
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// A tenant's automation report for `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub tenant: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overall: Figures,
    pub by_category: BTreeMap<String, Figures>,
    pub by_language: BTreeMap<String, Figures>,
}

/// Slice key for feedback on an inquiry whose outcome is not on record.
const UNKNOWN: &str = "unknown";

/// Builds the report from the tenant's outcomes (any time: feedback is
/// joined to them by inquiry id) and the feedback received in the window.
pub fn build_report(
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    outcomes: &[OutcomeRecord],
    feedback: &[FeedbackRecord],
) -> Report {
    let mut report = Report {
        tenant: tenant.to_string(),
        from,
        to,
        overall: Figures::default(),
        by_category: BTreeMap::new(),
        by_language: BTreeMap::new(),
    };
    for outcome in outcomes
        .iter()
        .filter(|o| from <= o.received_at && o.received_at < to)
    {
        for figures in report.slices(outcome.category.as_str(), &outcome.language) {
            figures.add_outcome(outcome);
        }
    }
    let by_inquiry: BTreeMap<&str, &OutcomeRecord> = outcomes
        .iter()
        .map(|o| (o.inquiry_id.as_str(), o))
        .collect();
    for record in feedback
        .iter()
        .filter(|f| from <= f.received_at && f.received_at < to)
    {
        let outcome = by_inquiry.get(record.inquiry_id.as_str());
        // An agent's correction names the right category.
        let category = record
            .corrected_intent
            .or(outcome.map(|o| o.category))
            .map_or(UNKNOWN, Category::as_str);
        let language = record
            .language
            .as_deref()
            .or(outcome.map(|o| o.language.as_str()))
            .unwrap_or(UNKNOWN);
        let distance = outcome.map(|o| edit_distance(&o.text, &record.final_text));
        for figures in report.slices(category, language) {
            figures.add_feedback(record.action, distance);
        }
    }
    report
}

impl Report {
    fn slices(&mut self, category: &str, language: &str) -> [&mut Figures; 3] {
        [
            &mut self.overall,
            self.by_category.entry(category.to_string()).or_default(),
            self.by_language.entry(language.to_string()).or_default(),
        ]
    }
}

/// Levenshtein distance in Unicode characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn outcome(id: &str, category: Category, language: &str, auto: bool) -> OutcomeRecord {
        OutcomeRecord {
            tenant: "t".into(),
            inquiry_id: id.into(),
            received_at: at("2026-11-02T10:00:00Z"),
            category,
            language: language.into(),
            auto_reply: auto,
            reasons: if auto {
                vec![]
            } else {
                vec![ReasonCode::CategoryNeedsPerson]
            },
            text: "Hello world".into(),
            handled_at: at("2026-11-02T10:00:01Z"),
            replay: String::new(),
        }
    }

    fn feedback(id: &str, action: DraftAction, final_text: &str) -> FeedbackRecord {
        FeedbackRecord {
            inquiry_id: id.into(),
            action,
            final_text: final_text.into(),
            corrected_intent: None,
            language: None,
            received_at: at("2026-11-02T11:00:00Z"),
        }
    }

    #[test]
    fn outcomes_past_their_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Collection> =
            Arc::new(crate::store::EdgeCollection::open(&dir.path().join("o"), 1).unwrap());
        let now = Utc::now();
        let mut old = outcome("old", Category::ShippingStatus, "en", true);
        old.handled_at = now - chrono::Duration::days(40);
        let mut other_tenant = outcome("older", Category::Complaint, "de", false);
        other_tenant.tenant = "u".into();
        other_tenant.handled_at = now - chrono::Duration::days(70);
        let mut recent = outcome("recent", Category::Complaint, "en", false);
        recent.handled_at = now - chrono::Duration::days(2);
        let log = OutcomeLog::new(store.clone(), None).unwrap();
        for record in [&old, &other_tenant, &recent] {
            log.record(record);
        }
        drop(log);
        // A log with a retention prunes as its writer starts.
        let log = OutcomeLog::new(store, Some(chrono::Duration::days(30))).unwrap();
        let kept = log.handled_since(at("2000-01-01T00:00:00Z")).unwrap();
        assert_eq!(
            kept.iter()
                .map(|r| r.inquiry_id.as_str())
                .collect::<Vec<_>>(),
            ["recent"]
        );
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("注文", "注文です"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn report_joins_feedback_to_outcomes_and_respects_the_window() {
        let mut late = outcome("late", Category::ShippingStatus, "en", true);
        late.received_at = at("2026-11-09T00:00:00Z");
        let outcomes = vec![
            outcome("a", Category::ShippingStatus, "en", true),
            outcome("b", Category::RefundReturn, "de", false),
            outcome("c", Category::RefundReturn, "en", false),
            late,
        ];
        let mut corrected = feedback("c", DraftAction::Rejected, "");
        corrected.corrected_intent = Some(Category::Complaint);
        let records = vec![
            feedback("b", DraftAction::Edited, "Hello, world!"),
            corrected,
            feedback("zzz", DraftAction::Accepted, "ok"),
        ];
        let report = build_report(
            "t",
            at("2026-11-01T00:00:00Z"),
            at("2026-11-08T00:00:00Z"),
            &outcomes,
            &records,
        );
        let all = &report.overall;
        assert_eq!((all.inquiries, all.auto_replies, all.handoffs), (3, 1, 2));
        assert_eq!((all.accepted, all.edited, all.rejected), (1, 1, 1));
        assert!((all.automation_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert!((all.acceptance_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(all.mean_edit_distance(), 2.0);
        assert_eq!(all.handoff_reasons[&ReasonCode::CategoryNeedsPerson], 2);
        let refunds = &report.by_category["refund_return"];
        assert_eq!(
            (refunds.inquiries, refunds.edited, refunds.rejected),
            (2, 1, 0)
        );
        assert_eq!(report.by_category["complaint"].rejected, 1);
        assert_eq!(report.by_category["unknown"].accepted, 1);
        assert_eq!(report.by_language["de"].edited, 1);
        assert_eq!(report.by_language["en"].inquiries, 2);
    }
}

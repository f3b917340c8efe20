//! `firstreply eval`: intent, tier, sentiment and language quality on a
//! labelled file (CSV or JSONL), optionally cross-validated so that no
//! inquiry is classified by an index that contains it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{Category, Channel, Customer, Inquiry, Order, Polarity, Tier};
use crate::embed::TextKind;
use crate::ingest::point_id;
use crate::pipeline::{Pipeline, Prepared};
use crate::stages::intent::{
    assign_tier, example_payload, load_examples, Example, IntentClassifier, IntentQuery,
    KnnIntentClassifier,
};
use crate::stages::sentiment::load_sentiment_examples;
use crate::store::{Collection, EdgeCollection, Point};

/// One labelled inquiry.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    pub text: String,
    pub category: Category,
    pub language: Option<String>,
    pub tier: Option<Tier>,
    pub polarity: Option<Polarity>,
    /// Where it was asked (`shopee_my`, `amazon`…): decides Malay vs Indonesian.
    pub marketplace: Option<String>,
}

/// Bitext's 27 intents mapped to the service's categories (shared/eval/README.md).
fn bitext_category(intent: &str) -> Option<Category> {
    Some(match intent {
        "cancel_order" | "change_order" | "change_shipping_address" | "set_up_shipping_address" => {
            Category::OrderChange
        }
        "get_refund" | "track_refund" | "check_refund_policy" => Category::RefundReturn,
        "complaint" => Category::Complaint,
        "track_order" | "delivery_period" | "delivery_options" => Category::ShippingStatus,
        "payment_issue"
        | "check_invoice"
        | "get_invoice"
        | "check_payment_methods"
        | "check_cancellation_fee" => Category::PaymentBilling,
        "create_account"
        | "delete_account"
        | "edit_account"
        | "recover_password"
        | "registration_problems"
        | "switch_account" => Category::Account,
        "contact_customer_service" | "contact_human_agent" => Category::HumanRequest,
        "review" => Category::Feedback,
        "place_order" | "newsletter_subscription" => Category::Other,
        _ => return None,
    })
}

fn parse_category(label: &str) -> Option<Category> {
    Category::parse(label).or_else(|| bitext_category(label))
}

fn parse_tier(label: &str) -> Option<Tier> {
    match label.trim().to_ascii_uppercase().as_str() {
        "P1" | "P1_URGENT" => Some(Tier::P1Urgent),
        "P2" | "P2_HIGH" => Some(Tier::P2High),
        "P3" | "P3_NORMAL" => Some(Tier::P3Normal),
        "P4" | "P4_LOW" => Some(Tier::P4Low),
        _ => None,
    }
}

/// Reads labelled rows: JSONL objects (`text`, `category` or `intent`, optional
/// `language`, `tier`, `sentiment`, `marketplace`) or CSV with a header naming the same
/// columns (`instruction` is taken as `text`, as in the Bitext set).
pub fn read_labelled(path: &Path) -> anyhow::Result<Vec<LabelledRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records: Vec<HashMap<String, String>> = if path.extension().is_some_and(|e| e == "csv") {
        read_csv(&text)?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(n, line)| {
                let value: Map<String, Value> = serde_json::from_str(line)
                    .with_context(|| format!("line {}: not a JSON object", n + 1))?;
                Ok(value
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                    .collect())
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut rows = Vec::with_capacity(records.len());
    for (n, record) in records.iter().enumerate() {
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| record.get(*k))
                .filter(|v| !v.trim().is_empty())
        };
        let text =
            get(&["text", "instruction"]).with_context(|| format!("row {}: no text", n + 1))?;
        let label =
            get(&["category", "intent"]).with_context(|| format!("row {}: no category", n + 1))?;
        // Bitext rows carry both: its `category` column is its own (ORDER, …).
        let category = get(&["intent"])
            .and_then(|l| parse_category(l))
            .or_else(|| parse_category(label))
            .with_context(|| format!("row {}: unknown category {label:?}", n + 1))?;
        rows.push(LabelledRow {
            text: text.clone(),
            category,
            language: get(&["language"]).map(|l| l.to_lowercase()),
            tier: get(&["tier"]).and_then(|t| parse_tier(t)),
            polarity: get(&["sentiment"]).and_then(|s| Polarity::parse(s)),
            marketplace: get(&["marketplace"]).cloned(),
        });
    }
    Ok(rows)
}

/// A small RFC 4180 reader: quoted fields, doubled quotes, commas and newlines in quotes.
fn read_csv(text: &str) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let mut records = Vec::new();
    let mut field = String::new();
    let mut row = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        records.push(row);
    }
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        bail!("the CSV file is empty")
    };
    Ok(records
        .filter(|r| r.iter().any(|f| !f.trim().is_empty()))
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect())
}

/// One prediction.
#[derive(Debug, Clone)]
struct Prediction {
    text: String,
    gold: Category,
    predicted: Category,
    confidence: f32,
    language: String,
    detected_language: String,
    gold_tier: Tier,
    /// Whether the row names its tier (else `gold_tier` is its category's).
    tier_labelled: bool,
    tier: Tier,
    gold_language: Option<String>,
    gold_polarity: Option<Polarity>,
    polarity: Polarity,
    /// Whether the service would answer it itself, given a shipped order.
    auto_reply: bool,
    /// Whether it would, whatever the intent confidence: for the operating
    /// curve of the confidence threshold.
    auto_reply_eligible: bool,
}

/// Runs the evaluation. The classifier's index is the shipped examples minus
/// any evaluated text; with `folds` ≥ 2 the file's other folds are added too.
pub fn evaluate(
    pipeline: &Arc<Pipeline>,
    rows: &[LabelledRow],
    folds: usize,
) -> anyhow::Result<Evaluation> {
    let now = Utc::now();
    let prepared: Vec<Prepared> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            pipeline
                .prepare(labelled_inquiry(
                    i,
                    &row.text,
                    row.marketplace.as_deref().unwrap_or_default(),
                    now,
                ))
                .map_err(|e| anyhow::anyhow!("row {}: {e}", i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let texts: Vec<&str> = prepared.iter().map(|p| p.analysed_text.as_str()).collect();
    let vectors = pipeline.embedder().embed(&texts, TextKind::Query)?;

    // Shipped examples that are also being evaluated would be recalled, not
    // classified: leave them out of every fold's index.
    let evaluated: HashSet<String> = rows.iter().map(|r| r.text.trim().to_lowercase()).collect();
    let seeds = load_examples(&pipeline.settings().knowledge_dir.join("intents"))?;
    let all_seeds = seeds.len();
    let seeds: Vec<Example> = seeds
        .into_iter()
        .filter(|seed| !evaluated.contains(&seed.text.trim().to_lowercase()))
        .collect();
    // The sentiment vote is the pipeline's own: the polarity of a row that is
    // also a sentiment example would be recalled, not measured.
    let sentiment_dir = pipeline.settings().knowledge_dir.join("sentiment");
    let polarity_rows: HashSet<String> = rows
        .iter()
        .filter(|r| r.polarity.is_some())
        .map(|r| r.text.trim().to_lowercase())
        .collect();
    if let Some(leak) = load_sentiment_examples(&sentiment_dir)?
        .iter()
        .find(|example| polarity_rows.contains(&example.text.trim().to_lowercase()))
    {
        bail!(
            "{:?} is both evaluated and a sentiment example in {}: its polarity would be recalled, not measured",
            leak.text,
            sentiment_dir.display()
        );
    }
    if folds <= 1 && seeds.len() == all_seeds {
        // Nothing to leave out: the pipeline's own index is the one to measure.
        let predictions = rows
            .iter()
            .zip(&prepared)
            .zip(&vectors)
            .map(|((row, prepared), vector)| {
                predict(pipeline, pipeline.classifier(), row, prepared, vector)
            })
            .collect::<anyhow::Result<_>>()?;
        return Ok(Evaluation {
            predictions,
            folds: 1,
        });
    }
    let seed_vectors = pipeline
        .classifier()
        .example_vectors(pipeline.embedder(), &seeds)?;
    let dir = tempfile::tempdir()?;
    let mut predictions = Vec::with_capacity(rows.len());
    for fold in 0..folds.max(1) {
        let collection = EdgeCollection::open(
            &dir.path().join(format!("fold-{fold}")),
            pipeline.embedder().dimension(),
        )?;
        let mut points: Vec<Point> = seeds
            .iter()
            .zip(&seed_vectors)
            .enumerate()
            .map(|(i, (seed, v))| example_point(point_id("seed", &i.to_string()), v, seed.label))
            .collect();
        points.extend(
            rows.iter()
                .zip(&vectors)
                .enumerate()
                .filter(|(i, _)| i % folds.max(1) != fold)
                .map(|(i, (row, v))| {
                    example_point(point_id("row", &i.to_string()), v, row.category)
                }),
        );
        for chunk in points.chunks(512) {
            collection.upsert(chunk.to_vec())?;
        }
        let classifier = KnnIntentClassifier::new(
            Arc::new(collection) as Arc<dyn Collection>,
            pipeline.signals(),
            &pipeline.settings().intent,
        );
        let (head_vectors, head_labels): (Vec<&[f32]>, Vec<Category>) = seeds
            .iter()
            .zip(&seed_vectors)
            .map(|(seed, v)| (v.as_slice(), seed.label))
            .chain(
                rows.iter()
                    .zip(&vectors)
                    .enumerate()
                    .filter(|(i, _)| i % folds.max(1) != fold)
                    .map(|(_, (row, v))| (v.as_slice(), row.category)),
            )
            .unzip();
        classifier.train_head(&head_vectors, &head_labels)?;
        for i in (0..rows.len()).filter(|i| i % folds.max(1) == fold) {
            predictions.push((
                i,
                predict(pipeline, &classifier, &rows[i], &prepared[i], &vectors[i])?,
            ));
        }
    }
    predictions.sort_by_key(|(i, _)| *i);
    let predictions: Vec<Prediction> = predictions.into_iter().map(|(_, p)| p).collect();
    Ok(Evaluation { predictions, folds })
}

/// The inquiry an evaluated (or benchmarked) text stands for. Every one comes
/// with a parcel in transit, so the auto-reply rule is tested on the text alone.
pub fn labelled_inquiry(i: usize, text: &str, marketplace: &str, now: DateTime<Utc>) -> Inquiry {
    Inquiry {
        id: format!("eval-{i}"),
        text: text.to_string(),
        subject: String::new(),
        channel: Channel::Email,
        marketplace: marketplace.to_string(),
        received_at: now,
        customer: Customer::default(),
        order: Some(Order {
            order_id: Some(format!("EVAL-{i}")),
            status: Some("in_transit".to_string()),
            carrier: Some("DHL".to_string()),
            tracking_number: Some(format!("00340434{i:010}")),
            tracking_url: None,
            shipped_at: Some(now),
            estimated_delivery: None,
            value: None,
        }),
        tenant: String::new(),
    }
}

fn example_point(id: u64, vector: &[f32], category: Category) -> Point {
    Point {
        id,
        dense: vector.to_vec(),
        sparse: None,
        payload: example_payload(category),
    }
}

fn predict(
    pipeline: &Pipeline,
    classifier: &dyn IntentClassifier,
    row: &LabelledRow,
    prepared: &Prepared,
    vector: &[f32],
) -> anyhow::Result<Prediction> {
    let guess = classifier.classify(&IntentQuery {
        text: &prepared.analysed_text,
        language: &prepared.language.code,
        vector,
        // The shipped examples alone: no tenant's corrections.
        tenant: "",
        keywords: prepared.keyword_hits,
    })?;
    let reading = pipeline.read(prepared, vector, &guess)?;
    let tier = assign_tier(
        &guess,
        &reading.sentiment,
        &prepared.inquiry,
        &reading.risks,
        prepared.mentions(),
        &pipeline.settings().tier,
    );
    let auto_reply_eligible = pipeline.would_auto_reply(prepared, &guess, &reading, 0.0);
    let auto_reply = auto_reply_eligible
        && guess.confidence >= pipeline.settings().decide.auto_reply_min_confidence;
    Ok(Prediction {
        text: row.text.clone(),
        gold: row.category,
        predicted: guess.category,
        confidence: guess.confidence,
        language: row
            .language
            .clone()
            .unwrap_or_else(|| prepared.language.code.clone()),
        detected_language: prepared.language.code.clone(),
        gold_tier: row.tier.unwrap_or_else(|| row.category.base_tier()),
        tier_labelled: row.tier.is_some(),
        tier,
        gold_language: row.language.clone(),
        gold_polarity: row.polarity,
        polarity: reading.sentiment.label,
        auto_reply,
        auto_reply_eligible,
    })
}

fn macro_f1(predictions: &[&Prediction]) -> (f64, Vec<(Category, f64, f64, usize)>) {
    let mut per = Vec::new();
    let mut f1s = Vec::new();
    for category in Category::ALL {
        let tp = predictions
            .iter()
            .filter(|p| p.gold == category && p.predicted == category)
            .count() as f64;
        let predicted = predictions
            .iter()
            .filter(|p| p.predicted == category)
            .count() as f64;
        let support = predictions.iter().filter(|p| p.gold == category).count();
        if support == 0 && predicted == 0.0 {
            continue;
        }
        let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if support > 0 {
            f1s.push(f1);
        }
        per.push((category, precision, recall, support));
    }
    let mean = if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    };
    (mean, per)
}

/// One confidence bin: how many answers, their mean confidence, and how many were right.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    count: usize,
    confidence: f64,
    correct: f64,
}

/// Ten equal-width confidence bins.
fn reliability(predictions: &[Prediction]) -> [Bin; 10] {
    let mut bins = [Bin::default(); 10];
    for p in predictions {
        let bin = &mut bins[((p.confidence * 10.0) as usize).min(9)];
        bin.confidence += p.confidence as f64;
        bin.correct += f64::from(u8::from(p.gold == p.predicted));
        bin.count += 1;
    }
    for bin in bins.iter_mut().filter(|b| b.count > 0) {
        bin.confidence /= bin.count as f64;
        bin.correct /= bin.count as f64;
    }
    bins
}

/// Expected calibration error over ten equal-width confidence bins.
fn calibration_error(predictions: &[Prediction]) -> f64 {
    let n = predictions.len().max(1) as f64;
    reliability(predictions)
        .iter()
        .map(|b| (b.confidence - b.correct).abs() * b.count as f64 / n)
        .sum()
}

/// The headline figures of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub inquiries: usize,
    /// Gold-P1 inquiries, would-be auto-replies and shipping_status inquiries:
    /// the denominators of the rates below.
    pub p1_inquiries: usize,
    pub auto_replies: usize,
    pub shipping_status_inquiries: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Share of gold-P1 inquiries given P1.
    pub p1_recall: f64,
    /// Share of inquiries given P1 that are gold P1: the price of the recall.
    pub p1_precision: f64,
    /// Share of rows labelled with a tier given exactly that tier.
    pub tier_accuracy: Option<f64>,
    /// Expected calibration error of the intent confidence.
    pub ece: f64,
    /// Share of would-be auto-replies that are truly shipping_status.
    pub auto_reply_precision: f64,
    /// Share of shipping_status inquiries that would be auto-replied.
    pub auto_reply_coverage: f64,
    /// Auto-reply precision and coverage at other confidence thresholds
    /// (`decide.auto_reply_min_confidence`).
    pub auto_reply_curve: Vec<OperatingPoint>,
    /// Over clearly positive or negative rows, when labelled.
    pub polarity_accuracy: Option<f64>,
    pub language_id: Option<f64>,
    pub per_language: BTreeMap<String, LanguageSummary>,
}

/// Auto-replies at one intent-confidence threshold.
#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    pub min_confidence: f32,
    pub auto_replies: usize,
    pub precision: f64,
    pub coverage: f64,
}

/// Thresholds the operating curve is shown at.
const CURVE_THRESHOLDS: [f32; 8] = [0.5, 0.65, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99];

#[derive(Debug, Clone, Serialize)]
pub struct LanguageSummary {
    pub inquiries: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub polarity_accuracy: Option<f64>,
    pub language_id: Option<f64>,
}

/// The predictions of one evaluation run.
#[derive(Debug, Clone)]
pub struct Evaluation {
    predictions: Vec<Prediction>,
    folds: usize,
}

fn accuracy(predictions: &[&Prediction]) -> f64 {
    predictions.iter().filter(|p| p.gold == p.predicted).count() as f64
        / predictions.len().max(1) as f64
}

/// Clearly positive vs clearly negative, as the target is stated.
fn polarity_accuracy(predictions: &[&Prediction]) -> Option<f64> {
    share(
        predictions
            .iter()
            .filter(|p| {
                matches!(
                    p.gold_polarity,
                    Some(Polarity::Positive | Polarity::Negative)
                )
            })
            .map(|p| p.gold_polarity == Some(p.polarity)),
    )
}

fn language_id(predictions: &[&Prediction]) -> Option<f64> {
    share(
        predictions
            .iter()
            .filter_map(|p| p.gold_language.as_ref().map(|g| *g == p.detected_language)),
    )
}

fn share(outcomes: impl Iterator<Item = bool>) -> Option<f64> {
    let (mut hits, mut total) = (0usize, 0usize);
    for ok in outcomes {
        total += 1;
        hits += usize::from(ok);
    }
    (total > 0).then(|| hits as f64 / total as f64)
}

impl Evaluation {
    /// The rows read wrongly (intent, a labelled tier, a clear polarity, or an
    /// auto-reply to something else than a shipping question), as JSON
    /// lines: what to look at before adding examples.
    pub fn mistakes(&self) -> String {
        let mut out = String::new();
        for p in &self.predictions {
            let tier_wrong = p.tier_labelled && p.tier != p.gold_tier;
            let polarity_wrong = matches!(
                p.gold_polarity,
                Some(gold @ (Polarity::Positive | Polarity::Negative)) if gold != p.polarity
            );
            let wrong_auto_reply = p.auto_reply && p.gold != Category::ShippingStatus;
            if p.gold == p.predicted && !tier_wrong && !polarity_wrong && !wrong_auto_reply {
                continue;
            }
            let line = serde_json::json!({
                "text": p.text,
                "language": p.language,
                "category": p.gold.as_str(),
                "predicted": p.predicted.as_str(),
                "confidence": p.confidence,
                "tier": p.gold_tier.as_str(),
                "predicted_tier": p.tier.as_str(),
                "sentiment": p.gold_polarity.map(Polarity::as_str),
                "predicted_sentiment": p.polarity.as_str(),
                "auto_reply": p.auto_reply,
            });
            let _ = writeln!(out, "{line}");
        }
        out
    }

    pub fn summary(&self) -> Summary {
        let all: Vec<&Prediction> = self.predictions.iter().collect();
        let p1: Vec<&&Prediction> = all
            .iter()
            .filter(|p| p.gold_tier == Tier::P1Urgent)
            .collect();
        let replied: Vec<&&Prediction> = all.iter().filter(|p| p.auto_reply).collect();
        let safe = replied
            .iter()
            .filter(|p| p.gold == Category::ShippingStatus)
            .count();
        let shipping = all
            .iter()
            .filter(|p| p.gold == Category::ShippingStatus)
            .count();
        let mut by_language: BTreeMap<&str, Vec<&Prediction>> = BTreeMap::new();
        for p in &all {
            by_language.entry(p.language.as_str()).or_default().push(p);
        }
        Summary {
            inquiries: all.len(),
            p1_inquiries: p1.len(),
            auto_replies: replied.len(),
            shipping_status_inquiries: shipping,
            accuracy: accuracy(&all),
            macro_f1: macro_f1(&all).0,
            p1_recall: p1.iter().filter(|p| p.tier == Tier::P1Urgent).count() as f64
                / p1.len().max(1) as f64,
            p1_precision: {
                let given: Vec<&&Prediction> =
                    all.iter().filter(|p| p.tier == Tier::P1Urgent).collect();
                given
                    .iter()
                    .filter(|p| p.gold_tier == Tier::P1Urgent)
                    .count() as f64
                    / given.len().max(1) as f64
            },
            tier_accuracy: share(
                all.iter()
                    .filter(|p| p.tier_labelled)
                    .map(|p| p.tier == p.gold_tier),
            ),
            ece: calibration_error(&self.predictions),
            auto_reply_precision: safe as f64 / replied.len().max(1) as f64,
            auto_reply_coverage: safe as f64 / shipping.max(1) as f64,
            auto_reply_curve: CURVE_THRESHOLDS
                .iter()
                .map(|&min_confidence| {
                    let replied: Vec<&&Prediction> = all
                        .iter()
                        .filter(|p| p.auto_reply_eligible && p.confidence >= min_confidence)
                        .collect();
                    let safe = replied
                        .iter()
                        .filter(|p| p.gold == Category::ShippingStatus)
                        .count();
                    OperatingPoint {
                        min_confidence,
                        auto_replies: replied.len(),
                        precision: safe as f64 / replied.len().max(1) as f64,
                        coverage: safe as f64 / shipping.max(1) as f64,
                    }
                })
                .collect(),
            polarity_accuracy: polarity_accuracy(&all),
            language_id: language_id(&all),
            per_language: by_language
                .into_iter()
                .map(|(language, group)| {
                    let summary = LanguageSummary {
                        inquiries: group.len(),
                        accuracy: accuracy(&group),
                        macro_f1: macro_f1(&group).0,
                        polarity_accuracy: polarity_accuracy(&group),
                        language_id: language_id(&group),
                    };
                    (language.to_string(), summary)
                })
                .collect(),
        }
    }

    /// The report `firstreply eval` prints, ending with the summary as JSON.
    pub fn render(&self) -> String {
        let summary = self.summary();
        let predictions = &self.predictions;
        let all: Vec<&Prediction> = predictions.iter().collect();
        let mut out = String::new();
        let mode = if self.folds >= 2 {
            format!(
                "{}-fold cross-validation over the file plus the shipped examples",
                self.folds
            )
        } else {
            "shipped examples, minus any evaluated text".to_string()
        };
        let _ = writeln!(out, "inquiries: {} ({mode})", summary.inquiries);
        let _ = writeln!(out, "intent accuracy: {:.4}", summary.accuracy);
        let _ = writeln!(out, "intent macro-F1: {:.4}", summary.macro_f1);
        let _ = writeln!(
            out,
            "P1 recall: {:.4} ({} P1 inquiries), precision {:.4}",
            summary.p1_recall, summary.p1_inquiries, summary.p1_precision
        );
        if let Some(tier_accuracy) = summary.tier_accuracy {
            let _ = writeln!(out, "tier accuracy (exact): {tier_accuracy:.4}");
        }
        let _ = writeln!(out, "calibration error (ECE): {:.4}", summary.ece);
        let _ = writeln!(out, "  confidence      n  mean conf  accuracy");
        for (i, bin) in reliability(predictions)
            .iter()
            .enumerate()
            .filter(|(_, b)| b.count > 0)
        {
            let _ = writeln!(
                out,
                "  {:.1}-{:.1}  {:>7}  {:>9.3}  {:>8.3}",
                i as f64 / 10.0,
                (i + 1) as f64 / 10.0,
                bin.count,
                bin.confidence,
                bin.correct
            );
        }
        let _ = writeln!(
            out,
            "auto-reply precision: {:.4} (of {} would-be auto-replies, given a shipped order)",
            summary.auto_reply_precision, summary.auto_replies
        );
        let _ = writeln!(
            out,
            "auto-reply coverage: {:.4} (of {} shipping_status inquiries)",
            summary.auto_reply_coverage, summary.shipping_status_inquiries
        );
        let _ = writeln!(
            out,
            "  at min confidence  auto-replies  precision  coverage"
        );
        for point in &summary.auto_reply_curve {
            let _ = writeln!(
                out,
                "  {:>17.2}  {:>12}  {:>9.3}  {:>8.3}",
                point.min_confidence, point.auto_replies, point.precision, point.coverage
            );
        }
        if let Some(polarity) = summary.polarity_accuracy {
            let _ = writeln!(
                out,
                "sentiment polarity accuracy (clearly +/-): {polarity:.4}"
            );
        }
        if let Some(identified) = summary.language_id {
            let _ = writeln!(out, "language identification: {identified:.4}");
        }
        let _ = writeln!(
            out,
            "\n{:<18} {:>9} {:>9} {:>8}",
            "category", "precision", "recall", "support"
        );
        for (category, precision, recall, support) in macro_f1(&all).1 {
            let _ = writeln!(
                out,
                "{:<18} {precision:>9.3} {recall:>9.3} {support:>8}",
                category.as_str()
            );
        }
        let _ = writeln!(out, "\nconfusion matrix (rows: gold, columns: predicted)");
        let _ = write!(out, "{:<18}", "");
        for c in Category::ALL {
            let _ = write!(out, " {:>6}", &c.as_str()[..6.min(c.as_str().len())]);
        }
        let _ = writeln!(out);
        for gold in Category::ALL {
            let _ = write!(out, "{:<18}", gold.as_str());
            for predicted in Category::ALL {
                let count = predictions
                    .iter()
                    .filter(|p| p.gold == gold && p.predicted == predicted)
                    .count();
                let _ = write!(out, " {count:>6}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "\n{:<9} {:>6} {:>9} {:>9} {:>10} {:>10}",
            "language", "n", "accuracy", "macro-F1", "lang-id", "polarity"
        );
        let figure = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.3}"));
        for (language, group) in &summary.per_language {
            let _ = writeln!(
                out,
                "{language:<9} {:>6} {:>9.3} {:>9.3} {:>10} {:>10}",
                group.inquiries,
                group.accuracy,
                group.macro_f1,
                figure(group.language_id),
                figure(group.polarity_accuracy),
            );
        }
        let json = serde_json::to_string(&summary).unwrap_or_default();
        let _ = writeln!(out, "\n{json}");
        out
    }
}

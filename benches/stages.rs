//! Per-stage timings of the real pipeline (embedded defaults: multilingual-e5
//! and qdrant-edge, no LLM) over the 624 multilingual evaluation inquiries.
//! Prints one line per stage with the mean and percentiles, then a JSON line.
//!
//! ```sh
//! cargo bench --bench stages            # full run (release profile)
//! ```
//! Without `--bench` (as under `cargo test --all-targets`) it runs a few
//! inquiries once, as a smoke test.

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use firstreply::config::Settings;
use firstreply::domain::Inquiry;
use firstreply::embed::TextKind;
use firstreply::eval::labelled_inquiry;
use firstreply::pipeline::Pipeline;
use firstreply::stages::intent::IntentQuery;

const CORPUS: [&str; 2] = [
    include_str!("../knowledge-base/intents/sets/eval-multilingual.jsonl"),
    include_str!("../knowledge-base/intents/sets/eval-multilingual-holdout.jsonl"),
];

/// Embedding batch size measured besides single texts.
const BATCH: usize = 16;

struct Stage {
    name: &'static str,
    /// Microseconds per item.
    samples: Vec<f64>,
}

impl Stage {
    fn new(name: &'static str) -> Stage {
        Stage {
            name,
            samples: Vec::new(),
        }
    }

    fn time<T>(&mut self, per: usize, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        let micros = started.elapsed().as_secs_f64() * 1e6;
        self.samples.push(micros / per as f64);
        out
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn report(&self) -> serde_json::Value {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
        let (p50, p95, p99) = (
            Stage::percentile(&sorted, 50.0),
            Stage::percentile(&sorted, 95.0),
            Stage::percentile(&sorted, 99.0),
        );
        println!(
            "{:<28} {:>6} {:>11.1} {:>11.1} {:>11.1} {:>11.1}",
            self.name,
            sorted.len(),
            mean,
            p50,
            p95,
            p99
        );
        serde_json::json!({ "n": sorted.len(), "mean_us": mean.round(), "p50_us": p50.round(), "p95_us": p95.round(), "p99_us": p99.round() })
    }
}

fn inquiries() -> Vec<Inquiry> {
    let now = Utc::now();
    CORPUS
        .iter()
        .flat_map(|set| set.lines())
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let row: serde_json::Value = serde_json::from_str(line).expect("corpus line");
            labelled_inquiry(
                i,
                row["text"].as_str().unwrap_or_default(),
                row["marketplace"].as_str().unwrap_or("amazon"),
                now,
            )
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut settings = Settings::defaults();
    settings.knowledge_dir = repo.join("knowledge-base");
    settings.prompts_dir = repo.join("prompts");
    settings.model_dir = std::env::var_os("FIRSTREPLY_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("models"));
    // The smoke run shares the end-to-end tests' store (cargo runs test
    // binaries one after another), so it embeds nothing new.
    settings.data_dir = repo.join(if full {
        "target/bench-data"
    } else {
        "target/test-data/api"
    });

    let started = Instant::now();
    let pipeline = Pipeline::build(settings)?;
    println!(
        "pipeline ready in {:.2} s (second and later runs: nothing to embed)",
        started.elapsed().as_secs_f64()
    );
    let mut inquiries = inquiries();
    if !full {
        inquiries.truncate(BATCH);
    }

    let mut prepare = Stage::new("prepare (fast stages)");
    let mut language = Stage::new("  of which language");
    let mut keywords = Stage::new("  of which keyword scan");
    let mut acknowledge = Stage::new("acknowledge");
    let mut embed = Stage::new("embed, one text");
    let mut embed_batch = Stage::new("embed, batch of 16 (/text)");
    let mut intent = Stage::new("intent k-NN");
    let mut vote = Stage::new("example votes");
    let mut analyze = Stage::new("analyze (embed..knowledge)");
    let mut conclude = Stage::new("decide + compose");
    let mut total = Stage::new("prepare..conclude");

    let now = Utc::now();
    for chunk in inquiries.chunks(BATCH) {
        let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
        embed_batch.time(texts.len(), || {
            pipeline.embedder().embed(&texts, TextKind::Query)
        })?;
    }
    for inquiry in &inquiries {
        let whole = Instant::now();
        let prepared = prepare.time(1, || pipeline.prepare(inquiry.clone()))?;
        language.time(1, || pipeline.detect_language(&prepared.analysed_text));
        keywords.time(1, || {
            pipeline
                .classifier()
                .keyword_hits(&prepared.analysed_text, &prepared.language.code)
                .categories()
        });
        acknowledge.time(1, || pipeline.acknowledge(&prepared, now));
        let analysis = analyze.time(1, || pipeline.analyze(&prepared));
        conclude.time(1, || pipeline.conclude(&prepared, &analysis));
        total.samples.push(whole.elapsed().as_secs_f64() * 1e6);

        let vector = embed.time(1, || {
            pipeline
                .embedder()
                .embed_one(&prepared.analysed_text, TextKind::Query)
        })?;
        let guess = intent.time(1, || {
            pipeline.classifier().classify(&IntentQuery {
                text: &prepared.analysed_text,
                language: &prepared.language.code,
                vector: &vector,
                tenant: "",
                keywords: prepared.keyword_hits,
            })
        })?;
        vote.time(1, || pipeline.read(&prepared, &vector, &guess))?;
    }

    println!(
        "{:<28} {:>6} {:>11} {:>11} {:>11} {:>11}",
        "stage (µs per inquiry)", "n", "mean", "p50", "p95", "p99"
    );
    let mut summary = serde_json::Map::new();
    for stage in [
        &prepare,
        &language,
        &keywords,
        &acknowledge,
        &embed,
        &embed_batch,
        &intent,
        &vote,
        &analyze,
        &conclude,
        &total,
    ] {
        summary.insert(stage.name.to_string(), stage.report());
    }
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

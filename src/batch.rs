//! Batch mode for backlogs: one `Inquiry` per input line in the proto3 JSON
//! mapping, one result per output line carrying the inquiry's `id`. A line
//! that cannot be handled yields an error line, never a silent gap.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::api;
use crate::convert::{handle_result_to_api, inquiry_from_api, triage_to_api};
use crate::error::{ApiError, FieldViolation};
use crate::llm::LlmWriter;
use crate::pipeline::Pipeline;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    Triage,
    Handle,
}

/// How a batch went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub processed: usize,
    pub failed: usize,
}

/// Reads `input`, writes one JSON line per inquiry to `output` (or stdout),
/// with `jobs` inquiries in flight at once.
pub fn run_batch(
    pipeline: &Arc<Pipeline>,
    writer: Option<&LlmWriter>,
    mode: BatchMode,
    input: &Path,
    output: Option<&Path>,
    jobs: usize,
) -> anyhow::Result<BatchSummary> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    // Hidden automatically when stderr is not a terminal.
    let progress = ProgressBar::new(lines.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} inquiries, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = BatchSummary::default();
    // The LLM client is async: the batch's threads wait on the runtime it
    // was started from.
    let llm = writer.zip(tokio::runtime::Handle::try_current().ok());
    // Lines of a window run on `jobs` threads, so the embedding worker can
    // batch them; results are written in input order.
    for window in lines.chunks(WINDOW) {
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Processed>>> =
            window.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, window.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, line)) = window.get(i) else {
                        break;
                    };
                    let result = process_line(pipeline, llm.as_ref(), mode, line);
                    *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                });
            }
        });
        for ((index, _), result) in window.iter().zip(results) {
            let result = result
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| Err((None, ApiError::Internal("not processed".into()))));
            let value = match result {
                Ok(value) => value,
                Err((id, error)) => {
                    summary.failed += 1;
                    error_line(index + 1, id, &error)
                }
            };
            serde_json::to_writer(&mut out, &value)?;
            out.write_all(b"\n")?;
            summary.processed += 1;
            progress.inc(1);
        }
    }
    out.flush()?;
    progress.finish_and_clear();
    Ok(summary)
}

/// Lines processed at a time; bounds memory, keeps output order simple.
const WINDOW: usize = 64;

type Processed = Result<serde_json::Value, (Option<String>, ApiError)>;

fn process_line(
    pipeline: &Pipeline,
    llm: Option<&(&LlmWriter, tokio::runtime::Handle)>,
    mode: BatchMode,
    line: &str,
) -> Processed {
    let parsed: api::Inquiry = serde_json::from_str(line).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string));
        (
            id,
            ApiError::InvalidArgument(vec![FieldViolation::new(
                "line",
                format!("not an Inquiry in proto3 JSON: {e}"),
            )]),
        )
    })?;
    let id = Some(parsed.id.clone());
    let now = Utc::now();
    let inquiry =
        inquiry_from_api(parsed, now).map_err(|v| (id.clone(), ApiError::InvalidArgument(v)))?;
    let prepared = pipeline
        .prepare(inquiry)
        .map_err(|e| (id.clone(), ApiError::from(e)))?;
    let value = match mode {
        BatchMode::Triage => {
            serde_json::to_value(triage_to_api(&pipeline.analyze(&prepared).triage))
        }
        BatchMode::Handle => {
            let ack = pipeline.acknowledge(&prepared, now);
            let analysis = pipeline.analyze(&prepared);
            let mut outcome = pipeline.conclude(&prepared, &analysis);
            if let Some((writer, runtime)) = llm {
                outcome = runtime.block_on(pipeline.write_with_llm(
                    writer,
                    &prepared,
                    &analysis.triage,
                    outcome,
                    |_| {},
                ));
            }
            let result = handle_result_to_api(&ack, &analysis.triage, &outcome);
            let replay = serde_json::to_string(&result).unwrap_or_default();
            pipeline.record_outcome(&analysis.triage, &prepared.inquiry, &outcome, replay);
            serde_json::to_value(result)
        }
    };
    value.map_err(|e| (id, ApiError::Internal(e.to_string())))
}

fn error_line(line: usize, id: Option<String>, error: &ApiError) -> serde_json::Value {
    let (code, violations) = match error {
        ApiError::InvalidArgument(v) => ("INVALID_ARGUMENT", v.as_slice()),
        ApiError::Internal(_) => ("INTERNAL", &[][..]),
    };
    let violations: Vec<_> = violations
        .iter()
        .map(|v| json!({ "field": v.field, "description": v.description }))
        .collect();
    json!({
        "id": id,
        "line": line,
        "error": { "code": code, "message": error.to_string(), "fieldViolations": violations },
    })
}

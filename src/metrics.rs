//! Prometheus metrics: per-stage latency histograms, decisions and hand-off
//! reasons, languages and categories, agents' feedback (acceptance, edit
//! distance) and LLM use, served as text at `/metrics` on
//! `FIRSTREPLY_METRICS_ADDR` when it is set. One process-wide registry:
//! recording is a few atomic or short-locked updates.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters keyed by their label values.
type Counters = BTreeMap<Vec<String>, u64>;

#[derive(Default)]
struct Registry {
    stages: BTreeMap<String, Histogram>,
    counters: BTreeMap<&'static str, Counters>,
    edit_distance_sum: u64,
    edit_distance_count: u64,
}

/// Each counter: name, help, label names.
const COUNTERS: [(&str, &str, &[&str]); 10] = [
    (
        "firstreply_duplicates_total",
        "Handle calls answered by replaying an earlier result (retries).",
        &[],
    ),
    (
        "firstreply_requests_total",
        "gRPC calls by method.",
        &["rpc"],
    ),
    (
        "firstreply_shed_total",
        "Calls refused with RESOURCE_EXHAUSTED at the in-flight limit, by method.",
        &["rpc"],
    ),
    (
        "firstreply_inquiries_total",
        "Inquiries analysed, by language and category.",
        &["language", "category"],
    ),
    (
        "firstreply_decisions_total",
        "Handled inquiries by decision.",
        &["decision"],
    ),
    (
        "firstreply_handoff_reasons_total",
        "Hand-offs by reason code (a hand-off can have several).",
        &["reason"],
    ),
    (
        "firstreply_degraded_total",
        "Inquiries answered in a degraded way because a dependency failed.",
        &["dependency"],
    ),
    (
        "firstreply_feedback_total",
        "Agents' verdicts on drafts.",
        &["action"],
    ),
    (
        "firstreply_llm_texts_total",
        "LLM texts by kind and result (written, or the template used instead).",
        &["kind", "result"],
    ),
    (
        "firstreply_llm_tokens_total",
        "LLM tokens (counted with cl100k) by direction.",
        &["direction"],
    ),
];

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
static STARTED: AtomicU64 = AtomicU64::new(0);

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut registry)
}

/// Records how long a stage took.
pub fn observe_stage(stage: &str, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    with_registry(|r| {
        let histogram = r.stages.entry(stage.to_string()).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    });
}

/// Adds `by` to counter `name` (one of `COUNTERS`) at `labels`.
pub fn count(name: &'static str, labels: &[&str], by: u64) {
    debug_assert!(
        COUNTERS
            .iter()
            .any(|(n, _, l)| *n == name && l.len() == labels.len()),
        "counter {name} with {} labels is not registered",
        labels.len()
    );
    with_registry(|r| {
        *r.counters
            .entry(name)
            .or_default()
            .entry(labels.iter().map(|l| l.to_string()).collect())
            .or_default() += by;
    });
}

/// Records the edit distance of an edited draft.
pub fn observe_edit_distance(distance: usize) {
    with_registry(|r| {
        r.edit_distance_sum += distance as u64;
        r.edit_distance_count += 1;
    });
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut out = String::new();
    let started = STARTED.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP firstreply_start_time_seconds When the process started.\n\
         # TYPE firstreply_start_time_seconds gauge\nfirstreply_start_time_seconds {started}"
    );
    with_registry(|r| {
        let _ = writeln!(
            out,
            "# HELP firstreply_stage_seconds Time spent per pipeline stage.\n\
             # TYPE firstreply_stage_seconds histogram"
        );
        for (stage, h) in &r.stages {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "firstreply_stage_seconds_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "firstreply_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}\n\
                 firstreply_stage_seconds_sum{{stage=\"{stage}\"}} {}\n\
                 firstreply_stage_seconds_count{{stage=\"{stage}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        for (name, help, label_names) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in r.counters.get(name).into_iter().flatten() {
                let labels: Vec<String> = label_names
                    .iter()
                    .zip(labels)
                    .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                    .collect();
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP firstreply_draft_edit_distance Levenshtein distance (characters) between \
             suggested and sent drafts, over edited drafts.\n\
             # TYPE firstreply_draft_edit_distance summary\n\
             firstreply_draft_edit_distance_sum {}\nfirstreply_draft_edit_distance_count {}",
            r.edit_distance_sum, r.edit_distance_count
        );
    });
    out
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener) {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    STARTED.store(started, Ordering::Relaxed);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving Prometheus metrics at /metrics");
    }
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(512);
            let mut buffer = [0u8; 512];
            // The request line is all that matters; stop at the blank line.
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buffer[..n]),
                    _ => return,
                }
            }
            let response = if head.starts_with(b"GET /metrics") {
                let body = render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            if let Err(error) = stream.write_all(response.as_bytes()).await {
                warn!(%error, "metrics response not sent");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_and_counters_render_in_the_text_format() {
        observe_stage("unit-test-stage", Duration::from_millis(3));
        count("firstreply_decisions_total", &["unit-test"], 2);
        let text = render();
        assert!(text
            .contains("firstreply_stage_seconds_bucket{stage=\"unit-test-stage\",le=\"0.005\"} 1"));
        assert!(text.contains(
            "firstreply_stage_seconds_bucket{stage=\"unit-test-stage\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains("firstreply_decisions_total{decision=\"unit-test\"} 2"));
    }
}

//! Load generator: drives a running firstreply server over gRPC with N
//! concurrent callers for a fixed time and prints latency percentiles. The
//! last line is JSON: `throughput` (calls/s), `p50_ms`, `p95_ms`, `p99_ms`,
//! and for `handle` also `ack_p50_ms`, `ack_p99_ms` (time to the
//! acknowledgement) and `errors`.
//!
//! ```sh
//! cargo run --release --bin loadgen -- --addr 127.0.0.1:50051 --rpc handle --concurrency 16 --duration 30
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use firstreply::api::first_reply_client::FirstReplyClient;
use firstreply::api::{self, handle_event::Event};
use serde::Deserialize;
use tonic::transport::{Channel, Endpoint};

/// The built-in corpus: the two multilingual evaluation sets (624 inquiries in 13 languages).
const CORPUS: [&str; 2] = [
    include_str!("../../knowledge-base/intents/sets/eval-multilingual.jsonl"),
    include_str!("../../knowledge-base/intents/sets/eval-multilingual-holdout.jsonl"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rpc {
    Triage,
    Handle,
}

#[derive(Debug, Parser)]
#[command(about = "Drive a firstreply server with concurrent Triage or Handle calls")]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    #[arg(long, value_enum, default_value_t = Rpc::Triage)]
    rpc: Rpc,
    /// Concurrent callers, each with one call in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Unmeasured seconds first (connections, caches).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// JSON lines with `text` (and optional `marketplace`); default: the
    /// built-in multilingual corpus.
    #[arg(long)]
    input: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Line {
    text: String,
    #[serde(default)]
    marketplace: Option<String>,
}

/// What one caller measured.
#[derive(Debug, Default)]
struct Sample {
    latencies: Vec<f64>,
    acks: Vec<f64>,
    errors: usize,
}

fn corpus(input: Option<&PathBuf>) -> anyhow::Result<Vec<Line>> {
    let texts: Vec<String> =
        match input {
            Some(path) => vec![std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?],
            None => CORPUS.iter().map(|s| s.to_string()).collect(),
        };
    let lines: Vec<Line> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("each line must be JSON with a `text`")?;
    anyhow::ensure!(!lines.is_empty(), "the corpus is empty");
    Ok(lines)
}

fn inquiry(n: usize, line: &Line) -> api::Inquiry {
    api::Inquiry {
        id: format!("load-{n}"),
        text: line.text.clone(),
        channel: api::Channel::Marketplace as i32,
        marketplace: line.marketplace.clone().unwrap_or_else(|| "amazon".into()),
        order: Some(api::Order {
            order_id: format!("LOAD-{n}"),
            status: "in_transit".into(),
            carrier: "DHL".into(),
            tracking_number: format!("00340434{n:010}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One call; returns the latency and, for Handle, the time to the acknowledgement.
async fn call(
    client: &mut FirstReplyClient<Channel>,
    rpc: Rpc,
    request: api::Inquiry,
) -> anyhow::Result<(f64, Option<f64>)> {
    let started = Instant::now();
    let ms = |at: Instant| at.duration_since(started).as_secs_f64() * 1000.0;
    match rpc {
        Rpc::Triage => {
            client.triage(request).await?;
            Ok((ms(Instant::now()), None))
        }
        Rpc::Handle => {
            let mut stream = client.handle(request).await?.into_inner();
            let mut ack = None;
            let mut outcome = false;
            while let Some(event) = stream.message().await? {
                match event.event {
                    Some(Event::Acknowledgement(_)) => ack = Some(ms(Instant::now())),
                    Some(Event::AutoReply(_) | Event::Handoff(_)) => outcome = true,
                    _ => {}
                }
            }
            anyhow::ensure!(ack.is_some() && outcome, "stream ended early");
            Ok((ms(Instant::now()), ack))
        }
    }
}

async fn caller(
    channel: Channel,
    rpc: Rpc,
    lines: Arc<Vec<Line>>,
    next: Arc<AtomicUsize>,
    measure_from: Instant,
    until: Instant,
) -> Sample {
    let mut client = FirstReplyClient::new(channel);
    let mut sample = Sample::default();
    while Instant::now() < until {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let request = inquiry(n, &lines[n % lines.len()]);
        let sent = Instant::now();
        let result = call(&mut client, rpc, request).await;
        if sent < measure_from {
            continue;
        }
        match result {
            Ok((latency, ack)) => {
                sample.latencies.push(latency);
                sample.acks.extend(ack);
            }
            Err(error) => {
                if sample.errors == 0 {
                    eprintln!("call failed: {error:#}");
                }
                sample.errors += 1;
            }
        }
    }
    sample
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let lines = Arc::new(corpus(args.input.as_ref())?);
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    let measure_from = Instant::now() + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let next = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            tokio::spawn(caller(
                channel.clone(),
                args.rpc,
                lines.clone(),
                next.clone(),
                measure_from,
                until,
            ))
        })
        .collect();
    let mut total = Sample::default();
    for caller in callers {
        let sample = caller.await?;
        total.latencies.extend(sample.latencies);
        total.acks.extend(sample.acks);
        total.errors += sample.errors;
    }
    total.latencies.sort_by(f64::total_cmp);
    total.acks.sort_by(f64::total_cmp);
    let throughput = total.latencies.len() as f64 / args.duration;
    eprintln!(
        "{:?} x{} for {} s against {}: {} calls, {} errors",
        args.rpc,
        args.concurrency,
        args.duration,
        args.addr,
        total.latencies.len(),
        total.errors
    );
    let mut summary = serde_json::json!({
        "rpc": format!("{:?}", args.rpc).to_lowercase(),
        "concurrency": args.concurrency,
        "calls": total.latencies.len(),
        "errors": total.errors,
        "throughput": round(throughput),
        "p50_ms": round(percentile(&total.latencies, 50.0)),
        "p95_ms": round(percentile(&total.latencies, 95.0)),
        "p99_ms": round(percentile(&total.latencies, 99.0)),
    });
    if args.rpc == Rpc::Handle {
        summary["ack_p50_ms"] = round(percentile(&total.acks, 50.0)).into();
        summary["ack_p99_ms"] = round(percentile(&total.acks, 99.0)).into();
    }
    println!("{summary}");
    anyhow::ensure!(total.errors == 0, "{} calls failed", total.errors);
    Ok(())
}

//! The `firstreply` command line: serve, health check, batch triage and
//! handle, evaluation and knowledge-base ingest.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;

use crate::batch::{run_batch, BatchMode};
use crate::config::Settings;
use crate::llm::LlmWriter;
use crate::pipeline::Pipeline;
use crate::server::ServeOptions;

#[derive(Debug, Parser)]
#[command(
    name = "firstreply",
    version,
    about = "Instant, accurate first replies for cross-border e-commerce support"
)]
pub struct Cli {
    /// Config file layered over the compiled-in defaults (also FIRSTREPLY_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// How a client command reaches a server that serves TLS.
#[derive(Debug, clap::Args)]
pub struct ClientTls {
    /// PEM CA certificate to trust: connect over TLS.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the address' host).
    #[arg(long, requires = "tls_ca")]
    pub tls_domain: Option<String>,
    /// PEM client certificate and key, for a server asking for mutual TLS.
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTls {
    /// An endpoint for `addr` ("host:port"), over TLS when a CA is given.
    pub fn endpoint(&self, addr: &str) -> anyhow::Result<tonic::transport::Endpoint> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let Some(ca) = &self.tls_ca else {
            return Ok(Endpoint::from_shared(format!("http://{addr}"))?);
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let Some(domain) = &self.tls_domain {
            tls = tls.domain_name(domain);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC service on the embedded defaults.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:50051 (default from config).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Ask a running server whether it is SERVING (gRPC health): exit 0 if
    /// so, 1 if not. For container and orchestrator health checks.
    Health {
        /// The server's address (default from config).
        #[arg(long)]
        addr: Option<String>,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Print the SHA-256 of an API key read from standard input, for
    /// `[auth] keys = ["tenant:HASH"]`.
    HashKey,
    /// Triage a JSONL file of inquiries: one TriageResult per line.
    Triage {
        #[arg(long)]
        input: PathBuf,
        /// Output file; standard output when omitted.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Inquiries in flight at once (their embeddings share batches).
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Handle a JSONL file of inquiries: acknowledgement, triage and outcome per line.
    Handle {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: Option<PathBuf>,
        /// Inquiries in flight at once (their embeddings share batches).
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Measure intent, tier, sentiment and language quality on a labelled
    /// CSV or JSONL file.
    Eval {
        #[arg(long)]
        input: PathBuf,
        /// Cross-validate with this many folds, adding the file's other rows to
        /// the shipped examples; 0 classifies with the shipped examples only.
        #[arg(long, default_value_t = 0)]
        folds: usize,
        /// Also write the rows read wrongly to this file, as JSON lines.
        #[arg(long)]
        mistakes: Option<PathBuf>,
    },
    /// Knowledge-base maintenance.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Embed new and changed articles, remove deleted ones.
    Ingest {
        /// Folder of Markdown articles (default: knowledge_dir/articles).
        dir: Option<PathBuf>,
    },
}

pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { addr } => {
            let addr = addr.unwrap_or_else(|| settings.server.addr.clone());
            let serve_settings = settings.clone();
            let pipeline = build(settings).await?;
            let writer = llm_writer(&serve_settings, &pipeline)?.map(Arc::new);
            let metrics_addr = serve_settings.metrics.addr.trim();
            if !metrics_addr.is_empty() {
                let listener = TcpListener::bind(metrics_addr)
                    .await
                    .with_context(|| format!("binding the metrics address {metrics_addr}"))?;
                tokio::spawn(crate::metrics::serve(listener));
            }
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let options = ServeOptions::from_settings(&serve_settings, writer)?;
            crate::server::run(listener, pipeline, options, shutdown_signal()).await
        }
        Command::Health { addr, tls } => {
            let addr = addr.unwrap_or_else(|| settings.server.addr.replace("0.0.0.0", "127.0.0.1"));
            health(tls.endpoint(&addr)?).await
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .context("reading the key from standard input")?;
            let key = key.trim();
            anyhow::ensure!(!key.is_empty(), "no key on standard input");
            println!("{}", crate::auth::hex(&crate::auth::hash_key(key)));
            Ok(())
        }
        Command::Triage {
            input,
            output,
            jobs,
        } => batch(settings, BatchMode::Triage, input, output, jobs).await,
        Command::Handle {
            input,
            output,
            jobs,
        } => batch(settings, BatchMode::Handle, input, output, jobs).await,
        Command::Eval {
            input,
            folds,
            mistakes,
        } => {
            let rows = crate::eval::read_labelled(&input)?;
            let pipeline = build(settings).await?;
            let evaluation =
                tokio::task::spawn_blocking(move || crate::eval::evaluate(&pipeline, &rows, folds))
                    .await??;
            print!("{}", evaluation.render());
            if let Some(path) = mistakes {
                std::fs::write(&path, evaluation.mistakes())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Kb {
            command: KbCommand::Ingest { dir },
        } => {
            let pipeline = build(settings).await?;
            let report =
                tokio::task::spawn_blocking(move || pipeline.ingest_knowledge(dir)).await??;
            println!(
                "added {}, updated {}, removed {}, unchanged {}",
                report.added, report.updated, report.removed, report.unchanged
            );
            Ok(())
        }
    }
}

async fn build(settings: Settings) -> anyhow::Result<Arc<Pipeline>> {
    let started = std::time::Instant::now();
    let pipeline = tokio::task::spawn_blocking(move || Pipeline::build(settings)).await??;
    info!(seconds = started.elapsed().as_secs_f32(), "pipeline ready");
    Ok(Arc::new(pipeline))
}

/// The LLM writer where one is configured (prompts checked either way).
fn llm_writer(settings: &Settings, pipeline: &Pipeline) -> anyhow::Result<Option<LlmWriter>> {
    let writer = LlmWriter::from_settings(settings, pipeline.language_detector())?;
    if let Some(writer) = &writer {
        info!(url = %settings.llm.url, model = writer.model(), "LLM writes drafts");
    }
    Ok(writer)
}

async fn batch(
    settings: Settings,
    mode: BatchMode,
    input: PathBuf,
    output: Option<PathBuf>,
    jobs: usize,
) -> anyhow::Result<()> {
    let llm_settings = settings.clone();
    let pipeline = build(settings).await?;
    let writer = llm_writer(&llm_settings, &pipeline)?;
    let started = std::time::Instant::now();
    let summary = tokio::task::spawn_blocking(move || {
        run_batch(
            &pipeline,
            writer.as_ref(),
            mode,
            &input,
            output.as_deref(),
            jobs,
        )
    })
    .await??;
    let seconds = started.elapsed().as_secs_f64();
    info!(
        processed = summary.processed,
        failed = summary.failed,
        seconds,
        per_second = summary.processed as f64 / seconds.max(1e-9),
        "batch done"
    );
    Ok(())
}

/// Exits with an error unless the server at `endpoint` reports SERVING
/// within five seconds.
async fn health(endpoint: tonic::transport::Endpoint) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let check = async {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", endpoint.uri()))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "firstreply.v1.FirstReply".into(),
            })
            .await?
            .into_inner()
            .status;
        anyhow::Ok(status)
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), check)
        .await
        .context("no answer within 5 s")??;
    anyhow::ensure!(
        status == ServingStatus::Serving as i32,
        "not serving (status {status})"
    );
    println!("SERVING");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    info!("shutting down");
}

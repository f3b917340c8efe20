//! Starts one real firstreply server per test binary (real models, embedded
//! Qdrant on disk under target/) on 127.0.0.1:0, and typed helpers to call it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use firstreply::api::first_reply_client::FirstReplyClient;
use firstreply::api::{self, handle_event::Event};
use firstreply::config::Settings;
use firstreply::llm::LlmWriter;
use firstreply::pipeline::Pipeline;
use firstreply::server::ServeOptions;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Settings for tests: the repo's knowledge base and prompts, models from
/// `models/` (or FIRSTREPLY_MODEL_DIR), a data dir kept under target/ so
/// reruns ingest incrementally.
pub fn test_settings(name: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.knowledge_dir = repo().join("knowledge-base");
    settings.prompts_dir = repo().join("prompts");
    settings.model_dir = std::env::var_os("FIRSTREPLY_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"));
    settings.data_dir = repo().join("target/test-data").join(name);
    // Tests reuse inquiry ids across runs and tests; the test of retries
    // turns replaying on for its own server.
    settings.server.idempotency_window_secs = 0;
    settings
}

static PIPELINE: OnceLock<Arc<Pipeline>> = OnceLock::new();
static SERVER: OnceLock<SocketAddr> = OnceLock::new();

/// The pipeline shared by the test server and the quality tests, built on
/// first use (the first run embeds the labelled examples).
pub fn pipeline() -> Arc<Pipeline> {
    PIPELINE
        .get_or_init(|| Arc::new(Pipeline::build(test_settings("api")).expect("pipeline builds")))
        .clone()
}

/// The address of the shared test server (no LLM), started on first use.
pub fn server() -> SocketAddr {
    *SERVER.get_or_init(|| spawn_server(None))
}

/// Starts another server on the shared pipeline, with `writer` as its LLM.
pub fn spawn_server(writer: Option<Arc<LlmWriter>>) -> SocketAddr {
    let mut options = options();
    options.writer = writer;
    spawn_server_with(options, std::future::pending())
}

/// The test settings' server options: no LLM, no keys.
pub fn options() -> ServeOptions {
    ServeOptions::from_settings(&test_settings("api"), None).expect("server options")
}

/// Starts a server on the shared pipeline with `options`, until `shutdown`.
pub fn spawn_server_with(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> SocketAddr {
    let pipeline = pipeline();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            firstreply::server::run(listener, pipeline, options, shutdown)
                .await
                .expect("server runs");
        });
    });
    rx.recv().expect("server started")
}

pub async fn channel() -> Channel {
    channel_to(server()).await
}

pub async fn channel_to(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

pub async fn client() -> FirstReplyClient<Channel> {
    FirstReplyClient::new(channel().await)
}

pub fn inquiry(id: &str, text: &str) -> api::Inquiry {
    api::Inquiry {
        id: id.to_string(),
        text: text.to_string(),
        channel: api::Channel::Email as i32,
        marketplace: "shopify".to_string(),
        ..Default::default()
    }
}

/// Every event of a Handle call, in order.
pub async fn handle(inquiry: api::Inquiry) -> Vec<Event> {
    handle_on(server(), inquiry).await
}

/// Every event of a Handle call to the server at `addr`, in order.
pub async fn handle_on(addr: SocketAddr, inquiry: api::Inquiry) -> Vec<Event> {
    let mut stream = FirstReplyClient::new(channel_to(addr).await)
        .handle(inquiry)
        .await
        .expect("handle")
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.expect("event") {
        events.push(event.event.expect("event set"));
    }
    events
}

/// The fields an INVALID_ARGUMENT status names, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .expect("bad request details")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

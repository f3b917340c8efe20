//! The gRPC server: `FirstReply` plus health and reflection, on an injected
//! listener with an injected shutdown signal (tests bind port 0).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::api::first_reply_server::{FirstReply, FirstReplyServer};
use crate::api::{self, handle_event::Event, HandleEvent};
use crate::auth::{scope, ApiKeys, Caller};
use crate::config::{ServerSettings, Settings};
use crate::convert::{
    acknowledgement_to_api, article_summary_to_api, articles_from_api, backlog_from_api,
    backlog_to_api, deletion_from_api, feedback_from_api, handle_result_to_api, inquiry_from_api,
    outcome_to_api, removal_from_api, report_from_api, report_to_api, tenant_request_from_api,
    translation_from_api, triage_to_api,
};
use crate::error::ApiError;
use crate::idempotency::{Claim, InFlight, RecentInquiries};
use crate::llm::LlmWriter;
use crate::metrics;
use crate::pipeline::{blocking, Pipeline};

/// How the server runs: the LLM (if any), API keys, limits, shutdown.
#[derive(Clone)]
pub struct ServeOptions {
    pub writer: Option<Arc<LlmWriter>>,
    /// Empty: no authentication.
    pub keys: ApiKeys,
    /// Calls worked on at once; beyond it calls are shed with RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    pub max_message_bytes: usize,
    pub request_timeout: Duration,
    /// Between health turning NOT_SERVING and the listener closing.
    pub shutdown_grace: Duration,
    /// A Handle of an inquiry id handled this recently replays the result.
    pub idempotency_window: Duration,
    /// Serve over TLS (rustls); `None`: plaintext.
    pub tls: Option<ServerTlsConfig>,
}

impl ServeOptions {
    pub fn from_settings(
        settings: &Settings,
        writer: Option<Arc<LlmWriter>>,
    ) -> anyhow::Result<ServeOptions> {
        let server = &settings.server;
        Ok(ServeOptions {
            writer,
            keys: ApiKeys::new(&settings.auth.keys, &settings.api_keys)?,
            max_in_flight: server.max_in_flight.max(1),
            max_message_bytes: server.max_message_bytes,
            request_timeout: Duration::from_secs(server.request_timeout_secs.max(1)),
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            idempotency_window: Duration::from_secs(server.idempotency_window_secs),
            tls: tls_config(server)?,
        })
    }
}

/// The TLS identity (and client CA, for mutual TLS) the settings name, read
/// now so a wrong path stops the start rather than the first call.
fn tls_config(server: &ServerSettings) -> anyhow::Result<Option<ServerTlsConfig>> {
    let read = |setting: &str, path: &str| {
        std::fs::read(path).with_context(|| format!("[server] {setting}: reading {path}"))
    };
    match (server.tls_cert.is_empty(), server.tls_key.is_empty()) {
        (true, true) => {
            anyhow::ensure!(
                server.tls_client_ca.is_empty(),
                "[server] tls_client_ca needs tls_cert and tls_key"
            );
            Ok(None)
        }
        (false, false) => {
            let identity = Identity::from_pem(
                read("tls_cert", &server.tls_cert)?,
                read("tls_key", &server.tls_key)?,
            );
            let mut tls = ServerTlsConfig::new().identity(identity);
            if !server.tls_client_ca.is_empty() {
                let ca = read("tls_client_ca", &server.tls_client_ca)?;
                tls = tls.client_ca_root(Certificate::from_pem(ca));
            }
            Ok(Some(tls))
        }
        _ => anyhow::bail!("[server] tls_cert and tls_key go together: set both or neither"),
    }
}

/// The `FirstReply` service over a shared pipeline, with the LLM that
/// writes drafts where one is configured.
pub struct FirstReplyService {
    pipeline: Arc<Pipeline>,
    writer: Option<Arc<LlmWriter>>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    recent: Arc<RecentInquiries>,
}

impl FirstReplyService {
    /// The service, knowing the inquiries the outcome log holds from the
    /// last idempotency window (a retry after a restart still replays).
    pub fn new(pipeline: Arc<Pipeline>, options: &ServeOptions) -> anyhow::Result<Self> {
        let recent = RecentInquiries::new(options.idempotency_window);
        if !options.idempotency_window.is_zero() {
            let now = Utc::now();
            let since = now - chrono::Duration::from_std(options.idempotency_window)?;
            let instant_now = Instant::now();
            for (tenant, id, at) in pipeline.handled_since(since)? {
                let age = (now - at).to_std().unwrap_or_default();
                if let Some(at) = instant_now.checked_sub(age) {
                    recent.remember(&tenant, &id, at);
                }
            }
        }
        Ok(FirstReplyService {
            pipeline,
            writer: options.writer.clone(),
            permits: Arc::new(Semaphore::new(options.max_in_flight)),
            max_in_flight: options.max_in_flight,
            recent,
        })
    }

    /// Counts the call and admits it, or sheds it at once when the server is
    /// at its limit: a fast RESOURCE_EXHAUSTED the client can retry
    /// elsewhere beats a queue that grows until every call times out.
    fn admit(&self, rpc: &'static str) -> Result<OwnedSemaphorePermit, Status> {
        metrics::count("firstreply_requests_total", &[rpc], 1);
        self.permits.clone().try_acquire_owned().map_err(|_| {
            metrics::count("firstreply_shed_total", &[rpc], 1);
            Status::resource_exhausted(format!(
                "the server is at its limit of {} calls in flight: retry with backoff",
                self.max_in_flight
            ))
        })
    }
}

impl FirstReplyService {
    /// Claims the inquiry id for this call, or gives the events an earlier
    /// Handle of the same id sent within the idempotency window: a helpdesk
    /// retrying a call gets the same answer, its acknowledgement marked
    /// `duplicate`, and nothing new reaches the buyer. A retry arriving
    /// while the first call is still at work waits for it. The check is in
    /// memory; only an actual retry reads the outcome log, and, with a store
    /// shared by replicas, an id this replica has not seen.
    async fn claim(&self, tenant: &str, id: &str) -> Result<InFlight, HandleStream> {
        loop {
            match self.recent.claim(tenant, id) {
                Claim::Fresh(claim) => {
                    // Another replica sharing the store may have handled it.
                    if self.pipeline.shared_store() && !self.recent.window().is_zero() {
                        if let Some(replay) = self.replay(tenant, id).await {
                            return Err(replay);
                        }
                    }
                    return Ok(claim);
                }
                // Ends (with an error: the sender is gone) when that call does.
                Claim::Busy(mut ended) => {
                    let _ = ended.changed().await;
                }
                Claim::Handled => {
                    if let Some(replay) = self.replay(tenant, id).await {
                        return Err(replay);
                    }
                    // Recorded as handled, but the log has no result for it
                    // (its write failed): handle it afresh.
                    return Ok(self.recent.claim_anew(tenant, id));
                }
            }
        }
    }

    async fn replay(&self, tenant: &str, id: &str) -> Option<HandleStream> {
        let window = chrono::Duration::from_std(self.recent.window()).ok()?;
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let json = blocking(&self.pipeline, move |pipeline| {
            pipeline.recent_result(&tenant, &id, window)
        })
        .await
        .and_then(|found| found)
        .map_err(|e| warn!(error = %format!("{e:#}"), "idempotency lookup failed"))
        .ok()??;
        let mut result: api::HandleResult = serde_json::from_str(&json)
            .map_err(|e| warn!(error = %e, "stored result unreadable"))
            .ok()?;
        metrics::count("firstreply_duplicates_total", &[], 1);
        let mut events = Vec::new();
        if let Some(mut ack) = result.acknowledgement.take() {
            ack.duplicate = true;
            events.push(Event::Acknowledgement(ack));
        }
        events.extend(result.triage.take().map(Event::Triage));
        events.extend(result.auto_reply.take().map(Event::AutoReply));
        events.extend(result.handoff.take().map(Event::Handoff));
        Some(Box::pin(tokio_stream::iter(events.into_iter().map(event))))
    }
}

/// The authenticated caller of a request, if authentication is on.
fn caller<T>(request: &Request<T>) -> Option<Caller> {
    request.extensions().get::<Caller>().cloned()
}

type HandleStream = Pin<Box<dyn Stream<Item = Result<HandleEvent, Status>> + Send>>;

fn event(event: Event) -> Result<HandleEvent, Status> {
    Ok(HandleEvent { event: Some(event) })
}

#[tonic::async_trait]
impl FirstReply for FirstReplyService {
    async fn triage(
        &self,
        request: Request<api::Inquiry>,
    ) -> Result<Response<api::TriageResult>, Status> {
        let _permit = self.admit("Triage")?;
        let caller = caller(&request);
        let mut inquiry = request.into_inner();
        scope(caller.as_ref(), &mut inquiry.tenant)?;
        let inquiry = inquiry_from_api(inquiry, Utc::now()).map_err(ApiError::InvalidArgument)?;
        let analysis = blocking(&self.pipeline, move |pipeline| {
            let prepared = pipeline.prepare(inquiry)?;
            Ok::<_, crate::pipeline::PipelineError>(pipeline.analyze(&prepared))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?
        .map_err(ApiError::from)?;
        Ok(Response::new(triage_to_api(&analysis.triage)))
    }

    type HandleStream = HandleStream;

    async fn submit_feedback(
        &self,
        request: Request<api::Feedback>,
    ) -> Result<Response<api::FeedbackReceipt>, Status> {
        let _permit = self.admit("SubmitFeedback")?;
        let caller = caller(&request);
        let mut feedback = request.into_inner();
        scope(caller.as_ref(), &mut feedback.tenant)?;
        let feedback =
            feedback_from_api(feedback, Utc::now()).map_err(ApiError::InvalidArgument)?;
        let receipt = blocking(&self.pipeline, move |pipeline| {
            pipeline.submit_feedback(feedback)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(api::FeedbackReceipt {
            feedback_id: format!("{:016x}", receipt.feedback_id),
            learned: receipt.learned,
            approved_answer_id: receipt.approved_answer_id.unwrap_or_default(),
        }))
    }

    async fn remove_approved_answer(
        &self,
        request: Request<api::RemoveApprovedAnswerRequest>,
    ) -> Result<Response<api::RemoveApprovedAnswerResponse>, Status> {
        let _permit = self.admit("RemoveApprovedAnswer")?;
        let caller = caller(&request);
        let mut removal = request.into_inner();
        scope(caller.as_ref(), &mut removal.tenant)?;
        let (tenant, article_id) = removal_from_api(removal).map_err(ApiError::InvalidArgument)?;
        let removed = blocking(&self.pipeline, move |pipeline| {
            pipeline.remove_approved_answer(&tenant, &article_id)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(api::RemoveApprovedAnswerResponse { removed }))
    }

    async fn report(
        &self,
        request: Request<api::ReportRequest>,
    ) -> Result<Response<api::ReportResponse>, Status> {
        let _permit = self.admit("Report")?;
        let caller = caller(&request);
        let mut report = request.into_inner();
        scope(caller.as_ref(), &mut report.tenant)?;
        let (tenant, from, to) =
            report_from_api(report, Utc::now()).map_err(ApiError::InvalidArgument)?;
        let report = blocking(&self.pipeline, move |pipeline| {
            pipeline.report(&tenant, from, to)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(report_to_api(&report)))
    }

    async fn translate_draft(
        &self,
        request: Request<api::TranslateDraftRequest>,
    ) -> Result<Response<api::TranslateDraftResponse>, Status> {
        let _permit = self.admit("TranslateDraft")?;
        let (text, source, target) =
            translation_from_api(request.into_inner()).map_err(ApiError::InvalidArgument)?;
        let Some(writer) = &self.writer else {
            return Err(Status::failed_precondition(
                "no LLM is configured: set FIRSTREPLY_LLM_URL (see the README)",
            ));
        };
        let source = match source {
            Some(source) => source,
            None => {
                let pipeline = self.pipeline.clone();
                let sample = text.clone();
                blocking(&pipeline, move |pipeline| pipeline.detect_language(&sample))
                    .await
                    .map_err(|e| ApiError::Internal(format!("{e:#}")))?
            }
        };
        let result = writer.translate(&text, &source, &target).await;
        Ok(Response::new(match result {
            Ok(translation) => api::TranslateDraftResponse {
                text: translation.text,
                language: target,
                source_language: translation.source_language,
                translated: true,
                fallback_reason: String::new(),
            },
            Err(error) => {
                warn!(%error, "translation not used");
                api::TranslateDraftResponse {
                    text,
                    language: source.clone(),
                    source_language: source,
                    translated: false,
                    fallback_reason: error.to_string(),
                }
            }
        }))
    }

    async fn upsert_articles(
        &self,
        request: Request<api::UpsertArticlesRequest>,
    ) -> Result<Response<api::UpsertArticlesResponse>, Status> {
        let _permit = self.admit("UpsertArticles")?;
        let caller = caller(&request);
        let mut upsert = request.into_inner();
        scope(caller.as_ref(), &mut upsert.tenant)?;
        let (tenant, articles) = articles_from_api(upsert).map_err(ApiError::InvalidArgument)?;
        let report = blocking(&self.pipeline, move |pipeline| {
            pipeline.upsert_articles(&tenant, &articles)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(api::UpsertArticlesResponse {
            added: report.added as u32,
            updated: report.updated as u32,
            unchanged: report.unchanged as u32,
        }))
    }

    async fn delete_articles(
        &self,
        request: Request<api::DeleteArticlesRequest>,
    ) -> Result<Response<api::DeleteArticlesResponse>, Status> {
        let _permit = self.admit("DeleteArticles")?;
        let caller = caller(&request);
        let mut deletion = request.into_inner();
        scope(caller.as_ref(), &mut deletion.tenant)?;
        let (tenant, ids) = deletion_from_api(deletion).map_err(ApiError::InvalidArgument)?;
        let deleted = blocking(&self.pipeline, move |pipeline| {
            pipeline.delete_articles(&tenant, &ids)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(api::DeleteArticlesResponse {
            deleted: deleted as u32,
        }))
    }

    async fn list_articles(
        &self,
        request: Request<api::ListArticlesRequest>,
    ) -> Result<Response<api::ListArticlesResponse>, Status> {
        let _permit = self.admit("ListArticles")?;
        let caller = caller(&request);
        let mut list = request.into_inner();
        scope(caller.as_ref(), &mut list.tenant)?;
        let tenant = tenant_request_from_api(&list.tenant).map_err(ApiError::InvalidArgument)?;
        let entries = blocking(&self.pipeline, move |pipeline| {
            pipeline.list_articles(&tenant)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        Ok(Response::new(api::ListArticlesResponse {
            articles: entries.iter().map(article_summary_to_api).collect(),
        }))
    }

    async fn reindex_knowledge(
        &self,
        request: Request<api::ReindexKnowledgeRequest>,
    ) -> Result<Response<api::ReindexKnowledgeResponse>, Status> {
        let _permit = self.admit("ReindexKnowledge")?;
        let caller = caller(&request);
        let mut reindex = request.into_inner();
        scope(caller.as_ref(), &mut reindex.tenant)?;
        let tenant = tenant_request_from_api(&reindex.tenant).map_err(ApiError::InvalidArgument)?;
        let named = tenant.clone();
        let report = blocking(&self.pipeline, move |pipeline| {
            pipeline.reindex_tenant(&tenant)
        })
        .await
        .and_then(|result| result)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?
        .ok_or_else(|| {
            Status::not_found(format!(
                "tenant {named:?} has no folder under knowledge-base/tenants/"
            ))
        })?;
        Ok(Response::new(api::ReindexKnowledgeResponse {
            added: report.added as u32,
            updated: report.updated as u32,
            removed: report.removed as u32,
            unchanged: report.unchanged as u32,
        }))
    }

    async fn evaluate_backlog(
        &self,
        request: Request<api::BacklogRequest>,
    ) -> Result<Response<api::BacklogResponse>, Status> {
        let _permit = self.admit("EvaluateBacklog")?;
        let caller = caller(&request);
        let mut backlog = request.into_inner();
        scope(caller.as_ref(), &mut backlog.tenant)?;
        let (now, tenant, open) =
            backlog_from_api(backlog, Utc::now()).map_err(ApiError::InvalidArgument)?;
        let report = self.pipeline.evaluate_backlog(&tenant, now, &open);
        Ok(Response::new(backlog_to_api(&report)))
    }

    async fn handle(
        &self,
        request: Request<api::Inquiry>,
    ) -> Result<Response<HandleStream>, Status> {
        let permit = self.admit("Handle")?;
        let caller = caller(&request);
        let mut inquiry = request.into_inner();
        scope(caller.as_ref(), &mut inquiry.tenant)?;
        let now = Utc::now();
        let inquiry = inquiry_from_api(inquiry, now).map_err(ApiError::InvalidArgument)?;
        let tenant = self.pipeline.tenant_or_default(&inquiry.tenant).to_string();
        let claim = match self.claim(&tenant, &inquiry.id).await {
            Ok(claim) => claim,
            Err(replay) => return Ok(Response::new(replay)),
        };
        let prepared = self.pipeline.prepare(inquiry).map_err(ApiError::from)?;
        let ack = self.pipeline.acknowledge(&prepared, now);
        // Unbounded: a handful of events, plus the pieces of an LLM draft.
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(event(Event::Acknowledgement(acknowledgement_to_api(&ack))));
        let pipeline = self.pipeline.clone();
        let writer = self.writer.clone();
        tokio::spawn(async move {
            // The call counts as in flight until its last event is sent.
            let _permit = permit;
            let result = blocking(&pipeline, move |pipeline| {
                let analysis = pipeline.analyze(&prepared);
                let outcome = pipeline.conclude(&prepared, &analysis);
                (prepared, analysis, outcome)
            })
            .await;
            let (prepared, analysis, outcome) = match result {
                Ok(done) => done,
                Err(error) => {
                    warn!(error = %format!("{error:#}"), "handle failed after the acknowledgement");
                    let _ = tx.send(Err(Status::from(ApiError::Internal(format!("{error:#}")))));
                    return;
                }
            };
            let _ = tx.send(event(Event::Triage(triage_to_api(&analysis.triage))));
            // The LLM, if any, writes last: nothing above waited for it.
            let outcome = match &writer {
                Some(writer) => {
                    pipeline
                        .write_with_llm(writer, &prepared, &analysis.triage, outcome, |piece| {
                            let _ = tx.send(event(Event::DraftChunk(api::DraftChunk {
                                text: piece.to_string(),
                            })));
                        })
                        .await
                }
                None => outcome,
            };
            let _ = tx.send(event(outcome_to_api(&outcome)));
            let replay =
                serde_json::to_string(&handle_result_to_api(&ack, &analysis.triage, &outcome))
                    .unwrap_or_default();
            // Queued for the log, then marked handled: a retry from now on
            // replays it.
            pipeline.record_outcome(&analysis.triage, &prepared.inquiry, &outcome, replay);
            claim.handled();
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

/// Serves until `shutdown` completes: health turns NOT_SERVING, and after
/// the grace period the listener closes and open calls (streams included)
/// drain.
pub async fn run(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<FirstReplyServer<FirstReplyService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    info!(
        addr = %listener.local_addr()?,
        tls = options.tls.is_some(),
        authentication = !options.keys.is_empty(),
        llm = options.writer.is_some(),
        "serving firstreply.v1.FirstReply"
    );
    let service = FirstReplyServer::new(FirstReplyService::new(pipeline.clone(), &options)?)
        .max_decoding_message_size(options.max_message_bytes);
    let keys = options.keys.clone();
    let authenticated = InterceptedService::new(service, move |request: Request<()>| {
        if keys.is_empty() {
            Ok(request)
        } else {
            keys.check(request)
        }
    });
    let grace = options.shutdown_grace;
    let draining = async move {
        shutdown.await;
        info!(
            grace_seconds = grace.as_secs(),
            "shutting down: health NOT_SERVING"
        );
        health_reporter
            .set_not_serving::<FirstReplyServer<FirstReplyService>>()
            .await;
        tokio::time::sleep(grace).await;
        info!("closing the listener; draining open calls");
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = options.tls.clone() {
        builder = builder.tls_config(tls).context("TLS configuration")?;
    }
    builder
        .timeout(options.request_timeout)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(authenticated)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small first message (the acknowledgement)
            // can wait ~40 ms for the peer's delayed ACK.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            draining,
        )
        .await?;
    blocking(&pipeline, |pipeline| pipeline.flush_outcomes()).await?;
    info!("stopped");
    Ok(())
}

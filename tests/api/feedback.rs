//! Agents teach it: feedback is validated and stored, and a corrected intent
//! changes the tenant's next classification of a paraphrase, not anything
//! unrelated, not another tenant's, and not, from one agent alone, a
//! category that many examples support.

use firstreply::api::{self, handle_event::Event};
use tonic::Code;

use crate::helpers::{client, handle, inquiry, violated_fields};

fn feedback(tenant: &str, agent: &str, text: &str, corrected: &str) -> api::Feedback {
    api::Feedback {
        inquiry_id: format!("{tenant}-{agent}-{}", text.len()),
        text: text.to_string(),
        action: api::DraftAction::Rejected as i32,
        corrected_intent: corrected.to_string(),
        agent: agent.to_string(),
        tenant: tenant.to_string(),
        ..Default::default()
    }
}

/// A tenant new to this run: corrections are stored durably, and the test
/// store is kept between runs.
fn fresh_tenant(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{nanos}")
}

async fn intent_of(tenant: &str, text: &str) -> (String, f32) {
    let mut request = inquiry("fb-triage", text);
    request.tenant = tenant.to_string();
    let triage = client()
        .await
        .triage(request)
        .await
        .expect("triage")
        .into_inner();
    let intent = triage.intent.expect("intent");
    (intent.name, intent.confidence)
}

#[tokio::test]
async fn bad_feedback_is_invalid_argument_naming_the_fields() {
    let mut bad = feedback("shop-x", "ana", "  ", "refund_please");
    bad.action = api::DraftAction::Accepted as i32;
    let status = client().await.submit_feedback(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut fields = violated_fields(&status);
    fields.sort();
    // Blank text, unknown category, and an accepted draft without the text sent.
    assert_eq!(fields, ["corrected_intent", "final_text", "text"]);

    let mut no_action = feedback("shop-x", "ana", "Where is my parcel?", "");
    no_action.action = api::DraftAction::Unspecified as i32;
    no_action.agent = String::new();
    let status = client().await.submit_feedback(no_action).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("action"), "{status:?}");
    assert!(status.message().contains("agent"), "{status:?}");
}

#[tokio::test]
async fn a_correction_reclassifies_a_paraphrase_for_its_tenant_only() {
    // A gift note is a change to the order, not a shipping question: the
    // shipped examples read it as shipping_status.
    let corrected = "Is it possible to put a personal message in the box, it's a present";
    let paraphrase = "Please include a handwritten note for my mum in the parcel";
    let unrelated = "Where is my order #5531? The tracking hasn't updated.";
    let shop = fresh_tenant("gift-shop");
    let shop = shop.as_str();
    let (before, _) = intent_of(shop, paraphrase).await;
    assert_ne!(
        before, "order_change",
        "the test needs a wrong reading first"
    );
    let (unrelated_before, _) = intent_of(shop, unrelated).await;

    let receipt = client()
        .await
        .submit_feedback(feedback(shop, "ana", corrected, "order_change"))
        .await
        .expect("feedback accepted")
        .into_inner();
    assert!(receipt.learned);
    assert_eq!(receipt.feedback_id.len(), 16);

    let (after, confidence) = intent_of(shop, paraphrase).await;
    assert_eq!(after, "order_change", "confidence {confidence}");
    assert_eq!(intent_of(shop, unrelated).await.0, unrelated_before);
    // Another tenant's triage is untouched.
    assert_eq!(intent_of("other-shop", paraphrase).await.0, before);
}

#[tokio::test]
async fn one_agent_cannot_overturn_a_strongly_supported_category() {
    let corrected = "Where is my order #4471? It hasn't arrived yet.";
    let paraphrase = "where's my order 8812, still not arrived";
    let shop = fresh_tenant("poison-shop");
    let shop = shop.as_str();
    assert_eq!(intent_of(shop, paraphrase).await.0, "shipping_status");

    client()
        .await
        .submit_feedback(feedback(shop, "mallory", corrected, "refund_return"))
        .await
        .expect("feedback accepted");
    // Stored, but one agent against many examples does not count.
    assert_eq!(intent_of(shop, paraphrase).await.0, "shipping_status");

    // A second agent agreeing does, for texts as close as the corrected one.
    client()
        .await
        .submit_feedback(feedback(shop, "ben", corrected, "refund_return"))
        .await
        .expect("feedback accepted");
    let same_kind = "Where is my order #5120? It hasn't arrived yet.";
    assert_eq!(intent_of(shop, same_kind).await.0, "refund_return");
}

#[tokio::test]
async fn an_accepted_reply_is_retrieved_for_a_similar_inquiry_until_removed() {
    let shop = fresh_tenant("candle-shop");
    let answer = "Our soy candles burn for about 45 hours. Trim the wick to 5 mm before \
                  each use and let the first burn reach the edges.";
    let mut accepted = feedback(
        &shop,
        "ana",
        "How long does the large soy candle burn, and how do I keep it from tunnelling?",
        "",
    );
    accepted.action = api::DraftAction::Edited as i32;
    accepted.final_text = answer.to_string();
    accepted.language = "en".to_string();
    let receipt = client()
        .await
        .submit_feedback(accepted)
        .await
        .expect("feedback accepted")
        .into_inner();
    assert!(!receipt.learned);
    let id = receipt.approved_answer_id;
    assert!(id.starts_with("approved-"), "{id}");

    let approved_hits = |tenant: String| async move {
        let mut request = inquiry(
            "fb-approved",
            "What's the burn time of the big soy candle? Mine tunnels.",
        );
        request.tenant = tenant;
        let triage = client()
            .await
            .triage(request)
            .await
            .expect("triage")
            .into_inner();
        triage
            .knowledge
            .into_iter()
            .filter(|hit| hit.agent_approved)
            .collect::<Vec<_>>()
    };
    let hits = approved_hits(shop.clone()).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].article_id, id);
    assert_eq!(hits[0].answer, answer);
    // Another tenant never sees it.
    assert!(approved_hits(fresh_tenant("other-shop")).await.is_empty());
    // The draft for a person cites it and carries its text.
    let mut similar = inquiry("fb-draft", "how many hours does the large soy candle burn?");
    similar.tenant = shop.clone();
    let draft = handle(similar)
        .await
        .into_iter()
        .find_map(|event| match event {
            Event::Handoff(handoff) => handoff.draft,
            _ => None,
        })
        .expect("a hand-off with a draft");
    assert!(draft.citations.contains(&id), "{draft:?}");
    assert!(draft.text.contains("45 hours"), "{draft:?}");

    let removal = api::RemoveApprovedAnswerRequest {
        tenant: shop.clone(),
        article_id: id.clone(),
    };
    let removed = client()
        .await
        .remove_approved_answer(removal.clone())
        .await
        .expect("removal")
        .into_inner();
    assert!(removed.removed);
    assert!(approved_hits(shop.clone()).await.is_empty());
    let again = client()
        .await
        .remove_approved_answer(removal)
        .await
        .expect("removal")
        .into_inner();
    assert!(!again.removed);
}

fn slice<'a>(slices: &'a [api::ReportSlice], key: &str) -> &'a api::ReportFigures {
    slices
        .iter()
        .find(|s| s.key == key)
        .and_then(|s| s.figures.as_ref())
        .unwrap_or_else(|| panic!("no slice {key}: {slices:?}"))
}

#[tokio::test]
async fn report_figures_follow_a_known_sequence_of_events() {
    let tenant = fresh_tenant("report");
    let now = chrono::Utc::now();
    let at = |t: chrono::DateTime<chrono::Utc>| pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    let sent = now - chrono::Duration::hours(1);
    let send = |id: &str, text: &str| {
        let mut request = inquiry(id, text);
        request.tenant = tenant.clone();
        request.received_at = Some(at(sent));
        request
    };
    // 1: a tracked parcel: answered by the bot.
    let mut wismo = send("r-wismo", "Where is my order 5521? It has not arrived yet.");
    wismo.order = Some(api::Order {
        order_id: "5521".into(),
        status: "in_transit".into(),
        carrier: "UPS".into(),
        tracking_number: "1Z999AA10123456784".into(),
        ..Default::default()
    });
    // 2 and 3: refunds go to a person.
    let refund = send(
        "r-refund",
        "I would like to return the blender and get a refund please.",
    );
    let german = send(
        "r-refund-de",
        "Ich möchte die Lampe zurückschicken und mein Geld zurück.",
    );
    let mut drafts = Vec::new();
    for request in [wismo, refund, german] {
        let events = handle(request).await;
        match events.last() {
            Some(Event::Handoff(handoff)) => {
                assert_eq!(handoff.reason_codes.len(), handoff.reasons.len());
                assert!(
                    handoff
                        .reason_codes
                        .contains(&"category_needs_person".to_string()),
                    "{handoff:?}"
                );
                drafts.push(handoff.draft.clone().expect("draft").text);
            }
            Some(Event::AutoReply(_)) => {}
            other => panic!("no outcome: {other:?}"),
        }
    }
    assert_eq!(drafts.len(), 2, "the refunds are handed off");

    let mut client = client().await;
    let give = |inquiry_id: &str, action: api::DraftAction, final_text: String| {
        let mut feedback = feedback(&tenant, "ana", "a buyer's text", "");
        feedback.inquiry_id = inquiry_id.to_string();
        feedback.action = action as i32;
        feedback.final_text = final_text;
        feedback
    };
    let edited = give(
        "r-refund",
        api::DraftAction::Edited,
        format!("{} Kind regards, Ana", drafts[0]),
    );
    let mut rejected = give("r-refund-de", api::DraftAction::Rejected, String::new());
    rejected.corrected_intent = "complaint".into();
    rejected.text = "Ich möchte die Lampe zurückschicken und mein Geld zurück.".into();
    for feedback in [edited, rejected] {
        client.submit_feedback(feedback).await.expect("feedback");
    }

    let report = client
        .report(api::ReportRequest {
            tenant: tenant.clone(),
            from: Some(at(now - chrono::Duration::hours(2))),
            to: Some(at(now + chrono::Duration::minutes(5))),
        })
        .await
        .expect("report")
        .into_inner();
    let all = report.overall.expect("overall");
    assert_eq!((all.inquiries, all.auto_replies, all.handoffs), (3, 1, 2));
    assert!((all.automation_rate - 1.0 / 3.0).abs() < 1e-6, "{all:?}");
    assert_eq!(
        (all.drafts_accepted, all.drafts_edited, all.drafts_rejected),
        (0, 1, 1)
    );
    assert_eq!(all.acceptance_rate, 0.0);
    // " Kind regards, Ana" appended: 18 characters.
    assert_eq!((all.edits_measured, all.mean_edit_distance), (1, 18.0));
    let needs_person = all
        .handoff_reasons
        .iter()
        .find(|r| r.code == "category_needs_person")
        .expect("reason counted");
    assert_eq!(needs_person.count, 2);
    assert_eq!(
        slice(&report.by_category, "shipping_status").auto_replies,
        1
    );
    assert_eq!(slice(&report.by_category, "refund_return").drafts_edited, 1);
    // The agent's correction decides the category the rejection counts under.
    assert_eq!(slice(&report.by_category, "complaint").drafts_rejected, 1);
    assert_eq!(slice(&report.by_language, "de").inquiries, 1);
    assert_eq!(slice(&report.by_language, "en").inquiries, 2);

    // A window before any of it is empty; a reversed one is refused.
    let earlier = client
        .report(api::ReportRequest {
            tenant: tenant.clone(),
            from: Some(at(now - chrono::Duration::days(3))),
            to: Some(at(now - chrono::Duration::days(2))),
        })
        .await
        .expect("report")
        .into_inner();
    assert_eq!(earlier.overall.expect("overall").inquiries, 0);
    let status = client
        .report(api::ReportRequest {
            tenant,
            from: Some(at(now)),
            to: Some(at(now - chrono::Duration::hours(1))),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["from"]);
}

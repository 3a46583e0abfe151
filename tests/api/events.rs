//! The replies of contract §2 for `POST /v1/channels/{channel}/events`.

use openchannel_gateway::clock::Clock;
use openchannel_sim::messenger::{MessengerClient, RawHeaders};
use openchannel_sim::webhooks::SignedHeaders;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_signed_created_event_is_accepted_with_202() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_event("message.created", created("c1", "u1", "m1", "hello"))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body, json!({"status": "accepted"}));
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.messages().len(), 1);
}

#[tokio::test]
async fn a_repeated_webhook_id_gets_200_with_the_first_body_and_is_not_forwarded_twice() {
    let app = spawn_app().await;
    let data = json!({"chat": {"id": "c"}, "messages": [{"id": "m1"}, {"id": "m2"}]});
    let first = app
        .client
        .post_event_with_id("msg_replay_1", "message.deleted", data.clone())
        .await
        .unwrap();
    let (status, first_body) = status_json(first).await;
    assert_eq!(status, 202);
    assert!(
        first_body["deletion_id"]
            .as_str()
            .unwrap()
            .starts_with("del_")
    );
    let again = app
        .client
        .post_event_with_id("msg_replay_1", "message.deleted", data)
        .await
        .unwrap();
    assert_eq!(status_json(again).await, (200, first_body));

    let created_data = created("c1", "u1", "m9", "once");
    let one = app
        .client
        .post_event_with_id("msg_replay_2", "message.created", created_data.clone())
        .await
        .unwrap();
    assert_eq!(one.status(), 202);
    let two = app
        .client
        .post_event_with_id("msg_replay_2", "message.created", created_data)
        .await
        .unwrap();
    assert_eq!(two.status(), 200);
    app.portal
        .wait_until(WAIT, |p| !p.messages().is_empty())
        .await
        .unwrap();
    app.wait_for("send recorded", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.messages().len(), 1);
}

#[tokio::test]
async fn the_same_webhook_id_on_another_channel_is_a_different_event() {
    let app = spawn_app().await;
    let reply = app
        .client
        .post_event_with_id("msg_x", "message.created", created("c", "u", "m1", "a"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 202);
    // A channel that does not exist never reaches the replay check.
    let other = MessengerClient::new(&app.base, "other", app.secret.clone());
    let reply = other
        .post_event_with_id("msg_x", "message.created", created("c", "u", "m1", "a"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
}

#[tokio::test]
async fn bad_bodies_get_400_with_a_code_and_change_nothing() {
    let app = spawn_app().await;
    let cases = vec![
        (b"{not json".to_vec(), "invalid_json"),
        (br#"{"type":"message.exploded","data":{}}"#.to_vec(), "unknown_type"),
        (br#"{"type":"message.created","data":{"chat":{"id":"c"},"user":{"id":"u"}}}"#.to_vec(), "missing_field"),
        (br#"{"type":"message.created","data":{"chat":{"id":"c"},"user":{"id":"u"},"message":{"id":"m"}}}"#.to_vec(), "missing_field"),
        (
            serde_json::to_vec(&json!({"type": "message.deleted", "data": {"chat": {"id": "c"},
                "messages": (0..1001).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>()}}))
            .unwrap(),
            "too_many_items",
        ),
    ];
    for (body, code) in cases {
        let headers = app
            .client
            .sign(&openchannel_sim::messenger::new_webhook_id(), &body);
        let reply = app.client.post_raw(body, headers).await.unwrap();
        let (status, json) = status_json(reply).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (400, Some(code)),
            "{json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert!(app.store().pending_ops().unwrap().is_empty());
    assert!(app.store().pending_deliveries().unwrap().is_empty());
}

#[tokio::test]
async fn signature_problems_get_401_and_change_nothing() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(
        &json!({"type": "message.created", "data": created("c", "u", "m", "t")}),
    )
    .unwrap();
    let good = app.client.sign("msg_sig", &body);
    let now = good.timestamp.parse::<i64>().unwrap();
    let wrong_secret = MessengerClient::new(
        &app.base,
        "acme",
        openchannel_sim::webhooks::Secret::generate(),
    )
    .sign("msg_sig", &body);
    // Well past the ±300 s window (the exact boundary is pinned by the unit tests with a fixed
    // clock; here a second may tick between signing and checking).
    let stale = resign(&app.secret, "msg_sig", now - 400, &body);
    let future = resign(&app.secret, "msg_sig", now + 400, &body);
    let cases: Vec<(RawHeaders, &str)> = vec![
        (
            RawHeaders {
                signature: None,
                ..good.clone().into()
            },
            "missing_signature_headers",
        ),
        (
            RawHeaders {
                id: None,
                ..good.clone().into()
            },
            "missing_signature_headers",
        ),
        (
            RawHeaders {
                timestamp: None,
                ..good.clone().into()
            },
            "missing_signature_headers",
        ),
        (wrong_secret.into(), "invalid_signature"),
        (
            RawHeaders {
                signature: Some("v2,".to_string() + &good.signature[3..]),
                ..good.clone().into()
            },
            "invalid_signature",
        ),
        (
            RawHeaders {
                id: Some("msg_other".into()),
                ..good.clone().into()
            },
            "invalid_signature",
        ),
        (stale.into(), "timestamp_out_of_window"),
        (future.into(), "timestamp_out_of_window"),
    ];
    for (headers, code) in cases {
        let reply = app.client.post_raw(body.clone(), headers).await.unwrap();
        let (status, json) = status_json(reply).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (401, Some(code)),
            "{json}"
        );
    }
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let reply = app.client.post_raw(tampered, good.clone()).await.unwrap();
    assert_eq!(reply.status(), 401);
    assert!(app.store().pending_ops().unwrap().is_empty());
    // The untouched request still passes: the window and signature checks were the reason.
    let reply = app.client.post_raw(body, good).await.unwrap();
    assert_eq!(reply.status(), 202);
}

#[tokio::test]
async fn the_signature_window_and_acceptance_times_follow_the_gateways_clock() {
    // The gateway's clock stands in 2020, far from the wall clock, and moves only when told.
    const T0_MS: u64 = 1_600_000_000_000;
    let t0 = (T0_MS / 1000) as i64;
    let (clock, hand) = Clock::manual(T0_MS);
    let app = spawn_with(TestOptions {
        clock: Some(clock),
        ..TestOptions::default()
    })
    .await;
    let event = |m: &str| {
        serde_json::to_vec(&json!({"type": "message.created", "data": created("c", "u", m, "t")}))
            .unwrap()
    };
    let post = |body: Vec<u8>, headers: SignedHeaders| {
        let client = &app.client;
        async move { status_json(client.post_raw(body, headers).await.unwrap()).await }
    };
    // Signed by the wall clock: outside the window of the gateway's time.
    let wall = app.client.sign("msg_wall", &event("m0"));
    let (status, json) = post(event("m0"), wall).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (401, Some("timestamp_out_of_window")),
        "{json}"
    );
    // Signed at the gateway's time: accepted, and the message is stamped with that time.
    let (status, _) = post(event("m1"), resign(&app.secret, "msg_1", t0, &event("m1"))).await;
    assert_eq!(status, 202);
    let member = app.portal.member_id();
    let record = |m: &str| app.store().message_record(&member, LINE, "c", m).unwrap();
    app.wait_for("m1 sent", |_| record("m1").is_some()).await;
    assert_eq!(record("m1").unwrap().created_at_ms, T0_MS);
    // 400 s later by the gateway's clock, a signature of t0 is stale; one of the new time is not.
    hand.advance(std::time::Duration::from_secs(400));
    let (status, json) = post(event("m2"), resign(&app.secret, "msg_2", t0, &event("m2"))).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (401, Some("timestamp_out_of_window")),
        "{json}"
    );
    let later = resign(&app.secret, "msg_3", t0 + 400, &event("m2"));
    assert_eq!(post(event("m2"), later).await.0, 202);
    app.wait_for("m2 sent", |_| record("m2").is_some()).await;
    assert_eq!(record("m2").unwrap().created_at_ms, T0_MS + 400_000);
}

fn resign(
    secret: &openchannel_sim::webhooks::Secret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    SignedHeaders::new(secret, id, timestamp, body)
}

#[tokio::test]
async fn an_unknown_channel_is_404_and_an_oversized_body_is_413() {
    let app = spawn_app().await;
    let other = MessengerClient::new(&app.base, "nope", app.secret.clone());
    let (status, json) = status_json(
        other
            .post_event("message.created", created("c", "u", "m", "t"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (404, Some("unknown_channel"))
    );

    let huge = "x".repeat(70_000);
    let (status, json) = status_json(
        app.client
            .post_event("message.created", created("c", "u", "m", &huge))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert!(app.store().pending_ops().unwrap().is_empty());
}

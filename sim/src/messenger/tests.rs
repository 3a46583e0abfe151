//! Tests of the fake platform: both directions over real loopback HTTP.

mod client;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::http_client;
use super::*;
use crate::webhooks::{Secret as WebhookSecret, SignedHeaders};

const WAIT: Duration = Duration::from_secs(10);

/// Posts `{"type", "data"}` to the fake the way the gateway does, signed with `secret`.
async fn deliver(
    fake: &FakeMessenger,
    secret: &WebhookSecret,
    webhook_id: &str,
    event_type: &str,
    data: Value,
) -> reqwest::Response {
    let body = json!({ "type": event_type, "data": data }).to_string();
    let h = SignedHeaders::new(secret, webhook_id, unix_now(), body.as_bytes());
    http_client()
        .post(fake.url())
        .header("webhook-id", h.id)
        .header("webhook-timestamp", h.timestamp)
        .header("webhook-signature", h.signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("fake answers")
}

async fn started() -> (FakeMessenger, WebhookSecret) {
    let secret = WebhookSecret::generate();
    let fake = FakeMessenger::start(secret.clone())
        .await
        .expect("fake starts");
    (fake, secret)
}

fn created_data() -> Value {
    json!({"chat": {"id": "c1"}, "message": {"bitrix_id": 7, "text": "hi"}, "operator": {"id": 1}})
}

#[tokio::test]
async fn a_signed_delivery_is_accepted_recorded_and_answered_with_an_ext_op_id() {
    let (fake, secret) = started().await;

    let resp = deliver(
        &fake,
        &secret,
        "msg_1",
        "operator.message.created",
        created_data(),
    )
    .await;

    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"message_id": "ext-op-1"})
    );
    let expected = Delivery {
        webhook_id: "msg_1".into(),
        event_type: "operator.message.created".into(),
        data: created_data(),
        status_returned: 200,
        signature_ok: true,
    };
    assert_eq!(fake.deliveries(), vec![expected.clone()]);
    assert_eq!(fake.events(), vec![expected]);
    assert!(fake.url().starts_with("http://127.0.0.1:") && fake.url().ends_with("/hook"));
}

#[tokio::test]
async fn a_forged_delivery_gets_401_and_is_recorded_as_rejected() {
    let (fake, _secret) = started().await;

    let resp = deliver(
        &fake,
        &WebhookSecret::generate(),
        "msg_f",
        "line.disconnected",
        json!({"line": 1}),
    )
    .await;

    assert_eq!(resp.status(), 401);
    let d = fake.deliveries();
    assert_eq!(d.len(), 1);
    assert!(!d[0].signature_ok);
    assert_eq!(d[0].status_returned, 401);
    assert_eq!(d[0].event_type, "line.disconnected");
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn an_unsigned_delivery_gets_401() {
    let (fake, _secret) = started().await;

    let resp = http_client()
        .post(fake.url())
        .body(r#"{"type":"line.disconnected","data":{}}"#)
        .send()
        .await
        .expect("fake answers");

    assert_eq!(resp.status(), 401);
    assert_eq!(fake.deliveries()[0].webhook_id, "");
    assert!(!fake.deliveries()[0].signature_ok);
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_event_envelope_gets_400() {
    let (fake, secret) = started().await;
    let body = b"not json".to_vec();
    let h = SignedHeaders::new(&secret, "msg_x", unix_now(), &body);

    let resp = http_client()
        .post(fake.url())
        .header("webhook-id", h.id)
        .header("webhook-timestamp", h.timestamp)
        .header("webhook-signature", h.signature)
        .body(body)
        .send()
        .await
        .expect("fake answers");

    assert_eq!(resp.status(), 400);
    assert!(fake.deliveries()[0].signature_ok);
}

#[tokio::test]
async fn fail_next_fails_that_many_attempts_then_accepts_the_retry() {
    let (fake, secret) = started().await;
    fake.set_mode(Mode::FailNext(2, 503));

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            deliver(
                &fake,
                &secret,
                "msg_r",
                "line.disconnected",
                json!({"line": 3}),
            )
            .await
            .status()
            .as_u16(),
        );
    }

    assert_eq!(statuses, [503, 503, 200]);
    let d = fake.deliveries();
    assert_eq!(
        d.iter().map(|d| d.status_returned).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    assert!(d.iter().all(|d| d.webhook_id == "msg_r" && d.signature_ok));
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test]
async fn fail_mode_answers_the_same_status_every_time() {
    let (fake, secret) = started().await;
    fake.set_mode(Mode::Fail(410));

    for id in ["a", "b", "a"] {
        let resp = deliver(&fake, &secret, id, "line.disconnected", json!({"line": 1})).await;
        assert_eq!(resp.status(), 410, "{id}");
    }
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn hang_mode_never_answers_but_records_the_attempt() {
    let (fake, secret) = started().await;
    fake.set_mode(Mode::Hang);
    let body = json!({"type": "line.disconnected", "data": {"line": 1}}).to_string();
    let h = SignedHeaders::new(&secret, "msg_h", unix_now(), body.as_bytes());

    let result = http_client()
        .post(fake.url())
        .header("webhook-id", h.id)
        .header("webhook-timestamp", h.timestamp)
        .header("webhook-signature", h.signature)
        .body(body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;

    assert!(result.expect_err("no answer").is_timeout());
    let d = fake
        .wait_for(|d| !d.is_empty(), WAIT)
        .await
        .expect("recorded");
    assert_eq!(d[0].status_returned, 0);
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn reply_ids_override_the_next_created_reply_once_and_retries_get_the_first_reply() {
    let (fake, secret) = started().await;
    fake.set_reply_ids(Some(vec!["x1".into(), "x2".into()]));

    let first = deliver(
        &fake,
        &secret,
        "m1",
        "operator.message.created",
        created_data(),
    )
    .await;
    let retry = deliver(
        &fake,
        &secret,
        "m1",
        "operator.message.created",
        created_data(),
    )
    .await;
    let second = deliver(
        &fake,
        &secret,
        "m2",
        "operator.message.created",
        created_data(),
    )
    .await;
    let other = deliver(&fake, &secret, "m3", "operator.message.deleted", json!({})).await;

    let body = |r: reqwest::Response| async move { r.json::<Value>().await.expect("json") };
    assert_eq!(body(first).await, json!({"message_ids": ["x1", "x2"]}));
    assert_eq!(body(retry).await, json!({"message_ids": ["x1", "x2"]}));
    assert_eq!(body(second).await, json!({"message_id": "ext-op-1"}));
    assert_eq!(body(other).await, json!({}));
    assert_eq!(fake.deliveries().len(), 4);
    assert_eq!(
        fake.events()
            .iter()
            .map(|e| e.webhook_id.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2", "m3"]
    );
}

#[tokio::test]
async fn wait_for_wakes_on_the_delivery_instead_of_sleeping() {
    let (fake, secret) = started().await;
    let started_at = Instant::now();

    let (waited, _) = tokio::join!(fake.wait_for_events(2, WAIT), async {
        deliver(
            &fake,
            &secret,
            "w1",
            "line.disconnected",
            json!({"line": 1}),
        )
        .await;
        deliver(
            &fake,
            &secret,
            "w2",
            "line.disconnected",
            json!({"line": 1}),
        )
        .await;
    });

    let events = waited.expect("both events seen");
    assert_eq!(events.len(), 2);
    assert!(started_at.elapsed() < WAIT / 2, "returned on notification");
}

#[tokio::test]
async fn wait_for_times_out_with_a_dump_of_what_was_seen() {
    let (fake, secret) = started().await;
    deliver(
        &fake,
        &secret,
        "seen_1",
        "line.disconnected",
        json!({"line": 9}),
    )
    .await;

    let err = fake
        .wait_for(|d| d.len() > 1, Duration::from_millis(50))
        .await
        .expect_err("times out");

    assert!(
        err.contains("1 deliveries seen") && err.contains("seen_1"),
        "{err}"
    );
}

#[tokio::test]
async fn only_post_counts_as_a_delivery() {
    let (fake, _secret) = started().await;

    let resp = http_client()
        .get(fake.url())
        .send()
        .await
        .expect("fake answers");

    assert_eq!(resp.status(), 405);
    assert!(fake.deliveries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_also_runs_on_a_multi_threaded_runtime() {
    let (fake, secret) = started().await;

    let resp = deliver(
        &fake,
        &secret,
        "mt",
        "line.disconnected",
        json!({"line": 1}),
    )
    .await;

    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn stop_shuts_the_server_down() {
    let (fake, _secret) = started().await;
    let url = fake.url();

    fake.stop().await;

    let result = http_client().post(&url).body("{}").send().await;
    assert!(result.expect_err("nobody listens").is_connect());
}

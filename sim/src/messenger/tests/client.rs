//! Tests of `MessengerClient` against the fake (which accepts any path).

use super::*;

#[tokio::test]
async fn the_client_signs_events_that_a_verifier_accepts() {
    let (fake, secret) = started().await;
    let base = fake.url().trim_end_matches("/hook").to_owned();
    let client = MessengerClient::new(&base, "acme", secret);

    let resp = client
        .post_event("line.disconnected", json!({"line": 5}))
        .await
        .expect("sent");

    assert_eq!(
        client.events_url(),
        format!("{base}/v1/channels/acme/events")
    );
    assert_eq!(resp.status(), 200);
    let d = fake.deliveries();
    assert!(d[0].signature_ok);
    assert_eq!(d[0].data, json!({"line": 5}));
    let id = &d[0].webhook_id;
    assert!(
        id.len() == 28
            && id.starts_with("msg_")
            && id[4..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
}

#[tokio::test]
async fn the_client_replays_with_a_chosen_id_and_sends_raw_headers_verbatim() {
    let (fake, secret) = started().await;
    let client = MessengerClient::new(&fake.url(), "acme", secret);
    let body = br#"{"type":"line.disconnected","data":{}}"#.to_vec();
    let signed = client.sign("msg_raw", &body);

    let replay = client
        .post_event_with_id("msg_same", "line.disconnected", json!({}))
        .await
        .expect("sent");
    let ok = client
        .post_raw(body.clone(), signed.clone())
        .await
        .expect("sent");
    let no_sig = RawHeaders {
        signature: None,
        ..RawHeaders::from(signed)
    };
    let missing = client.post_raw(body, no_sig).await.expect("sent");

    assert_eq!(
        [replay.status(), ok.status(), missing.status()],
        [200, 200, 401]
    );
    let ids: Vec<_> = fake
        .deliveries()
        .into_iter()
        .map(|d| d.webhook_id)
        .collect();
    assert_eq!(ids, ["msg_same", "msg_raw", "msg_raw"]);
}

#[test]
fn webhook_ids_are_fresh_each_time() {
    assert_ne!(new_webhook_id(), new_webhook_id());
}

use crate::helpers::*;

#[tokio::test]
async fn healthz_and_readyz_answer_200_and_metrics_are_prometheus_text() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let (status, _) = app
        .post_event("message.created", created("c1", "u1", "m1", "hi"))
        .await;
    assert_eq!(status, 202);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("gateway_webhooks_total{type=\"message.created\",reply=\"accepted\"} 1"),
        "{text}"
    );
}

/// A sync that fails (fault injected in the writer after sled's flush, where an `fdatasync`
/// returning EIO would fail) poisons the store: the event it covered is never acknowledged nor
/// handed to the outbox, its retry is not answered `200`, every later write answers `503` with
/// `Retry-After`, `/readyz` turns `503` and a metric says so, until restart; after the restart
/// everything acknowledged is there and is sent exactly once.
#[tokio::test]
async fn a_failed_sync_poisons_storage_until_restart_and_loses_nothing_acknowledged() {
    let app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    for (id, message) in [("w0", "m0"), ("w1", "m1"), ("w2", "m2")] {
        assert_eq!(post(&app, id, message).await.status(), 202);
    }
    assert_eq!(app.get("/readyz").await.status(), 200);

    app.store().inject_sync_failure();
    let refused = post(&app, "w3", "m3").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let (_, body) = status_json(refused).await;
    assert_eq!(body["error"]["code"], "storage_unavailable");
    // The sender's retry of the same webhook-id: still refused, not a 200 replay.
    assert_eq!(post(&app, "w3", "m3").await.status(), 503);
    // Every later write too, and readiness.
    assert_eq!(post(&app, "w4", "m4").await.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_storage_poisoned 1"), "{metrics}");
    // Only the three acknowledged events were handed to the outbox.
    assert!(metrics.contains("gateway_queued_ops 3"), "{metrics}");
    assert!(app.store().poisoned().is_some());

    let mut app = app.restart().await;
    assert!(app.store().poisoned().is_none());
    assert_eq!(app.get("/readyz").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_storage_poisoned 0"), "{metrics}");
    // The refused event may have reached the disk before the sync failed (then it is pending
    // now, and its retry is a replay) or not (then the retry is accepted now): either way the
    // sender's retry settles it, and it is sent once.
    let retried = post(&app, "w3", "m3").await.status();
    assert!(retried == 200 || retried == 202, "{retried}");
    app.install().await;
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let sent: Vec<String> = app
        .portal
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(sent, vec!["m0", "m1", "m2", "m3"]);
}

async fn post(app: &TestApp, webhook_id: &str, message: &str) -> reqwest::Response {
    app.client
        .post_event_with_id(
            webhook_id,
            "message.created",
            created("c", "u", message, "x"),
        )
        .await
        .expect("request")
}

#[tokio::test]
async fn bitrix_error_codes_unknown_to_the_gateway_count_as_other_in_metrics() {
    use openchannel_sim::portal::{Fault, FaultRule};
    let app = crate::helpers::spawn_app().await;
    for i in 0..3 {
        app.portal.push_fault(FaultRule::on(
            "imconnector.send.messages",
            Fault::Error {
                status: 400,
                code: format!("RANDOM_{i}\"}} 1\nforged_metric"),
                description: "made up".into(),
            },
        ));
        let (status, _) = app
            .post_event(
                "message.created",
                crate::helpers::created("c", "u", &format!("m{i}"), "x"),
            )
            .await;
        assert_eq!(status, 202);
        app.wait_for("the item failed", |s| s.pending_ops().unwrap().is_empty())
            .await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains("RANDOM") && !text.contains("forged"),
        "{text}"
    );
    let other = text
        .lines()
        .find(|l| {
            l.starts_with("gateway_bitrix_requests_total")
                && l.contains("outcome=\"other\"")
                && l.contains("method=\"imconnector.send.messages\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(other.ends_with(" 3"), "{other}");
}

/// A send whose answer comes back after the store was poisoned cannot be recorded: the outbox
/// holds its requests until the restart instead of sending the message again each time its
/// recording fails.
#[tokio::test]
async fn after_a_failed_sync_nothing_unrecordable_is_sent_again() {
    use openchannel_sim::portal::{Fault, FaultRule};
    let app = spawn_app().await;
    app.portal.push_fault(FaultRule::on(
        "imconnector.send.messages",
        Fault::Delay(std::time::Duration::from_millis(500)),
    ));
    assert_eq!(post(&app, "w1", "m1").await.status(), 202);
    // Bitrix24 has it; its answer is on the way.
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
    app.store().inject_sync_failure();
    assert_eq!(post(&app, "w2", "m2").await.status(), 503);
    app.wait_for_metric("gateway_outbox_held_total{reason=\"storage\"}")
        .await;
    assert_eq!(
        calls_of(&app.portal, "imconnector.send.messages"),
        1,
        "sent once, not again while results cannot be recorded"
    );
}

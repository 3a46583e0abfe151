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

#[tokio::test]
async fn when_storage_refuses_writes_readyz_and_events_answer_503_with_retry_after() {
    let app = spawn_app().await;
    app.store().set_writes_disabled(true);
    assert_eq!(app.get("/readyz").await.status(), 503);
    let reply = app
        .client
        .post_event("message.created", created("c1", "u1", "m1", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.headers()["retry-after"], "5");
    let (_, body) = status_json(reply).await;
    assert_eq!(body["error"]["code"], "storage_unavailable");
    app.store().set_writes_disabled(false);
    assert!(
        app.store().pending_ops().unwrap().is_empty(),
        "nothing was stored"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn bitrix_error_codes_unknown_to_the_gateway_count_as_other_in_metrics() {
    use openchannel_gateway::sim::portal::{Fault, FaultRule};
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

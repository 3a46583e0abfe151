//! Requests sized by what Bitrix24 can do (contract §5): the fake portal charges server time per
//! item (virtual, reported in `time.duration` / `result_time`) and cuts any request at 60 s
//! after processing part of it, as the cloud does. A backlog must drain without one request cut
//! (a cut send request is half done, and its resend duplicates messages in the open line).

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use openchannel_sim::portal::FakePortalConfig;

use crate::helpers::*;

const CHATS: usize = 100;
const PER_CHAT: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_5000_sends_drains_without_a_cut_or_a_duplicate() {
    let app = spawn_with(TestOptions {
        install: false,
        request_timeout_ms: 30_000,
        portal: FakePortalConfig {
            item_cost: Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // The backlog: accepted while the portal has not installed the app; chats in parallel, each
    // chat's messages one after the other (acceptance order is a chat's order).
    let statuses: Vec<Vec<u16>> = futures_util::stream::iter(0..CHATS)
        .map(|c| {
            let client = app.client.clone();
            async move {
                let mut statuses = Vec::new();
                for m in 0..PER_CHAT {
                    let data = created(&format!("chat-{c}"), "u", &format!("m-{c}-{m}"), "hello");
                    let reply = client.post_event("message.created", data).await;
                    statuses.push(reply.expect("request").status().as_u16());
                }
                statuses
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().flatten().all(|&s| s == 202));
    let mut app = app;
    app.install().await;
    app.portal
        .wait_until(Duration::from_secs(120), |p| {
            p.messages().len() >= CHATS * PER_CHAT
        })
        .await
        .unwrap();
    let messages = app.portal.messages();
    let unique: HashSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(messages.len(), CHATS * PER_CHAT, "no duplicate");
    assert_eq!(unique.len(), CHATS * PER_CHAT);
    assert_eq!(app.portal.cut_requests(), 0, "no request over the limit");
    // Each chat's messages arrived in order.
    for c in 0..CHATS {
        let order: Vec<&str> = messages
            .iter()
            .filter(|m| m.chat_id == format!("chat-{c}"))
            .map(|m| m.message_id.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_CHAT).map(|m| format!("m-{c}-{m}")).collect();
        assert_eq!(order, expected);
    }
    let sends = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.method == "batch" || r.method == "imconnector.send.messages")
        .count();
    eprintln!(
        "{} messages in {sends} requests, none cut",
        CHATS * PER_CHAT
    );
}

/// One message in each of `texts.len()` chats, accepted while the portal is not installed.
async fn held_messages(app: &TestApp, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        let (status, _) = app
            .post_event(
                "message.created",
                created(&format!("chat-{i}"), "u", &format!("m-{i}"), text),
            )
            .await;
        assert_eq!(status, 202);
    }
}

#[tokio::test]
async fn text_with_batch_back_references_is_sent_as_a_direct_call_unaltered() {
    // One item per call, so that the three messages make three calls.
    let mut app = spawn_with(TestOptions {
        install: false,
        max_batch: 1,
        ..Default::default()
    })
    .await;
    let texts = [
        "plain one",
        "costs $result[c0][0] or $next, see $total",
        "plain two",
    ];
    held_messages(&app, &texts).await;
    app.install().await;
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 3)
        .await
        .unwrap();
    for (i, text) in texts.iter().enumerate() {
        let stored = app
            .portal
            .messages()
            .into_iter()
            .find(|m| m.message_id == format!("m-{i}"))
            .expect("sent");
        assert_eq!(stored.text, *text, "unaltered");
    }
    let direct = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.method == "imconnector.send.messages")
        .count();
    let batched: usize = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.method == "batch")
        .map(|r| {
            r.commands
                .iter()
                .filter(|c| *c == "imconnector.send.messages")
                .count()
        })
        .sum();
    assert_eq!((direct, batched), (1, 2), "{:?}", app.portal.requests());
}

#[tokio::test]
async fn a_413_from_the_portals_proxy_splits_the_request_instead_of_failing_it() {
    use openchannel_sim::portal::{Fault, FaultRule};
    let mut app = spawn_with(TestOptions {
        install: false,
        max_batch: 1,
        ..Default::default()
    })
    .await;
    held_messages(&app, &["one", "two", "three", "four"]).await;
    app.portal
        .push_fault(FaultRule::on("batch", Fault::TooLarge));
    app.install().await;
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 4)
        .await
        .unwrap();
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains(r#"op="send",result="failed""#),
        "nothing failed: {metrics}"
    );
    let refused = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.status == 413)
        .count();
    assert_eq!(refused, 1);
}

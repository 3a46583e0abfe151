//! Accepted events reach the portal: send/update calls, the mapping, per-chat order, per-item
//! failures, held events, transient faults.

use openchannel_gateway::store::MessageState;
use openchannel_sim::portal::{FakePortalConfig, Fault, FaultRule};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_created_message_reaches_the_portal_and_its_ids_are_recorded() {
    let app = spawn_app().await;
    let (status, _) = app.post_event("message.created", json!({
        "chat": {"id": "chat-1", "name": "Support", "url": "https://x/c"},
        "user": {"id": "user-1", "name": "Ivan", "last_name": "Petrov", "email": "i@x.test"},
        "message": {"id": "msg-1", "date": 1_773_265_993, "text": "Good afternoon",
                    "files": [{"url": "https://x/spec.pdf", "name": "spec.pdf"}]}
    })).await;
    assert_eq!(status, 202);
    app.wait_for("message sent", |s| {
        s.message_record(&app.portal.member_id(), LINE, "chat-1", "msg-1")
            .unwrap()
            .is_some_and(|m| m.state == MessageState::Sent)
    })
    .await;
    let messages = app.portal.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        (
            m.connector.as_str(),
            m.line,
            m.chat_id.as_str(),
            m.user_id.as_str()
        ),
        ("ocgw", LINE, "chat-1", "user-1")
    );
    assert_eq!(m.text, "Good afternoon");
    assert_eq!(m.files.len(), 1);
    let member = app.portal.member_id();
    let user = app
        .store()
        .user_link(&member, "user-1")
        .unwrap()
        .expect("user mapped");
    assert!(!user.bitrix_user_id.is_empty());
    let chat = app
        .store()
        .chat_link(&member, LINE, "chat-1")
        .unwrap()
        .expect("chat mapped");
    assert!(!chat.bitrix_chat_id.is_empty() && !chat.session_id.is_empty());
    let record = app
        .store()
        .message_record(&member, LINE, "chat-1", "msg-1")
        .unwrap()
        .unwrap();
    assert_eq!(record.user_id, "user-1");
}

#[tokio::test]
async fn an_update_follows_its_create_even_when_both_arrive_at_once() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_event("message.created", created("c", "u", "m1", "first"))
            .await
            .0,
        202
    );
    assert_eq!(
        app.post_event("message.updated", created("c", "u", "m1", "edited"))
            .await
            .0,
        202
    );
    assert_eq!(
        app.post_event("message.created", created("c", "u", "m2", "second"))
            .await
            .0,
        202
    );
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let messages = app.portal.messages();
    let m1 = messages.iter().find(|m| m.message_id == "m1").unwrap();
    assert_eq!((m1.text.as_str(), m1.update_count), ("edited", 1));
    assert!(
        messages
            .iter()
            .find(|m| m.message_id == "m2")
            .unwrap()
            .internal_id
            > m1.internal_id,
        "created in order"
    );
}

#[tokio::test]
async fn while_the_portal_budget_is_spent_messages_of_many_chats_share_requests() {
    let app = spawn_with(TestOptions {
        bucket: (1.0, 12),
        ..Default::default()
    })
    .await;
    let before = app.portal.requests().len();
    let posts = (0..60).map(|i| {
        app.post_event(
            "message.created",
            created(&format!("c{i}"), &format!("u{i}"), "m", "hi"),
        )
    });
    for (status, _) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 202);
    }
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.messages().len(), 60);
    let used = app.portal.requests().len() - before;
    // Setup spent the burst; from then on one request a second carries whatever has arrived.
    assert!(
        used <= 6,
        "{used} requests for 60 messages: {:?}",
        app.portal
            .requests()
            .iter()
            .map(|r| (&r.method, r.status, r.commands.len()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_per_item_failure_is_recorded_counted_and_not_retried() {
    let app = spawn_app().await;
    app.portal.fail_item("bad", vec!["Wrong user name".into()]);
    app.post_event("message.created", created("c", "u", "bad", "x"))
        .await;
    app.post_event("message.created", created("c2", "u2", "good", "y"))
        .await;
    app.wait_for("both final", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let member = app.portal.member_id();
    let bad = app
        .store()
        .message_record(&member, LINE, "c", "bad")
        .unwrap()
        .unwrap();
    assert_eq!(bad.state, MessageState::Failed);
    assert_eq!(bad.error.as_deref(), Some("Wrong user name"));
    let good = app
        .store()
        .message_record(&member, LINE, "c2", "good")
        .unwrap()
        .unwrap();
    assert_eq!(good.state, MessageState::Sent);
    let sends = calls_of(&app.portal, "imconnector.send.messages");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gateway_items_total{op=\"send\",result=\"failed\"} 1"),
        "{metrics}"
    );
    // Another event forces another request; the failed item is not part of it.
    app.post_event("message.created", created("c3", "u3", "later", "z"))
        .await;
    app.wait_for("later sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(
        calls_of(&app.portal, "imconnector.send.messages"),
        sends + 1
    );
    assert_eq!(
        app.portal
            .messages()
            .iter()
            .filter(|m| m.message_id == "bad")
            .count(),
        0
    );
}

#[tokio::test]
async fn events_for_a_portal_without_the_app_are_held_until_it_installs() {
    let mut app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    let (status, _) = app
        .post_event("message.created", created("c", "u", "m", "early"))
        .await;
    assert_eq!(status, 202);
    assert!(
        app.portal.requests().is_empty(),
        "nothing is sent before install"
    );
    app.install().await;
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn transient_faults_are_retried_until_the_message_is_delivered_once() {
    for fault in [
        Fault::Internal,
        Fault::QueryLimit,
        Fault::BadGateway,
        Fault::ExpiredToken,
    ] {
        let app = spawn_app().await;
        app.portal
            .push_fault(FaultRule::any(fault.clone()).times(2));
        app.post_event("message.created", created("c", "u", "m", "x"))
            .await;
        app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
            .await;
        let member = app.portal.member_id();
        let record = app
            .store()
            .message_record(&member, LINE, "c", "m")
            .unwrap()
            .unwrap();
        assert_eq!(record.state, MessageState::Sent, "{fault:?}");
        assert_eq!(app.portal.messages().len(), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn a_timeout_is_retried_and_the_message_arrives() {
    let app = spawn_with(TestOptions {
        request_timeout_ms: 300,
        ..Default::default()
    })
    .await;
    app.portal
        .push_fault(FaultRule::any(Fault::Delay(std::time::Duration::from_millis(1500))).times(1));
    app.post_event("message.created", created("c", "u", "m", "x"))
        .await;
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let member = app.portal.member_id();
    assert_eq!(
        app.store()
            .message_record(&member, LINE, "c", "m")
            .unwrap()
            .unwrap()
            .state,
        MessageState::Sent
    );
    // The timed-out call did reach the portal (at-least-once): the copy is visible, not hidden.
    assert!(!app.portal.messages().is_empty());
}

#[tokio::test]
async fn an_operating_limit_blocks_the_method_until_its_reset() {
    let app = spawn_with(TestOptions {
        max_attempts: 50,
        ..Default::default()
    })
    .await;
    app.portal.push_fault(
        FaultRule::on(
            "imconnector.send.messages",
            Fault::OperationLimit {
                reset_in: std::time::Duration::from_secs(1),
            },
        )
        .times(1),
    );
    app.post_event("message.created", created("c", "u", "m", "x"))
        .await;
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let requests = app.portal.requests();
    let limited = requests
        .iter()
        .find(|r| r.error.as_deref() == Some("OPERATION_TIME_LIMIT"))
        .expect("limit hit");
    let ok = requests
        .iter()
        .rev()
        .find(|r| r.status == 200)
        .expect("then sent");
    assert!(
        ok.at.duration_since(limited.at) >= std::time::Duration::from_millis(900),
        "waited for the reset"
    );
}

#[tokio::test]
async fn a_rejected_call_is_final_for_its_items() {
    let app = spawn_with(TestOptions {
        portal: FakePortalConfig::default(),
        ..Default::default()
    })
    .await;
    app.portal.push_fault(FaultRule::on(
        "imconnector.send.messages",
        Fault::Error {
            status: 400,
            code: "NOT_ACTIVE_LINE".into(),
            description: "line is off".into(),
        },
    ));
    app.post_event("message.created", created("c", "u", "m", "x"))
        .await;
    app.wait_for("final", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let member = app.portal.member_id();
    let record = app
        .store()
        .message_record(&member, LINE, "c", "m")
        .unwrap()
        .unwrap();
    assert_eq!(record.state, MessageState::Failed);
    assert!(record.error.unwrap().contains("NOT_ACTIVE_LINE"));
}

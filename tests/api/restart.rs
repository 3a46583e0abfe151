//! What was acknowledged survives a restart on the same data directory.

use crate::helpers::*;

#[tokio::test]
async fn acknowledged_events_survive_a_restart_and_are_forwarded_after_it() {
    let app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    for i in 0..5 {
        let (status, _) = app
            .post_event(
                "message.created",
                created("c", "u", &format!("m{i}"), "held"),
            )
            .await;
        assert_eq!(status, 202);
    }
    let mut app = app.restart().await;
    assert_eq!(app.store().pending_ops().unwrap().len(), 5);
    app.install().await;
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let ids: Vec<String> = app
        .portal
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        ids,
        vec!["m0", "m1", "m2", "m3", "m4"],
        "in acceptance order"
    );
}

#[tokio::test]
async fn a_replay_after_a_restart_still_gets_the_first_reply() {
    let app = spawn_app().await;
    let data = created("c", "u", "m", "x");
    let first = app
        .client
        .post_event_with_id("msg_restart", "message.created", data.clone())
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let app = app.restart().await;
    let again = app
        .client
        .post_event_with_id("msg_restart", "message.created", data)
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn rotated_tokens_are_stored_durably() {
    let app = spawn_app().await;
    // The install's verification was one exchange already.
    let before = app.portal.refresh_count();
    app.portal.expire_access_tokens();
    app.post_event("message.created", created("c", "u", "m1", "x"))
        .await;
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.refresh_count(), before + 1);
    let app = app.restart().await;
    app.post_event("message.created", created("c", "u", "m2", "y"))
        .await;
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    assert_eq!(app.portal.messages().len(), 2);
    assert_eq!(
        app.portal.refresh_count(),
        before + 1,
        "the new token was kept across the restart"
    );
}

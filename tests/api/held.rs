//! Work held while Bitrix24 cannot take it lives on disk; each portal's worker keeps a bounded
//! window of it in memory and reads the rest back in order.

use crate::helpers::*;

#[tokio::test]
async fn held_work_beyond_the_in_memory_window_waits_on_disk_and_goes_out_in_order() {
    // A window of 4 items, while the portal has not installed the app: everything is held.
    let app = spawn_with(TestOptions {
        install: false,
        max_queued: Some(4),
        ..Default::default()
    })
    .await;
    let post = |app: &TestApp, i: usize| {
        let client = app.client.clone();
        async move {
            let event = created(&format!("c{}", i % 3), "u", &format!("m{i:02}"), "x");
            let reply = client.post_event("message.created", event).await.unwrap();
            assert_eq!(reply.status(), 202, "m{i:02}");
        }
    };
    for i in 0..25 {
        post(&app, i).await;
    }
    // A restart finds the held work on disk and reads it back a window at a time.
    let mut app = app.restart().await;
    for i in 25..40 {
        post(&app, i).await;
    }

    app.install().await;
    app.wait_for("all sent", |s| s.pending_ops().unwrap().is_empty())
        .await;

    let sent = app.portal.messages();
    let ids: Vec<&str> = sent.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(sent.len(), 40, "each exactly once: {ids:?}");
    for chat in ["c0", "c1", "c2"] {
        let order: Vec<&str> = sent
            .iter()
            .filter(|m| m.chat_id == chat)
            .map(|m| m.message_id.as_str())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{chat} in acceptance order");
    }
}

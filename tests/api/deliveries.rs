//! Deliveries to the platform: each channel has its own queue and task.

use openchannel_sim::messenger::{FakeMessenger, MessengerClient, Mode};
use openchannel_sim::webhooks::Secret;
use serde_json::json;

use crate::helpers::{TestOptions, WAIT, spawn_with, status_json};

/// A deletion of a message the gateway never saw completes at once: its `deletion.completed`
/// callback is queued for the channel right away.
async fn queue_a_report(client: &MessengerClient, message: &str) -> String {
    let data = json!({"chat": {"id": "c"}, "messages": [{"id": message}]});
    let (status, body) =
        status_json(client.post_event("message.deleted", data).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    body["deletion_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_platform_that_holds_its_answer_does_not_delay_another_channels_deliveries() {
    // Arrange: channel "slow" delivers to a platform that holds every answer until released.
    let slow_secret = Secret::generate();
    let slow = FakeMessenger::start(slow_secret.clone()).await.unwrap();
    slow.set_mode(Mode::Hold);
    let app = spawn_with(TestOptions {
        extra_toml: format!(
            "[[channels]]\nid = \"slow\"\nportal = \"{{member}}\"\nline = 11\nsecret = \"{}\"\noutbound_url = \"{}\"\n",
            slow_secret.to_whsec(),
            slow.url()
        ),
        ..Default::default()
    })
    .await;
    let slow_client = MessengerClient::new(&app.base, "slow", slow_secret);
    let held = queue_a_report(&slow_client, "never-seen-1").await;
    slow.wait_for(|d| d.len() == 1, WAIT)
        .await
        .expect("the slow channel's delivery is in flight");

    // Act: deliveries of another channel queued while that one is held.
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.push(format!(
            "msg_{}",
            queue_a_report(&app.client, &format!("x{i}")).await
        ));
    }

    // Assert: they all arrive while the slow platform still holds its answer.
    let events = app
        .messenger
        .wait_for_events(3, WAIT)
        .await
        .expect("the other channel's deliveries arrive while the slow one is held");
    let ids: Vec<&str> = events.iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(ids, expected, "in queue order");
    let seen = slow.deliveries();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].status_returned, 0, "still held");

    // And the held one completes once its platform answers.
    slow.release();
    let done = slow
        .wait_for_events(1, WAIT)
        .await
        .expect("the held delivery is acknowledged");
    assert_eq!(done[0].webhook_id, format!("msg_{held}"));
    app.wait_for("the slow channel's queue is empty", |s| {
        s.next_delivery("slow").unwrap().is_none()
    })
    .await;
}

//! One deletion's journey in the JSON logs of the real binary: filtering the lines by its
//! `deletion_id` shows the webhook that brought it, the Bitrix24 request that carried it and the
//! `deletion.completed` callback (spans carry the id from the route to the callback).

use openchannel_sim::messenger::MessengerClient;
use serde_json::{Value, json};

use crate::crash::{BinaryWorld, serve_logged};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_deletions_log_lines_are_found_by_its_id() {
    let BinaryWorld {
        portal,
        secret,
        messenger,
        dir: _dir,
        config,
    } = BinaryWorld::start(&TestOptions::default()).await;
    let (_child, port, lines) = serve_logged(&config, true);
    let base = format!("http://127.0.0.1:{port}");
    portal.install_on(&base).await;
    let client = MessengerClient::new(&base, "acme", secret.clone());
    for i in 0..3 {
        let reply = client
            .post_event("message.created", created("c", "u", &format!("m{i}"), "x"))
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
    }
    let items: Vec<Value> = (0..3).map(|i| json!({"id": format!("m{i}")})).collect();
    let reply = client
        .post_event(
            "message.deleted",
            json!({"chat": {"id": "c"}, "messages": items}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), 202);
    let deletion_id = reply.json::<Value>().await.unwrap()["deletion_id"]
        .as_str()
        .unwrap()
        .to_string();
    messenger
        .wait_for(
            |d| {
                d.iter()
                    .any(|d| d.event_type == "deletion.completed" && d.acknowledged())
            },
            WAIT,
        )
        .await
        .unwrap();
    // The gateway logs the delivery right after the platform answered: wait for that line.
    let journey = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l.contains(&deletion_id))
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let found = loop {
        let found = journey(&lines.lock().unwrap());
        let messages: Vec<&str> = found
            .iter()
            .filter_map(|l| l["fields"]["message"].as_str())
            .collect();
        if messages.contains(&"delivered to the platform") || std::time::Instant::now() > deadline {
            break found;
        }
        tokio::task::yield_now().await;
    };
    let messages: Vec<&str> = found
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for step in [
        "event accepted",
        "Bitrix24 request done",
        "delivered to the platform",
    ] {
        assert!(
            messages.contains(&step),
            "{step:?} missing from {messages:?}"
        );
    }
    let span_names: Vec<&str> = found
        .iter()
        .filter_map(|l| l["span"]["name"].as_str())
        .collect();
    for span in ["webhook", "bitrix_request", "delivery"] {
        assert!(
            span_names.contains(&span),
            "{span} missing from {span_names:?}"
        );
    }
    // Nothing about other deletions, and no line per item.
    assert!(found.len() <= 8, "{found:#?}");
}

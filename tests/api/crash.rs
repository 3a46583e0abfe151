//! `kill -9` of the real binary in the middle of a deletion run: nothing accepted is lost, and
//! nothing whose success was recorded is sent again.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use openchannel_gateway::store::Store;
use openchannel_sim::messenger::{FakeMessenger, MessengerClient};
use openchannel_sim::portal::{FakePortal, FakePortalConfig};
use openchannel_sim::webhooks::Secret;
use serde_json::json;

use crate::helpers::*;

/// A child gateway that is killed when dropped, so a failing test leaves no process behind.
pub(crate) struct Gateway(pub(crate) Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `openchannel-gateway serve` and return it with the port it logged.
pub(crate) fn serve(config: &std::path::Path) -> (Gateway, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openchannel-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("GATEWAY_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let stdout = child.stdout.take().expect("stdout");
    let child = Gateway(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent
                && let Some(port) = line
                    .split("port=")
                    .nth(1)
                    .and_then(|p| p.trim().parse::<u16>().ok())
            {
                let _ = tx.send(port);
                sent = true;
            }
        }
    });
    let port = rx.recv_timeout(WAIT).expect("the gateway logs its port");
    (child, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_deletion_run_loses_nothing_and_resends_nothing_recorded() {
    // Direct calls of 10 items at 5 requests/s: the run takes seconds, so the kill lands mid-way.
    let portal_config = FakePortalConfig {
        batch_denied_methods: vec!["imconnector.delete.messages".into()],
        ..Default::default()
    };
    let options = TestOptions {
        portal: portal_config.clone(),
        bucket: (5.0, 2),
        max_batch: 10,
        install: false,
        ..Default::default()
    };
    openchannel_gateway::tls::install_provider();
    let portal = FakePortal::start(portal_config).await.unwrap();
    let secret = Secret::generate();
    let messenger = FakeMessenger::start(secret.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_toml(&options, &portal, &messenger, &secret, dir.path()),
    )
    .unwrap();

    let (mut child, port) = serve(&config);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let install = http
        .post(format!("{base}/bitrix/install"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(portal.install_event_body())
        .send()
        .await
        .unwrap();
    assert_eq!(install.status(), 200);
    let client = MessengerClient::new(&base, "acme", secret.clone());
    for i in 0..100 {
        let reply = client
            .post_event("message.created", created("c", "u", &format!("m{i}"), "x"))
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
    }
    portal
        .wait_until(WAIT, |p| p.messages().len() == 100)
        .await
        .unwrap();
    let mut deletions = Vec::new();
    for half in [0..50, 50..100] {
        let items: Vec<_> = half.map(|i| json!({"id": format!("m{i}")})).collect();
        let reply = client
            .post_event(
                "message.deleted",
                json!({"chat": {"id": "c"}, "messages": items}),
            )
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
        let body: serde_json::Value = reply.json().await.unwrap();
        deletions.push(body["deletion_id"].as_str().unwrap().to_string());
    }
    let delete_calls = |p: &FakePortal| {
        p.requests()
            .iter()
            .filter(|r| r.method == "imconnector.delete.messages")
            .count()
    };
    portal
        .wait_until(WAIT, |p| delete_calls(p) >= 3)
        .await
        .unwrap();

    // SIGKILL: no shutdown code runs.
    child.0.kill().expect("kill -9");
    child.0.wait().unwrap();

    // What the dead process had recorded, read from its data directory.
    let recorded: Vec<String> = {
        let store = Store::open(&dir.path().join("data")).expect("reopen after kill -9");
        let mut ok = Vec::new();
        for id in &deletions {
            let (record, items) = store
                .deletion(id)
                .unwrap()
                .expect("accepted deletion survived");
            assert_eq!(record.total, 50);
            assert_eq!(items.len(), 50);
            ok.extend(
                items
                    .into_iter()
                    .filter(|i| i.success == Some(true))
                    .map(|i| i.message_id),
            );
        }
        ok
    };
    assert!(
        !recorded.is_empty() && recorded.len() < 100,
        "the kill landed mid-run: {} recorded",
        recorded.len()
    );
    let before = portal.messages();

    let (_child, _port) = serve(&config);
    for id in &deletions {
        let id = id.clone();
        messenger
            .wait_for(
                move |d| {
                    d.iter()
                        .any(|d| d.acknowledged() && d.data["deletion_id"] == id.as_str())
                },
                WAIT,
            )
            .await
            .unwrap();
    }
    let after = portal.messages();
    for m in &after {
        assert!(m.deleted, "{} deleted", m.message_id);
        if recorded.contains(&m.message_id) {
            let was = before
                .iter()
                .find(|b| b.message_id == m.message_id)
                .unwrap();
            assert_eq!(
                m.delete_requests, was.delete_requests,
                "{} was sent again after its success was recorded",
                m.message_id
            );
        }
    }
    let reports: Vec<serde_json::Value> = messenger
        .events()
        .into_iter()
        .filter(|d| d.event_type == "deletion.completed")
        .map(|d| d.data)
        .collect();
    for report in &reports {
        for item in report["items"].as_array().unwrap() {
            // An item in flight at the kill was executed but not recorded: it is sent again and
            // Bitrix24 then reports it as not found. Every other item succeeded.
            assert!(
                item["success"] == true
                    || (item["errors"] == json!(["Message not found"])
                        && item["attempts"].as_u64() >= Some(2)),
                "{item}"
            );
        }
    }
}

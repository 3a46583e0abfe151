//! The real binary on a data directory that runs out of space (a small tmpfs: needs root, or
//! CAP_SYS_ADMIN, for `mount`): the write that fails poisons storage, nothing that was not
//! durable is acknowledged, and after a restart with room again everything acknowledged is
//! there and is sent exactly once.

use std::path::{Path, PathBuf};
use std::process::Command;

use openchannel_sim::messenger::{FakeMessenger, MessengerClient};
use openchannel_sim::portal::FakePortal;
use openchannel_sim::webhooks::Secret;

use crate::crash::serve;
use crate::helpers::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed: this test needs root (or CAP_SYS_ADMIN) to mount a small \
             filesystem that runs out of space"
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_poisons_storage_and_a_restart_with_room_loses_nothing_acknowledged() {
    let options = TestOptions {
        install: false,
        ..Default::default()
    };
    openchannel_gateway::tls::install_provider();
    let portal = FakePortal::start(options.portal.clone()).await.unwrap();
    let secret = Secret::generate();
    let messenger = FakeMessenger::start(secret.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "3m");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_toml(&options, &portal, &messenger, &secret, dir.path()),
    )
    .unwrap();

    let (mut child, port) = serve(&config);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let client = MessengerClient::new(&base, "acme", secret.clone());
    let text = "x".repeat(4000);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..5000 {
        let id = format!("m{i}");
        let reply = client
            .post_event_with_id(
                &format!("w{i}"),
                "message.created",
                created("c", "u", &id, &text),
            )
            .await
            .unwrap();
        match reply.status().as_u16() {
            202 => acknowledged.push(id),
            503 => {
                assert_eq!(reply.headers()["retry-after"], "5");
                refused = Some(i);
                break;
            }
            other => panic!("unexpected {other} for {id}"),
        }
    }
    let refused = refused.expect("the 3 MiB disk filled up");
    assert!(
        acknowledged.len() > 100,
        "{} acknowledged",
        acknowledged.len()
    );
    // Poisoned: the refused event's retry is no replay, later writes and readiness fail.
    let retry = client
        .post_event_with_id(
            &format!("w{refused}"),
            "message.created",
            created("c", "u", "late", &text),
        )
        .await
        .unwrap();
    assert_eq!(retry.status(), 503);
    let small = client
        .post_event("message.created", created("c", "u", "small", "x"))
        .await
        .unwrap();
    assert_eq!(small.status(), 503);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gateway_storage_poisoned 1"), "{metrics}");

    // Room again, and a restart (after kill -9: nothing of the shutdown runs).
    child.0.kill().expect("kill -9");
    child.0.wait().unwrap();
    disk.resize("64m");
    let (_child, port) = serve(&config);
    let base = format!("http://127.0.0.1:{port}");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    portal.install_on(&base).await;
    let expected = acknowledged.len();
    portal
        .wait_until(WAIT, |p| p.messages().len() >= expected)
        .await
        .unwrap();
    let client = MessengerClient::new(&base, "acme", secret.clone());
    // A request after the last send: once it is forwarded, everything queued before it was too.
    let marker = client
        .post_event("message.created", created("c", "u", "marker", "x"))
        .await
        .unwrap();
    assert_eq!(marker.status(), 202);
    portal
        .wait_until(WAIT, |p| {
            p.messages().iter().any(|m| m.message_id == "marker")
        })
        .await
        .unwrap();
    let sent: Vec<String> = portal
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .filter(|m| m != "marker")
        .collect();
    // Every acknowledged event, once, in order; at most the refused one besides (it may have
    // reached the disk before the failure: never acknowledged, but then carried out).
    let refused_id = format!("m{refused}");
    let (head, tail) = sent.split_at(expected.min(sent.len()));
    assert_eq!(head, acknowledged.as_slice());
    assert!(tail.is_empty() || tail == [refused_id], "{tail:?}");
}

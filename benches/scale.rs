//! Scale benchmark of the real release binary: N messages (`SCALE_MESSAGES`, default 1,000,000)
//! accepted over loopback and delivered to the fake portal (unthrottled), then idle. Reports the
//! gateway process's RSS while ingesting (peak, sampled) and at rest, the data directory's size
//! per stored message, the restart time, and what an idle gateway writes (`/proc/<pid>/io`
//! `write_bytes`) idle (`SCALE_IDLE_SECS`, default 60) and at one event every 10 s
//! (`SCALE_TRICKLE_SECS`, default 180: three minutes, so that the first events after the restart,
//! which cost more, and sled's occasional node rewrites count at their share of a minute rather
//! than as the whole of one), with each event's own share.
//!
//! `cargo bench --bench scale` (env: SCALE_MESSAGES, SCALE_CLIENTS, SCALE_IDLE_SECS, SCALE_TRICKLE_SECS,
//! SCALE_CACHE_MB for `storage.cache_mb`, SCALE_CHILD_ENV="NAME=VALUE …" for the gateway process,
//! SCALE_WRAPPER=program to run the gateway under, e.g. `heaptrack`; SCALE_KEEP=1 keeps the data
//! directory for inspection).

mod common;

use common::env_num;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use openchannel_sim::messenger::FakeMessenger;
use openchannel_sim::portal::{FakePortal, FakePortalConfig};
use openchannel_sim::webhooks::{Secret, SignedHeaders};
use serde_json::json;

const LINES: u64 = 4;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the release binary; returns it with its port once it logged it.
fn serve(config: &std::path::Path) -> (Gateway, u16) {
    // SCALE_WRAPPER runs the gateway under a profiler (e.g. `heaptrack`).
    let wrapper = std::env::var("SCALE_WRAPPER").ok();
    let mut command = match &wrapper {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(env!("CARGO_BIN_EXE_openchannel-gateway"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_openchannel-gateway")),
    };
    let mut child = command
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,openchannel_gateway::startup=info")
        .envs(
            std::env::var("SCALE_CHILD_ENV")
                .ok()
                .map(|pairs| {
                    pairs
                        .split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let stdout = child.stdout.take().unwrap();
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
    let port = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the gateway logs its port");
    (Gateway(child), port)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("write_bytes: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                // Allocated bytes (sparse files count what they occupy).
                std::os::unix::fs::MetadataExt::blocks(&meta) * 512
            };
        }
    }
    total
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn event(secret: &Secret, i: usize) -> (String, String, String, Bytes) {
    let now = (openchannel_gateway::domain::now_ms() / 1000) as i64;
    let body = serde_json::to_vec(&json!({
        "type": "message.created",
        "data": {
            "chat": {"id": format!("chat-{}", i % 20_000), "name": "Scale chat"},
            "user": {"id": format!("user-{}", i % 20_000), "name": "Scale"},
            "message": {"id": format!("msg-{i}"), "date": now, "text": "Hello from the scale benchmark, a message of ordinary length."}
        }
    }))
    .unwrap();
    let id = format!("msg_scale_{i}");
    let h = SignedHeaders::new(secret, &id, now, &body);
    (id, h.timestamp, h.signature, body.into())
}

/// Post events `from..to` with `clients` keep-alive hyper connections, spread over the lines'
/// channels.
async fn ingest(port: u16, secret: &Secret, from: usize, to: usize, clients: usize) {
    let next = Arc::new(AtomicUsize::new(from));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, secret) = (next.clone(), secret.clone());
            tokio::spawn(async move {
                let addr = format!("127.0.0.1:{port}");
                let mut sender = common::connect(&addr).await;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return;
                    }
                    let (id, timestamp, signature, body) = event(&secret, i);
                    let channel = format!("line{}", 1 + (i as u64 % LINES));
                    loop {
                        let request =
                            hyper::Request::post(format!("/v1/channels/{channel}/events"))
                                .header("host", addr.as_str())
                                .header("content-type", "application/json")
                                .header("webhook-id", id.as_str())
                                .header("webhook-timestamp", timestamp.as_str())
                                .header("webhook-signature", signature.as_str())
                                .body(Full::new(body.clone()))
                                .unwrap();
                        sender.ready().await.unwrap();
                        let reply = sender.send_request(request).await.unwrap();
                        let status = reply.status().as_u16();
                        let _ = reply.into_body().collect().await;
                        match status {
                            202 | 200 => break,
                            503 => tokio::time::sleep(Duration::from_millis(50)).await,
                            other => panic!("event {i}: HTTP {other}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Peak RSS (KiB) of `pid` sampled every 100 ms until `done` resolves.
async fn peak_rss_while<F: std::future::Future>(pid: u32, done: F) -> (F::Output, u64) {
    let mut done = std::pin::pin!(done);
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            out = &mut done => return (out, peak.max(status_kib(pid, "VmRSS:"))),
            _ = tick.tick() => peak = peak.max(status_kib(pid, "VmRSS:")),
        }
    }
}

async fn wait_delivered(portal: &FakePortal, n: usize) {
    while portal.message_count() < n {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() {
    openchannel_gateway::tls::install_provider();
    let n = env_num("SCALE_MESSAGES", 1_000_000) as usize;
    let clients = env_num("SCALE_CLIENTS", 32) as usize;
    let idle = Duration::from_secs(env_num("SCALE_IDLE_SECS", 60));
    let trickle_for = Duration::from_secs(env_num("SCALE_TRICKLE_SECS", 180));
    let portal = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let secret = Secret::generate();
    let messenger = FakeMessenger::start(secret.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if std::env::var("SCALE_KEEP").is_ok() {
        println!("data directory kept: {}", data.display());
    }
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\ncache_mb = {}\n[bitrix]\nclient_id = \"{}\"\nclient_secret = \"{}\"\noauth_servers = [\"{}\"]\nrate_per_second = 100000.0\nburst = 100000\n",
        data.display(),
        env_num("SCALE_CACHE_MB", 64),
        FakePortalConfig::default().client_id,
        FakePortalConfig::default().client_secret,
        portal.oauth_base()
    );
    toml.push_str(&common::channels_toml(
        &portal.member_id(),
        LINES,
        &secret.to_whsec(),
        &messenger.url(),
    ));
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, &toml).unwrap();

    let (child, port) = serve(&config);
    let pid = child.0.id();
    let http = reqwest::Client::new();
    portal.install_on(&format!("http://127.0.0.1:{port}")).await;
    // The first message proves the setup is recorded (work flows only then).
    ingest(port, &secret, 0, 1, 1).await;
    wait_delivered(&portal, 1).await;
    let rss_start = status_kib(pid, "VmRSS:");
    println!(
        "{n} messages, {clients} clients, {LINES} channels; RSS after setup {:.1} MiB",
        mib(rss_start)
    );

    let started = Instant::now();
    let ((), peak_ingest) = peak_rss_while(pid, ingest(port, &secret, 1, n, clients)).await;
    let ingested = started.elapsed();
    println!(
        "accepted {n} in {:.1} s ({:.0}/s); peak RSS while ingesting {:.1} MiB (goal ≤ 192)",
        ingested.as_secs_f64(),
        n as f64 / ingested.as_secs_f64(),
        mib(peak_ingest)
    );
    let ((), peak_drain) = peak_rss_while(pid, wait_delivered(&portal, n)).await;
    let delivered = started.elapsed();
    println!(
        "delivered to the portal after {:.1} s; peak RSS while sending the rest {:.1} MiB",
        delivered.as_secs_f64(),
        mib(peak_drain)
    );
    // At rest: whatever follows the last result (its sync) is done within a few seconds.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rest = status_kib(pid, "VmRSS:");
    let bytes = dir_bytes(&data);
    println!(
        "at rest: RSS {:.1} MiB (goal ≤ 128, VmHWM {:.1} MiB); data directory {:.1} MiB = {:.0} bytes per message (target ≤ 1024)",
        mib(rest),
        mib(status_kib(pid, "VmHWM:")),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / n as f64
    );

    // Restart: SIGTERM (graceful), then time from spawn to ready.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let mut child = child;
    let _ = child.0.wait();
    drop(child);
    let t0 = Instant::now();
    let (child, port) = serve(&config);
    let pid = child.0.id();
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "restart: ready {:.2} s after spawn; RSS after restart {:.1} MiB",
        t0.elapsed().as_secs_f64(),
        mib(status_kib(pid, "VmRSS:"))
    );

    // Idle writes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let w0 = write_bytes(pid);
    tokio::time::sleep(idle).await;
    let idle_bytes = write_bytes(pid) - w0;
    println!(
        "idle {} s: {} bytes written (goal: 0)",
        idle.as_secs(),
        idle_bytes
    );
    let w0 = write_bytes(pid);
    let t = Instant::now();
    let mut i = n;
    let mut per_event = Vec::new();
    while t.elapsed() < trickle_for {
        let before = write_bytes(pid);
        ingest(port, &secret, i, i + 1, 1).await;
        i += 1;
        wait_delivered(&portal, i).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        per_event.push(format!("{}", (write_bytes(pid) - before) / 1024));
    }
    println!(
        "KiB written per event (acceptance, delivery, the 10 s after): {}",
        per_event.join(" ")
    );
    let trickle = write_bytes(pid) - w0;
    println!(
        "one event every 10 s for {:.0} s ({} events, each sent to the portal): {:.1} KiB written = {:.1} KiB per minute (goal < 100)",
        t.elapsed().as_secs_f64(),
        i - n,
        trickle as f64 / 1024.0,
        trickle as f64 / 1024.0 / (t.elapsed().as_secs_f64() / 60.0)
    );
    drop(child);
    if std::env::var("SCALE_KEEP").is_ok() {
        let _ = dir.keep();
    }
}

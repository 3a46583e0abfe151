//! Ingest benchmark: signed `message.created` webhooks driven over loopback by concurrent
//! clients at the gateway's durable path (verify → parse → sled write on the writer thread →
//! group flush and fdatasync →
//! 202), beside the same load on a no-op actix-web handler in the same run. The two alternate in
//! short rounds, so that the machine's drift (it shares its cores with the load generator, and
//! its speed varies from minute to minute) touches both alike; the figure is the median of the
//! per-round ratios.
//!
//! `cargo bench --bench ingest` (env: BENCH_SECS per round, BENCH_ROUNDS, BENCH_CLIENTS). The
//! portal is not installed, so no Bitrix24 traffic competes: this measures acceptance only (the
//! accepted events stay pending, in `seq_event`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use openchannel_gateway::signature::{self, WebhookSecret};
use serde_json::json;

struct Signed {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

struct Run {
    accepted: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pre-sign requests so that client-side HMAC work is not part of either measurement.
fn sign_all(secret: &WebhookSecret, n: usize) -> Arc<Vec<Signed>> {
    let now = (openchannel_gateway::domain::now_ms() / 1000) as i64;
    Arc::new(
        (0..n)
            .map(|i| {
                let body = serde_json::to_vec(&json!({
                    "type": "message.created",
                    "data": {
                        "chat": {"id": format!("chat-{}", i % 500), "name": "Bench chat"},
                        "user": {"id": format!("user-{}", i % 500), "name": "Bench"},
                        "message": {"id": format!("msg-{i}"), "date": now, "text": "Hello from the benchmark, a message of ordinary length."}
                    }
                }))
                .unwrap();
                let id = format!("msg_bench_{i}");
                let h = signature::sign_headers(secret, &id, now, &body);
                Signed { id, timestamp: h.timestamp, signature: h.signature, body }
            })
            .collect(),
    )
}

async fn drive(
    url: String,
    requests: Arc<Vec<Signed>>,
    next: Arc<AtomicUsize>,
    clients: usize,
    duration: Duration,
    expect: u16,
) -> Run {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, requests, next) =
                (http.clone(), url.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(r) = requests.get(i) else { break };
                    let sent = Instant::now();
                    let reply = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("webhook-id", &r.id)
                        .header("webhook-timestamp", &r.timestamp)
                        .header("webhook-signature", &r.signature)
                        .body(r.body.clone())
                        .send()
                        .await;
                    if let Ok(reply) = reply {
                        let ok = reply.status().as_u16() == expect;
                        let _ = reply.bytes().await;
                        if ok {
                            accepted += 1;
                            latencies.push(sent.elapsed());
                        }
                    }
                }
                (accepted, latencies)
            })
        })
        .collect();
    let mut run = Run {
        accepted: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (accepted, latencies) = t.await.unwrap();
        run.accepted += accepted;
        run.latencies.extend(latencies);
    }
    run.elapsed = start.elapsed();
    run.latencies.sort();
    run
}

/// CPU seconds (user + system) per thread name of this process, from /proc (Linux only).
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let tick = 100.0; // USER_HZ
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close]
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
                .to_string();
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            let cpu = fields
                .get(11)
                .and_then(|u| u.parse::<f64>().ok())
                .unwrap_or(0.0)
                + fields
                    .get(12)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0);
            *out.entry(name).or_insert(0.0) += cpu / tick;
        }
    }
    out
}

/// Bytes this process has passed to write(2) and friends so far (Linux only).
fn bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| {
                l.strip_prefix("wchar: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn cpu_report(before: &(std::collections::BTreeMap<String, f64>, u64), accepted: usize) {
    let (before, written) = before;
    let written = (bytes_written() - written) as f64 / accepted.max(1) as f64;
    let after = cpu_by_thread();
    let mut parts: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let line: Vec<String> = parts
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", v * 1e6 / accepted.max(1) as f64))
        .collect();
    println!("    CPU µs per request by thread: {}", line.join(", "));
    println!("    bytes written (sockets and files) per request: {written:.0}");
}

fn report(name: &str, run: &Run) -> f64 {
    let rate = run.accepted as f64 / run.elapsed.as_secs_f64();
    println!(
        "{name:<28} {:>8} accepted in {:>5.1} s = {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        run.accepted,
        run.elapsed.as_secs_f64(),
        rate,
        common::ms(common::percentile(&run.latencies, 50.0)),
        common::ms(common::percentile(&run.latencies, 99.0)),
    );
    rate
}

#[tokio::main]
async fn main() {
    openchannel_gateway::tls::install_provider();
    let secs = env_num("BENCH_SECS", 3);
    let clients = env_num("BENCH_CLIENTS", 64) as usize;
    let duration = Duration::from_secs(secs);
    let secret = WebhookSecret::generate();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[[channels]]\nid = \"bench\"\nportal = \"benchportal\"\nline = 1\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/hook\"\n",
        dir.path().join("data").display(),
        secret.to_whsec()
    );
    let gateway = common::start_gateway(dir.path(), &toml).await;

    let noop = HttpServer::new(|| {
        App::new().route(
            "/v1/channels/{channel}/events",
            web::post().to(|_body: web::Bytes| async {
                HttpResponse::Accepted()
                    .content_type("application/json")
                    .body("{\"status\":\"accepted\"}")
            }),
        )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let noop_port = noop.addrs()[0].port();
    let noop = noop.disable_signals().run();
    let noop_handle = noop.handle();
    tokio::spawn(noop);

    // Enough distinct, pre-signed requests for every run (never replayed).
    let rounds = env_num("BENCH_ROUNDS", 9) as usize;
    let requests = sign_all(&secret, 80_000 * secs as usize * rounds.max(1) + 150_000);
    let noop_url = format!("http://127.0.0.1:{noop_port}/v1/channels/bench/events");
    let gw_url = format!("{}/v1/channels/bench/events", gateway.base);
    println!(
        "{clients} concurrent clients, {rounds} rounds of {secs} s per server, loopback, 2 server workers each"
    );
    let offset = Arc::new(AtomicUsize::new(0));
    let _ = drive(
        noop_url.clone(),
        requests.clone(),
        offset.clone(),
        clients,
        Duration::from_secs(1),
        202,
    )
    .await;
    let _ = drive(
        gw_url.clone(),
        requests.clone(),
        offset.clone(),
        clients,
        Duration::from_secs(1),
        202,
    )
    .await;
    let mut ratios = Vec::new();
    let (mut noop_all, mut gw_all) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("round {round}");
        // BENCH_ONLY=gateway or =noop shortens the other run to 0.1 s (for profiling one).
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let short = |name: &str| {
            if !only.is_empty() && only != name {
                Duration::from_millis(100)
            } else {
                duration
            }
        };
        let (noop_dur, gw_dur) = (short("noop"), short("gateway"));
        let cpu = (cpu_by_thread(), bytes_written());
        let noop_run = drive(
            noop_url.clone(),
            requests.clone(),
            offset.clone(),
            clients,
            noop_dur,
            202,
        )
        .await;
        let noop_rate = report("  no-op actix handler", &noop_run);
        cpu_report(&cpu, noop_run.accepted);
        let cpu = (cpu_by_thread(), bytes_written());
        let gw_run = drive(
            gw_url.clone(),
            requests.clone(),
            offset.clone(),
            clients,
            gw_dur,
            202,
        )
        .await;
        let gw_rate = report("  gateway (durable 202)", &gw_run);
        cpu_report(&cpu, gw_run.accepted);
        ratios.push(gw_rate / noop_rate);
        println!(
            "  ratio gateway / no-op this round: {:.2}",
            gw_rate / noop_rate
        );
        noop_all.push(noop_rate);
        gw_all.push(gw_rate);
    }
    let stats = gateway.app_store.commit_stats();
    println!(
        "gateway syncs: {} for {} commits ({:.1} commits per sync)",
        stats.flushes,
        stats.commits,
        stats.commits as f64 / stats.flushes.max(1) as f64
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "median: no-op {:.0} req/s, gateway {:.0} req/s; median ratio gateway / no-op: {:.2} (goal ≥ 0.50)",
        median(&mut noop_all),
        median(&mut gw_all),
        median(&mut ratios)
    );
    noop_handle.stop(false).await;
    drop(gateway.app_store);
    gateway.stop.stop().await;
}

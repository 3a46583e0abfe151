//! Ingest benchmark: signed `message.created` webhooks driven over loopback by concurrent
//! clients (raw hyper HTTP/1 connections) at the gateway's durable path (verify → parse → sled
//! write on the writer thread → group flush and fdatasync → 202), beside the same load on a
//! no-op actix-web handler and on a *durable reference* (verify, parse, append the body to a
//! pre-allocated file, group `fdatasync`, 202: the disk's limit for this job). The three
//! alternate in short rounds, so that the machine's drift (it shares its cores with the load generator, and
//! its speed varies from minute to minute) touches both alike; the figure is the median of the
//! per-round ratios.
//!
//! `cargo bench --bench ingest` (env: BENCH_SECS per round, BENCH_ROUNDS, BENCH_CLIENTS). The
//! portal is not installed, so no Bitrix24 traffic competes: this measures acceptance only (the
//! accepted events stay pending, in `seq_event`). The gateway runs twice, side by side: with
//! its whole backlog indexed in memory (`storage.pending_in_memory` above what the run
//! accepts), and with none of it (`0`: every acceptance also writes its reply and queued
//! message, as beyond the in-memory bound while Bitrix24 is away).

mod common;

use common::env_num;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use openchannel_gateway::signature::{self, WebhookSecret};
use serde_json::json;

struct Signed {
    id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

struct Run {
    accepted: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
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
                Signed { id, timestamp: h.timestamp, signature: h.signature, body: body.into() }
            })
            .collect(),
    )
}

/// One keep-alive HTTP/1 connection per client, driven with raw hyper (no pool, no per-request
/// allocation beyond the request itself). Requests are taken in turn from `next`; they are
/// never sent twice to the gateway (which would answer a replay), while the two sides that
/// keep no webhook-ids go round the list again when it runs out (`cycle`).
async fn drive(
    url: String,
    requests: Arc<Vec<Signed>>,
    (next, cycle): (Arc<AtomicUsize>, bool),
    clients: usize,
    duration: Duration,
    expect: u16,
) -> Run {
    let parsed = url::Url::parse(&url).unwrap();
    let addr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap()
    );
    let path = parsed.path().to_string();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, path, requests, next) =
                (addr.clone(), path.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0;
                let mut sender = common::connect(&addr).await;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let i = if cycle { i % requests.len() } else { i };
                    let Some(r) = requests.get(i) else { break };
                    let request = hyper::Request::post(path.as_str())
                        .header("host", addr.as_str())
                        .header("content-type", "application/json")
                        .header("webhook-id", r.id.as_str())
                        .header("webhook-timestamp", r.timestamp.as_str())
                        .header("webhook-signature", r.signature.as_str())
                        .body(Full::new(r.body.clone()))
                        .unwrap();
                    let sent = Instant::now();
                    if sender.ready().await.is_err() {
                        break;
                    }
                    let Ok(reply) = sender.send_request(request).await else {
                        break;
                    };
                    let ok = reply.status().as_u16() == expect;
                    let _ = reply.into_body().collect().await;
                    if ok {
                        accepted += 1;
                        latencies.push(sent.elapsed());
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

/// The durable reference: what this job costs at the disk's limit. A minimal actix-web handler
/// verifies the Standard Webhooks signature, parses the JSON, and hands the body to one writer
/// thread, which appends every queued body to a pre-allocated file, `fdatasync`s once for the
/// group and only then lets the handlers answer `202` (group commit, nothing else).
struct Reference {
    secret: WebhookSecret,
    writer: std::sync::mpsc::Sender<(Bytes, tokio::sync::oneshot::Sender<()>)>,
}

fn start_reference_writer(
    path: &std::path::Path,
    bytes: u64,
) -> std::sync::mpsc::Sender<(Bytes, tokio::sync::oneshot::Sender<()>)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // Allocated up front: appends change no file size, so fdatasync writes data only.
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes).unwrap();
    file.sync_all().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Bytes, tokio::sync::oneshot::Sender<()>)>();
    std::thread::Builder::new()
        .name("reference-writer".into())
        .spawn(move || {
            let mut offset = 0u64;
            let mut group = Vec::new();
            while let Ok(first) = rx.recv() {
                group.push(first);
                while let Ok(next) = rx.try_recv() {
                    group.push(next);
                }
                for (body, _) in &group {
                    let at = offset % bytes.saturating_sub(body.len() as u64).max(1);
                    file.write_all_at(body, at).unwrap();
                    offset += body.len() as u64;
                }
                file.sync_data().unwrap();
                for (_, done) in group.drain(..) {
                    let _ = done.send(());
                }
            }
        })
        .unwrap();
    tx
}

async fn reference_handler(
    req: actix_web::HttpRequest,
    body: web::Bytes,
    state: web::Data<Reference>,
) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let received = signature::ReceivedHeaders {
        id: header(signature::HEADER_ID),
        timestamp: header(signature::HEADER_TIMESTAMP),
        signature: header(signature::HEADER_SIGNATURE),
    };
    let now = (openchannel_gateway::domain::now_ms() / 1000) as i64;
    if signature::verify(&state.secret, &received, &body, now).is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return HttpResponse::BadRequest().finish();
    }
    let (done, synced) = tokio::sync::oneshot::channel();
    if state.writer.send((body, done)).is_err() || synced.await.is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    HttpResponse::Accepted()
        .content_type("application/json")
        .body("{\"status\":\"accepted\"}")
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
    let gateway_with = async |name: &str, pending_in_memory: usize| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\npending_in_memory = {pending_in_memory}\n[[channels]]\nid = \"bench\"\nportal = \"benchportal\"\nline = 1\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/hook\"\n",
            home.join("data").display(),
            secret.to_whsec()
        );
        common::start_gateway(&home, &toml).await
    };
    let gateway = gateway_with("memory", 10_000_000).await;
    let on_disk = gateway_with("disk", 0).await;

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

    let rounds = env_num("BENCH_ROUNDS", 9) as usize;
    let reference = web::Data::new(Reference {
        secret: secret.clone(),
        writer: start_reference_writer(
            &dir.path().join("reference.log"),
            env_num("BENCH_REFERENCE_MB", 2048) << 20,
        ),
    });
    let durable = HttpServer::new(move || {
        App::new().app_data(reference.clone()).route(
            "/v1/channels/{channel}/events",
            web::post().to(reference_handler),
        )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let durable_port = durable.addrs()[0].port();
    let durable = durable.disable_signals().run();
    let durable_handle = durable.handle();
    tokio::spawn(durable);

    // Enough distinct, pre-signed requests for every run (never replayed).
    let requests = sign_all(&secret, 60_000 * secs as usize * rounds.max(1) + 300_000);
    let durable_url = format!("http://127.0.0.1:{durable_port}/v1/channels/bench/events");
    let noop_url = format!("http://127.0.0.1:{noop_port}/v1/channels/bench/events");
    let gw_url = format!("{}/v1/channels/bench/events", gateway.base);
    let disk_url = format!("{}/v1/channels/bench/events", on_disk.base);
    println!(
        "{clients} concurrent clients, {rounds} rounds of {secs} s per server, loopback, 2 server workers each"
    );
    // Each gateway's own turn through the requests; the other sides go round them.
    let next = || Arc::new(AtomicUsize::new(0));
    let (gw_next, disk_next, other_next) = (next(), next(), next());
    let next_for = |url: &String| {
        if *url == gw_url {
            (gw_next.clone(), false)
        } else if *url == disk_url {
            (disk_next.clone(), false)
        } else {
            (other_next.clone(), true)
        }
    };
    // Warm-up: a second of each side.
    for url in [&noop_url, &durable_url, &gw_url, &disk_url] {
        let _ = drive(
            url.clone(),
            requests.clone(),
            next_for(url),
            clients,
            Duration::from_secs(1),
            202,
        )
        .await;
    }
    let (mut ratios, mut durable_ratios) = (Vec::new(), Vec::new());
    let (mut noop_all, mut gw_all, mut durable_all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut disk_all, mut disk_ratios) = (Vec::new(), Vec::new());
    // One side of a round: drive it, print its rate and its CPU and bytes per request; its rate.
    let measure = async |label: &str, url: &String, duration: Duration| {
        let cpu = (cpu_by_thread(), bytes_written());
        let run = drive(
            url.clone(),
            requests.clone(),
            next_for(url),
            clients,
            duration,
            202,
        )
        .await;
        let rate = report(label, &run);
        cpu_report(&cpu, run.accepted);
        rate
    };
    for round in 1..=rounds {
        println!("round {round}");
        // BENCH_ONLY=gateway, =durable or =noop shortens the other runs to 0.1 s (for profiling one).
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let short = |name: &str| {
            if !only.is_empty() && only != name {
                Duration::from_millis(100)
            } else {
                duration
            }
        };
        let (noop_dur, gw_dur, durable_dur) = (short("noop"), short("gateway"), short("durable"));
        let noop_rate = measure("  no-op actix handler", &noop_url, noop_dur).await;
        let durable_rate = measure("  durable reference", &durable_url, durable_dur).await;
        let gw_rate = measure("  gateway, backlog in memory", &gw_url, gw_dur).await;
        let disk_rate = measure("  gateway, backlog on disk", &disk_url, gw_dur).await;
        ratios.push(gw_rate / noop_rate);
        durable_ratios.push(gw_rate / durable_rate);
        disk_ratios.push(disk_rate / durable_rate);
        println!(
            "  this round: gateway / durable reference {:.2} (backlog on disk {:.2}), gateway / no-op {:.2}",
            gw_rate / durable_rate,
            disk_rate / durable_rate,
            gw_rate / noop_rate
        );
        noop_all.push(noop_rate);
        gw_all.push(gw_rate);
        disk_all.push(disk_rate);
        durable_all.push(durable_rate);
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
        "median: no-op {:.0} req/s, durable reference {:.0} req/s, gateway {:.0} req/s (backlog on disk {:.0})",
        median(&mut noop_all),
        median(&mut durable_all),
        median(&mut gw_all),
        median(&mut disk_all),
    );
    println!(
        "median ratio gateway / durable reference: {:.2} (goal ≥ 0.50), backlog on disk {:.2}; gateway / no-op: {:.2}",
        median(&mut durable_ratios),
        median(&mut disk_ratios),
        median(&mut ratios)
    );
    noop_handle.stop(false).await;
    durable_handle.stop(false).await;
    for g in [gateway, on_disk] {
        drop(g.app_store);
        g.stop.stop().await;
    }
}

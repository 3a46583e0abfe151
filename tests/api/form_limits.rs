//! Hostile form bodies on `/bitrix/*`: refused with a clear `400`/`401`/`413`, and cheap. The
//! cost is measured on the real binary: peak resident memory (`VmHWM`, reset before each request
//! through `/proc/<pid>/clear_refs`) and CPU time of all its threads (`/proc/<pid>/task/*/schedstat`).

use openchannel_sim::messenger::FakeMessenger;
use openchannel_sim::portal::{FakePortal, FakePortalConfig};
use openchannel_sim::webhooks::Secret;

use crate::crash::serve;
use crate::helpers::*;
use crate::raw_http;

const MIB: usize = 1 << 20;
/// The goal: a 1 MiB body of any shape costs less than this much memory…
const MAX_MEMORY: u64 = 8 * MIB as u64;
/// …and less than this much CPU time (ns) in a release build (`cargo test --release`). An
/// unoptimised test build is allowed three times as much.
const MAX_CPU_NS: u64 = 20_000_000 * if cfg!(debug_assertions) { 3 } else { 1 };

/// `field&field&…` up to `size` bytes after `prefix`.
fn repeated(prefix: &str, field: impl Fn(usize) -> String, size: usize) -> Vec<u8> {
    let mut body = prefix.as_bytes().to_vec();
    let mut i = 0;
    while body.len() < size {
        if !body.is_empty() {
            body.push(b'&');
        }
        body.extend_from_slice(field(i).as_bytes());
        i += 1;
    }
    body.truncate(size);
    body
}

/// `prefix&` then one field: `start` and `unit` repeated up to `size` bytes.
fn single(prefix: &str, start: &str, unit: &str, size: usize) -> Vec<u8> {
    let mut body = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}&")
    };
    body.push_str(start);
    while body.len() < size {
        body.push_str(unit);
    }
    body.truncate(size);
    body.into_bytes()
}

/// Adversarial shapes of `size` bytes, each after `prefix` (e.g. a valid `auth[...]`).
fn shapes(prefix: &str, size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let brackets = |n: usize, pair: &str| format!("a{}=", pair.repeat(n));
    vec![
        // The body: fields of 32 empty brackets.
        (
            "32 brackets",
            repeated(prefix, |_| brackets(32, "[]"), size),
        ),
        // Within the depth bound: every field adds 15 containers.
        (
            "15 brackets",
            repeated(prefix, |_| brackets(15, "[]"), size),
        ),
        (
            "15 encoded brackets",
            repeated(prefix, |_| brackets(15, "%5B%5D"), size),
        ),
        (
            "distinct keys",
            repeated(prefix, |i| format!("k{i}[x]=1"), size),
        ),
        (
            "one wide array",
            repeated(prefix, |i| format!("a[{i}]=1"), size),
        ),
        ("one deep key", single(prefix, "a", "[x]", size)),
        ("one huge key", single(prefix, "k", "k", size)),
        ("one huge value", single(prefix, "v=", "%41", size)),
    ]
}

/// CPU time of every thread of `pid`, in ns.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A `VmRSS`/`VmHWM` value of `pid`, in bytes.
pub(crate) fn status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Peak memory above the level before the request, and CPU time, of one request.
fn measure(pid: u32, port: u16, path: &str, body: &[u8]) -> (u16, String, u64, u64) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
    let rss = status_bytes(pid, "VmRSS:");
    let cpu = cpu_ns(pid);
    let reply = raw_http::post(port, path, body);
    let used_cpu = cpu_ns(pid) - cpu;
    let peak = status_bytes(pid, "VmHWM:").saturating_sub(rss);
    (reply.status, reply.body, peak, used_cpu)
}

/// Start the binary with `extra` under `[server]`; install the fake portal.
pub(crate) async fn gateway(
    extra: &str,
) -> (crate::crash::Gateway, u16, FakePortal, tempfile::TempDir) {
    openchannel_gateway::tls::install_provider();
    let options = TestOptions::default();
    let portal = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let secret = Secret::generate();
    let messenger = FakeMessenger::start(secret.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let toml = config_toml(&options, &portal, &messenger, &secret, dir.path()).replace(
        "max_body_bytes = 65536",
        &format!("max_body_bytes = 65536\n{extra}"),
    );
    std::fs::write(&config, toml).unwrap();
    let (child, port) = serve(&config);
    let install = raw_http::post(
        port,
        "/bitrix/install",
        portal.install_event_body().as_bytes(),
    );
    assert_eq!(install.status, 200, "{}", install.body);
    (child, port, portal, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_1_mib_form_body_costs_under_8_mib_and_20_ms_in_the_real_binary() {
    // Form bodies up to 2 MiB allowed, so that the decoder itself meets every 1 MiB shape.
    let (child, port, portal, _dir) = gateway("max_form_bytes = 2097152").await;
    let pid = child.0.id();
    let auth = format!(
        "auth[member_id]={}&auth[application_token]={}",
        portal.member_id(),
        portal.application_token()
    );
    // Warm every route and worker thread up, so that their first-use allocations do not count.
    for _ in 0..4 {
        for path in ["/bitrix/events", "/bitrix/install", "/bitrix/placement"] {
            raw_http::post(port, path, format!("event=X&{auth}").as_bytes());
        }
    }
    let mut worst = (0u64, 0u64);
    let mut report = Vec::new();
    let cases: [(&str, &str, &[u16]); 4] = [
        ("/bitrix/events", "", &[401]),
        ("/bitrix/events", &auth, &[400]),
        ("/bitrix/install", "", &[400]),
        ("/bitrix/placement", "", &[400]),
    ];
    for (path, prefix, expected) in cases {
        for (shape, body) in shapes(prefix, MIB) {
            assert_eq!(body.len(), MIB);
            // Twice: the second run shows the cost once the allocator has settled.
            for _ in 0..2 {
                let (status, text, memory, cpu) = measure(pid, port, path, &body);
                assert!(
                    expected.contains(&status),
                    "{path} {shape} (auth: {}): {status} {text}",
                    !prefix.is_empty()
                );
                assert!(text.len() < 400, "a short, clear message: {text}");
                report.push(format!(
                    "{path:<18} {shape:<20} auth={:<5} {status} {:>6} KiB {:>6.2} ms  {text}",
                    !prefix.is_empty(),
                    memory / 1024,
                    cpu as f64 / 1e6
                ));
                worst = (worst.0.max(memory), worst.1.max(cpu));
            }
        }
    }
    println!("{}", report.join("\n"));
    println!(
        "worst: {} KiB peak memory, {:.2} ms CPU",
        worst.0 / 1024,
        worst.1 as f64 / 1e6
    );
    assert!(worst.0 < MAX_MEMORY, "{}", report.join("\n"));
    assert!(worst.1 < MAX_CPU_NS, "{}", report.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_mib_form_body_is_refused_with_413_by_default_at_little_cost() {
    let (child, port, portal, _dir) = gateway("").await;
    let pid = child.0.id();
    let auth = format!(
        "auth[member_id]={}&auth[application_token]={}",
        portal.member_id(),
        portal.application_token()
    );
    for path in [
        "/bitrix/events",
        "/bitrix/install",
        "/bitrix/placement",
        "/bitrix/bot",
    ] {
        for (shape, body) in shapes(&auth, MIB) {
            let (status, text, memory, cpu) = measure(pid, port, path, &body);
            println!(
                "{path:<18} {shape:<20} {status} {:>6} KiB {:>6.2} ms",
                memory / 1024,
                cpu as f64 / 1e6
            );
            assert_eq!(status, 413, "{path} {shape}: {text}");
            assert!(text.contains("payload_too_large"), "{text}");
            assert!(memory < MAX_MEMORY && cpu < MAX_CPU_NS, "{path} {shape}");
        }
    }
    // Just under the default limit (256 KiB) is read and decoded, and still refused clearly.
    let body = repeated(&auth, |_| format!("a{}=", "[]".repeat(15)), 256 * 1024);
    let reply = raw_http::post(port, "/bitrix/events", &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("invalid_form"), "{}", reply.body);
}

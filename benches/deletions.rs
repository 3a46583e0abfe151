//! Deletion benchmark: 10,000 deletions over 10 lines against the fake portal with Bitrix24's
//! real limits (leaky bucket of 50, draining 2 requests/s), beside a naive client that makes one
//! `imconnector.delete.messages` call per message, measured the same way; then the delay from a
//! 202 to the delete call leaving, under light load.
//!
//! `cargo bench --bench deletions` (env: BENCH_NAIVE_CALLS, default 80).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openchannel_gateway::bitrix::BitrixClient;
use openchannel_gateway::metrics::Metrics;
use openchannel_gateway::settings::BitrixSettings;
use openchannel_gateway::store::{Installation, PortalRecord, Store};
use openchannel_sim::messenger::{FakeMessenger, MessengerClient};
use openchannel_sim::portal::{BucketConfig, FakePortal, FakePortalConfig};
use openchannel_sim::webhooks::Secret;
use serde_json::json;

const LINES: u64 = 10;
const CHATS_PER_LINE: usize = 10;
const MESSAGES_PER_CHAT: usize = 100;
const LINGER_MS: u64 = 200;

fn portal_config() -> FakePortalConfig {
    FakePortalConfig {
        bucket: Some(BucketConfig {
            rate_per_second: 2.0,
            burst: 50,
        }),
        ..Default::default()
    }
}

fn gateway_toml(
    dir: &std::path::Path,
    portal: &FakePortal,
    messenger: &FakeMessenger,
    secret: &Secret,
) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[bitrix]\nclient_id = \"app.test\"\nclient_secret = \"secret.test\"\noauth_servers = [\"{}\"]\nrate_per_second = 2.0\nburst = 50\n[deletions]\nmax_batch = 50\nlinger_ms = {LINGER_MS}\n",
        dir.join("data").display(),
        portal.oauth_base()
    );
    toml.push_str(&common::channels_toml(
        &portal.member_id(),
        LINES,
        &secret.to_whsec(),
        &messenger.url(),
    ));
    toml
}

fn ids(line: u64, chat: usize) -> Vec<String> {
    (0..MESSAGES_PER_CHAT)
        .map(|i| format!("m-{line}-{chat}-{i}"))
        .collect()
}

#[tokio::main]
async fn main() {
    openchannel_gateway::tls::install_provider();
    let secret = Secret::generate();
    let portal = FakePortal::start(portal_config()).await.unwrap();
    let messenger = FakeMessenger::start(secret.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = common::start_gateway(
        dir.path(),
        &gateway_toml(dir.path(), &portal, &messenger, &secret),
    )
    .await;
    portal.install_on(&gateway.base).await;
    let member = portal.member_id();
    let store = gateway.app_store.clone();
    wait(Duration::from_secs(60), || {
        store.portal(&member).unwrap().is_some_and(|p| p.is_ready())
    })
    .await;
    for line in 1..=LINES {
        for chat in 0..CHATS_PER_LINE {
            portal.seed_messages(
                "ocgw",
                line,
                &format!("chat-{chat}"),
                &format!("user-{line}-{chat}"),
                &ids(line, chat),
            );
        }
    }
    let setup_requests = portal.requests().len();
    println!("setup used {setup_requests} of the portal's 50-request burst");

    // The run: 100 events (10 lines × 10 chats) of 100 deletions each, 10,000 in all.
    let start = Instant::now();
    let events: Vec<(u64, usize)> = (1..=LINES)
        .flat_map(|l| (0..CHATS_PER_LINE).map(move |c| (l, c)))
        .collect();
    let replies: Vec<String> = futures_util::stream::iter(events)
        .map(|(line, chat)| {
            let client = MessengerClient::new(&gateway.base, &format!("line{line}"), secret.clone());
            async move {
                let messages: Vec<_> = ids(line, chat).into_iter().map(|id| json!({"id": id})).collect();
                let data = json!({"chat": {"id": format!("chat-{chat}")}, "user": {"id": format!("user-{line}-{chat}")}, "messages": messages});
                let reply = client.post_event("message.deleted", data).await.unwrap();
                assert_eq!(reply.status(), 202);
                let body: serde_json::Value = reply.json().await.unwrap();
                body["deletion_id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let accepted = start.elapsed();
    messenger
        .wait_for(
            |d| {
                d.iter()
                    .filter(|d| d.acknowledged() && d.event_type == "deletion.completed")
                    .count()
                    >= replies.len()
            },
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    let drained = start.elapsed();
    let run_requests: Vec<_> = portal.requests().into_iter().skip(setup_requests).collect();
    let delete_calls: usize = run_requests
        .iter()
        .map(|r| {
            if r.method == "imconnector.delete.messages" {
                1
            } else {
                r.commands
                    .iter()
                    .filter(|c| *c == "imconnector.delete.messages")
                    .count()
            }
        })
        .sum();
    let deleted = portal.messages().iter().filter(|m| m.deleted).count();
    let rejected = run_requests.iter().filter(|r| r.status == 503).count();
    println!(
        "gateway: 10000 deletions accepted in {:.2} s, drained (every item final, every report delivered) in {:.2} s",
        accepted.as_secs_f64(),
        drained.as_secs_f64()
    );
    println!(
        "gateway: {} HTTP requests ({} imconnector.delete.messages calls inside them), {} QUERY_LIMIT_EXCEEDED, {} messages deleted",
        run_requests.len(),
        delete_calls,
        rejected,
        deleted
    );

    // Naive client: one call per message, paced by the same bucket, on a fresh portal.
    let naive_calls = std::env::var("BENCH_NAIVE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80usize);
    let (burst_calls, burst_time, naive_rate) = naive(naive_calls).await;
    let naive_total = burst_time + (10_000 - burst_calls) as f64 / naive_rate;
    println!(
        "naive client: measured {naive_calls} calls: {burst_calls} within the burst ({burst_time:.2} s), then {naive_rate:.2} calls/s; \
         extrapolated from that rate for 10000 messages: 10000 requests, {naive_total:.0} s"
    );
    println!(
        "ratio: {:.0}x fewer requests (goal >= 100x), {:.0}x faster to drain",
        10_000.0 / run_requests.len() as f64,
        naive_total / drained.as_secs_f64()
    );

    // Light load: one single-item deletion every 600 ms (below 2/s) on one line.
    let client = MessengerClient::new(&gateway.base, "line1", secret.clone());
    let before = portal.requests().len();
    portal.seed_messages(
        "ocgw",
        1,
        "light",
        "user-light",
        &(0..30).map(|i| format!("light-{i}")).collect::<Vec<_>>(),
    );
    let mut acks = Vec::new();
    for i in 0..30 {
        let data = json!({"chat": {"id": "light"}, "user": {"id": "user-light"}, "messages": [{"id": format!("light-{i}")}]});
        let reply = client.post_event("message.deleted", data).await.unwrap();
        assert_eq!(reply.status(), 202);
        acks.push(Instant::now());
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let calls: Vec<Instant> = portal
        .requests()
        .into_iter()
        .skip(before)
        .filter(|r| r.method == "imconnector.delete.messages")
        .map(|r| r.at)
        .collect();
    let mut delays: Vec<Duration> = acks
        .iter()
        .zip(&calls)
        .map(|(a, c)| c.saturating_duration_since(*a))
        .collect();
    delays.sort();
    println!(
        "light load: {} events, 202 → delete call leaves: p50 {:.0} ms, p99 {:.0} ms (goal p99 <= linger {LINGER_MS} + 100 ms)",
        delays.len(),
        common::ms(common::percentile(&delays, 50.0)),
        common::ms(common::percentile(&delays, 99.0))
    );
    drop(store);
    drop(gateway.app_store);
    gateway.stop.stop().await;
}

/// One delete call per message through the gateway's own client (so it is paced and never
/// rejected); returns how many calls fit the burst, how long they took, and the rate after them.
async fn naive(calls: usize) -> (usize, f64, f64) {
    let portal = FakePortal::start(portal_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tokens = portal.issue_tokens();
    let record = PortalRecord {
        setup_at_ms: Some(0),
        ..PortalRecord::installed(
            Installation {
                member_id: portal.member_id(),
                domain: portal.domain(),
                client_endpoint: portal.client_endpoint(),
                oauth_server: portal.oauth_base(),
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
                expires_at: 0,
                application_token: portal.application_token(),
                scope: String::new(),
            },
            0,
        )
    };
    store.commit(move |d| d.put_portal(&record)).await.unwrap();
    let settings = BitrixSettings {
        client_id: "app.test".into(),
        client_secret: "secret.test".into(),
        oauth_servers: vec![portal.oauth_base()],
        portals: Vec::new(),
        oauth_url: None,
        rate_per_second: 2.0,
        burst: 50,
        request_timeout_ms: 30_000,
        request_budget_ms: 20_000,
    };
    let client =
        Arc::new(BitrixClient::new(settings, store, Arc::new(Metrics::default())).unwrap());
    let member = portal.member_id();
    client.call(&member, "imconnector.register", json!({"ID": "ocgw", "NAME": "n", "ICON": {"DATA_IMAGE": "data:image/svg+xml,x"}, "PLACEMENT_HANDLER": "http://x/p"})).await.unwrap();
    client
        .call(
            &member,
            "imconnector.activate",
            json!({"CONNECTOR": "ocgw", "LINE": 1, "ACTIVE": 1}),
        )
        .await
        .unwrap();
    let ids: Vec<String> = (0..calls).map(|i| format!("n{i}")).collect();
    portal.seed_messages("ocgw", 1, "c", "u", &ids);
    // Two setup calls were spent; the pacer keeps one request of headroom: 47 fit the burst.
    let burst_calls = 47;
    let start = Instant::now();
    let mut burst_time = 0.0;
    for (i, id) in ids.iter().enumerate() {
        let params = json!({"CONNECTOR": "ocgw", "LINE": 1, "MESSAGES": [{"user": {"id": "u"}, "message": {"id": id}, "chat": {"id": "c"}}]});
        client
            .call(&member, "imconnector.delete.messages", params)
            .await
            .unwrap();
        if i + 1 == burst_calls {
            burst_time = start.elapsed().as_secs_f64();
        }
    }
    let total = start.elapsed().as_secs_f64();
    let rate = (calls - burst_calls) as f64 / (total - burst_time);
    assert!(
        portal.requests().iter().all(|r| r.status == 200),
        "the naive client was never rejected"
    );
    (burst_calls, burst_time, rate)
}

async fn wait(limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

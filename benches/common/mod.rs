//! Shared pieces of the benchmarks: a gateway on port 0, the `[[channels]]` of one portal's
//! lines, raw hyper connections, environment knobs and latency statistics.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use openchannel_gateway::settings::Settings;
use openchannel_gateway::startup::{Application, StopHandle};

/// A running gateway.
pub struct Gateway {
    pub base: String,
    pub stop: StopHandle,
    pub app_store: openchannel_gateway::store::Store,
}

/// Start a gateway from a TOML settings text.
pub async fn start_gateway(dir: &Path, toml: &str) -> Gateway {
    let config = dir.join("gateway.toml");
    std::fs::write(&config, toml).expect("write config");
    let settings = Settings::load_from(Some(config), Vec::new()).expect("settings");
    let app = Application::build(settings).await.expect("gateway");
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.stop_handle();
    let app_store = app.store().clone();
    tokio::spawn(app.run_until_stopped());
    Gateway {
        base,
        stop,
        app_store,
    }
}

/// p-th percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `[[channels]]` "line1"… "line{lines}" of one portal, each its own open line, signed with
/// `whsec` and delivering to `outbound_url`.
pub fn channels_toml(member_id: &str, lines: u64, whsec: &str, outbound_url: &str) -> String {
    (1..=lines)
        .map(|line| {
            format!(
                "[[channels]]\nid = \"line{line}\"\nportal = \"{member_id}\"\nline = {line}\nsecret = \"{whsec}\"\noutbound_url = \"{outbound_url}\"\n"
            )
        })
        .collect()
}

/// One keep-alive HTTP/1 connection to `addr` (raw hyper: cheaper per request than reqwest, so
/// the load generator does not dominate the cores it shares with the servers).
pub async fn connect(
    addr: &str,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

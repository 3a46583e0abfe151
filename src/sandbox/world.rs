//! The sandbox's world: a fake Bitrix24 portal, a fake messaging platform and the real gateway
//! between them, all on loopback, with settings and storage in a temporary directory.
//!
//! The gateway's `public_url` must be known before it is built (setup binds Bitrix24 events to
//! `{public_url}/bitrix/events`), so a free port is picked first by binding and releasing a
//! listener; if another process takes it in between, the build fails with a listen error and is
//! tried again on a fresh port. This keeps `startup` untouched.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::output::describe;
use crate::settings::Settings;
use crate::startup::{Application, StartError, StopHandle};
use crate::store::Store;
use openchannel_sim::messenger::{Delivery, FakeMessenger, MessengerClient};
use openchannel_sim::portal::{BucketConfig, FakePortal, FakePortalConfig};
use openchannel_sim::telegram::FakeTelegram;
use openchannel_sim::webhooks::Secret;

/// The sandbox's channels: id and open line, both on the one fake portal.
pub(super) const CHANNELS: [(&str, u64); 2] = [("shop", 1), ("support", 2)];

/// The Telegram channel: id, open line, and its bot's settings (the token is the fake's).
pub(super) const TELEGRAM_CHANNEL: (&str, u64) = ("tg-shop", 3);
pub(super) const TELEGRAM_TOKEN: &str = "7000000001:sandbox-bot-token";
const TELEGRAM_WEBHOOK_SECRET: &str = "sandbox-webhook-secret";

/// Attempts at building the gateway when the picked port was taken meanwhile.
const BUILD_ATTEMPTS: u32 = 5;

/// Everything that runs during the sandbox.
pub(super) struct World {
    pub portal: FakePortal,
    pub messenger: FakeMessenger,
    /// The fake Telegram Bot API of the Telegram channel.
    pub telegram: FakeTelegram,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub base: String,
    /// The platform's clients, one per entry of [`CHANNELS`].
    pub clients: Vec<MessengerClient>,
    /// Settings and storage; removed (with its contents) when dropped.
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Taken before stopping: the gateway waits for every storage handle to go.
    store: Option<Store>,
    progress: watch::Receiver<u64>,
    stop: StopHandle,
    running: JoinHandle<std::io::Result<()>>,
}

impl World {
    /// Start both fakes and the gateway (not yet installed on the portal).
    pub(super) async fn start() -> Result<World, String> {
        crate::tls::install_provider();
        let portal = FakePortal::start(FakePortalConfig {
            bucket: Some(BucketConfig::default()),
            ..FakePortalConfig::default()
        })
        .await
        .map_err(|e| format!("cannot start the fake Bitrix24 portal: {e}"))?;
        let secret = Secret::generate();
        let messenger = FakeMessenger::start(secret.clone())
            .await
            .map_err(|e| format!("cannot start the fake messaging platform: {e}"))?;
        let telegram = FakeTelegram::start(TELEGRAM_TOKEN)
            .await
            .map_err(|e| format!("cannot start the fake Telegram Bot API: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix("openchannel-gateway-sandbox-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp directory: {e}"))?;
        let app = build(&portal, &messenger, &telegram, &secret, dir.path()).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let clients = CHANNELS
            .iter()
            .map(|(id, _)| MessengerClient::new(&base, id, secret.clone()))
            .collect();
        let store = app.store().clone();
        let progress = app.progress();
        let stop = app.stop_handle();
        let running = tokio::spawn(app.run_until_stopped());
        Ok(World {
            portal,
            messenger,
            telegram,
            base,
            clients,
            dir,
            http: openchannel_sim::portal::loopback_client(),
            store: Some(store),
            progress,
            stop,
            running,
        })
    }

    /// POST the portal's `ONAPPINSTALL` to `/bitrix/install`; returns the HTTP status.
    pub(super) async fn install(&self) -> Result<u16, String> {
        let reply = self
            .http
            .post(format!("{}/bitrix/install", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(self.portal.install_event_body())
            .send()
            .await
            .map_err(|e| format!("POST /bitrix/install failed: {e}"))?;
        let status = reply.status().as_u16();
        if status != 200 {
            let body = reply.text().await.unwrap_or_default();
            return Err(format!("POST /bitrix/install answered {status}: {body}"));
        }
        Ok(status)
    }

    /// Wait until `done(store)` holds, re-checking whenever the gateway records progress.
    pub(super) async fn wait_store(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Store) -> bool,
    ) -> Result<(), String> {
        let store = self.store.as_ref().ok_or("the gateway is stopped")?;
        let mut progress = self.progress.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            progress.borrow_and_update();
            if done(store) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(format!("the gateway stopped before {what}")),
                Err(_) => return Err(format!("{what} did not happen within {timeout:?}")),
            }
        }
    }

    /// Wait until `done(portal)` holds, re-checking on every change of the portal's state. The
    /// error says `what` did not happen and which requests the portal saw last.
    pub(super) async fn wait_portal(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&FakePortal) -> bool,
    ) -> Result<(), String> {
        self.portal.wait_until(timeout, done).await.map_err(|_| {
            let requests = self.portal.requests();
            let last = &requests[requests.len().saturating_sub(5)..];
            format!(
                "{what} did not happen within {timeout:?} (the portal received {} requests; the last: {})",
                requests.len(),
                describe(last)
            )
        })
    }

    /// Wait until `done(deliveries)` holds, re-checking on every delivery to the platform; returns
    /// the deliveries. The error says `what` did not happen and what the platform received.
    pub(super) async fn wait_platform(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Result<Vec<Delivery>, String> {
        self.messenger.wait_for(done, timeout).await.map_err(|_| {
            let types: Vec<String> = self
                .messenger
                .deliveries()
                .iter()
                .map(|d| format!("{} ({})", d.event_type, d.status_returned))
                .collect();
            format!(
                "{what} did not happen within {timeout:?} (the platform received {} deliveries: {})",
                types.len(),
                types.join(", ")
            )
        })
    }

    /// A deletion's record and items, from the gateway's storage.
    pub(super) fn store_deletion(
        &self,
        id: &str,
    ) -> Option<(
        crate::store::DeletionRecord,
        Vec<crate::store::DeletionItem>,
    )> {
        self.store.as_ref()?.deletion(&id.into()).ok().flatten()
    }

    /// Stop the gateway (storage closed), then the fakes; the temp dir goes last.
    pub(super) async fn shutdown(mut self) -> Result<(), String> {
        self.store.take();
        // Idle keep-alive connections of the platform's clients would hold up the graceful stop.
        self.clients.clear();
        self.stop.stop().await;
        let served = self.running.await;
        self.messenger.stop().await;
        drop(self.telegram);
        drop(self.portal);
        drop(self.dir);
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the gateway's server failed: {e}")),
            Err(e) => Err(format!("the gateway's task failed: {e}")),
        }
    }
}

/// Build the gateway on a free loopback port, retrying if the port was taken meanwhile.
async fn build(
    portal: &FakePortal,
    messenger: &FakeMessenger,
    telegram: &FakeTelegram,
    secret: &Secret,
    dir: &Path,
) -> Result<Application, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port().map_err(|e| format!("cannot find a free loopback port: {e}"))?;
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            settings_toml(port, portal, messenger, telegram, secret, dir),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        // No environment layer: GATEWAY__* variables meant for `serve` must not leak in.
        let settings = Settings::load_from(Some(path), Vec::new())
            .map_err(|e| format!("sandbox settings rejected: {e}"))?;
        match Application::build(settings).await {
            Ok(app) => return Ok(app),
            Err(StartError::Listen { .. }) if attempt < BUILD_ATTEMPTS => continue,
            Err(e) => return Err(format!("cannot start the gateway: {e}")),
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The gateway's settings: real Bitrix24 limits, every channel on the fake portal.
fn settings_toml(
    port: u16,
    portal: &FakePortal,
    messenger: &FakeMessenger,
    telegram: &FakeTelegram,
    secret: &Secret,
    dir: &Path,
) -> String {
    let defaults = FakePortalConfig::default();
    let BucketConfig {
        rate_per_second,
        burst,
    } = BucketConfig::default();
    let mut toml = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[storage]
path = {data:?}

[bitrix]
client_id = {client_id:?}
client_secret = {client_secret:?}
oauth_servers = [{oauth:?}]
rate_per_second = {rate_per_second:?}
burst = {burst}
request_timeout_ms = 10000

[retry]
initial_backoff_ms = 100
max_backoff_ms = 2000
max_attempts = 20
max_age_secs = 3600
"#,
        data = dir.join("data").display().to_string(),
        client_id = defaults.client_id,
        client_secret = defaults.client_secret,
        oauth = portal.oauth_base(),
    );
    for (id, line) in CHANNELS {
        toml.push_str(&format!(
            "\n[[channels]]\nid = {id:?}\nportal = {member:?}\nline = {line}\nsecret = {secret:?}\noutbound_url = {outbound:?}\n",
            member = portal.member_id(),
            secret = secret.to_whsec(),
            outbound = messenger.url(),
        ));
    }
    let (id, line) = TELEGRAM_CHANNEL;
    toml.push_str(&format!(
        "\n[[channels]]\nid = {id:?}\nplatform = \"telegram\"\nportal = {member:?}\nline = {line}\nsecret = {secret:?}\n\
         [channels.telegram]\nbot_token = {TELEGRAM_TOKEN:?}\nwebhook_secret = {TELEGRAM_WEBHOOK_SECRET:?}\napi_url = {api:?}\n",
        member = portal.member_id(),
        secret = secret.to_whsec(),
        api = telegram.url(),
    ));
    toml
}

//! `spawn_app()`: a gateway on port 0 with a temp data directory, wired to a fresh fake portal
//! and fake platform; signed-request helpers; waiting on the gateway's progress signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openchannel_gateway::settings::Settings;
use openchannel_gateway::startup::{Application, StopHandle};
use openchannel_gateway::store::Store;
use openchannel_sim::messenger::{FakeMessenger, MessengerClient};
use openchannel_sim::portal::{FakePortal, FakePortalConfig};
use openchannel_sim::webhooks::Secret;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long any wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const LINE: u64 = 7;
/// The second channel ("beta") is on another line of the same portal.
pub const LINE_B: u64 = 9;

/// Knobs of one test gateway.
#[derive(Clone)]
pub struct TestOptions {
    pub portal: FakePortalConfig,
    /// Gateway-side bucket (rate per second, burst).
    pub bucket: (f64, u32),
    pub max_batch: usize,
    pub linger_ms: u64,
    pub max_attempts: u32,
    pub request_timeout_ms: u64,
    /// POST the portal's ONAPPINSTALL before returning.
    pub install: bool,
    /// `[bot] enabled`.
    pub bot: bool,
    /// More trusted authorization servers, after the fake portal's own.
    pub extra_oauth_servers: Vec<String>,
    /// `[bitrix] portals` (the install allow-list).
    pub allowed_portals: Vec<String>,
    /// Appended to the settings file (e.g. more `[[channels]]`); `{member}` stands for the fake
    /// portal's member_id.
    pub extra_toml: String,
    /// Items a portal's worker keeps in memory (None: the default).
    pub max_queued: Option<usize>,
    /// `storage.pending_in_memory` (None: the default).
    pub pending_in_memory: Option<usize>,
    /// The gateway's clock (None: the system's).
    pub clock: Option<openchannel_gateway::clock::Clock>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            portal: FakePortalConfig::default(),
            bucket: (1000.0, 1000),
            max_batch: 50,
            linger_ms: 20,
            max_attempts: 8,
            request_timeout_ms: 2000,
            install: true,
            bot: false,
            extra_oauth_servers: Vec::new(),
            allowed_portals: Vec::new(),
            extra_toml: String::new(),
            max_queued: None,
            pending_in_memory: None,
            clock: None,
        }
    }
}

/// A running gateway and its counterparts.
pub struct TestApp {
    pub base: String,
    pub portal: FakePortal,
    pub messenger: FakeMessenger,
    /// The platform's client for channel "acme" (line 7).
    pub client: MessengerClient,
    /// The platform's client for channel "beta" (line 9).
    pub beta: MessengerClient,
    pub secret: Secret,
    pub http: reqwest::Client,
    pub options: TestOptions,
    store: Option<Store>,
    progress: watch::Receiver<u64>,
    stop: StopHandle,
    dir: Arc<tempfile::TempDir>,
    config: PathBuf,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(TestOptions::default()).await
}

pub async fn spawn_with(options: TestOptions) -> TestApp {
    openchannel_gateway::tls::install_provider();
    let portal = FakePortal::start(options.portal.clone())
        .await
        .expect("fake portal");
    let secret = Secret::generate();
    let messenger = FakeMessenger::start(secret.clone())
        .await
        .expect("fake messenger");
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let config = dir.path().join("gateway.toml");
    // Bound first so that `public_url` (where the fake portal posts its events) is known.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("port").port();
    std::fs::write(
        &config,
        config_toml(&options, &portal, &messenger, &secret, dir.path()).replace(
            "public_url = \"http://127.0.0.1:1\"",
            &format!("public_url = \"http://127.0.0.1:{port}\""),
        ),
    )
    .expect("config");
    let mut app = start(options, portal, messenger, secret, dir, config, listener).await;
    if app.options.install {
        app.install().await;
    }
    app
}

pub fn config_toml(
    o: &TestOptions,
    portal: &FakePortal,
    messenger: &FakeMessenger,
    secret: &Secret,
    dir: &std::path::Path,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:1"
max_body_bytes = 65536
[storage]
path = "{data}"
{pending}
[bitrix]
client_id = "{client_id}"
client_secret = "{client_secret}"
oauth_servers = {oauth_servers:?}
portals = {portals:?}
rate_per_second = {rate}
burst = {burst}
request_timeout_ms = {timeout}
[deletions]
max_batch = {max_batch}
linger_ms = {linger}
[retry]
initial_backoff_ms = 20
max_backoff_ms = 200
max_attempts = {attempts}
max_age_secs = 3600
[bot]
enabled = {bot}
[admin]
token = "{ADMIN_TOKEN}"
[[channels]]
id = "acme"
portal = "{member}"
line = {LINE}
secret = "{secret}"
outbound_url = "{outbound}"
[[channels]]
id = "beta"
portal = "{member}"
line = {LINE_B}
secret = "{secret}"
outbound_url = "{outbound}"
{extra}
"#,
        data = dir.join("data").display(),
        pending = o
            .pending_in_memory
            .map(|n| format!("pending_in_memory = {n}"))
            .unwrap_or_default(),
        client_id = o.portal.client_id,
        client_secret = o.portal.client_secret,
        oauth_servers = std::iter::once(portal.oauth_base())
            .chain(o.extra_oauth_servers.iter().cloned())
            .collect::<Vec<_>>(),
        portals = o.allowed_portals,
        extra = o.extra_toml.replace("{member}", &portal.member_id()),
        rate = o.bucket.0,
        burst = o.bucket.1,
        timeout = o.request_timeout_ms,
        max_batch = o.max_batch,
        linger = o.linger_ms,
        attempts = o.max_attempts,
        bot = o.bot,
        member = portal.member_id(),
        secret = secret.to_whsec(),
        outbound = messenger.url(),
    )
}

async fn start(
    options: TestOptions,
    portal: FakePortal,
    messenger: FakeMessenger,
    secret: Secret,
    dir: Arc<tempfile::TempDir>,
    config: PathBuf,
    listener: std::net::TcpListener,
) -> TestApp {
    let settings = Settings::load_from(Some(config.clone()), Vec::new()).expect("test settings");
    let build = openchannel_gateway::startup::Options {
        listener: Some(listener),
        max_queued: options.max_queued,
        clock: options.clock.clone(),
    };
    let app = Application::build_with(settings, build)
        .await
        .expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let progress = app.progress();
    let stop = app.stop_handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        client: MessengerClient::new(&base, "acme", secret.clone()),
        beta: MessengerClient::new(&base, "beta", secret.clone()),
        base,
        portal,
        messenger,
        secret,
        http: reqwest::Client::new(),
        options,
        store: Some(store),
        progress,
        stop,
        dir,
        config,
    }
}

impl TestApp {
    /// The gateway's storage.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("store is open")
    }

    /// POST the fake portal's ONAPPINSTALL event to /bitrix/install.
    pub async fn install(&mut self) {
        let reply = self
            .post_form("/bitrix/install", self.portal.install_event_body())
            .await;
        assert_eq!(reply.status(), 200, "install: {:?}", reply.text().await);
        let member = self.portal.member_id();
        self.wait_for("portal set up", |s| {
            s.portal(&member).unwrap().is_some_and(|p| p.is_ready())
        })
        .await;
    }

    pub async fn post_form(&self, path: &str, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_admin(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// Signed event on channel "acme"; returns (status, JSON body).
    pub async fn post_event(&self, event_type: &str, data: Value) -> (u16, Value) {
        let reply = self
            .client
            .post_event(event_type, data)
            .await
            .expect("request");
        status_json(reply).await
    }

    /// Wait until `done(store)` holds, re-checking whenever the gateway records progress.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Store) -> bool) {
        let mut progress = self.progress.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            progress.borrow_and_update();
            if done(self.store()) {
                return;
            }
            if tokio::time::timeout_at(deadline, progress.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for: {what}");
            }
        }
    }

    /// Wait until `/metrics` shows `line`. Gauges have no change notification, so this polls
    /// (every 20 ms, up to the usual deadline): a store change is visible to readers before the
    /// sync that precedes the gauge's update.
    pub async fn wait_for_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let metrics = self.get("/metrics").await.text().await.unwrap();
            if metrics.contains(line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {line} in {metrics}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stop gracefully and start again on the same data directory and counterparts.
    pub async fn restart(mut self) -> TestApp {
        self.store.take();
        let TestApp {
            base,
            portal,
            messenger,
            secret,
            options,
            stop,
            dir,
            config,
            ..
        } = self;
        let port: u16 = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        stop.stop().await;
        // The same port again: the portal's bound handlers point at it.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind the port");
        start(options, portal, messenger, secret, dir, config, listener).await
    }
}

impl TestApp {
    /// Stop gracefully; return what a later run needs (the data directory lives on).
    pub async fn shutdown(mut self) -> (Arc<tempfile::TempDir>, PathBuf, FakePortal) {
        self.store.take();
        self.stop.clone().stop().await;
        (self.dir, self.config, self.portal)
    }

    /// The settings file of this gateway.
    pub fn config_path(&self) -> &PathBuf {
        &self.config
    }
}

pub async fn status_json(reply: reqwest::Response) -> (u16, Value) {
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A `message.created` payload.
pub fn created(chat: &str, user: &str, message: &str, text: &str) -> Value {
    json!({
        "chat": {"id": chat, "name": format!("Chat {chat}")},
        "user": {"id": user, "name": "Ivan"},
        "message": {"id": message, "date": 1_773_265_993, "text": text}
    })
}

/// Requests the fake portal saw for `method`, directly or inside `batch`.
pub fn calls_of(portal: &FakePortal, method: &str) -> usize {
    portal
        .requests()
        .iter()
        .map(|r| {
            if r.method.eq_ignore_ascii_case(method) {
                1
            } else {
                r.commands
                    .iter()
                    .filter(|c| c.eq_ignore_ascii_case(method))
                    .count()
            }
        })
        .sum()
}

/// A customer writes first, so that the open-line chat exists.
pub async fn open_chat(app: &TestApp, chat: &str) {
    assert_eq!(
        app.post_event(
            "message.created",
            created(chat, "u", &format!("hello-{chat}"), "hi")
        )
        .await
        .0,
        202
    );
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
}

/// A gateway with one more channel, "delta" on line 11, whose platform is `outbound` (e.g. a
/// recording server), and an operator's reply sent on it: the gateway is now delivering to
/// `outbound`.
pub async fn operator_reply_to(outbound: &str) -> TestApp {
    use openchannel_sim::webhooks::Secret;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn_with(TestOptions {
        extra_toml: format!(
            "[[channels]]\nid = \"delta\"\nportal = \"{{member}}\"\nline = 11\nsecret = \"{SECRET}\"\noutbound_url = \"{outbound}\"\n"
        ),
        ..Default::default()
    })
    .await;
    let delta = MessengerClient::new(&app.base, "delta", Secret::parse(SECRET).unwrap());
    let reply = delta
        .post_event("message.created", created("d1", "u", "hello-d1", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 202);
    app.wait_for("sent", |s| s.pending_ops().unwrap().is_empty())
        .await;
    let emitted = app.portal.operator_message(11, "d1", "a reply").await;
    assert_eq!(emitted.status, Some(200), "{}", emitted.body);
    app
}

/// Nothing is stored for the fake portal.
pub fn no_portal_stored(app: &TestApp) -> bool {
    app.store()
        .portal(&app.portal.member_id())
        .unwrap()
        .is_none()
}

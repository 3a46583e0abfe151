//! A fake Bitrix24 portal with its OAuth server: a real HTTP server on loopback that speaks the REST
//! protocol of `docs/bitrix24-protocol.md` (imconnector, events, batch, imbot) and emits events.
//!
//! [`FakePortal`] is the handle tests and the sandbox use: it starts the server, hands out tokens,
//! injects faults, exposes what the portal received and plays the operator side.

mod batch;
mod bucket;
mod config;
mod envelope;
mod events;
mod faults;
mod files;
mod imbot;
mod imconnector;
mod library;
mod messages;
mod oauth;
mod operator;
mod params;
mod reactions;
mod rest;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

pub use config::{BucketConfig, FakePortalConfig};
pub use events::EmitResult;
pub use faults::{Fault, FaultRule};
pub use files::FakeFile;
use state::PortalState;
pub use state::{
    FakeBinding, FakeBot, FakeBotMessage, FakeConnector, FakeLine, FakeMessage, IssuedTokens,
    RequestRecord,
};

/// Scope list of every token the fake issues (comma-separated, as in the OAuth answer).
pub(crate) const SCOPE: &str = "imconnector,imopenlines,im,imbot";

/// What the server's handlers share with the handle.
pub(crate) struct Shared {
    pub config: FakePortalConfig,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub domain: String,
    /// The authorization server's base, `http://127.0.0.1:OAUTH_PORT/` (its own listener, as
    /// Bitrix24's authorization servers are not the portals).
    pub oauth_base: String,
    pub application_token: String,
    pub state: Mutex<PortalState>,
    /// Client for event delivery.
    pub http: reqwest::Client,
    /// Bumped after every request, refresh and emitted event, so tests can wait for a state
    /// without polling.
    pub changes: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// The state lock. A panic in a handler must not make every later test assertion panic too.
    /// Tell waiters that the state changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PortalState> {
        self.state.lock()
    }

    pub(crate) fn client_endpoint(&self) -> String {
        format!("{}/rest/", self.url)
    }

    /// The authorization server's REST root (`server_endpoint`, as `https://oauth.bitrix.info/rest/`).
    pub(crate) fn server_endpoint(&self) -> String {
        format!("{}rest/", self.oauth_base)
    }
}

/// Stops the server when the last handle is dropped.
struct ServerGuard(Vec<ServerHandle>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // `stop` sends the command immediately; the returned future only waits for completion.
        for handle in &self.0 {
            #[allow(clippy::let_underscore_future)]
            let _ = handle.stop(false);
        }
    }
}

/// Handle to a running fake portal. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakePortal {
    shared: Arc<Shared>,
    _server: Arc<ServerGuard>,
}

impl std::fmt::Debug for FakePortal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePortal")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for loopback use. reqwest is built without a default TLS provider, so give it an
/// explicit (ring) one instead of installing a process-wide default.
pub fn loopback_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // Fresh connections each time: the client is used from several runtimes (actix workers, tests).
        .pool_max_idle_per_host(0)
        .build()
        .expect("loopback HTTP client")
}

impl FakePortal {
    /// Bind two loopback ports and start serving the portal (`/rest/`, and `/api/v1/`, a stand-in
    /// for Bitrix24's JS library) on one and its authorization server (`/oauth/token/`) on the
    /// other, on the current tokio runtime.
    pub async fn start(config: FakePortalConfig) -> std::io::Result<FakePortal> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let oauth_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let domain = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(PortalState::new(&config)),
            config,
            url: format!("http://{domain}"),
            oauth_base: format!("http://{}/", oauth_listener.local_addr()?),
            domain,
            application_token: config::random_hex(),
            http: loopback_client(),
            changes: tokio::sync::watch::channel(0).0,
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/rest/download.json", web::get().to(files::download))
                .route("/rest/{method}", web::route().to(rest::handle))
                .route("/api/v1/", web::get().to(library::script))
                .route(
                    "/api/v1/install-finish",
                    web::get().to(library::install_finish),
                )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)?
        .run();
        let oauth_data = web::Data::from(shared.clone());
        let oauth_server = HttpServer::new(move || {
            App::new()
                .app_data(oauth_data.clone())
                .route("/oauth/token/", web::route().to(oauth::token))
                .route("/oauth/token", web::route().to(oauth::token))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(oauth_listener)?
        .run();
        let handles = vec![server.handle(), oauth_server.handle()];
        tokio::spawn(server);
        tokio::spawn(oauth_server);
        Ok(FakePortal {
            shared,
            _server: Arc::new(ServerGuard(handles)),
        })
    }

    /// Wait until `done(self)` holds, re-checking after every change of the portal's state
    /// (requests, refreshes, events). On timeout, Err carries the last requests seen.
    pub async fn wait_until(
        &self,
        timeout: std::time::Duration,
        done: impl Fn(&FakePortal) -> bool,
    ) -> Result<(), String> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if done(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let requests = self.requests();
                let tail: Vec<_> = requests.iter().rev().take(10).collect();
                return Err(format!(
                    "condition not met within {timeout:?}; {} requests, last: {tail:?}",
                    requests.len()
                ));
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// `{url}/rest/` — the `client_endpoint` of this portal.
    pub fn client_endpoint(&self) -> String {
        self.shared.client_endpoint()
    }

    /// `http://127.0.0.1:OAUTH_PORT/` — the base of this portal's authorization server (the
    /// fake's stand-in for `https://oauth.bitrix.info/`), for `bitrix.oauth_servers`.
    pub fn oauth_base(&self) -> String {
        self.shared.oauth_base.clone()
    }

    /// `{oauth_base}oauth/token/` — the authorization server's token endpoint.
    pub fn oauth_url(&self) -> String {
        format!("{}oauth/token/", self.shared.oauth_base)
    }

    /// `{oauth_base}rest/` — the `server_endpoint` this portal's requests name.
    pub fn server_endpoint(&self) -> String {
        self.shared.server_endpoint()
    }

    /// `127.0.0.1:PORT` — the portal domain as sent in `auth[domain]` / `DOMAIN`.
    pub fn domain(&self) -> String {
        self.shared.domain.clone()
    }

    /// The portal's `member_id`.
    pub fn member_id(&self) -> String {
        self.shared.config.member_id.clone()
    }

    /// The `application_token` sent with every event (fixed per instance).
    pub fn application_token(&self) -> String {
        self.shared.application_token.clone()
    }

    /// Every token issued so far now answers 401 `expired_token` (tokens issued later are fresh).
    pub fn expire_access_tokens(&self) {
        let now = std::time::Instant::now();
        self.shared
            .lock()
            .access_tokens
            .values_mut()
            .for_each(|expiry| *expiry = now);
    }

    /// Put messages straight into the portal, as if a client had sent them earlier through
    /// `connector` (benchmarks start from a portal that already holds many messages).
    pub fn seed_messages(
        &self,
        connector: &str,
        line: u64,
        chat_id: &str,
        user_id: &str,
        message_ids: &[String],
    ) {
        let mut st = self.shared.lock();
        for id in message_ids {
            let internal_id = st.next_message_id();
            st.push_message(FakeMessage {
                connector: connector.to_ascii_lowercase(),
                line,
                chat_id: chat_id.to_string(),
                user_id: user_id.to_string(),
                message_id: id.clone(),
                internal_id,
                text: String::new(),
                files: Vec::new(),
                deleted: false,
                update_count: 0,
                delete_requests: 0,
            });
        }
    }

    /// Remove every pending fault (the end of a simulated outage).
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Queue a fault rule (rules are tried in the order they were pushed).
    pub fn push_fault(&self, rule: FaultRule) {
        self.shared.lock().faults.push(rule);
    }

    /// Every HTTP request to `/rest/` so far, in completion order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Requests cut at the time limit (`time_limit`) after processing part of their items.
    pub fn cut_requests(&self) -> usize {
        self.shared.lock().cut_requests
    }

    /// Number of successful OAuth refreshes.
    pub fn refresh_count(&self) -> usize {
        self.shared.lock().refresh_count
    }

    /// How many client messages were received (duplicates included), without copying them.
    pub fn message_count(&self) -> usize {
        self.shared.lock().messages.len()
    }

    /// Client messages received through `imconnector.send.messages` (duplicates included).
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.shared.lock().messages.clone()
    }

    /// From now on, send/update/delete items with external message id `message_id` answer
    /// `SUCCESS=false` with these `ERRORS`.
    pub fn fail_item(&self, message_id: &str, errors: Vec<String>) {
        self.shared
            .lock()
            .item_failures
            .insert(message_id.to_owned(), errors);
    }

    /// Registered connectors.
    pub fn connectors(&self) -> Vec<FakeConnector> {
        self.shared.lock().connectors.values().cloned().collect()
    }

    /// State of `connector` on `line`, if it was ever activated or configured.
    pub fn line(&self, connector: &str, line: u64) -> Option<FakeLine> {
        self.shared
            .lock()
            .lines
            .get(&(connector.to_lowercase(), line))
            .cloned()
    }

    /// Current `event.bind` registrations.
    pub fn bindings(&self) -> Vec<FakeBinding> {
        self.shared
            .lock()
            .bindings
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Registered bots.
    pub fn bots(&self) -> Vec<FakeBot> {
        self.shared.lock().bots.values().cloned().collect()
    }

    /// A bot registered by another application of the portal (listed by `imbot.bot.list`,
    /// returned by `imbot.register` for its CODE, refused to us with `APP_ID_ERROR`); its id.
    pub fn add_foreign_bot(&self, code: &str, name: &str) -> u64 {
        let mut st = self.shared.lock();
        let id = st.next_bot_id();
        st.bots.insert(
            id,
            FakeBot {
                id,
                code: code.into(),
                type_: "B".into(),
                openline: false,
                handlers: serde_json::json!({}),
                properties: serde_json::json!({ "NAME": name }),
                foreign: true,
            },
        );
        id
    }

    /// Messages posted by bots.
    pub fn bot_messages(&self) -> Vec<FakeBotMessage> {
        self.shared
            .lock()
            .bot_messages
            .values()
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Reactions currently set: `(message id, bot id, reaction code)`.
    pub fn reactions(&self) -> Vec<(u64, u64, String)> {
        self.shared.lock().reactions.clone()
    }

    /// Items received by `imconnector.send.status.delivery`.
    pub fn delivery_reports(&self) -> Vec<serde_json::Value> {
        self.shared.lock().delivery_reports.clone()
    }

    /// Put the bots in or out of open-line chat `chat_id` (default: bots are members of every chat).
    pub fn set_bot_in_chat(&self, chat_id: u64, present: bool) {
        let mut st = self.shared.lock();
        if present {
            st.bot_absent_chats.remove(&chat_id);
        } else {
            st.bot_absent_chats.insert(chat_id);
        }
    }

    /// Make a bot message `days` older (edits/deletes fail with `CANT_EDIT_MESSAGE` after 3 days).
    pub fn age_bot_message(&self, message_id: u64, days: u32) {
        if let Some((_, posted)) = self.shared.lock().bot_messages.get_mut(&message_id) {
            let age = Duration::from_secs(u64::from(days) * 24 * 3600);
            *posted = posted.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        }
    }
}

//! Settings: the layered configuration of contract §1 (default file → `--config`/`GATEWAY_CONFIG`
//! → `GATEWAY__SECTION__KEY` environment), validated once at start-up.
//!
//! Secrets (`bitrix.client_secret`, `admin.token`, each channel `secret`, a Telegram channel's
//! `bot_token` and `webhook_secret`) are wrapped so that they
//! never reach a log line or `check-config` output.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::signature::WebhookSecret;

/// The compiled-in copy of `config/default.toml`, so the binary runs from any directory.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// Path of the default file on disk, read (after the compiled-in copy) when present.
const DEFAULT_PATH: &str = "config/default.toml";
/// Environment prefix: `GATEWAY__SERVER__LISTEN` sets `server.listen`.
const ENV_PREFIX: &str = "GATEWAY";

/// Every setting of the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub bitrix: BitrixSettings,
    pub connector: ConnectorSettings,
    pub deletions: DeletionSettings,
    pub retry: RetrySettings,
    pub bot: BotSettings,
    pub admin: AdminSettings,
    #[serde(default)]
    pub channels: Vec<ChannelSettings>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// host:port; port 0 = any free port.
    pub listen: String,
    /// How Bitrix24 reaches the gateway; handler URLs are built from it.
    pub public_url: String,
    /// Largest accepted request body (413 above it).
    pub max_body_bytes: usize,
    /// Largest accepted form body on `/bitrix/*` (413 above it): Bitrix24's events are a few KB.
    pub max_form_bytes: usize,
    /// A request body not complete this long after its headers gets 408 and the connection closes.
    pub body_timeout_ms: u64,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// sled data directory.
    pub path: PathBuf,
    /// sled's page cache, MiB: bounds the memory storage uses.
    pub cache_mb: u64,
    /// Message mappings, finished records, reports and replay records older than this many
    /// days are pruned (replay records after at most 7 days); 0 keeps everything forever.
    pub retention_days: u64,
    /// Pending events (accepted, Bitrix24 work not finished) indexed in memory at most; beyond
    /// that each is looked up on disk, at about twice the acceptance cost.
    pub pending_in_memory: usize,
}

impl StorageSettings {
    /// What `retention_days` means for the store.
    pub fn retention(&self) -> crate::store::retention::Retention {
        crate::store::retention::Retention::from_days(self.retention_days)
    }

    /// How the store is opened.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_mb << 20,
            indexed: self.retention_days > 0,
            pending_in_memory: self.pending_in_memory,
        }
    }
}

/// Largest accepted `storage.pending_in_memory` (about 2 GiB of index).
const MAX_PENDING_IN_MEMORY: usize = 10_000_000;

/// Largest accepted `storage.retention_days` (100 years).
const MAX_RETENTION_DAYS: u64 = 36_500;

/// Largest accepted `storage.cache_mb` (64 GiB).
const MAX_CACHE_MB: u64 = 64 * 1024;

/// `[bitrix]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitrixSettings {
    /// OAuth application client_id.
    pub client_id: String,
    /// OAuth application client_secret (secret).
    pub client_secret: SecretString,
    /// Trusted Bitrix24 authorization servers (base URLs ending in `/`): a portal's
    /// `server_endpoint` must be `<base>rest/`; its token URL is `<base>oauth/token/`.
    pub oauth_servers: Vec<String>,
    /// Optional allow-list of member_ids that may install; empty = any verified portal.
    #[serde(default)]
    pub portals: Vec<String>,
    /// Contract v1's single token URL: refused at load with a message naming `oauth_servers`.
    #[serde(default)]
    pub oauth_url: Option<String>,
    /// Leaky bucket drain per portal, requests per second.
    pub rate_per_second: f64,
    /// Leaky bucket size per portal.
    pub burst: u32,
    /// Timeout of one HTTP request to Bitrix24.
    pub request_timeout_ms: u64,
    /// The most server time one request to Bitrix24 is planned to take (contract §1), judged
    /// from the `time.duration` / `result_time` Bitrix24 reports for each method.
    pub request_budget_ms: u64,
}

/// `[connector]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// imconnector ID, `[a-z0-9_]`.
    pub id: String,
    /// Name shown in the Contact Center.
    pub name: String,
}

/// `[deletions]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionSettings {
    /// Messages per `imconnector.delete.messages` call.
    pub max_batch: usize,
    /// How long a deletion waits for more of the same line.
    pub linger_ms: u64,
}

/// `[retry]` (an extension of contract v1): transient-failure policy for Bitrix24 calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First backoff delay.
    pub initial_backoff_ms: u64,
    /// Cap of the exponential backoff.
    pub max_backoff_ms: u64,
    /// Calls after which an item still failing transiently is given up.
    pub max_attempts: u32,
    /// Age after which an item still failing transiently is given up.
    pub max_age_secs: u64,
}

/// `[bot]` (an extension of contract v1): the optional open-line chat-bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// Register and use the bot.
    pub enabled: bool,
    /// `imbot.register` CODE, `[a-z0-9_]`.
    pub code: String,
    /// Shown in Bitrix24.
    pub name: String,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token of the /v1 read and admin APIs; empty disables them (secret).
    pub token: SecretString,
}

/// One `[[channels]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// `[a-z0-9_-]{1,64}`.
    pub id: String,
    /// The portal's member_id.
    pub portal: String,
    /// Open line ID.
    pub line: u64,
    /// Standard Webhooks secret (secret): verifies inbound events, signs outbound ones and, for
    /// Telegram channels, the media links.
    pub secret: SecretString,
    /// `generic` (contract §2 and §4) or `telegram` (contract §6).
    #[serde(default)]
    pub platform: Platform,
    /// Where events for the platform are POSTed: required for generic channels; optional for
    /// Telegram channels (where `deletion.completed` and `line.disconnected` go when set).
    #[serde(default)]
    pub outbound_url: Option<String>,
    /// `[channels.telegram]`: only (and required) for `platform = "telegram"`.
    #[serde(default)]
    pub telegram: Option<TelegramSettings>,
}

/// The messaging platform a channel speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// The gateway's own signed events (contract §2, §4).
    #[default]
    Generic,
    /// The Telegram Bot API (contract §6).
    Telegram,
}

impl Platform {
    /// The value as written in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Generic => "generic",
            Platform::Telegram => "telegram",
        }
    }
}

/// `[channels.telegram]` (contract §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// The bot's token from @BotFather (secret: it is the bot's password and sits in every Bot
    /// API URL).
    pub bot_token: SecretString,
    /// Telegram's `secret_token`: sent back in `X-Telegram-Bot-Api-Secret-Token` (secret).
    pub webhook_secret: SecretString,
    /// Bot API base URL (a local Bot API server, or a test double).
    #[serde(default = "default_telegram_api_url")]
    pub api_url: String,
}

/// Telegram's cloud Bot API.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

fn default_telegram_api_url() -> String {
    TELEGRAM_API_URL.to_string()
}

/// Why settings could not be loaded; the message is meant for a human at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings: {0}")]
    Load(String),
    #[error("invalid settings:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Load the layers of contract §1 and validate. `file` is `--config`; when absent,
    /// `GATEWAY_CONFIG` is consulted.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let env_file = std::env::var_os("GATEWAY_CONFIG").map(PathBuf::from);
        Self::load_from(file.map(Path::to_path_buf).or(env_file), std::env::vars())
    }

    /// As [`Settings::load`], with the override file and the environment given explicitly.
    pub fn load_from(
        file: Option<PathBuf>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if Path::new(DEFAULT_PATH).is_file() {
            builder = builder.add_source(File::new(DEFAULT_PATH, FileFormat::Toml));
        }
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| SettingsError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Check every value; all problems are reported together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if self.listen_addr().is_err() {
            problems.push(format!(
                "server.listen {:?} is not a host:port address",
                self.server.listen
            ));
        }
        check_url(&mut problems, "server.public_url", &self.server.public_url);
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".into());
        }
        if !(1..=MAX_CACHE_MB).contains(&self.storage.cache_mb) {
            problems.push(format!(
                "storage.cache_mb must be between 1 and {MAX_CACHE_MB}"
            ));
        }
        if self.storage.pending_in_memory > MAX_PENDING_IN_MEMORY {
            problems.push(format!(
                "storage.pending_in_memory must be between 0 and {MAX_PENDING_IN_MEMORY}"
            ));
        }
        if self.storage.retention_days > MAX_RETENTION_DAYS {
            problems.push(format!(
                "storage.retention_days must be between 0 (keep forever) and {MAX_RETENTION_DAYS}"
            ));
        }
        if self.server.max_form_bytes < 1024 {
            problems.push("server.max_form_bytes must be at least 1024".into());
        }
        if !(10..=600_000).contains(&self.server.body_timeout_ms) {
            problems.push("server.body_timeout_ms must be between 10 and 600000".into());
        }
        if self.bitrix.oauth_url.is_some() {
            problems.push(
                "bitrix.oauth_url is no longer supported (contract v2): list the trusted \
                 authorization servers in bitrix.oauth_servers instead, e.g. \
                 oauth_servers = [\"https://oauth.bitrix.info/\", \"https://oauth.bitrix24.tech/\"]; \
                 each portal is refreshed at its own server"
                    .into(),
            );
        }
        if self.bitrix.oauth_servers.is_empty() {
            problems
                .push("bitrix.oauth_servers must name at least one authorization server".into());
        }
        for (i, base) in self.bitrix.oauth_servers.iter().enumerate() {
            let what = format!("bitrix.oauth_servers[{i}]");
            check_url(&mut problems, &what, base);
            if !base.ends_with('/') || base.contains(['?', '#']) {
                problems.push(format!(
                    "{what} {base:?} must be a base URL ending in \"/\" (e.g. \"https://oauth.bitrix.info/\")"
                ));
            }
        }
        for (i, id) in self.bitrix.portals.iter().enumerate() {
            if !is_member_id(id) {
                problems.push(format!("bitrix.portals[{i}] {id:?} is not a member_id"));
            }
        }
        if !(self.bitrix.rate_per_second > 0.0 && self.bitrix.rate_per_second.is_finite()) {
            problems.push("bitrix.rate_per_second must be a positive number".into());
        }
        if self.bitrix.burst == 0 {
            problems.push("bitrix.burst must be at least 1".into());
        }
        if self.bitrix.request_timeout_ms == 0 {
            problems.push("bitrix.request_timeout_ms must be positive".into());
        }
        if !(100..=55_000).contains(&self.bitrix.request_budget_ms) {
            problems.push(
                "bitrix.request_budget_ms must be between 100 and 55000 (Bitrix24 cuts a request at 60 s)"
                    .into(),
            );
        }
        if !is_connector_id(&self.connector.id) {
            problems.push(format!(
                "connector.id {:?} must be 1 to 64 characters of [a-z0-9_]",
                self.connector.id
            ));
        }
        if self.connector.name.trim().is_empty() {
            problems.push("connector.name must not be empty".into());
        }
        if !(1..=1000).contains(&self.deletions.max_batch) {
            problems.push("deletions.max_batch must be between 1 and 1000".into());
        }
        if self.deletions.linger_ms > 60_000 {
            problems.push("deletions.linger_ms must be at most 60000".into());
        }
        if self.retry.initial_backoff_ms == 0
            || self.retry.max_backoff_ms < self.retry.initial_backoff_ms
        {
            problems.push(
                "retry.initial_backoff_ms must be positive and not above retry.max_backoff_ms"
                    .into(),
            );
        }
        if !is_connector_id(&self.bot.code) {
            problems.push(format!(
                "bot.code {:?} must be 1 to 64 characters of [a-z0-9_]",
                self.bot.code
            ));
        }
        if self.bot.name.trim().is_empty() {
            problems.push("bot.name must not be empty".into());
        }
        if self.retry.max_attempts == 0 {
            problems.push("retry.max_attempts must be at least 1".into());
        }
        let mut seen = HashSet::new();
        let mut lines = HashSet::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let at = format!("channels[{i}] ({:?})", ch.id);
            if !is_channel_id(&ch.id) {
                problems.push(format!("{at}: id must be 1 to 64 characters of [a-z0-9_-]"));
            }
            let new_id = seen.insert(ch.id.as_str());
            if !new_id {
                problems.push(format!("{at}: duplicate channel id"));
            }
            if !is_member_id(&ch.portal) {
                problems.push(format!("{at}: portal must be the portal's member_id"));
            }
            if new_id && ch.line > 0 && !lines.insert((ch.portal.as_str(), ch.line)) {
                problems.push(format!(
                    "{at}: another channel is already bound to line {} of this portal (one channel per portal and line)",
                    ch.line
                ));
            }
            if ch.line == 0 {
                problems.push(format!("{at}: line must be a positive open line ID"));
            }
            if let Err(e) = WebhookSecret::parse(ch.secret.expose_secret()) {
                problems.push(format!(
                    "{at}: secret is not a Standard Webhooks secret (whsec_ + base64): {e}"
                ));
            }
            match (&ch.outbound_url, ch.platform) {
                (Some(url), _) => check_url(&mut problems, &format!("{at}: outbound_url"), url),
                (None, Platform::Generic) => problems.push(format!(
                    "{at}: outbound_url is required for platform = \"generic\""
                )),
                (None, Platform::Telegram) => {}
            }
            match (&ch.telegram, ch.platform) {
                (Some(_), Platform::Generic) => problems.push(format!(
                    "{at}: [channels.telegram] is only for platform = \"telegram\""
                )),
                (None, Platform::Telegram) => problems.push(format!(
                    "{at}: platform = \"telegram\" needs a [channels.telegram] section with \
                     bot_token and webhook_secret"
                )),
                (Some(tg), Platform::Telegram) => check_telegram(&mut problems, &at, tg),
                (None, Platform::Generic) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// Valid settings that still leave something off, for `check-config` to point out.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.bitrix.client_id.is_empty() || self.bitrix.client_secret.expose_secret().is_empty()
        {
            notes.push(
                "bitrix.client_id or bitrix.client_secret is empty: every install is refused \
                 (503 oauth_not_configured) until the application's credentials are set"
                    .to_string(),
            );
        }
        if self.admin.token.expose_secret().is_empty() {
            notes.push("admin.token is empty: the /v1 read and admin APIs are disabled".into());
        }
        if self.bitrix.request_timeout_ms < 60_000 {
            notes.push(format!(
                "bitrix.request_timeout_ms = {} is shorter than Bitrix24's own 60 s limit: a \
                 request given up while Bitrix24 still works on it is sent again, and Bitrix24 \
                 does not de-duplicate sends",
                self.bitrix.request_timeout_ms
            ));
        }
        notes
    }

    /// The resolved listen address.
    pub fn listen_addr(&self) -> std::io::Result<SocketAddr> {
        self.server
            .listen
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("address resolves to nothing"))
    }

    /// `public_url` without a trailing slash, for building handler URLs.
    pub fn public_base(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }

    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&ChannelSettings> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The effective settings as TOML-like text with every secret masked.
    pub fn masked(&self) -> String {
        let mut out = String::new();
        let s = self;
        let _ = writeln!(out, "[server]");
        let _ = writeln!(out, "listen = {:?}", s.server.listen);
        let _ = writeln!(out, "public_url = {:?}", mask_url(&s.server.public_url));
        let _ = writeln!(out, "max_body_bytes = {}", s.server.max_body_bytes);
        let _ = writeln!(out, "max_form_bytes = {}", s.server.max_form_bytes);
        let _ = writeln!(out, "body_timeout_ms = {}", s.server.body_timeout_ms);
        let _ = writeln!(out, "\n[storage]\npath = {:?}", s.storage.path);
        let _ = writeln!(out, "cache_mb = {}", s.storage.cache_mb);
        let _ = writeln!(
            out,
            "retention_days = {}{}",
            s.storage.retention_days,
            if s.storage.retention_days == 0 {
                "  # keep forever"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "pending_in_memory = {}", s.storage.pending_in_memory);
        let _ = writeln!(out, "\n[bitrix]");
        let _ = writeln!(out, "client_id = {:?}", s.bitrix.client_id);
        let _ = writeln!(out, "client_secret = {}", mask(&s.bitrix.client_secret));
        let _ = writeln!(
            out,
            "oauth_servers = {:?}",
            s.bitrix
                .oauth_servers
                .iter()
                .map(|u| mask_url(u))
                .collect::<Vec<_>>()
        );
        let _ = writeln!(out, "portals = {:?}", s.bitrix.portals);
        let _ = writeln!(out, "rate_per_second = {}", s.bitrix.rate_per_second);
        let _ = writeln!(out, "burst = {}", s.bitrix.burst);
        let _ = writeln!(out, "request_timeout_ms = {}", s.bitrix.request_timeout_ms);
        let _ = writeln!(out, "request_budget_ms = {}", s.bitrix.request_budget_ms);
        let _ = writeln!(out, "\n[connector]");
        let _ = writeln!(
            out,
            "id = {:?}\nname = {:?}",
            s.connector.id, s.connector.name
        );
        let _ = writeln!(out, "\n[deletions]");
        let _ = writeln!(out, "max_batch = {}", s.deletions.max_batch);
        let _ = writeln!(out, "linger_ms = {}", s.deletions.linger_ms);
        let _ = writeln!(out, "\n[retry]");
        let _ = writeln!(out, "initial_backoff_ms = {}", s.retry.initial_backoff_ms);
        let _ = writeln!(out, "max_backoff_ms = {}", s.retry.max_backoff_ms);
        let _ = writeln!(out, "max_attempts = {}", s.retry.max_attempts);
        let _ = writeln!(out, "max_age_secs = {}", s.retry.max_age_secs);
        let _ = writeln!(out, "\n[bot]");
        let _ = writeln!(
            out,
            "enabled = {}\ncode = {:?}\nname = {:?}",
            s.bot.enabled, s.bot.code, s.bot.name
        );
        let _ = writeln!(out, "\n[admin]\ntoken = {}", mask(&s.admin.token));
        for ch in &s.channels {
            let _ = writeln!(out, "\n[[channels]]");
            let _ = writeln!(
                out,
                "id = {:?}\nportal = {:?}\nline = {}",
                ch.id, ch.portal, ch.line
            );
            let _ = writeln!(out, "platform = {:?}", ch.platform.as_str());
            let _ = writeln!(out, "secret = {}", mask(&ch.secret));
            match &ch.outbound_url {
                Some(url) => {
                    let _ = writeln!(out, "outbound_url = {:?}", mask_url(url));
                }
                None => {
                    let _ = writeln!(out, "# outbound_url not set");
                }
            }
            if let Some(tg) = &ch.telegram {
                let _ = writeln!(out, "[channels.telegram]");
                let _ = writeln!(out, "bot_token = {}", mask(&tg.bot_token));
                let _ = writeln!(out, "webhook_secret = {}", mask(&tg.webhook_secret));
                let _ = writeln!(out, "api_url = {:?}", mask_url(&tg.api_url));
            }
        }
        out
    }
}

impl DeletionSettings {
    /// `linger_ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

impl ServerSettings {
    /// `body_timeout_ms` as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

impl BitrixSettings {
    /// The trusted server whose REST root is `server_endpoint` (`<base>rest/`), if any.
    pub fn trusted_server(&self, server_endpoint: &str) -> Option<&str> {
        self.oauth_servers
            .iter()
            .map(String::as_str)
            .find(|base| server_endpoint.strip_prefix(base) == Some("rest/"))
    }

    /// Whether this member_id may install (the allow-list is empty or names it).
    pub fn portal_allowed(&self, member_id: &str) -> bool {
        self.portals.is_empty() || self.portals.iter().any(|p| p == member_id)
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl ChannelSettings {
    /// Whether this channel speaks the Telegram Bot API.
    pub fn is_telegram(&self) -> bool {
        self.platform == Platform::Telegram
    }

    /// The channel's parsed webhook secret (validated at load, so this cannot fail afterwards).
    pub fn webhook_secret(&self) -> WebhookSecret {
        WebhookSecret::parse(self.secret.expose_secret())
            .expect("channel secrets are validated when settings load")
    }
}

/// Problems of a `[channels.telegram]` section; never quotes a secret.
fn check_telegram(problems: &mut Vec<String>, at: &str, tg: &TelegramSettings) {
    if !is_bot_token(tg.bot_token.expose_secret()) {
        problems.push(format!(
            "{at}: telegram.bot_token is not a Bot API token (<bot id>:<secret>, as @BotFather \
             gives it)"
        ));
    }
    if !is_telegram_secret_token(tg.webhook_secret.expose_secret()) {
        problems.push(format!(
            "{at}: telegram.webhook_secret must be 1 to 256 characters of [A-Za-z0-9_-] \
             (Telegram's secret_token)"
        ));
    }
    check_url(problems, &format!("{at}: telegram.api_url"), &tg.api_url);
}

/// A Bot API token: the bot's numeric id, `:`, then at least one of `[A-Za-z0-9_-]`.
pub fn is_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.len() <= 20
                && id.bytes().all(|b| b.is_ascii_digit())
                && is_telegram_secret_token(secret)
        }
        None => false,
    }
}

/// Telegram's `secret_token` alphabet and length: 1 to 256 of `[A-Za-z0-9_-]`.
pub fn is_telegram_secret_token(value: &str) -> bool {
    (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `"***"` for a set secret, `""` for an empty one (so an unset secret is visible).
fn mask(secret: &SecretString) -> &'static str {
    if secret.expose_secret().is_empty() {
        "\"\" (not set)"
    } else {
        "\"***\""
    }
}

/// A URL with the credentials it embeds (`user:password@`) replaced by `***`.
pub fn mask_url(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
            u.to_string()
        }
        Ok(_) => value.to_string(),
        // Not a URL (validation reports it): hide anything before an `@`.
        Err(_) => match value.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => value.to_string(),
        },
    }
}

fn check_url(problems: &mut Vec<String>, what: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => problems.push(format!("{what} {value:?} is not an http(s) URL")),
    }
}

/// imconnector IDs: `[a-z0-9_]{1,64}` (Bitrix24 lowercases them and forbids dots).
pub fn is_connector_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Bitrix24 member_ids: 1 to 64 ASCII letters and digits.
pub fn is_member_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Channel IDs: `[a-z0-9_-]{1,64}`.
pub fn is_channel_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;

//! Knobs of the fake portal: identity, OAuth client, rate limits, latency and batch restrictions.

use std::time::Duration;

/// Leaky-bucket request limit (fact sheet §2.1): every HTTP request adds 1, the level drains by
/// `rate_per_second`, a request that would push the level above `burst` is rejected with 503.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// Drain rate `Y` (Bitrix24 default plans: 2 per second).
    pub rate_per_second: f64,
    /// Bucket size `X` (Bitrix24 default plans: 50).
    pub burst: u32,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            rate_per_second: 2.0,
            burst: 50,
        }
    }
}

/// Configuration of a [`FakePortal`](super::FakePortal).
#[derive(Debug, Clone)]
pub struct FakePortalConfig {
    /// Stable portal id (`member_id`); default: 32 random hex chars.
    pub member_id: String,
    /// OAuth client id the token endpoint accepts; default `app.test`.
    pub client_id: String,
    /// OAuth client secret the token endpoint accepts; default `secret.test`.
    pub client_secret: String,
    /// Leaky bucket; `None` = unlimited (the default).
    pub bucket: Option<BucketConfig>,
    /// Lifetime of issued access tokens; default 3600 s.
    pub access_token_ttl: Duration,
    /// Artificial processing time added to every `/rest/` request; default 0.
    pub latency: Duration,
    /// Methods (case-insensitive) that answer `ERROR_BATCH_METHOD_NOT_ALLOWED` when used inside `batch`.
    pub batch_denied_methods: Vec<String>,
    /// Cap on `MESSAGES` per `imconnector.*` call (400 `ERROR_ARGUMENT` above it). The real limit is
    /// undocumented (fact sheet §9 item 2), so the default is `None`.
    pub max_messages_per_call: Option<usize>,
    /// Return `DATA.RESULT` entries in reverse order, to prove the gateway matches entries by id.
    pub reverse_results: bool,
    /// Server time each `imconnector.send.messages` / `update.messages` item costs (virtual: it
    /// is reported in `time.duration` and `result_time`, not slept); default 0.
    pub item_cost: Duration,
    /// Server time each `imconnector.delete.messages` item costs (virtual); default 0.
    pub delete_item_cost: Duration,
    /// The cloud's cut of one request (fact sheet §11: 60 s): once a request has spent this much
    /// (virtual) server time, the items processed so far stay processed and the request is
    /// answered by the front proxy's `504` HTML page.
    pub time_limit: Duration,
}

impl Default for FakePortalConfig {
    fn default() -> Self {
        FakePortalConfig {
            member_id: random_hex(),
            client_id: "app.test".into(),
            client_secret: "secret.test".into(),
            bucket: None,
            access_token_ttl: Duration::from_secs(3600),
            latency: Duration::ZERO,
            batch_denied_methods: Vec::new(),
            max_messages_per_call: None,
            reverse_results: false,
            item_cost: Duration::ZERO,
            delete_item_cost: Duration::ZERO,
            time_limit: Duration::from_secs(60),
        }
    }
}

/// 32 random lowercase hex characters (the shape of Bitrix24 member ids and tokens).
pub(crate) fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

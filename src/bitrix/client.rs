//! `BitrixClient`: calls to each portal's `client_endpoint` with its stored access token,
//! paced by the portal's leaky bucket, with one coalesced OAuth refresh on `expired_token` /
//! `invalid_token` at the portal's own authorization server. No redirect is followed and
//! replies are read up to [`PORTAL_REPLY_CAP`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cost::CostModel;
use super::envelope::{self, Success};
use super::pacer::Pacer;
use super::tokens::PortalTokens;
use super::{BitrixError, form, labels, oauth};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outbound_http::{PORTAL_REPLY_CAP, read_capped, snippet};
use crate::settings::BitrixSettings;
use crate::store::portals::RotatedTokens;
use crate::store::{PortalRecord, PortalStatus};

/// Extra pause after `QUERY_LIMIT_EXCEEDED` (someone else is spending the portal's budget).
const THROTTLE_PAUSE: Duration = Duration::from_secs(1);
/// How long a portal is left alone after `NO_AUTH_FOUND` or `OVERLOAD_LIMIT` (fact sheet §11:
/// hard errors, OVERLOAD_LIMIT is a manual block by Bitrix24's support).
const HARD_BLOCK_SECS: i64 = 86_400;
/// The longest a method is left alone after nested `OPERATION_TIME_LIMIT`s when no reset time
/// was learned (the operating budget is counted over 10 minutes).
const NESTED_BLOCK_SECS: i64 = 60;
/// Most commands in one `batch` (fact sheet §2.3).
pub const MAX_BATCH_COMMANDS: usize = 50;

/// What one `batch` request answered: each command's result or error, in input order, and the
/// server time each command took (`result_time[key].duration`, seconds) when Bitrix24 said.
#[derive(Debug)]
pub struct BatchReply {
    pub results: Vec<Result<Value, BitrixError>>,
    pub durations: Vec<Option<f64>>,
}

/// One command of a `batch` request.
#[derive(Debug, Clone)]
pub struct BatchCommand {
    pub key: String,
    pub method: String,
    pub params: Value,
}

/// Client for every portal; cheap to share behind an `Arc`.
pub struct BitrixClient {
    http: reqwest::Client,
    /// Portal addresses and tokens (the store, behind a small service).
    tokens: Box<dyn PortalTokens>,
    settings: BitrixSettings,
    metrics: Arc<Metrics>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// The gateway's clock: token expiry, suspensions, operating-budget windows.
    clock: Clock,
}

/// Per-portal state: the bucket, the refresh lock, what the portal refused.
struct Gate {
    pacer: Pacer,
    refresh: tokio::sync::Mutex<()>,
    batch_denied: AtomicBool,
    /// method → unix seconds until which it is over its operating budget.
    blocked: Mutex<HashMap<String, i64>>,
    /// method → last `time.operating_reset_at` seen.
    reset_seen: Mutex<HashMap<String, i64>>,
    /// method → nested `OPERATION_TIME_LIMIT`s in a row with no reset known (each doubles the
    /// block, up to a minute; a success of the method clears it).
    nested_strikes: Mutex<HashMap<String, u32>>,
    /// Until when (unix seconds) the whole portal is left alone, and the error that said so.
    suspended: Mutex<Option<(i64, BitrixError)>>,
    /// What this portal's requests cost (server time per item, body-size cap).
    cost: Mutex<CostModel>,
}

impl BitrixClient {
    /// A client with the settings' timeout and a rustls (ring) TLS stack.
    pub fn new(
        settings: BitrixSettings,
        tokens: impl PortalTokens,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BitrixError> {
        let http = crate::outbound_http::client(
            settings.request_timeout(),
            settings.request_timeout().min(Duration::from_secs(10)),
        )
        .map_err(BitrixError::transport)?;
        Ok(BitrixClient {
            http,
            tokens: Box::new(tokens),
            settings,
            metrics,
            gates: Mutex::new(HashMap::new()),
            clock: Clock::system(),
        })
    }

    /// The same client reading time from `clock` (the gateway's one clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Call `method` once (plus one retry after a token refresh) and return its `result`.
    pub async fn call(
        &self,
        portal: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, BitrixError> {
        self.send(portal, method, params).await.map(|s| s.result)
    }

    /// Call `method` with a caller's own access token instead of the stored one (e.g. to check
    /// the `AUTH_ID` of a page Bitrix24 opened): same endpoint, pacer and envelope parsing, but
    /// no token refresh, since the token is not ours to renew.
    pub async fn call_as(
        &self,
        portal: &str,
        access_token: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, BitrixError> {
        let gate = self.gate(portal);
        let mut record = self.installed(portal)?;
        record.access_token = access_token.to_string();
        gate.pacer.acquire().await;
        let outcome = self.post(&record, method, &params).await;
        self.count(method, &outcome);
        match outcome {
            Ok(success) => Ok(success.result),
            Err(err) => Err(gate.note_error(method, &err, self.clock.now_secs())),
        }
    }

    /// [`BitrixClient::call`], retrying transient failures with backoff up to `attempts` times
    /// (for one-off calls such as setup; queued items keep their own durable retry state).
    pub async fn call_retrying(
        &self,
        portal: &str,
        method: &str,
        params: Value,
        attempts: u32,
    ) -> Result<Value, BitrixError> {
        let mut failures = 0;
        loop {
            let err = match self.call(portal, method, params.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            failures += 1;
            let super::Class::Transient { not_before, .. } = super::classify(&err) else {
                return Err(err);
            };
            if failures >= attempts || matches!(err, BitrixError::NotInstalled(_)) {
                return Err(err);
            }
            let mut wait = crate::retry::backoff(
                failures,
                Duration::from_millis(250),
                Duration::from_secs(10),
            );
            if let Some(at) = not_before {
                wait = wait.max(Duration::from_secs(
                    at.saturating_sub(self.clock.now_secs()).max(0) as u64,
                ));
            }
            tracing::info!(portal, method, error = %err, ?wait, "transient failure; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Run up to 50 commands in one `batch` request (`halt=0`). The outer error is for the
    /// request as a whole; each command gets its own result or error, in input order. Each
    /// command's `result_time` teaches the method's operating reset (so that a nested
    /// `OPERATION_TIME_LIMIT`, which carries none, blocks the method until then).
    pub async fn batch(
        &self,
        portal: &str,
        commands: &[BatchCommand],
    ) -> Result<BatchReply, BitrixError> {
        debug_assert!(commands.len() <= MAX_BATCH_COMMANDS);
        let cmd: Map<String, Value> = commands
            .iter()
            .map(|c| {
                (
                    c.key.clone(),
                    Value::String(format!("{}?{}", c.method, form::encode(&c.params))),
                )
            })
            .collect();
        let reply = self
            .send(portal, "batch", json!({ "halt": 0, "cmd": cmd }))
            .await?;
        let results = reply.result.get("result");
        let errors = reply.result.get("result_error");
        let times = reply.result.get("result_time");
        let gate = self.gate(portal);
        let time_of = |key: &str, field: &str| {
            times
                .and_then(|t| t.get(key))
                .and_then(|t| t.get(field))
                .cloned()
        };
        let durations: Vec<Option<f64>> = commands
            .iter()
            .map(|c| time_of(&c.key, "duration").and_then(|d| d.as_f64()))
            .collect();
        for c in commands {
            if let Some(reset) = time_of(&c.key, "operating_reset_at")
                .as_ref()
                .and_then(envelope::as_i64)
            {
                gate.reset_seen.lock().insert(c.method.clone(), reset);
            }
        }
        let results = commands
            .iter()
            .map(|c| {
                if let Some(err) = errors
                    .and_then(|e| e.get(&c.key))
                    .and_then(|e| envelope::error_of(e, 0))
                {
                    return Err(gate.note_error(&c.method, &err, self.clock.now_secs()));
                }
                results
                    .and_then(|r| r.get(&c.key))
                    .cloned()
                    .ok_or_else(|| BitrixError::Decode {
                        status: 200,
                        detail: format!("batch reply has no result for command {}", c.key),
                    })
            })
            .collect();
        Ok(BatchReply { results, durations })
    }

    /// [`BitrixClient::call`], with the server time the request took (`time.duration`, seconds).
    pub async fn call_timed(
        &self,
        portal: &str,
        method: &str,
        params: Value,
    ) -> Result<(Value, Option<f64>), BitrixError> {
        self.send(portal, method, params)
            .await
            .map(|s| (s.result, s.duration))
    }

    /// Read this portal's request-cost model (see [`cost`](super::cost)).
    pub fn with_cost<R>(&self, portal: &str, f: impl FnOnce(&CostModel) -> R) -> R {
        f(&self.gate(portal).cost.lock())
    }

    /// Change this portal's request-cost model: learn from a reply, or shrink after a cut or a
    /// `413` / `414`.
    pub fn update_cost(&self, portal: &str, f: impl FnOnce(&mut CostModel)) {
        f(&mut self.gate(portal).cost.lock());
    }

    /// `bitrix.request_budget_ms`.
    pub fn request_budget_ms(&self) -> u64 {
        self.settings.request_budget_ms
    }

    /// Wait until the portal's bucket has room for a request (without taking it).
    pub async fn ready(&self, portal: &str) {
        self.gate(portal).pacer.ready().await;
    }

    /// Unix seconds until which `method` is over its operating budget on this portal.
    pub fn method_blocked_until(&self, portal: &str, method: &str) -> Option<i64> {
        let now = self.clock.now_secs();
        let gate = self.gate(portal);
        let blocked = gate.blocked.lock();
        blocked.get(method).copied().filter(|&t| t > now)
    }

    /// Whether this portal refused a method inside `batch` (use direct calls from now on).
    pub fn batch_denied(&self, portal: &str) -> bool {
        self.gate(portal).batch_denied.load(Ordering::Relaxed)
    }

    /// Remember that this portal refuses our methods inside `batch`.
    pub fn deny_batch(&self, portal: &str) {
        tracing::warn!(
            portal,
            "portal refuses imconnector methods inside batch: using direct calls"
        );
        self.gate(portal)
            .batch_denied
            .store(true, Ordering::Relaxed);
    }

    /// One HTTP request, refreshing the token once on `expired_token`.
    async fn send(
        &self,
        portal: &str,
        method: &str,
        params: Value,
    ) -> Result<Success, BitrixError> {
        let gate = self.gate(portal);
        let mut refreshed = false;
        loop {
            let record = self.installed(portal)?;
            gate.check_suspended(self.clock.now_secs())?;
            gate.pacer.acquire().await;
            let outcome = self.post(&record, method, &params).await;
            self.count(method, &outcome);
            match outcome {
                Ok(success) => {
                    if let Some(reset) = success.operating_reset_at {
                        gate.reset_seen.lock().insert(method.to_string(), reset);
                    }
                    return Ok(success);
                }
                Err(BitrixError::Api { code, .. })
                    if matches!(code.as_str(), "expired_token" | "invalid_token") && !refreshed =>
                {
                    refreshed = true;
                    self.refresh(portal, &gate, &record.access_token).await?;
                }
                Err(err) => {
                    match err.code() {
                        Some("QUERY_LIMIT_EXCEEDED") => {
                            tracing::warn!(
                                portal,
                                method,
                                "portal rate limit hit: pausing requests"
                            );
                            gate.pacer.throttled(THROTTLE_PAUSE);
                        }
                        Some(code @ ("NO_AUTH_FOUND" | "OVERLOAD_LIMIT")) => {
                            tracing::error!(
                                portal,
                                method,
                                code,
                                "portal blocks the app: no request for a day"
                            );
                            return Err(gate.suspend(&err, self.clock.now_secs() + HARD_BLOCK_SECS));
                        }
                        _ => {}
                    }
                    return Err(gate.note_error(method, &err, self.clock.now_secs()));
                }
            }
        }
    }

    /// Count one request in the `bitrix_requests` metric.
    fn count(&self, method: &str, outcome: &Result<Success, BitrixError>) {
        // Fixed label sets: an error code is the peer's text (see `labels`).
        let label = match outcome {
            Ok(_) => "ok",
            Err(e) => labels::outcome(e.code().unwrap_or_else(|| error_kind(e))),
        };
        Metrics::inc2(
            &self.metrics.bitrix_requests,
            "method",
            labels::method(method),
            "outcome",
            label,
        );
    }

    async fn post(
        &self,
        portal: &PortalRecord,
        method: &str,
        params: &Value,
    ) -> Result<Success, BitrixError> {
        let mut body = match params {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        body.insert("auth".into(), Value::String(portal.access_token.clone()));
        let base = portal.client_endpoint.trim_end_matches('/');
        let reply = self
            .http
            .post(format!("{base}/{method}"))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(BitrixError::transport)?;
        let status = reply.status().as_u16();
        let bytes = read_capped(reply, PORTAL_REPLY_CAP).await.map_err(|e| {
            tracing::warn!(portal = %portal.member_id, method, status, error = %e, "portal reply not read");
            BitrixError::read(e)
        })?;
        let parsed = envelope::parse(status, &bytes);
        if let Err(BitrixError::Decode { .. }) = &parsed {
            tracing::warn!(portal = %portal.member_id, method, status, reply = %snippet(&bytes), "portal: unexpected reply");
        }
        parsed
    }

    /// Refresh the portal's tokens unless another request already did (the lock coalesces
    /// concurrent refreshes into one OAuth call); the new pair is durable before we return.
    async fn refresh(
        &self,
        portal: &str,
        gate: &Gate,
        stale_access: &str,
    ) -> Result<(), BitrixError> {
        let _one_at_a_time = gate.refresh.lock().await;
        let current = self.installed(portal)?;
        if current.access_token != stale_access {
            return Ok(());
        }
        self.rotate(&current).await
    }

    /// Refresh a portal's tokens now (idle portals, well before their refresh token's 180 days
    /// run out), coalesced with any refresh in flight.
    pub async fn refresh_now(&self, portal: &str) -> Result<(), BitrixError> {
        let gate = self.gate(portal);
        let _one_at_a_time = gate.refresh.lock().await;
        let current = self.installed(portal)?;
        self.rotate(&current).await
    }

    /// Exchange the portal's refresh token at its own authorization server and store the reply
    /// (tokens, and its `client_endpoint` when that is a usable address). A refusal that no retry
    /// can fix (`invalid_grant`, `PAYMENT_REQUIRED`) marks the portal `needs_reinstall`.
    async fn rotate(&self, current: &PortalRecord) -> Result<(), BitrixError> {
        let portal = current.member_id.as_str();
        let server = self.oauth_server_of(current);
        let result =
            oauth::refresh(&self.http, &self.settings, &server, &current.refresh_token).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        Metrics::inc1(&self.metrics.token_refreshes, "outcome", outcome);
        let tokens = match result {
            Ok(tokens) => tokens,
            Err(e) if e.revokes_grant() => {
                let reason = match &e {
                    BitrixError::Refresh { code, .. } => code.clone(),
                    _ => "invalid_grant".to_string(),
                };
                tracing::error!(portal, %server, reason, "authorization revoked: the portal must reinstall the app; its work is held");
                let marked = self
                    .tokens
                    .revoke(portal, &current.refresh_token, &reason, self.clock.now_ms())
                    .await?;
                if marked {
                    self.metrics.portals_needing_reinstall.inc();
                }
                return Err(BitrixError::NeedsReinstall(portal.to_string()));
            }
            Err(e) => {
                tracing::error!(portal, %server, error = %e, "token refresh failed");
                return Err(e);
            }
        };
        if tokens.member_id.as_deref().is_some_and(|m| m != portal) {
            tracing::error!(portal, %server, "the authorization server answered for another portal: tokens not stored");
            return Err(BitrixError::Refresh {
                code: "member_id_mismatch".into(),
                description: "the refresh reply names another portal".into(),
            });
        }
        let fresh = RotatedTokens {
            expires_at: tokens.expires_at(self.clock.now_secs()),
            client_endpoint: tokens.portal_endpoint().map(|e| (e.clone(), host_of(&e))),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        };
        if let Some((endpoint, _)) = &fresh.client_endpoint
            && endpoint != &current.client_endpoint
        {
            tracing::warn!(portal, from = %current.client_endpoint, to = %endpoint, "the portal moved: its new address is stored");
        }
        self.tokens
            .rotate(portal, &current.refresh_token, fresh, self.clock.now_ms())
            .await?;
        tracing::info!(portal, "access token refreshed");
        Ok(())
    }

    /// The trusted server that refreshes this portal: the one that verified its install, or the
    /// first trusted one for records of older versions. A stored server that is no longer
    /// trusted is refused by [`oauth::refresh`].
    fn oauth_server_of(&self, portal: &PortalRecord) -> String {
        if portal.oauth_server.is_empty() {
            self.settings
                .oauth_servers
                .first()
                .cloned()
                .unwrap_or_default()
        } else {
            portal.oauth_server.clone()
        }
    }

    /// Exchange a refresh token at the trusted authorization server `base`: proves which portal
    /// the token belongs to (install verification, contract §5).
    pub async fn exchange_refresh_token(
        &self,
        base: &str,
        refresh_token: &str,
    ) -> Result<oauth::Tokens, BitrixError> {
        oauth::refresh(&self.http, &self.settings, base, refresh_token).await
    }

    fn installed(&self, portal: &str) -> Result<PortalRecord, BitrixError> {
        let record = self
            .tokens
            .portal(portal)?
            .filter(|p| p.status == PortalStatus::Installed)
            .ok_or_else(|| BitrixError::NotInstalled(portal.to_string()))?;
        if record.needs_reinstall.is_some() {
            return Err(BitrixError::NeedsReinstall(portal.to_string()));
        }
        Ok(record)
    }

    fn gate(&self, portal: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock();
        gates
            .entry(portal.to_string())
            .or_insert_with(|| {
                Arc::new(Gate {
                    pacer: Pacer::new(self.settings.rate_per_second, self.settings.burst),
                    refresh: tokio::sync::Mutex::new(()),
                    batch_denied: AtomicBool::new(false),
                    blocked: Mutex::new(HashMap::new()),
                    reset_seen: Mutex::new(HashMap::new()),
                    nested_strikes: Mutex::new(HashMap::new()),
                    suspended: Mutex::new(None),
                    cost: Mutex::new(CostModel::default()),
                })
            })
            .clone()
    }
}

impl Gate {
    /// The error that suspended the portal, while it is suspended.
    fn check_suspended(&self, now: i64) -> Result<(), BitrixError> {
        match &*self.suspended.lock() {
            Some((until, err)) if *until > now => Err(err.clone()),
            _ => Ok(()),
        }
    }

    /// Leave the portal alone until `until`; the error returned (and repeated meanwhile) says
    /// until when, so that items wait instead of spending attempts.
    fn suspend(&self, err: &BitrixError, until: i64) -> BitrixError {
        let err = match err.clone() {
            BitrixError::Api {
                status,
                code,
                description,
                ..
            } => BitrixError::Api {
                status,
                code,
                description,
                operating_reset_at: Some(until),
            },
            other => other,
        };
        *self.suspended.lock() = Some((until, err.clone()));
        err
    }

    /// Remember an operating-limit block; fill in the reset time Bitrix24 last announced.
    fn note_error(&self, method: &str, err: &BitrixError, now: i64) -> BitrixError {
        let BitrixError::Api {
            status,
            code,
            description,
            operating_reset_at,
        } = err
        else {
            return err.clone();
        };
        if code != "OPERATION_TIME_LIMIT" {
            return err.clone();
        }
        // Bitrix24: retry at the last `operating_reset_at` seen. A nested OPERATION_TIME_LIMIT
        // (inside `batch`) carries no reset of its own: without one learned from earlier
        // `result_time`s, leave the method alone for 1 s, then 2, 4… up to a minute.
        let reset = operating_reset_at
            .or_else(|| self.reset_seen.lock().get(method).copied())
            .filter(|&t| t > now)
            .or_else(|| {
                (*status == 0).then(|| {
                    let mut strikes = self.nested_strikes.lock();
                    let n = strikes.entry(method.to_string()).or_insert(0);
                    *n += 1;
                    now + (1i64 << (*n - 1).min(6)).min(NESTED_BLOCK_SECS)
                })
            });
        tracing::warn!(method, reset_at = ?reset, "method over its operating budget");
        if let Some(reset) = reset {
            self.blocked.lock().insert(method.to_string(), reset);
        }
        BitrixError::Api {
            status: *status,
            code: code.clone(),
            description: description.clone(),
            operating_reset_at: reset,
        }
    }
}

fn error_kind(e: &BitrixError) -> &'static str {
    match e {
        BitrixError::NotInstalled(_) => "not_installed",
        BitrixError::Transport(_) => "transport",
        BitrixError::Timeout => "timeout",
        BitrixError::Api { .. } => "api",
        BitrixError::Decode { .. } => "decode",
        BitrixError::Refresh { .. } => "refresh",
        BitrixError::NeedsReinstall(_) => "needs_reinstall",
        BitrixError::Storage(_) => "storage",
    }
}

/// The host (and port) of an http(s) URL.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                u.port()
                    .map_or_else(|| h.to_string(), |p| format!("{h}:{p}"))
            })
        })
        .unwrap_or_default()
}

//! Prometheus metrics of one gateway instance (`GET /metrics`). A registry per instance, not a
//! global recorder, so that several gateways can live in one test process.

use std::borrow::Cow;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label values are mostly static strings; `Cow` avoids an allocation per increment for them.
type Value = Cow<'static, str>;
type One = [(&'static str, Value); 1];
type Two = [(&'static str, Value); 2];

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Platform webhooks by event type and reply (`accepted`, `replayed`, or an error code).
    pub webhooks: Family<Two, Counter>,
    /// HTTP requests to Bitrix24 by method (`batch` for batches) and outcome (`ok` or error code).
    pub bitrix_requests: Family<Two, Counter>,
    /// Final item results by operation (`send`, `update`, `delete`) and result (`success`, `failed`).
    pub items: Family<Two, Counter>,
    /// Item attempts that failed transiently and were rescheduled.
    pub item_retries: Family<One, Counter>,
    /// OAuth refreshes by outcome.
    pub token_refreshes: Family<One, Counter>,
    /// Deliveries to the platform by event type and outcome (`delivered`, `retry`).
    pub deliveries: Family<Two, Counter>,
    /// Ops waiting for Bitrix24, all portals.
    pub queued_ops: Gauge,
    /// Installs by outcome (`verified`, or the refusal's error code).
    pub installs: Family<One, Counter>,
    /// Portals whose authorization was revoked: they must reinstall the app (work held).
    pub portals_needing_reinstall: Gauge,
    /// 1 once a storage write or sync failed: writes are refused until restart.
    pub storage_poisoned: Gauge,
    /// Bitrix24 requests the outbox held back, by reason (`storage`: writes are refused, so
    /// no result could be recorded).
    pub outbox_held: Family<One, Counter>,
    /// Telegram updates by type (`message`, …, `other`) and outcome (`accepted`, `replayed`,
    /// `ignored`, or an error code).
    pub telegram_updates: Family<Two, Counter>,
    /// Bot API calls by method (a fixed set, else `other`) and outcome.
    pub telegram_api: Family<Two, Counter>,
    /// `GET /media/<token>` by outcome (`served`, `not_found`, `too_large`, `unavailable`).
    pub media_requests: Family<One, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let m = Metrics {
            webhooks: Family::default(),
            bitrix_requests: Family::default(),
            items: Family::default(),
            item_retries: Family::default(),
            token_refreshes: Family::default(),
            deliveries: Family::default(),
            queued_ops: Gauge::default(),
            installs: Family::default(),
            portals_needing_reinstall: Gauge::default(),
            storage_poisoned: Gauge::default(),
            outbox_held: Family::default(),
            telegram_updates: Family::default(),
            telegram_api: Family::default(),
            media_requests: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhooks",
            "Platform webhooks by type and reply",
            m.webhooks.clone(),
        );
        registry.register(
            "bitrix_requests",
            "HTTP requests to Bitrix24",
            m.bitrix_requests.clone(),
        );
        registry.register("items", "Final item results", m.items.clone());
        registry.register(
            "item_retries",
            "Transient item failures rescheduled",
            m.item_retries.clone(),
        );
        registry.register(
            "token_refreshes",
            "OAuth token refreshes",
            m.token_refreshes.clone(),
        );
        registry.register(
            "deliveries",
            "Deliveries to the messaging platform",
            m.deliveries.clone(),
        );
        registry.register(
            "queued_ops",
            "Bitrix24 operations waiting",
            m.queued_ops.clone(),
        );
        registry.register(
            "installs",
            "Install requests by outcome (verified or the refusal's code)",
            m.installs.clone(),
        );
        registry.register(
            "portals_needing_reinstall",
            "Portals whose authorization was revoked (invalid_grant, PAYMENT_REQUIRED): reinstall the app",
            m.portals_needing_reinstall.clone(),
        );
        registry.register(
            "storage_poisoned",
            "1 once a storage write or sync failed (writes refused until restart)",
            m.storage_poisoned.clone(),
        );
        registry.register(
            "outbox_held",
            "Bitrix24 requests held back by reason (storage: writes refused, results unrecordable)",
            m.outbox_held.clone(),
        );
        registry.register(
            "telegram_updates",
            "Telegram updates by type and outcome",
            m.telegram_updates.clone(),
        );
        registry.register(
            "telegram_api",
            "Telegram Bot API calls by method and outcome",
            m.telegram_api.clone(),
        );
        registry.register(
            "media_requests",
            "Media link downloads by outcome",
            m.media_requests.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Increment a two-label counter.
    pub fn inc2(
        family: &Family<Two, Counter>,
        k1: &'static str,
        v1: impl Into<Value>,
        k2: &'static str,
        v2: impl Into<Value>,
    ) {
        family
            .get_or_create(&[(k1, v1.into()), (k2, v2.into())])
            .inc();
    }

    /// Increment a one-label counter.
    pub fn inc1(family: &Family<One, Counter>, k: &'static str, v: impl Into<Value>) {
        family.get_or_create(&[(k, v.into())]).inc();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

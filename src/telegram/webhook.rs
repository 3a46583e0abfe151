//! Webhook registration (contract §6): for each Telegram channel, `getWebhookInfo`, then
//! `setWebhook` (URL `{public_url}/v1/channels/{id}/telegram`, `secret_token`, the
//! `allowed_updates` the gateway maps) only when Telegram shows another URL or other updates, or
//! the `webhook_secret` changed since the gateway last registered it (a digest of it is kept in
//! the store's `meta`; Telegram never shows the secret). Runs when the gateway starts and when a
//! portal's setup runs; a failure is logged and retried in the background with a capped backoff,
//! and never stops anything else.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::BotApi;
use super::{ALLOWED_UPDATES, webhook_path};
use crate::settings::{ChannelSettings, Settings};
use crate::store::Store;

/// First retry of a failed registration; doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Telegram already had this URL, these updates and (as far as we know) this secret.
    Unchanged,
    /// `setWebhook` was called.
    Registered,
}

/// The digest kept for a secret.
pub fn secret_digest(secret: &str) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"ocgw-telegram-webhook-secret\0");
    hash.update(secret.as_bytes());
    hash.finalize().to_vec()
}

/// Whether `getWebhookInfo`'s answer already matches.
pub fn matches(info: &Value, url: &str) -> bool {
    let wanted: HashSet<&str> = ALLOWED_UPDATES.into_iter().collect();
    let shown: Option<HashSet<&str>> = info["allowed_updates"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect());
    info["url"].as_str() == Some(url) && shown == Some(wanted)
}

/// Registers the webhooks of Telegram channels, now and whenever asked, retrying failures.
pub struct Registrar {
    settings: Arc<Settings>,
    store: Store,
    api: Arc<BotApi>,
    wake: Notify,
    /// Channels waiting for a (re)registration.
    wanted: Mutex<HashSet<String>>,
}

impl Registrar {
    /// A registrar with every Telegram channel waiting (the start-up registration).
    pub fn new(settings: Arc<Settings>, store: Store, api: Arc<BotApi>) -> Arc<Registrar> {
        let wanted = settings
            .channels
            .iter()
            .filter(|c| c.is_telegram())
            .map(|c| c.id.clone())
            .collect();
        Arc::new(Registrar {
            settings,
            store,
            api,
            wake: Notify::new(),
            wanted: Mutex::new(wanted),
        })
    }

    /// Check the webhooks of a portal's Telegram channels again (its setup ran).
    pub fn request_portal(&self, member_id: &str) {
        let channels: Vec<String> = self
            .settings
            .channels
            .iter()
            .filter(|c| c.is_telegram() && c.portal == member_id)
            .map(|c| c.id.clone())
            .collect();
        if channels.is_empty() {
            return;
        }
        self.wanted.lock().extend(channels);
        self.wake.notify_one();
    }

    /// Register what is waiting, retry failures, until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut failures: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            let due: Vec<String> = {
                let mut wanted = self.wanted.lock();
                wanted.extend(failures.keys().cloned());
                wanted.drain().collect()
            };
            for id in due {
                let Some(channel) = self.settings.channel(&id) else {
                    continue;
                };
                match self.ensure(channel).await {
                    Ok(outcome) => {
                        failures.remove(&id);
                        tracing::info!(channel = %id, ?outcome, "Telegram webhook checked");
                    }
                    Err(e) => {
                        let n = failures.entry(id.clone()).or_insert(0);
                        *n += 1;
                        tracing::warn!(channel = %id, attempts = *n, error = %e, "Telegram webhook registration failed; will retry");
                    }
                }
            }
            let retry = failures.values().max().map(|n| {
                FIRST_RETRY
                    .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(10)))
                    .min(MAX_RETRY)
            });
            let timer = async {
                match retry {
                    Some(after) => tokio::time::sleep(after).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = timer => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// `getWebhookInfo`, then `setWebhook` if anything differs.
    pub async fn ensure(&self, channel: &ChannelSettings) -> Result<Outcome, String> {
        let bot = channel.telegram.as_ref().ok_or("not a Telegram channel")?;
        let url = format!(
            "{}{}",
            self.settings.public_base(),
            webhook_path(&channel.id)
        );
        let secret = bot.webhook_secret.expose_secret();
        let digest = secret_digest(secret);
        let info = self
            .api
            .call(bot, "getWebhookInfo", &json!({}), None)
            .await
            .map_err(|e| e.to_string())?;
        let known = self
            .store
            .telegram_webhook_digest(&channel.id)
            .map_err(|e| e.to_string())?;
        if matches(&info, &url) && known.as_deref() == Some(&digest[..]) {
            return Ok(Outcome::Unchanged);
        }
        let params = json!({
            "url": url,
            "secret_token": secret,
            "allowed_updates": ALLOWED_UPDATES,
        });
        self.api
            .call(bot, "setWebhook", &params, None)
            .await
            .map_err(|e| e.to_string())?;
        let id = channel.id.clone();
        self.store
            .commit(move |d| d.set_telegram_webhook_digest(&id, &digest))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(channel = %channel.id, url = %url, "Telegram webhook registered");
        Ok(Outcome::Registered)
    }
}

#[cfg(test)]
mod tests;

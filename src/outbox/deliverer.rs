//! Delivering queued events (`seq_delivery`) to each channel's `outbound_url`.
//!
//! Per channel, deliveries go out in queue order and a failing one holds the ones behind it
//! (events of one channel keep their order); channels do not wait for each other. A delivery is
//! retried with capped backoff until the platform answers 2xx; it is never dropped silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::domain::now_ms;
use crate::messenger::outbound::OutboundClient;
use crate::metrics::Metrics;
use crate::report::deletion_report;
use crate::retry::backoff;
use crate::settings::Settings;
use crate::store::{Delivery, DeliveryPayload, Store};

/// First and largest pause between attempts of one delivery.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(600);

/// The delivery loop.
pub struct Deliverer {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub client: OutboundClient,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub progress: Arc<watch::Sender<u64>>,
    pub cancel: CancellationToken,
}

impl Deliverer {
    /// Deliver until cancelled.
    pub async fn run(self) {
        loop {
            let next = self.pass().await;
            let timer = async {
                match next {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = timer => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    /// Deliver everything due; return when the next one falls due.
    async fn pass(&self) -> Option<u64> {
        let pending = match self.store.pending_deliveries() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read pending deliveries");
                return Some(now_ms() + FIRST_RETRY.as_millis() as u64);
            }
        };
        let mut by_channel: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        for d in pending {
            by_channel.entry(d.channel.clone()).or_default().push(d);
        }
        let next = join_all(
            by_channel
                .into_values()
                .map(|queue| self.channel_pass(queue)),
        )
        .await;
        next.into_iter().flatten().min()
    }

    /// One channel's queue in order; stops at the first delivery that is not due or fails.
    async fn channel_pass(&self, queue: Vec<Delivery>) -> Option<u64> {
        for delivery in queue {
            if delivery.due_at_ms > now_ms() {
                return Some(delivery.due_at_ms);
            }
            if let Some(retry_at) = self.attempt(delivery).await {
                return Some(retry_at);
            }
        }
        None
    }

    /// One attempt; None when delivered, else when to try again.
    async fn attempt(&self, mut delivery: Delivery) -> Option<u64> {
        let outcome = match self.data(&delivery) {
            Err(reason) => Err(reason),
            Ok(data) => match self.settings.channel(&delivery.channel) {
                None => Err(format!("channel {} is not configured", delivery.channel)),
                Some(channel) => self
                    .client
                    .deliver(
                        &channel.outbound_url,
                        &channel.webhook_secret(),
                        &delivery.webhook_id,
                        &delivery.event_type,
                        &data,
                    )
                    .await
                    .and_then(|answer| {
                        if answer.is_success() {
                            Ok(())
                        } else {
                            Err(format!("platform answered HTTP {}", answer.status))
                        }
                    }),
            },
        };
        let seq = delivery.seq;
        let recorded = match outcome {
            Ok(()) => {
                Metrics::inc2(
                    &self.metrics.deliveries,
                    "type",
                    delivery.event_type.clone(),
                    "outcome",
                    "delivered",
                );
                if let Err(e) = self.store.commit(move |d| d.delivery_done(seq)).await {
                    tracing::error!(error = %e, "cannot record a delivery (it will be sent again)");
                }
                None
            }
            Err(reason) => {
                Metrics::inc2(
                    &self.metrics.deliveries,
                    "type",
                    delivery.event_type.clone(),
                    "outcome",
                    "retry",
                );
                delivery.attempts += 1;
                let retry_at = now_ms()
                    + backoff(delivery.attempts, FIRST_RETRY, MAX_RETRY).as_millis() as u64;
                tracing::warn!(channel = %delivery.channel, event = %delivery.event_type, attempts = delivery.attempts, error = %reason, "delivery to the platform failed; will retry");
                delivery.due_at_ms = retry_at;
                delivery.last_error = Some(reason);
                let record = delivery.clone();
                if let Err(e) = self.store.commit(move |d| d.delivery_retry(&record)).await {
                    tracing::error!(error = %e, "cannot record a delivery attempt");
                }
                Some(retry_at)
            }
        };
        self.progress.send_modify(|n| *n += 1);
        recorded
    }

    /// The event's `data`, rendered now for reports so that it is the current report object.
    fn data(&self, delivery: &Delivery) -> Result<Value, String> {
        match &delivery.payload {
            DeliveryPayload::Inline { data } => Ok(data.clone()),
            DeliveryPayload::DeletionReport { deletion_id } => {
                match self.store.deletion(deletion_id) {
                    Ok(Some((record, items))) => Ok(deletion_report(&record, &items)),
                    Ok(None) => Err(format!("deletion {deletion_id} is gone")),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

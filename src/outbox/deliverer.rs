//! Delivering queued events (`seq_delivery`) to each channel's `outbound_url`.
//!
//! Per channel, deliveries go out in queue order and a failing one holds the ones behind it
//! (events of one channel keep their order); channels do not wait for each other: each has its
//! own task, which reads its queue's head from `channelseq_due` with one seek per turn. A delivery is
//! retried with the `[retry]` backoff until the platform answers 2xx; it is never dropped
//! silently.
//! Operator messages end as *failed* (kept, visible, counted) when the platform rejects them
//! (a 4xx other than 408/425/429) or when they keep failing for `retry.max_age_secs`; reports and
//! line events are retried until they are taken.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::messages::delivery_status_item;
use crate::bitrix::{BitrixClient, Class, classify};
use crate::clock::Clock;
use crate::messenger::outbound::{self, Answer, OutboundClient};
use crate::metrics::Metrics;
use crate::outbox::notices::{NOTICE_AFTER_ATTEMPTS, Notices};
use crate::report::deletion_report;
use crate::settings::Settings;
use crate::store::{Delivery, DeliveryPayload, OperatorRecord, Store};

/// Pause after a storage error before looking again.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Which channels have new deliveries: the feed's follower marks them and the deliverer wakes
/// only their tasks (holds at most one entry per channel between two wakes).
#[derive(Default)]
pub struct DeliveryWakes {
    channels: parking_lot::Mutex<HashSet<String>>,
    notify: Notify,
}

impl DeliveryWakes {
    /// A delivery was queued on `channel`.
    pub fn wake(&self, channel: String) {
        self.channels.lock().insert(channel);
        self.notify.notify_one();
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.channels.lock())
    }
}

/// The delivery loop.
pub struct Deliverer {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub client: OutboundClient,
    pub bitrix: Arc<BitrixClient>,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<DeliveryWakes>,
    pub progress: Arc<watch::Sender<u64>>,
    pub cancel: CancellationToken,
    /// The gateway's clock (due times, `max_age_secs`, what deliveries are stamped with).
    pub clock: Clock,
}

/// How an attempt ended.
enum Step {
    /// Nothing more to do for this delivery.
    Done,
    /// Try again at this time (ms); later deliveries of the channel wait.
    RetryAt(u64),
    /// Final failure; later deliveries of the channel go on.
    Failed,
}

impl Deliverer {
    /// Deliver until cancelled: one task per channel (the configured ones and any other with
    /// queued deliveries), so a slow platform never delays another channel's deliveries.
    pub async fn run(self) {
        let this = Arc::new(self);
        let tasks = TaskTracker::new();
        let mut channels: Vec<String> = this
            .settings
            .channels
            .iter()
            .map(|c| c.id.clone())
            .collect();
        match this.store.delivery_channels() {
            Ok(found) => channels.extend(found),
            Err(e) => tracing::error!(error = %e, "cannot list the channels with deliveries"),
        }
        let mut wakes: HashMap<String, Arc<Notify>> = HashMap::new();
        let spawn = |wakes: &mut HashMap<String, Arc<Notify>>, channel: String| {
            let wake = Arc::new(Notify::new());
            tasks.spawn(this.clone().channel_loop(channel.clone(), wake.clone()));
            wakes.insert(channel, wake);
        };
        for channel in channels {
            if !wakes.contains_key(&channel) {
                spawn(&mut wakes, channel);
            }
        }
        loop {
            tokio::select! {
                _ = this.wake.notify.notified() => {
                    // Only the channels that got a delivery; one not seen yet gets its task.
                    for channel in this.wake.take() {
                        match wakes.get(&channel) {
                            Some(wake) => wake.notify_one(),
                            None => spawn(&mut wakes, channel),
                        }
                    }
                }
                _ = this.cancel.cancelled() => break,
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One channel's queue, in order: attempt its head when due, else sleep until it is due or
    /// something new is queued. Each turn is one seek in `channelseq_due`, never a scan.
    async fn channel_loop(self: Arc<Self>, channel: String, wake: Arc<Notify>) {
        // The head that must wait until then although storage could not record it.
        let mut hold: Option<(u64, u64)> = None;
        loop {
            let until = match self.store.next_delivery(&channel) {
                Err(e) => {
                    tracing::error!(channel, error = %e, "cannot read the delivery queue");
                    Some(self.clock.now_ms() + STORAGE_RETRY.as_millis() as u64)
                }
                Ok(None) => None,
                Ok(Some((seq, due))) => {
                    let due = match hold {
                        Some((held, at)) if held == seq => due.max(at),
                        _ => due,
                    };
                    if due <= self.clock.now_ms() {
                        hold = None;
                        let step = tokio::select! {
                            step = self.head(&channel, seq) => step,
                            // Abandoned mid-flight: it stays queued and is sent again.
                            _ = self.cancel.cancelled() => return,
                        };
                        self.progress.send_modify(|n| *n += 1);
                        if let Step::RetryAt(at) = step {
                            hold = Some((seq, at));
                        }
                        continue;
                    }
                    Some(due)
                }
            };
            let timer = async {
                match until {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(
                            at.saturating_sub(self.clock.now_ms()),
                        ))
                        .await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = timer => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    /// Attempt the head of a channel's queue.
    async fn head(&self, channel: &str, seq: u64) -> Step {
        match self.store.delivery(seq) {
            Ok(Some(delivery)) if delivery.failed.is_none() => {
                let span = delivery_span(&delivery);
                self.attempt(delivery).instrument(span).await
            }
            Ok(stale) => {
                // Done or failed already (a queue entry left behind): drop the entry.
                let channel = channel.to_string();
                let dropped = self
                    .store
                    .commit(move |d| match stale {
                        Some(failed) => d.delivery_update(&failed),
                        None => d.delivery_dequeue(&channel, seq),
                    })
                    .await;
                match dropped {
                    Ok(()) => Step::Done,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot drop a stale delivery queue entry");
                        Step::RetryAt(self.clock.now_ms() + STORAGE_RETRY.as_millis() as u64)
                    }
                }
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "cannot read a delivery");
                Step::RetryAt(self.clock.now_ms() + STORAGE_RETRY.as_millis() as u64)
            }
        }
    }

    fn notices(&self) -> Notices<'_> {
        Notices {
            store: &self.store,
            bitrix: &self.bitrix,
            settings: &self.settings,
            clock: &self.clock,
        }
    }

    async fn attempt(&self, delivery: Delivery) -> Step {
        if delivery.delivered_at_ms.is_some() {
            return self.report_to_bitrix(delivery).await;
        }
        if let DeliveryPayload::OperatorDeleted {
            portal,
            im_message_id,
        } = &delivery.payload
            && let Ok(Some(record)) = self.store.operator(portal, *im_message_id)
        {
            // The operator deleted it: a notice about it is moot; and a message the platform
            // never received needs no deletion there.
            self.notices().resolved(portal, &record).await;
            if record.external_ids.is_empty() {
                return self.commit_done(delivery.seq).await;
            }
        }
        let data = match self.data(&delivery) {
            Ok(data) => data,
            Err(reason) => return self.failed(delivery, reason).await,
        };
        let answer = match self.settings.channel(&delivery.channel) {
            None => Err(format!("channel {} is not configured", delivery.channel)),
            Some(channel) => {
                self.client
                    .deliver_to(channel, &delivery.webhook_id, &delivery.event_type, &data)
                    .await
            }
        };
        match answer {
            Ok(answer) if answer.is_success() => {
                Metrics::inc2(
                    &self.metrics.deliveries,
                    "type",
                    delivery.event_type.clone(),
                    "outcome",
                    "delivered",
                );
                self.delivered(delivery, &answer).await
            }
            Ok(answer) => {
                let reason = match &answer.reason {
                    Some(reason) => reason.clone(),
                    None => format!("platform answered HTTP {}", answer.status),
                };
                let rejected = (400..500).contains(&answer.status)
                    && ![408, 425, 429].contains(&answer.status);
                if rejected && is_operator(&delivery) {
                    return self.failed(delivery, format!("rejected: {reason}")).await;
                }
                self.retry(delivery, reason).await
            }
            Err(reason) => self.retry(delivery, reason).await,
        }
    }

    /// The platform took it. Operator messages go on with their delivery report to Bitrix24.
    async fn delivered(&self, mut delivery: Delivery, answer: &Answer) -> Step {
        tracing::info!(
            status = answer.status,
            attempts = delivery.attempts + 1,
            "delivered to the platform"
        );
        let seq = delivery.seq;
        let DeliveryPayload::OperatorCreated {
            portal,
            im_message_id,
        } = &delivery.payload
        else {
            return self.commit_done(seq).await;
        };
        let ids = outbound::answered_ids(&answer.body, *im_message_id);
        let (member, im) = (portal.clone(), *im_message_id);
        let clock = self.clock.clone();
        if let Err(e) = self
            .store
            .commit(move |d| d.operator_delivered(&member, im, &ids, clock.now_ms()))
            .await
        {
            tracing::error!(error = %e, "cannot record the platform's ids; will deliver again");
            return Step::RetryAt(self.clock.now_ms() + STORAGE_RETRY.as_millis() as u64);
        }
        // Delivered after all: a notice saying otherwise goes.
        if let Ok(Some(record)) = self.store.operator(portal, im) {
            self.notices().resolved(portal, &record).await;
        }
        delivery.delivered_at_ms = Some(self.clock.now_ms());
        let record = delivery.clone();
        if let Err(e) = self.store.commit(move |d| d.delivery_update(&record)).await {
            tracing::error!(error = %e, "cannot record a delivery");
        }
        self.report_to_bitrix(delivery).await
    }

    /// `imconnector.send.status.delivery` for an operator message the platform took.
    async fn report_to_bitrix(&self, mut delivery: Delivery) -> Step {
        let DeliveryPayload::OperatorCreated {
            portal,
            im_message_id,
        } = &delivery.payload
        else {
            return self.commit_done(delivery.seq).await;
        };
        let record = match self.store.operator(portal, *im_message_id) {
            Ok(Some(record)) => record,
            _ => return self.commit_done(delivery.seq).await,
        };
        let params = json!({
            "CONNECTOR": self.settings.connector.id,
            "LINE": record.line,
            "MESSAGES": [delivery_status_item(record.im_chat_id, record.im_message_id, &record.external_ids, (self.clock.now_ms() / 1000) as i64, &record.chat_id)],
        });
        match self
            .bitrix
            .call(portal, "imconnector.send.status.delivery", params)
            .await
        {
            Ok(_) => self.commit_done(delivery.seq).await,
            Err(e) if classify(&e) == Class::Final => {
                tracing::warn!(portal = %portal, im_message_id, error = %e, "Bitrix24 refused the delivery status");
                self.commit_done(delivery.seq).await
            }
            Err(e) => {
                delivery.attempts += 1;
                delivery.due_at_ms = self.clock.now_ms()
                    + self.settings.retry.delay(delivery.attempts).as_millis() as u64;
                delivery.last_error = Some(e.to_string());
                let (at, record) = (delivery.due_at_ms, delivery.clone());
                if let Err(e) = self.store.commit(move |d| d.delivery_update(&record)).await {
                    tracing::error!(error = %e, "cannot record a delivery attempt");
                }
                Step::RetryAt(at)
            }
        }
    }

    async fn commit_done(&self, seq: u64) -> Step {
        if let Err(e) = self.store.commit(move |d| d.delivery_done(seq)).await {
            tracing::error!(error = %e, "cannot record a delivery (it will be sent again)");
        }
        Step::Done
    }

    async fn retry(&self, mut delivery: Delivery, reason: String) -> Step {
        delivery.attempts += 1;
        let age_ms = self.clock.now_ms().saturating_sub(delivery.created_at_ms);
        if is_operator(&delivery) && age_ms >= self.settings.retry.max_age_secs.saturating_mul(1000)
        {
            let reason = format!("gave up after {} attempts: {reason}", delivery.attempts);
            return self.failed(delivery, reason).await;
        }
        Metrics::inc2(
            &self.metrics.deliveries,
            "type",
            delivery.event_type.clone(),
            "outcome",
            "retry",
        );
        if let DeliveryPayload::OperatorCreated {
            portal,
            im_message_id,
        } = &delivery.payload
            && delivery.attempts >= NOTICE_AFTER_ATTEMPTS
            && let Ok(Some(record)) = self.store.operator(portal, *im_message_id)
        {
            self.notices().failing(portal, &record, &reason).await;
        }
        let retry_at =
            self.clock.now_ms() + self.settings.retry.delay(delivery.attempts).as_millis() as u64;
        tracing::warn!(channel = %delivery.channel, event = %delivery.event_type, attempts = delivery.attempts, error = %reason, "delivery to the platform failed; will retry");
        delivery.due_at_ms = retry_at;
        delivery.last_error = Some(reason);
        let record = delivery.clone();
        if let Err(e) = self.store.commit(move |d| d.delivery_update(&record)).await {
            tracing::error!(error = %e, "cannot record a delivery attempt");
        }
        Step::RetryAt(retry_at)
    }

    /// Final failure: kept (marked), counted, logged; an operator message is marked failed.
    async fn failed(&self, mut delivery: Delivery, reason: String) -> Step {
        Metrics::inc2(
            &self.metrics.deliveries,
            "type",
            delivery.event_type.clone(),
            "outcome",
            "failed",
        );
        tracing::error!(channel = %delivery.channel, event = %delivery.event_type, webhook_id = %delivery.webhook_id, error = %reason, "delivery to the platform failed for good");
        delivery.failed = Some(reason.clone());
        delivery.last_error = Some(reason.clone());
        let record = delivery.clone();
        let operator = match &delivery.payload {
            DeliveryPayload::OperatorCreated {
                portal,
                im_message_id,
            } => Some((portal.clone(), *im_message_id)),
            _ => None,
        };
        let failed_operator = operator.clone();
        let why = reason.clone();
        let clock = self.clock.clone();
        let committed = self
            .store
            .commit(move |d| {
                if let Some((portal, im)) = &failed_operator {
                    d.operator_failed(portal, *im, &why, clock.now_ms())?;
                }
                d.delivery_update(&record)
            })
            .await;
        if let Err(e) = committed {
            tracing::error!(error = %e, "cannot record a failed delivery");
        }
        if let Some((portal, im)) = operator
            && let Ok(Some(record)) = self.store.operator(&portal, im)
        {
            self.notices().failed(&portal, &record, &reason).await;
        }
        Step::Failed
    }

    /// The event's `data`, rendered now from what is known now.
    fn data(&self, delivery: &Delivery) -> Result<Value, String> {
        let operator = |portal: &str, im: u64| -> Result<OperatorRecord, String> {
            match self.store.operator(portal, im) {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(format!("operator message {im} is gone")),
                Err(e) => Err(e.to_string()),
            }
        };
        match &delivery.payload {
            DeliveryPayload::Inline { data } => Ok(data.clone()),
            DeliveryPayload::DeletionReport { deletion_id } => {
                match self.store.deletion(deletion_id) {
                    Ok(Some((record, items))) => Ok(deletion_report(&record, &items)),
                    Ok(None) => Err(format!("deletion {deletion_id} is gone")),
                    Err(e) => Err(e.to_string()),
                }
            }
            DeliveryPayload::OperatorCreated {
                portal,
                im_message_id,
            } => operator(portal, *im_message_id).map(|r| outbound::operator_created(&r)),
            DeliveryPayload::OperatorUpdated {
                portal,
                im_message_id,
                text,
            } => operator(portal, *im_message_id).map(|r| outbound::operator_updated(&r, text)),
            DeliveryPayload::OperatorDeleted {
                portal,
                im_message_id,
            } => operator(portal, *im_message_id).map(|r| outbound::operator_deleted(&r)),
        }
    }
}

/// The span of one delivery attempt: the fields a log reader filters by (for a deletion report,
/// its `deletion_id`, which ties it to the webhook and the Bitrix24 requests of that deletion).
fn delivery_span(delivery: &Delivery) -> tracing::Span {
    let deletion_id = match &delivery.payload {
        DeliveryPayload::DeletionReport { deletion_id } => Some(deletion_id.as_str()),
        _ => None,
    };
    tracing::info_span!(
        "delivery",
        channel = %delivery.channel,
        event = %delivery.event_type,
        webhook_id = %delivery.webhook_id,
        deletion_id = deletion_id,
    )
}

fn is_operator(delivery: &Delivery) -> bool {
    matches!(
        delivery.payload,
        DeliveryPayload::OperatorCreated { .. }
            | DeliveryPayload::OperatorUpdated { .. }
            | DeliveryPayload::OperatorDeleted { .. }
    )
}

#[cfg(test)]
mod tests;

//! Events waiting to be delivered to the messaging platform: the records in `seq_delivery`,
//! and each channel's live queue in `channelseq_due` (changed in the same transaction), whose
//! head the deliverer reads with one seek.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::codec::{Kv, decode, encode, tx_put};
use super::feed::Committed;
use super::retention::{self, Kind};
use super::{
    Data, DeletionRecord, Delivery, DeliveryPayload, StoreError, Tx, TxResult, keys, trees,
};

/// Event type of a deletion report (contract §3).
pub const DELETION_COMPLETED: &str = "deletion.completed";

/// Queue an event for the platform inside a transaction.
pub(crate) fn tx_enqueue<K: Kv>(
    tx: &Tx<'_, K>,
    channel: &str,
    webhook_id: String,
    event_type: &str,
    payload: DeliveryPayload,
    now_ms: u64,
) -> TxResult<Delivery> {
    let seq = tx.any.next_id(&tx.data.db)?;
    let delivery = Delivery {
        seq,
        channel: channel.to_string(),
        webhook_id,
        event_type: event_type.to_string(),
        payload,
        attempts: 0,
        created_at_ms: now_ms,
        due_at_ms: now_ms,
        last_error: None,
        delivered_at_ms: None,
        failed: None,
    };
    tx_put(tx.deliveries, &keys::u64_be(seq), &delivery)?;
    tx.queue.write(
        &keys::channel_seq(channel, seq),
        keys::u64_be(now_ms).to_vec(),
    )?;
    tx.data.stage(Committed::Delivery {
        channel: channel.to_string(),
    });
    Ok(delivery)
}

/// Queue the `deletion.completed` event of a deletion whose last item just became final.
pub(crate) fn tx_enqueue_report<K: Kv>(
    tx: &Tx<'_, K>,
    deletion: &DeletionRecord,
    now_ms: u64,
) -> TxResult<()> {
    // Stable across retries, derived from the deletion so a duplicate can be recognised.
    let payload = DeliveryPayload::DeletionReport {
        deletion_id: deletion.id.clone(),
    };
    tx_enqueue(
        tx,
        &deletion.channel,
        format!("msg_{}", deletion.id),
        DELETION_COMPLETED,
        payload,
        now_ms,
    )?;
    Ok(())
}

impl Data {
    /// Every delivery not yet acknowledged (and the failed ones, marked), in queue order.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries
            .iter()
            .values()
            .map(|v| decode(trees::SEQ_DELIVERY, &v?))
            .collect()
    }

    /// A delivery by its seq.
    pub fn delivery(&self, seq: u64) -> Result<Option<Delivery>, StoreError> {
        self.deliveries
            .get(keys::u64_be(seq))?
            .map(|v| decode(trees::SEQ_DELIVERY, &v))
            .transpose()
    }

    /// The head of a channel's live queue: (seq, due at ms), one seek.
    pub fn next_delivery(&self, channel: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let prefix = keys::channel_prefix(channel);
        let Some(entry) = self.queue.scan_prefix(&prefix).next() else {
            return Ok(None);
        };
        let (key, due) = entry?;
        let seq = keys::parse_u64(trees::CHANNELSEQ_DUE, &key[prefix.len()..])?;
        Ok(Some((seq, keys::parse_u64(trees::CHANNELSEQ_DUE, &due)?)))
    }

    /// The channels with live deliveries (one seek per channel).
    pub fn delivery_channels(&self) -> Result<Vec<String>, StoreError> {
        let mut channels = Vec::new();
        let mut from: Option<Vec<u8>> = None;
        loop {
            let next = match &from {
                None => self.queue.iter().next(),
                Some(after) => self
                    .queue
                    .range::<&[u8], _>((
                        std::ops::Bound::Excluded(after.as_slice()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next(),
            };
            let Some(entry) = next else {
                return Ok(channels);
            };
            let (key, _) = entry?;
            let end = key
                .iter()
                .position(|&b| b == keys::SEP)
                .unwrap_or(key.len());
            let channel = String::from_utf8_lossy(&key[..end]).into_owned();
            from = Some(keys::channel_seq_end(&channel));
            channels.push(channel);
        }
    }

    /// The platform acknowledged this delivery and nothing follows: forget it.
    pub fn delivery_done(&self, seq: u64) -> Result<(), StoreError> {
        let key = keys::u64_be(seq);
        let Some(value) = self.deliveries.get(key)? else {
            return Ok(());
        };
        let delivery: Delivery = decode(trees::SEQ_DELIVERY, &value)?;
        let queued = keys::channel_seq(&delivery.channel, seq);
        (&self.deliveries, &self.queue)
            .transaction(|(deliveries, queue)| {
                deliveries.remove(&key)?;
                queue.remove(queued.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(super::tx_error)
    }

    /// Drop a channel queue entry whose delivery is gone.
    pub fn delivery_dequeue(&self, channel: &str, seq: u64) -> Result<(), StoreError> {
        self.queue.remove(keys::channel_seq(channel, seq))?;
        Ok(())
    }

    /// Record a delivery's new state (an attempt, a follow-up, a final failure: a failed one
    /// leaves its channel's queue, so later ones go on).
    pub fn delivery_update(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let (key, value) = (keys::u64_be(delivery.seq), encode(delivery));
        let queued = keys::channel_seq(&delivery.channel, delivery.seq);
        (&self.deliveries, &self.queue, &self.retain)
            .transaction(|(deliveries, queue, retain)| {
                deliveries.insert(&key, value.clone())?;
                if delivery.failed.is_some() {
                    queue.remove(queued.as_slice())?;
                    // Kept for operators to see until retention prunes it.
                    let at = delivery.due_at_ms.max(delivery.created_at_ms);
                    if self.indexed {
                        retain.insert(retention::index_key(Kind::FailedDelivery, at, &key), &[])?;
                    }
                } else {
                    queue.insert(queued.as_slice(), &keys::u64_be(delivery.due_at_ms))?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(super::tx_error)
    }

    /// Build every channel's queue from `seq_delivery` (opening a version 1 directory).
    pub(crate) fn rebuild_delivery_queue(&self) -> Result<(), StoreError> {
        self.queue.clear()?;
        for delivery in self.pending_deliveries()? {
            if delivery.failed.is_none() {
                self.queue.insert(
                    keys::channel_seq(&delivery.channel, delivery.seq),
                    &keys::u64_be(delivery.due_at_ms),
                )?;
            }
        }
        Ok(())
    }
}

//! Events waiting to be delivered to the messaging platform.

use super::codec::{decode, encode, tx_put};
use super::{
    Data, DeletionRecord, Delivery, DeliveryPayload, StoreError, Tx, TxResult, keys, trees,
};

/// Event type of a deletion report (contract §3).
pub const DELETION_COMPLETED: &str = "deletion.completed";

/// Queue an event for the platform inside a transaction.
pub(crate) fn tx_enqueue(
    tx: &Tx<'_>,
    channel: &str,
    webhook_id: String,
    event_type: &str,
    payload: DeliveryPayload,
    now_ms: u64,
) -> TxResult<Delivery> {
    let seq = tx.any.generate_id()?;
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
    Ok(delivery)
}

/// Queue the `deletion.completed` event of a deletion whose last item just became final.
pub(crate) fn tx_enqueue_report(
    tx: &Tx<'_>,
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

    /// The platform acknowledged this delivery and nothing follows: forget it.
    pub fn delivery_done(&self, seq: u64) -> Result<(), StoreError> {
        self.deliveries.remove(keys::u64_be(seq))?;
        Ok(())
    }

    /// Record a delivery's new state (an attempt, a follow-up, a final failure).
    pub fn delivery_update(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.deliveries
            .insert(keys::u64_be(delivery.seq), encode(delivery))?;
        Ok(())
    }
}

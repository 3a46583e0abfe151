//! Events waiting to be delivered to the messaging platform.

use super::codec::{decode, encode, tx_put};
use super::{
    Data, DeletionRecord, Delivery, DeliveryPayload, StoreError, Tx, TxResult, keys, trees,
};

/// Event type of a deletion report (contract §3).
pub const DELETION_COMPLETED: &str = "deletion.completed";

/// Queue the `deletion.completed` event of a deletion whose last item just became final.
pub(crate) fn tx_enqueue_report(
    tx: &Tx<'_>,
    deletion: &DeletionRecord,
    now_ms: u64,
) -> TxResult<()> {
    let seq = tx.any.generate_id()?;
    let delivery = Delivery {
        seq,
        channel: deletion.channel.clone(),
        // Stable across retries, derived from the deletion so a duplicate can be recognised.
        webhook_id: format!("msg_{}", deletion.id),
        event_type: DELETION_COMPLETED.to_string(),
        payload: DeliveryPayload::DeletionReport {
            deletion_id: deletion.id.clone(),
        },
        attempts: 0,
        created_at_ms: now_ms,
        due_at_ms: now_ms,
        last_error: None,
    };
    tx_put(tx.deliveries, &keys::u64_be(seq), &delivery)
}

impl Data {
    /// Every delivery not yet acknowledged, in queue order.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries
            .iter()
            .values()
            .map(|v| decode(trees::SEQ_DELIVERY, &v?))
            .collect()
    }

    /// Queue an event for the platform (call inside `Store::commit`).
    pub fn enqueue_delivery(
        &self,
        channel: &str,
        webhook_id: String,
        event_type: &str,
        data: serde_json::Value,
        now_ms: u64,
    ) -> Result<Delivery, StoreError> {
        let seq = self.generate_id()?;
        let delivery = Delivery {
            seq,
            channel: channel.to_string(),
            webhook_id,
            event_type: event_type.to_string(),
            payload: DeliveryPayload::Inline { data },
            attempts: 0,
            created_at_ms: now_ms,
            due_at_ms: now_ms,
            last_error: None,
        };
        self.deliveries
            .insert(keys::u64_be(seq), encode(&delivery))?;
        Ok(delivery)
    }

    /// The platform acknowledged this delivery: forget it.
    pub fn delivery_done(&self, seq: u64) -> Result<(), StoreError> {
        self.deliveries.remove(keys::u64_be(seq))?;
        Ok(())
    }

    /// Record a failed attempt and when to try again.
    pub fn delivery_retry(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.deliveries
            .insert(keys::u64_be(delivery.seq), encode(delivery))?;
        Ok(())
    }
}

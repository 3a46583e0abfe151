//! Deletion records and their items: the data behind `GET /v1/deletions/{id}`.

use super::codec::{decode, tx_get, tx_put};
use super::{
    Data, DeletionItem, DeletionRecord, StoreError, Tx, TxResult, deliveries, keys, trees,
};

impl Data {
    /// A deletion and its items in index order.
    pub fn deletion(
        &self,
        deletion_id: &str,
    ) -> Result<Option<(DeletionRecord, Vec<DeletionItem>)>, StoreError> {
        let Some(record) = self.deletions.get(deletion_id.as_bytes())? else {
            return Ok(None);
        };
        let record: DeletionRecord = decode(trees::DELETIONID_DELETION, &record)?;
        let items = self
            .deletion_items
            .scan_prefix(keys::deletion_items_prefix(deletion_id))
            .values()
            .map(|v| decode(trees::DELETIONITEM_ITEM, &v?))
            .collect::<Result<Vec<DeletionItem>, _>>()?;
        Ok(Some((record, items)))
    }
}

/// How an item of a deletion changed.
pub(crate) enum ItemUpdate<'a> {
    /// Final: Bitrix24's verdict (or the gateway's own reason).
    Final { success: bool, errors: &'a [String] },
    /// Still pending after another attempt.
    Attempted,
}

/// Apply an item change; when the deletion's last item becomes final, mark it completed and
/// queue its report.
pub(crate) fn tx_update_item(
    tx: &Tx<'_>,
    deletion_id: &str,
    index: u32,
    attempts: u32,
    update: ItemUpdate<'_>,
    now_ms: u64,
) -> TxResult<()> {
    let ikey = keys::deletion_item(deletion_id, index);
    let Some(mut item) =
        tx_get::<DeletionItem>(tx.deletion_items, trees::DELETIONITEM_ITEM, &ikey)?
    else {
        return Ok(());
    };
    if item.success.is_some() {
        // Already final: a result is recorded once and never overwritten.
        return Ok(());
    }
    item.attempts = attempts;
    let became_final = match update {
        ItemUpdate::Final { success, errors } => {
            item.success = Some(success);
            item.errors = errors.to_vec();
            true
        }
        ItemUpdate::Attempted => false,
    };
    tx_put(tx.deletion_items, &ikey, &item)?;
    if became_final {
        let Some(mut record) = tx_get::<DeletionRecord>(
            tx.deletions,
            trees::DELETIONID_DELETION,
            deletion_id.as_bytes(),
        )?
        else {
            return Ok(());
        };
        record.pending = record.pending.saturating_sub(1);
        if record.pending == 0 && record.completed_at_ms.is_none() {
            record.completed_at_ms = Some(now_ms);
            deliveries::tx_enqueue_report(tx, &record, now_ms)?;
        }
        tx_put(tx.deletions, deletion_id.as_bytes(), &record)?;
    }
    Ok(())
}

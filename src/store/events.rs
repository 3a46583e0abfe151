//! Pending event records: `seq_event`, written when the event is accepted and removed in the
//! transaction that records its last item's result.

use super::codec::decode;
use super::{Data, EventRecord, StoreError, keys, trees};

impl Data {
    /// The record of a pending event.
    pub fn event(&self, seq: u64) -> Result<Option<EventRecord>, StoreError> {
        self.events
            .get(keys::u64_be(seq))?
            .map(|v| decode(trees::SEQ_EVENT, &v))
            .transpose()
    }

    /// Every pending event, in seq order.
    pub fn pending_events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.events
            .iter()
            .values()
            .map(|value| decode(trees::SEQ_EVENT, &value?))
            .collect()
    }
}

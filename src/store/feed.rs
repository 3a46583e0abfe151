//! What each durable group committed, published in commit order: the feed that drives the
//! outbox. A write stages what it changed while the writer applies it ([`Data::stage`]); once
//! the group's sync succeeded the writer publishes every write's staged changes, in the order
//! the writes were applied, before it answers them. A write that fails, or whose group's sync
//! fails, publishes nothing. Nothing is published before [`Store::subscribe`] (tools that open
//! the store have no outbox).

use tokio::sync::mpsc;

use super::{Data, OpRef, Store};

/// A durable change the outbox acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// New Bitrix24 work (an accepted event's items), in acceptance order.
    Ops(Vec<OpRef>),
    /// A delivery for the platform was queued on this channel.
    Delivery { channel: String },
}

/// The sending side, held by the store; set once someone subscribes.
#[derive(Default)]
pub(crate) struct Feed(parking_lot::Mutex<Option<mpsc::UnboundedSender<Committed>>>);

impl Feed {
    pub(crate) fn publish(&self, changes: Vec<Committed>) {
        if changes.is_empty() {
            return;
        }
        let feed = self.0.lock();
        if let Some(tx) = feed.as_ref() {
            for change in changes {
                let _ = tx.send(change);
            }
        }
    }
}

impl Data {
    /// Stage a change of the write being applied (call on the writer thread, inside a write).
    pub(crate) fn stage(&self, change: Committed) {
        self.staged.lock().push(change);
    }

    /// What the write just applied staged.
    pub(crate) fn take_staged(&self) -> Vec<Committed> {
        std::mem::take(&mut *self.staged.lock())
    }
}

impl Store {
    /// The feed of committed changes; the first call gets it, later calls get `None`.
    pub fn subscribe(&self) -> Option<mpsc::UnboundedReceiver<Committed>> {
        let mut feed = self.data.feed.0.lock();
        if feed.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        *feed = Some(tx);
        Some(rx)
    }
}

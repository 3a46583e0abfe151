//! Forgetting a portal (uninstall with `CLEAN=1`, teardown): its record, the mapping, pending
//! work, reports, replies, deliveries and states of its channels. Not one transaction (it may
//! touch many keys), but idempotent: running it again finishes what a crash interrupted.

use sled::Tree;

use super::codec::decode;
use super::{Data, DeletionReport, Delivery, EventRecord, StoreError, keys, trees};

impl Data {
    /// Remove every key of this portal and of these channels; returns how many were removed.
    pub fn purge_portal(&self, member_id: &str, channels: &[String]) -> Result<usize, StoreError> {
        // Pending records the journal has move into `seq_event` first, so that the walk below
        // sees them and no journal segment can bring them back.
        self.retire_whole_journal()?;
        let mut removed = 0;
        let prefix = keys::portal_prefix(member_id);
        for tree in [
            &self.chats,
            &self.users,
            &self.messages,
            &self.operators,
            &self.extmsgs,
        ] {
            removed += remove_prefix(tree, &prefix)?;
        }
        for item in self.events.iter() {
            let (key, value) = item?;
            let record: EventRecord = decode(trees::SEQ_EVENT, &value)?;
            if record.portal == member_id {
                self.events.remove(key)?;
                self.pending().remove(&record);
                removed += 1;
            }
        }
        for channel in channels {
            removed += remove_prefix(&self.webhooks, &keys::channel_prefix(channel))?;
            removed += usize::from(self.channels.remove(channel.as_bytes())?.is_some());
        }
        let ours = |channel: &str| channels.iter().any(|c| c == channel);
        for item in self.deletions.iter() {
            let (key, value) = item?;
            let report: DeletionReport = decode(trees::DELETIONID_DELETION, &value)?;
            if ours(&report.deletion.channel) {
                self.deletions.remove(key)?;
                removed += 1;
            }
        }
        for item in self.deliveries.iter() {
            let (key, value) = item?;
            let delivery: Delivery = decode(trees::SEQ_DELIVERY, &value)?;
            if ours(&delivery.channel) {
                self.deliveries.remove(key)?;
                removed += 1;
            }
        }
        removed += usize::from(self.portals.remove(member_id.as_bytes())?.is_some());
        Ok(removed)
    }
}

fn remove_prefix(tree: &Tree, prefix: &[u8]) -> Result<usize, StoreError> {
    let mut removed = 0;
    for key in tree.scan_prefix(prefix).keys() {
        tree.remove(key?)?;
        removed += 1;
    }
    Ok(removed)
}

impl Data {
    /// Forget replay-protection records older than `cutoff_ms`: the first replies of finished
    /// webhooks (`webhookid_reply`) and the digests of Bitrix24 events (`eventdigest_seen`).
    /// Returns how many were removed.
    pub fn prune_replay_records(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.webhooks.iter() {
            let (key, value) = item?;
            let reply: super::WebhookReply = decode(trees::WEBHOOKID_REPLY, &value)?;
            if reply.at_ms < cutoff_ms {
                self.webhooks.remove(key)?;
                removed += 1;
            }
        }
        for item in self.digests.iter() {
            let (key, value) = item?;
            if keys::parse_u64(trees::EVENTDIGEST_SEEN, &value)? < cutoff_ms {
                self.digests.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

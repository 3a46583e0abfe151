//! Retention: records that only serve the past (message mappings, finished events' replies,
//! deletion reports, failed deliveries, replay-protection records) are indexed by time in
//! `attime_key` when written, and pruned through that index in bounded chunks (each chunk its
//! own write, so acceptances run between chunks). A pass reads only index entries older than
//! its cutoff: nothing is scanned that is not due for pruning.
//!
//! A record is indexed once, when it is created; a record written again later (a message's
//! result, an edit) keeps its entry. When that entry comes due, the record's own time is read:
//! if it was written since, the entry is replaced by one at that time and the record is kept.
//!
//! A sent message and its send's reply share one entry ([`Kind::MessageReply`], the reply's key
//! as the entry's value): one key fewer per message in sled, whose memory grows with its keys;
//! that reply is therefore kept as long as the message, not only for [`REPLAY_WINDOW`].

use std::time::Duration;

use super::codec::{Kv, decode};
use super::{
    Data, DeletionReport, Delivery, MessageRecord, MessageState, OperatorRecord, Store, StoreError,
    Tx, TxResult, WebhookReply, keys, trees,
};

/// Index entries visited per chunk.
const CHUNK: usize = 1000;

/// How long replay-protection records are kept at most (Standard Webhooks senders retry for
/// about three days).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which cutoff applies to an index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    /// Replay protection: `webhookid_reply`, `eventdigest_seen`.
    Replay = 1,
    /// Everything else that `storage.retention_days` bounds.
    Record = 2,
}

/// The tree an index entry points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Reply = 1,
    Digest = 2,
    Message = 3,
    Operator = 4,
    Report = 5,
    FailedDelivery = 6,
    /// A sent message (`message_state`) whose entry also carries, as its value, the key of
    /// its send's reply (`webhookid_reply`): the two go together, one entry for both.
    MessageReply = 7,
    /// The messages one call sent for the first time, with their sends' replies: one entry
    /// for the whole call, since sled's memory and disk grow with its number of keys. The
    /// entry's key ends with the first message's key; its list ([`encode_pairs`] of (message
    /// key, reply key)) is in `attime_calls` under the same key (an entry of an earlier build
    /// carries it as its value).
    Sent = 8,
}

impl Kind {
    fn class(self) -> Class {
        match self {
            Kind::Reply | Kind::Digest => Class::Replay,
            _ => Class::Record,
        }
    }

    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Reply,
            2 => Kind::Digest,
            3 => Kind::Message,
            4 => Kind::Operator,
            5 => Kind::Report,
            6 => Kind::FailedDelivery,
            7 => Kind::MessageReply,
            8 => Kind::Sent,
            _ => return None,
        })
    }
}

/// How long things are kept (`storage.retention_days`; 0 keeps everything forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Replay-protection records: the shorter of [`REPLAY_WINDOW`] and `records`.
    pub replay: Option<Duration>,
    /// Mappings, finished records, reports, failed deliveries.
    pub records: Option<Duration>,
}

impl Retention {
    /// From `storage.retention_days`.
    pub fn from_days(days: u64) -> Retention {
        if days == 0 {
            return Retention {
                replay: None,
                records: None,
            };
        }
        let records = Duration::from_secs(days.saturating_mul(24 * 3600));
        Retention {
            replay: Some(records.min(REPLAY_WINDOW)),
            records: Some(records),
        }
    }
}

/// `attime_key`: class ‖ at_ms u64 BE ‖ kind ‖ the record's key.
pub(crate) fn index_key(kind: Kind, at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + key.len());
    k.push(kind.class() as u8);
    k.extend_from_slice(&keys::u64_be(at_ms));
    k.push(kind as u8);
    k.extend_from_slice(key);
    k
}

/// The value of a [`Kind::Sent`] entry: each (message key, reply key) as two keys, each a u32
/// big-endian length and its bytes.
pub(crate) fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for key in pairs.iter().flat_map(|(m, r)| [m, r]) {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The pairs of a [`Kind::Sent`] entry; `None` if it is malformed.
fn decode_pairs(mut value: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut next = || -> Option<&[u8]> {
        let (len, rest) = value.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let (key, rest) = (rest.get(..len)?, &rest[len..]);
        value = rest;
        Some(key)
    };
    let mut pairs = Vec::new();
    loop {
        let Some(message) = next() else {
            return value.is_empty().then_some(pairs);
        };
        pairs.push((message, next()?));
    }
}

/// Index a record written inside a transaction.
pub(crate) fn tx_index<K: Kv>(tx: &Tx<'_, K>, kind: Kind, at_ms: u64, key: &[u8]) -> TxResult<()> {
    tx_index_with(tx, kind, at_ms, key, &[])
}

/// [`tx_index`] with a value on the entry: for [`Kind::MessageReply`], the reply's key (so the
/// reply is kept as long as the message, beyond [`REPLAY_WINDOW`]).
pub(crate) fn tx_index_with<K: Kv>(
    tx: &Tx<'_, K>,
    kind: Kind,
    at_ms: u64,
    key: &[u8],
    value: &[u8],
) -> TxResult<()> {
    if tx.data.indexed {
        let ikey = index_key(kind, at_ms, key);
        if kind == Kind::Sent {
            // Kilobytes: apart from the index, whose last leaf takes every event's entry and
            // which sled rewrites whole every few writes to it.
            tx.calls.write(&ikey, value.to_vec())?;
            tx.retain.write(&ikey, Vec::new())?;
        } else {
            tx.retain.write(&ikey, value.to_vec())?;
        }
    }
    Ok(())
}

impl Data {
    /// Index a record written outside a transaction.
    pub(crate) fn index(&self, kind: Kind, at_ms: u64, key: &[u8]) -> Result<(), StoreError> {
        if self.indexed {
            self.retain.insert(index_key(kind, at_ms, key), &[])?;
        }
        Ok(())
    }

    /// One chunk: prune what the index holds of `class` older than `cutoff_ms`, at most
    /// `budget` entries; returns (records removed, whether more may be due).
    pub(crate) fn prune_step(
        &self,
        class: Class,
        cutoff_ms: u64,
        budget: usize,
    ) -> Result<(usize, bool), StoreError> {
        let start = [class as u8];
        let mut end = vec![class as u8];
        end.extend_from_slice(&keys::u64_be(cutoff_ms));
        let (mut removed, mut visited) = (0, 0);
        for entry in self.retain.range(start.as_slice()..end.as_slice()) {
            if visited >= budget {
                return Ok((removed, true));
            }
            let (ikey, ivalue) = entry?;
            visited += 1;
            self.retain.remove(&ikey)?;
            let Some(kind) = ikey.get(9).and_then(|&b| Kind::from_u8(b)) else {
                continue;
            };
            let key = &ikey[10..];
            match kind {
                Kind::Sent => {
                    // An earlier build's entry carries its list itself.
                    let list = if ivalue.is_empty() {
                        self.calls.remove(&ikey)?.unwrap_or_default()
                    } else {
                        ivalue
                    };
                    // Malformed: nothing to prune through it (the entry is dropped).
                    let pairs = decode_pairs(&list).unwrap_or_default();
                    visited += pairs.len().saturating_sub(1);
                    for (message, reply) in pairs {
                        removed += self.prune_message(message, reply, cutoff_ms)?;
                    }
                }
                Kind::MessageReply => removed += self.prune_message(key, &ivalue, cutoff_ms)?,
                _ => match self.prune_record(kind, key, cutoff_ms)? {
                    Pruned::Removed => removed += 1,
                    Pruned::WrittenSince(at) => {
                        self.retain.insert(index_key(kind, at, key), ivalue)?;
                    }
                    Pruned::Gone => {}
                },
            }
        }
        Ok((removed, false))
    }

    /// Prune a sent message and its send's reply (`reply` empty: none); returns how many
    /// records were removed.
    fn prune_message(
        &self,
        message: &[u8],
        reply: &[u8],
        cutoff_ms: u64,
    ) -> Result<usize, StoreError> {
        let removed = match self.prune_record(Kind::Message, message, cutoff_ms)? {
            Pruned::Removed => 1,
            Pruned::WrittenSince(at) => {
                self.retain
                    .insert(index_key(Kind::MessageReply, at, message), reply)?;
                return Ok(0);
            }
            Pruned::Gone => 0,
        };
        // The reply goes with its message (or after it, if it went first).
        let reply_removed = !reply.is_empty() && self.webhooks.remove(reply)?.is_some();
        Ok(removed + usize::from(reply_removed))
    }

    /// Index every record the directory holds: once, at open, for a version 1 directory (it
    /// had no `attime_key`) or one written with retention off ([`trees::META_UNINDEXED`]).
    pub(crate) fn index_existing(&self) -> Result<(), StoreError> {
        for entry in self.webhooks.iter() {
            let (key, value) = entry?;
            let at = decode::<WebhookReply>(trees::WEBHOOKID_REPLY, &value)?.at_ms;
            self.index(Kind::Reply, at, &key)?;
        }
        for entry in self.digests.iter() {
            let (key, value) = entry?;
            self.index(
                Kind::Digest,
                keys::parse_u64(trees::EVENTDIGEST_SEEN, &value)?,
                &key,
            )?;
        }
        for entry in self.messages.iter() {
            let (key, value) = entry?;
            let at = decode::<MessageRecord>(trees::MESSAGE_STATE, &value)?.updated_at_ms;
            self.index(Kind::Message, at, &key)?;
        }
        for entry in self.operators.iter() {
            let (key, value) = entry?;
            let at = decode::<OperatorRecord>(trees::BITRIXMSG_OPERATOR, &value)?.updated_at_ms;
            self.index(Kind::Operator, at, &key)?;
        }
        for entry in self.deletions.iter() {
            let (key, value) = entry?;
            let d = decode::<DeletionReport>(trees::DELETIONID_DELETION, &value)?.deletion;
            self.index(
                Kind::Report,
                d.completed_at_ms.unwrap_or(d.created_at_ms),
                &key,
            )?;
        }
        for entry in self.deliveries.iter() {
            let (key, value) = entry?;
            let d = decode::<Delivery>(trees::SEQ_DELIVERY, &value)?;
            if d.failed.is_some() {
                self.index(Kind::FailedDelivery, d.due_at_ms.max(d.created_at_ms), &key)?;
            }
        }
        Ok(())
    }

    /// Remove the record if it is still older than the cutoff.
    fn prune_record(&self, kind: Kind, key: &[u8], cutoff_ms: u64) -> Result<Pruned, StoreError> {
        let tree = match kind {
            Kind::Reply => &self.webhooks,
            Kind::Digest => &self.digests,
            Kind::Message | Kind::MessageReply | Kind::Sent => &self.messages,
            Kind::Operator => &self.operators,
            Kind::Report => &self.deletions,
            Kind::FailedDelivery => &self.deliveries,
        };
        let Some(value) = tree.get(key)? else {
            return Ok(Pruned::Gone);
        };
        // The time the record was last written (records indexed once, when created, may have
        // been written since: they are indexed again at that time).
        let at = match kind {
            Kind::Reply => decode::<WebhookReply>(trees::WEBHOOKID_REPLY, &value)?.at_ms,
            Kind::Digest => keys::parse_u64(trees::EVENTDIGEST_SEEN, &value)?,
            Kind::Message | Kind::MessageReply | Kind::Sent => {
                let record: MessageRecord = decode(trees::MESSAGE_STATE, &value)?;
                if record.state == MessageState::Queued {
                    // Its send is pending: kept, and looked at again a period later.
                    return Ok(Pruned::WrittenSince(
                        cutoff_ms.max(record.updated_at_ms) + 1,
                    ));
                }
                record.updated_at_ms
            }
            Kind::Operator => {
                let record: OperatorRecord = decode(trees::BITRIXMSG_OPERATOR, &value)?;
                if record.updated_at_ms < cutoff_ms {
                    let end = key
                        .iter()
                        .position(|&b| b == keys::SEP)
                        .unwrap_or(key.len());
                    let portal = String::from_utf8_lossy(&key[..end]);
                    for id in &record.external_ids {
                        self.extmsgs.remove(keys::message(
                            &portal,
                            record.line,
                            &record.chat_id,
                            id,
                        ))?;
                    }
                }
                record.updated_at_ms
            }
            Kind::Report => {
                let report: DeletionReport = decode(trees::DELETIONID_DELETION, &value)?;
                report
                    .deletion
                    .completed_at_ms
                    .unwrap_or(report.deletion.created_at_ms)
            }
            // Failed deliveries are never written again; a live one is never pruned.
            Kind::FailedDelivery => {
                if decode::<Delivery>(trees::SEQ_DELIVERY, &value)?
                    .failed
                    .is_none()
                {
                    return Ok(Pruned::Gone);
                }
                0
            }
        };
        if at >= cutoff_ms {
            return Ok(Pruned::WrittenSince(at));
        }
        tree.remove(key)?;
        Ok(Pruned::Removed)
    }
}

/// What [`Data::prune_record`] found.
enum Pruned {
    /// The record was older than the cutoff and is removed.
    Removed,
    /// The record was written at this time, after the cutoff: it is indexed again.
    WrittenSince(u64),
    /// No record (or none retention prunes) under that key.
    Gone,
}

impl Store {
    /// Prune everything older than `retention` allows at `now_ms`, chunk by chunk (each chunk
    /// its own write); returns how many records were removed.
    pub async fn prune(&self, now_ms: u64, retention: Retention) -> Result<usize, StoreError> {
        let mut removed = 0;
        for (class, keep) in [
            (Class::Replay, retention.replay),
            (Class::Record, retention.records),
        ] {
            let Some(keep) = keep else { continue };
            let cutoff = now_ms.saturating_sub(keep.as_millis() as u64);
            loop {
                let (n, more) = self
                    .commit(move |d| d.prune_step(class, cutoff, CHUNK))
                    .await?;
                removed += n;
                if !more {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod pair_tests {
    use super::{decode_pairs, encode_pairs};

    #[test]
    fn pairs_read_back_as_written_and_a_cut_value_reads_as_malformed() {
        let pairs = vec![
            (b"p1\x1f7\x1fc\x1fm1".to_vec(), b"acme\x1fw1".to_vec()),
            (b"m2".to_vec(), Vec::new()),
        ];
        let value = encode_pairs(&pairs);
        let read: Vec<(Vec<u8>, Vec<u8>)> = decode_pairs(&value)
            .unwrap()
            .into_iter()
            .map(|(m, r)| (m.to_vec(), r.to_vec()))
            .collect();
        assert_eq!(read, pairs);
        assert_eq!(decode_pairs(&[]), Some(Vec::new()));
        for cut in 1..value.len() {
            // A strict prefix is malformed (it ends inside a length or a key, or after a
            // message without its reply), except the one ending right after the first pair.
            let partial = decode_pairs(&value[..cut]);
            assert!(
                partial.is_none() || cut == encode_pairs(&pairs[..1]).len(),
                "prefix of {cut} bytes read as {partial:?}"
            );
        }
    }
}

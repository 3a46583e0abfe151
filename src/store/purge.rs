//! Long jobs in bounded chunks: forgetting a portal (uninstall with `CLEAN=1`, teardown);
//! retention (`retention.rs`) works the same way. Each chunk visits at most [`CHUNK`] keys and is its own
//! write, so other writes (acceptances above all) run between chunks instead of waiting for the
//! whole job. Not one transaction, but idempotent: running a job again finishes what a crash
//! interrupted.

use sled::{IVec, Tree};

use super::codec::decode;
use super::{Data, DeletionReport, Delivery, EventRecord, Store, StoreError, keys, trees};

/// Keys visited per chunk.
pub(crate) const CHUNK: usize = 1000;

/// Where a chunked job stands: the walk it is in and the last key it visited there.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    walk: usize,
    after: Option<IVec>,
}

/// Whether a visited value's key is to be removed.
type Decide<'a> = dyn Fn(&Data, &[u8]) -> Result<bool, StoreError> + 'a;

/// One walk of a job: the keys of `tree` under `prefix`, each removed when `remove` says so.
struct Walk<'a> {
    tree: &'a Tree,
    prefix: Vec<u8>,
    remove: Box<Decide<'a>>,
}

impl<'a> Walk<'a> {
    fn all(tree: &'a Tree, remove: impl Fn(&Data, &[u8]) -> Result<bool, StoreError> + 'a) -> Self {
        Walk {
            tree,
            prefix: Vec::new(),
            remove: Box::new(remove),
        }
    }

    fn prefix(tree: &'a Tree, prefix: Vec<u8>) -> Self {
        Walk {
            tree,
            prefix,
            remove: Box::new(|_, _| Ok(true)),
        }
    }
}

impl Data {
    /// Run walks from `progress` for at most `budget` keys; returns the keys removed and where
    /// to go on (`None`: done).
    fn step(
        &self,
        walks: &[Walk<'_>],
        mut progress: Progress,
        budget: usize,
    ) -> Result<(usize, Option<Progress>), StoreError> {
        let (mut visited, mut removed) = (0, 0);
        while let Some(walk) = walks.get(progress.walk) {
            let range = match &progress.after {
                Some(after) => walk.tree.range::<&[u8], _>((
                    std::ops::Bound::Excluded(after.as_ref()),
                    std::ops::Bound::Unbounded,
                )),
                None => walk.tree.range::<&[u8], _>(walk.prefix.as_slice()..),
            };
            let mut finished = true;
            for item in range {
                let (key, value) = item?;
                if !key.starts_with(&walk.prefix) {
                    break;
                }
                if visited == budget {
                    finished = false;
                    break;
                }
                visited += 1;
                if (walk.remove)(self, &value)? {
                    walk.tree.remove(&key)?;
                    removed += 1;
                }
                progress.after = Some(key);
            }
            if !finished {
                return Ok((removed, Some(progress)));
            }
            progress = Progress {
                walk: progress.walk + 1,
                after: None,
            };
        }
        Ok((removed, None))
    }

    /// One chunk of [`Store::purge_portal`].
    pub(crate) fn purge_portal_step(
        &self,
        member_id: &str,
        channels: &[String],
        progress: Progress,
        budget: usize,
    ) -> Result<(usize, Option<Progress>), StoreError> {
        let prefix = keys::portal_prefix(member_id);
        let ours = |channel: &str| channels.iter().any(|c| c == channel);
        let mut walks: Vec<Walk<'_>> = [
            &self.chats,
            &self.users,
            &self.messages,
            &self.operators,
            &self.extmsgs,
        ]
        .into_iter()
        .map(|tree| Walk::prefix(tree, prefix.clone()))
        .collect();
        // Pending events of either database (a deletion's items go with it).
        let pending_event = move |data: &Data, value: &[u8]| {
            let record: EventRecord = decode(trees::SEQ_EVENT, value)?;
            let theirs = record.portal == member_id;
            if theirs {
                data.pending().remove(&record);
            }
            if theirs && let super::Work::Delete { deletion, .. } = &record.work {
                data.pending_deletions.remove(deletion.id.as_bytes())?;
                for index in 0..deletion.total {
                    data.items.remove(keys::seq_item(record.seq, index))?;
                }
            }
            Ok(theirs)
        };
        walks.push(Walk::all(&self.inbox.events, pending_event));
        walks.push(Walk::prefix(&self.inbox.sends, prefix.clone()));
        walks.push(Walk::all(&self.events, pending_event));
        for channel in channels {
            walks.push(Walk::prefix(&self.webhooks, keys::channel_prefix(channel)));
            walks.push(Walk::prefix(
                &self.inbox.replies,
                keys::channel_prefix(channel),
            ));
        }
        walks.push(Walk::all(&self.deletions, move |_, value| {
            let report: DeletionReport = decode(trees::DELETIONID_DELETION, value)?;
            Ok(ours(&report.deletion.channel))
        }));
        for channel in channels {
            walks.push(Walk::prefix(&self.queue, keys::channel_prefix(channel)));
        }
        walks.push(Walk::all(&self.deliveries, move |_, value| {
            let delivery: Delivery = decode(trees::SEQ_DELIVERY, value)?;
            Ok(ours(&delivery.channel))
        }));
        let (mut removed, next) = self.step(&walks, progress, budget)?;
        if next.is_none() {
            for channel in channels {
                removed += usize::from(self.channels.remove(channel.as_bytes())?.is_some());
            }
            removed += usize::from(self.portals.remove(member_id.as_bytes())?.is_some());
        }
        Ok((removed, next))
    }
}

impl Store {
    /// Remove every key of this portal and of these channels, chunk by chunk; returns how many
    /// were removed.
    pub async fn purge_portal(
        &self,
        member_id: &str,
        channels: &[String],
    ) -> Result<usize, StoreError> {
        let (member, channels) = (member_id.to_string(), channels.to_vec());
        self.chunked(move |d, progress| d.purge_portal_step(&member, &channels, progress, CHUNK))
            .await
    }

    async fn chunked<F>(&self, step: F) -> Result<usize, StoreError>
    where
        F: Fn(&Data, Progress) -> Result<(usize, Option<Progress>), StoreError>
            + Send
            + Sync
            + 'static,
    {
        let step = std::sync::Arc::new(step);
        let mut progress = Some(Progress::default());
        let mut removed = 0;
        while let Some(at) = progress.take() {
            let step = step.clone();
            let (n, next) = self.commit(move |d| step(d, at)).await?;
            removed += n;
            progress = next;
        }
        Ok(removed)
    }
}

//! Storage boundary: the only code that knows sled.
//!
//! Design notes
//! - Two `sled::Db`s opened once per process: the main database, and the inbox (`inbox.rs`, in
//!   `<dir>/queue`) for the records of pending sends, updates and reactions, which live for a
//!   second where the rest lives for months (in one log they kept each other's segments from
//!   being reused). Every tree is declared in `trees.rs` with its key layout, every key is
//!   built in `keys.rs`, every value is a JSON record of `records.rs`.
//! - A schema version in `meta` is checked at open; a mismatch refuses to start.
//! - sled is the only engine. Every write goes through the single writer thread
//!   (`committer.rs`): [`Store::commit`] / [`Store::ingest`] send it there and await the answer;
//!   the writer applies a group of queued writes, flushes both databases and `fdatasync`s their files
//!   (`files.rs`: sled's own flush does not force the disk cache), and only then answers them
//!   and publishes what they committed on the feed (`feed.rs`), in commit order. A reply that follows a write is
//!   therefore durable against power loss; concurrent writes share one sync.
//! - A write or sync that fails with an I/O error poisons the store: every later write is
//!   refused ([`StoreError::Unavailable`], a `503`) until restart ([`Store::poisoned`]).
//! - Accepting an event writes its record into the inbox's `seq_event` (a deletion's into the
//!   main database's, its items each under their own key in `seqitem_deletionitem`, in the same
//!   transaction). Its webhook-id and, for a
//!   send, its message are indexed in memory for the first `pending::IN_MEMORY` pending
//!   events; beyond that (Bitrix24 away for long) they are written to disk with it, as its
//!   reply and a queued message, in the inbox (`pending.rs`). The mapping, reports and results are written
//!   when Bitrix24 answers.
//! - What each durable group committed is published on a feed (`feed.rs`) the outbox follows.
//! - Records that only serve the past are indexed by time (`retention.rs`) and pruned through
//!   that index in bounded chunks.
//! - Multi-tree changes are single sled transactions (`Tx`), so a crash leaves either all of a
//!   change or none of it. Long jobs (purge, pruning) are chunks of bounded size, each its own
//!   write, so other writes run between them.

mod codec;
mod committer;
pub mod deletions;
pub mod deliveries;
mod events;
pub mod feed;
mod files;
mod inbox;
pub mod ingest;
pub mod keys;
mod legacy_journal;
pub mod mapping;
mod meta;
pub mod operator;
pub mod ops;
mod pending;
pub mod portals;
mod purge;
pub mod records;
pub mod retention;
pub mod trees;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use committer::Applied;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

pub use committer::CommitStats;
pub use records::*;

/// The memory given to sled's page cache unless configured (`storage.cache_mb`; sled's own
/// default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// sled counts a cached page at its size in the log, but holds it in memory as a node several
/// times larger (vectors of keys and values, grown by doubling, and their headers). Measured with
/// the scale bench (100,000 messages, jemalloc): each MiB of sled's `cache_capacity` costs about
/// four of resident memory, and up to five at a million (sled's own per-page state comes on
/// top), so sled is given a fifth of `storage.cache_mb`.
const SLED_CACHE_MEMORY_FACTOR: u64 = 5;

/// The inbox (`inbox.rs`) gets this part of `storage.cache_mb` on top of the main database's
/// share: it holds only pending events, most of them read once.
const INBOX_CACHE_SHARE: u64 = 8;

/// Errors of the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error("data directory has schema version {found}; this build needs {expected}")]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("storage is not accepting writes: {0}")]
    Unavailable(String),
}

/// Abort type inside transactions.
pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Handle to the gateway's storage; cheap to clone. Reads go straight to the trees (through
/// `Deref` to [`Data`]); durable writes go through [`Store::commit`].
#[derive(Clone)]
pub struct Store {
    data: Arc<Data>,
    committer: Arc<committer::Committer>,
}

/// The opened database and its trees; every typed read and write is a method of this type.
pub struct Data {
    db: sled::Db,
    meta: Tree,
    pub(crate) portals: Tree,
    pub(crate) events: Tree,
    /// `seqitem_deletionitem`.
    pub(crate) items: Tree,
    pub(crate) webhooks: Tree,
    pub(crate) chats: Tree,
    pub(crate) users: Tree,
    pub(crate) messages: Tree,
    pub(crate) deletions: Tree,
    pub(crate) pending_deletions: Tree,
    /// The in-memory part of the index of pending work (`pending.rs`); used only by the
    /// writer thread (and at open).
    pub(crate) pending: parking_lot::Mutex<pending::Pending>,
    /// Whether records are indexed for retention (`false` when nothing is ever pruned).
    pub(crate) indexed: bool,
    pub(crate) deliveries: Tree,
    /// `channelseq_due`.
    pub(crate) queue: Tree,
    /// `attime_key`.
    pub(crate) retain: Tree,
    pub(crate) operators: Tree,
    pub(crate) extmsgs: Tree,
    pub(crate) channels: Tree,
    pub(crate) digests: Tree,
    /// `seq_done`: inbox events whose results are recorded (`inbox.rs`).
    pub(crate) done: Tree,
    /// `attime_calls`.
    pub(crate) calls: Tree,
    /// The inbox database: pending sends, updates and reactions (`inbox.rs`).
    pub(crate) inbox: inbox::Inbox,
    /// One past the highest event seq applied so far, and one past the highest known durable
    /// (set after each successful sync): a reader of `seq_event` that must see only durable
    /// events stops before it.
    applied_seq: std::sync::atomic::AtomicU64,
    durable_seq: std::sync::atomic::AtomicU64,
    /// Changes staged by the write being applied (writer thread only).
    staged: parking_lot::Mutex<Vec<feed::Committed>>,
    /// Where committed changes are published.
    feed: feed::Feed,
    /// sled's files, `fdatasync`ed after each flush.
    files: files::SledFiles,
    /// Set once a write or sync failed: every later write is refused.
    pub(crate) poison: committer::Poison,
    /// Fault injection: the next sync fails as an `fdatasync` returning EIO would.
    fail_next_sync: AtomicBool,
    /// Fired when the database is closed (the last handle is gone). The last field: fields
    /// drop in order, so it fires after sled's handles (and the directory lock) are gone.
    on_close: CloseSignal,
}

/// Sends once when dropped.
struct CloseSignal(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Drop for CloseSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        // Everything acknowledged is durable already; this only shortens the next start.
        // Twice: finished events leave the inbox, then their markers go.
        for _ in 0..2 {
            if self.poison.get().is_some() {
                break;
            }
            if let Err(e) = self.after_sync().and_then(|()| self.sync()) {
                tracing::error!(error = %e, "flush on close failed");
                break;
            }
        }
    }
}

/// How a store is opened (from `[storage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Memory for sled's page cache (`storage.cache_mb`).
    pub cache_bytes: u64,
    /// Whether records are indexed for retention; false (`storage.retention_days = 0`:
    /// nothing is ever pruned) writes no index entries. A directory used that way is marked,
    /// and the next open with `indexed` indexes every record it holds, once.
    pub indexed: bool,
    /// Pending events indexed in memory at most (`storage.pending_in_memory`).
    pub pending_in_memory: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            indexed: true,
            pending_in_memory: pending::IN_MEMORY,
        }
    }
}

impl std::ops::Deref for Store {
    type Target = Data;
    fn deref(&self) -> &Data {
        &self.data
    }
}

/// Views of every tree inside one transaction (or, with `K = Tree`, the trees themselves, written
/// in order: [`Data::in_order`]).
pub(crate) struct Tx<'a, K = TransactionalTree> {
    pub portals: &'a K,
    pub events: &'a K,
    pub items: &'a K,
    pub webhooks: &'a K,
    pub chats: &'a K,
    pub users: &'a K,
    pub messages: &'a K,
    pub deletions: &'a K,
    pub deliveries: &'a K,
    pub queue: &'a K,
    pub retain: &'a K,
    pub operators: &'a K,
    pub extmsgs: &'a K,
    pub channels: &'a K,
    pub digests: &'a K,
    pub done: &'a K,
    pub calls: &'a K,
    /// For `generate_id` inside the transaction.
    pub any: &'a K,
    /// For staging what the transaction changes on the feed (a rerun may stage twice: the
    /// feed's changes are idempotent wake-ups and ops the queue deduplicates).
    pub data: &'a Data,
}

impl<'a, K> Tx<'a, K> {
    /// The views of [`Data::trees`], in that order.
    fn over(t: [&'a K; 17], data: &'a Data) -> Tx<'a, K> {
        Tx {
            events: t[0],
            webhooks: t[1],
            chats: t[2],
            users: t[3],
            messages: t[4],
            deletions: t[5],
            deliveries: t[6],
            operators: t[7],
            extmsgs: t[8],
            channels: t[9],
            digests: t[10],
            portals: t[11],
            items: t[12],
            queue: t[13],
            retain: t[14],
            done: t[15],
            calls: t[16],
            any: t[0],
            data,
        }
    }
}

impl Store {
    /// Open (creating if missing) the data directory and check its schema version, with the
    /// default cache ([`DEFAULT_CACHE_BYTES`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` (`storage.cache_mb`), indexing
    /// records for retention.
    pub fn open_with(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::open_configured(
            path,
            &StoreOptions {
                cache_bytes,
                ..StoreOptions::default()
            },
        )
    }

    /// Open with every option (`[storage]`, [`StoreOptions`]).
    pub fn open_configured(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let StoreOptions {
            cache_bytes,
            indexed,
            pending_in_memory,
        } = *options;
        std::fs::create_dir_all(path).map_err(|e| StoreError::Sled(e.into()))?;
        let db = open_db(path, cache_bytes)?;
        let meta = db.open_tree(trees::META)?;
        let mut from_version_1 = false;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &trees::SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        tree: trees::META,
                        detail: "schema_version is not a u32".into(),
                    })?);
                // Version 1 differs only in where deletion items live (`rebuild_pending`
                // moves them) and in having no `channelseq_due` (built from `seq_delivery`);
                // then the version is raised.
                from_version_1 = found == 1;
                if found != trees::SCHEMA_VERSION && found != 1 {
                    return Err(StoreError::SchemaMismatch {
                        found,
                        expected: trees::SCHEMA_VERSION,
                    });
                }
            }
        }
        meta::ensure_placement_key(&meta)?;
        let open = |name| db.open_tree(name);
        let events = open(trees::SEQ_EVENT)?;
        let webhooks = open(trees::WEBHOOKID_REPLY)?;
        let items = open(trees::SEQITEM_DELETIONITEM)?;
        let files = files::SledFiles::open(path).map_err(|e| StoreError::Sled(e.into()))?;
        legacy_journal::import(path, &meta, &events, &webhooks, &db, &files)?;
        let data = Arc::new(Data {
            portals: open(trees::MEMBERID_PORTAL)?,
            events,
            items,
            webhooks,
            chats: open(trees::CHAT_LINK)?,
            users: open(trees::USER_LINK)?,
            messages: open(trees::MESSAGE_STATE)?,
            deletions: open(trees::DELETIONID_DELETION)?,
            pending_deletions: open(trees::DELETIONID_SEQ)?,
            deliveries: open(trees::SEQ_DELIVERY)?,
            queue: open(trees::CHANNELSEQ_DUE)?,
            retain: open(trees::ATTIME_KEY)?,
            operators: open(trees::BITRIXMSG_OPERATOR)?,
            extmsgs: open(trees::EXTMSG_BITRIXMSG)?,
            channels: open(trees::CHANNEL_STATE)?,
            digests: open(trees::EVENTDIGEST_SEEN)?,
            done: open(trees::SEQ_DONE)?,
            calls: open(trees::ATTIME_CALLS)?,
            inbox: inbox::Inbox::open(
                &path.join(trees::INBOX_DIR),
                cache_bytes / INBOX_CACHE_SHARE,
            )?,
            applied_seq: std::sync::atomic::AtomicU64::new(0),
            durable_seq: std::sync::atomic::AtomicU64::new(0),
            indexed,
            pending: parking_lot::Mutex::new(pending::Pending::with_capacity(pending_in_memory)),
            staged: parking_lot::Mutex::new(Vec::new()),
            feed: feed::Feed::default(),
            files,
            poison: committer::Poison::default(),
            fail_next_sync: AtomicBool::new(false),
            meta,
            db,
            on_close: CloseSignal(std::sync::Mutex::new(None)),
        });
        data.settle_inbox()?;
        data.rebuild_pending()?;
        // Everything on disk at open is durable.
        let main_last = match data.events.last()? {
            Some((key, _)) => Some(keys::parse_u64(trees::SEQ_EVENT, &key)?),
            None => None,
        };
        let last = main_last
            .max(data.inbox.last_seq()?)
            .map_or(0, |seq| seq + 1);
        data.applied_seq.store(last, Ordering::SeqCst);
        data.durable_seq.store(last, Ordering::SeqCst);
        if from_version_1 {
            data.rebuild_delivery_queue()?;
        }
        let unindexed = data.meta.contains_key(trees::META_UNINDEXED)?;
        if indexed && (from_version_1 || unindexed) {
            data.index_existing()?;
            data.meta.remove(trees::META_UNINDEXED)?;
            data.sync()?;
        } else if !indexed && !unindexed {
            data.meta.insert(trees::META_UNINDEXED, &[])?;
            data.sync()?;
        }
        if data.meta.get("schema_version")?.as_deref()
            != Some(&trees::SCHEMA_VERSION.to_be_bytes()[..])
        {
            data.meta
                .insert("schema_version", &trees::SCHEMA_VERSION.to_be_bytes())?;
            data.sync()?;
        }
        // Last, after everything open reads: what it read stays out of the way of small writes.
        data.files
            .drop_cache()
            .and_then(|()| data.inbox.drop_cache())
            .map_err(|e| StoreError::Sled(e.into()))?;
        let committer = Arc::new(committer::Committer::start(data.clone())?);
        Ok(Store { data, committer })
    }

    /// Run `apply` on the writer thread and return once it is durable (flushed and
    /// `fdatasync`ed). Concurrent commits share one sync. What `apply` staged is published on
    /// the feed ([`Store::subscribe`]) right after the sync, in commit order.
    pub async fn commit<T, F>(&self, apply: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit_with(apply, true).await
    }

    /// Apply a write on the writer thread and answer once it is applied, without a sync of its
    /// own: it becomes durable with the next sync any other write causes (the result that
    /// follows an attempt, usually), and a crash before that forgets it. For bookkeeping whose
    /// loss is harmless; it publishes nothing on the feed.
    pub async fn commit_unsynced<T, F>(&self, apply: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit_with(apply, false).await
    }

    async fn commit_with<T, F>(&self, apply: F, sync: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
    {
        self.refuse_if_poisoned()?;
        self.committer
            .run(move |d| apply(d).map(Applied::from), sync)
            .await
    }

    /// Accept a platform event durably ([`Data::ingest`]); concurrent acceptances share one
    /// sync. Its new items are published on the feed once durable.
    pub async fn ingest(
        &self,
        req: ingest::IngestRequest,
    ) -> Result<ingest::IngestOutcome, StoreError> {
        self.refuse_if_poisoned()?;
        self.committer
            .run(move |d| d.ingest_undoable(req), true)
            .await
    }

    /// Make everything written so far durable (a sync through the writer, e.g. at shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.refuse_if_poisoned()?;
        self.committer.run(|_| Ok(().into()), true).await
    }

    /// Readiness: the store is not poisoned and the writer answers (a message through its
    /// queue, which forces no sync and writes nothing).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.refuse_if_poisoned()?;
        if !self.committer.alive() {
            return Err(StoreError::Unavailable("the storage writer stopped".into()));
        }
        self.committer.run(|_| Ok(().into()), false).await
    }

    /// Why the store refuses writes, once a write or sync failed (until restart).
    pub fn poisoned(&self) -> Option<&str> {
        self.data.poison.get()
    }

    fn refuse_if_poisoned(&self) -> Result<(), StoreError> {
        match self.poisoned() {
            Some(reason) => Err(StoreError::Unavailable(format!(
                "storage failed earlier ({reason}); restart needed"
            ))),
            None => Ok(()),
        }
    }

    /// A receiver that resolves once every handle of this store is gone and the database is
    /// closed (its directory lock released). Only the first call gets a live receiver.
    pub fn on_close(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut slot) = self.data.on_close.0.lock()
            && slot.is_none()
        {
            *slot = Some(tx);
        }
        rx
    }

    /// Group-commit counters (commits and fsyncs so far).
    pub fn commit_stats(&self) -> CommitStats {
        self.committer.stats()
    }

    /// Fault injection (for tests of the failure path; nothing in the gateway calls it): the
    /// next sync fails after sled's flush, as an `fdatasync` that returns EIO would, which
    /// poisons the store.
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.data.fail_next_sync.store(true, Ordering::SeqCst);
    }
}

/// A failed sled transaction as a store error.
pub(crate) fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Open sled in `path`. Its directory lock can outlive the previous `Db` in this process by a
/// moment (its I/O threads let go of the file last), so a held lock is retried for up to two
/// seconds before it counts as another process's.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        // Durability comes from explicit group-commit flushes, not from a background timer.
        let opened = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .cache_capacity((cache_bytes / SLED_CACHE_MEMORY_FACTOR).max(1 << 20))
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

impl Data {
    /// Every tree, in the order [`Tx::over`] takes them.
    fn trees(&self) -> [&Tree; 17] {
        [
            &self.events,
            &self.webhooks,
            &self.chats,
            &self.users,
            &self.messages,
            &self.deletions,
            &self.deliveries,
            &self.operators,
            &self.extmsgs,
            &self.channels,
            &self.digests,
            &self.portals,
            &self.items,
            &self.queue,
            &self.retain,
            &self.done,
            &self.calls,
        ]
    }

    /// Run `f` as one sled transaction over every tree.
    pub(crate) fn transaction<T>(
        &self,
        f: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        self.trees()[..]
            .transaction(|v: &Vec<TransactionalTree>| {
                f(&Tx::over(std::array::from_fn(|i| &v[i]), self))
            })
            .map_err(tx_error)
    }

    /// Run `f`'s writes straight on the trees, one after the other, without a transaction: no
    /// batch manifest and no lock over every tree, so sled writes its log buffer out once
    /// rather than three times. After a crash sled recovers a prefix of the log (its recovery
    /// stops at the first gap in the unstable tail), so `f` must order its writes so that
    /// every prefix is a state the gateway recovers from, its commit point last. Call on the
    /// writer thread, which is the only writer.
    pub(crate) fn in_order<T>(
        &self,
        f: impl FnOnce(&Tx<'_, Tree>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        f(&Tx::over(self.trees(), self)).map_err(|e| match e {
            ConflictableTransactionError::Abort(e) => e,
            ConflictableTransactionError::Storage(e) => StoreError::Sled(e),
            // Only transactions conflict; nothing here is one.
            _ => StoreError::Unavailable("write conflict outside a transaction".into()),
        })
    }

    /// A fresh id, unique and increasing for the life of the data directory.
    pub(crate) fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Make everything written so far durable against power loss: sled's flush, then an
    /// `fdatasync` of its files, for the main database and then the inbox (call on the writer thread, or when closing).
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Sled(
                std::io::Error::other("fdatasync: Input/output error (injected)").into(),
            ));
        }
        self.files.sync().map_err(|e| StoreError::Sled(e.into()))?;
        self.inbox.sync()
    }
}

#[cfg(test)]
mod tests;

//! The writer: one thread applies every durable write, in groups. It takes whatever writes are
//! queued (up to [`MAX_GROUP`]), applies them one after the other to sled (each is one sled
//! write or transaction, so each is all-or-nothing on disk), then makes the whole group durable
//! with one sled flush and one `fdatasync` of sled's files ([`Data::sync`]), and only then
//! publishes what each write committed on the feed (`feed.rs`) and answers the writers, in the
//! order the writes were applied.
//! While a group syncs, new writes queue up and form the next group: under load each request
//! waits for about one sync, and concurrent requests share it.
//!
//! A write or sync that fails with an I/O error *poisons* the store ([`Poison`]): that write and
//! every other write of its group are refused (never acknowledged, their hooks never run), and
//! so is every later write, until a restart. After a failed `fdatasync` the kernel may already
//! have dropped the dirty pages, so nothing written since the last good sync can be trusted to be
//! on disk (PostgreSQL's rule since "fsyncgate").
//!
//! Requests never block on this thread: a write is a message, answered on a oneshot channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{Data, StoreError};

const WRITER_THREAD: &str = "store-writer";
/// The most writes applied before a sync; bounds how long the first of a group waits.
const MAX_GROUP: usize = 1024;

/// Why the store refuses writes, once it does (set once, never cleared: only a restart, which
/// rereads what is really on disk, clears it).
#[derive(Default)]
pub(crate) struct Poison(OnceLock<String>);

impl Poison {
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Poison the store (the first reason wins) and say why, once.
    pub(crate) fn set(&self, reason: &str) {
        if self.0.set(reason.to_string()).is_ok() {
            tracing::error!(
                reason,
                "storage failed: refusing every write until restart (what was not made durable \
                 was never acknowledged)"
            );
        }
    }

    fn error(&self) -> Option<StoreError> {
        self.get().map(refused)
    }
}

fn refused(reason: &str) -> StoreError {
    StoreError::Unavailable(format!("storage failed earlier ({reason}); restart needed"))
}

/// What to do once the sync of a write's group is done (`Ok`) or failed (`Err`), on the writer
/// thread, in order.
pub(crate) struct Completion {
    run: OnSync,
    /// The write changed sled (a group of reads or pings needs no sync).
    wrote: bool,
    /// What the write staged for the feed, published only once it is durable.
    staged: Vec<super::feed::Committed>,
}

/// Runs once the group's sync is done or failed.
type OnSync = Box<dyn FnOnce(&Data, Result<(), &StoreError>) + Send>;
/// Takes back the in-memory effects of a write that never became durable.
pub(crate) type Undo = Box<dyn FnOnce(&Data) + Send>;

/// A queued write: applies on the writer thread and returns its completion.
type Job = Box<dyn FnOnce(&Data) -> Completion + Send>;

/// Counters of the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes committed.
    pub commits: u64,
    /// Syncs issued (each a sled flush and an `fdatasync`, covering a group of writes).
    pub flushes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
}

pub(crate) struct Committer {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Counters>,
}

/// An applied write's value, with what undoes its in-memory side effects if its group's sync
/// fails (index entries of what never became durable).
pub(crate) struct Applied<T> {
    pub value: T,
    pub undo: Option<Undo>,
}

impl<T> From<T> for Applied<T> {
    fn from(value: T) -> Self {
        Applied { value, undo: None }
    }
}

impl Committer {
    pub(crate) fn start(data: Arc<Data>) -> Result<Committer, StoreError> {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || write_loop(&data, jobs_rx, &writer_stats))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Committer {
            jobs: Some(jobs_tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Apply on the writer thread, make durable, publish what it staged (in commit order),
    /// return. `sync` false: the write changed nothing on disk, or need not wait for a sync.
    pub(crate) async fn run<T, F>(&self, apply: F, sync: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<Applied<T>, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |data: &Data| {
            if let Some(e) = data.poison.error() {
                return refuse(reply, e);
            }
            match apply(data) {
                Ok(applied) => finisher(applied, reply, sync),
                Err(e) => {
                    if let Some(reason) = io_failure(&e) {
                        data.poison.set(&reason);
                    }
                    refuse(reply, e)
                }
            }
        });
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            flushes: self.stats.flushes.load(Ordering::Relaxed),
        }
    }

    /// The writer thread is running (it stops only with the store, or if it panicked).
    pub(crate) fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
            && self.jobs.as_ref().is_some_and(|j| !j.is_closed())
    }
}

/// The completion of an applied write: the sync's outcome decides its reply.
fn finisher<T: Send + 'static>(
    applied: Applied<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    wrote: bool,
) -> Completion {
    let Applied { value, undo } = applied;
    let run = Box::new(move |data: &Data, synced: Result<(), &StoreError>| {
        let outcome = match synced {
            Ok(()) => Ok(value),
            Err(e) => {
                if let Some(undo) = undo {
                    undo(data);
                }
                Err(refused(&e.to_string()))
            }
        };
        let _ = reply.send(outcome);
    });
    Completion {
        run,
        wrote,
        staged: Vec::new(),
    }
}

/// The completion of a write that was refused or failed before it changed anything durable.
fn refuse<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    e: StoreError,
) -> Completion {
    let run = Box::new(move |_: &Data, _: Result<(), &StoreError>| {
        let _ = reply.send(Err(e));
    });
    Completion {
        run,
        wrote: false,
        staged: Vec::new(),
    }
}

/// The reason to poison the store, when a write failed with an I/O error (a refused or corrupt
/// record, or a schema problem, is the write's own failure, not the disk's).
fn io_failure(e: &StoreError) -> Option<String> {
    match e {
        StoreError::Sled(sled::Error::Io(_) | sled::Error::ReportableBug(_)) => {
            Some(format!("write failed: {e}"))
        }
        _ => None,
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the storage writer stopped".into())
}

impl Drop for Committer {
    /// Close the queue and wait for the writer, so that once the last `Store` is gone the
    /// database is closed too (a restart in the same process can reopen it).
    fn drop(&mut self) {
        self.jobs.take();
        let own = std::thread::current().name() == Some(WRITER_THREAD);
        if let Some(thread) = self.thread.take()
            && !own
        {
            let _ = thread.join();
        }
    }
}

fn write_loop(data: &Data, mut jobs: mpsc::UnboundedReceiver<Job>, stats: &Counters) {
    let mut group: Vec<Completion> = Vec::new();
    // Apply one write and keep what it staged (a refused write's stage is dropped).
    let apply = |job: Job| {
        let mut completion = job(data);
        let staged = data.take_staged();
        if completion.wrote {
            completion.staged = staged;
        }
        completion
    };
    while let Some(first) = jobs.blocking_recv() {
        group.push(apply(first));
        while group.len() < MAX_GROUP {
            let Ok(job) = jobs.try_recv() else { break };
            group.push(apply(job));
        }
        stats
            .commits
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        // Every write of the group was applied before this sync starts, so it covers them all.
        let applied = data.applied_seq.load(Ordering::SeqCst);
        let synced = if let Some(e) = data.poison.error() {
            Err(e)
        } else if group.iter().any(|c| c.wrote) {
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            let synced = data
                .sync()
                .inspect_err(|e| data.poison.set(&format!("sync failed: {e}")));
            // What waited for this sync (the inbox's removals of finished events); a failure
            // here poisons later writes, not this group's, which is durable.
            if synced.is_ok()
                && let Err(e) = data.after_sync()
            {
                data.poison.set(&format!("write failed: {e}"));
            }
            synced
        } else {
            Ok(())
        };
        if synced.is_ok() {
            data.durable_seq.fetch_max(applied, Ordering::SeqCst);
        }
        for completion in group.drain(..) {
            // Published before the reply: once a write is answered, the outbox has its changes.
            if synced.is_ok() {
                data.feed.publish(completion.staged);
            }
            (completion.run)(data, synced.as_ref().map(|_| ()));
        }
    }
}

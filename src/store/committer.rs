//! Group commit: one thread applies write jobs in arrival order, then makes the whole group
//! durable with a single fsync, then completes every job of the group in order.
//!
//! Requests that arrive while an fsync is running form the next group, so under load the number
//! of fsyncs per second stays bounded while each request still waits for its own durability.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Data, StoreError};

/// Most jobs folded into one fsync.
const MAX_GROUP: usize = 4096;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Data) -> Completion + Send>;

/// Counters of the committer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Jobs committed.
    pub commits: u64,
    /// fsyncs issued (each covers one group of jobs).
    pub flushes: u64,
}

pub(crate) struct Committer {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
}

impl Committer {
    pub(crate) fn start(data: Arc<Data>) -> Result<Committer, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(&data, rx, &thread_stats))
            .map_err(|e| StoreError::Unavailable(format!("cannot start committer: {e}")))?;
        Ok(Committer {
            jobs: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    pub(crate) async fn run<T, F, A>(&self, apply: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Data) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |data: &Data| {
            let applied = apply(data);
            Box::new(move |flushed: Result<(), String>| {
                let outcome = match (applied, flushed) {
                    (Ok(value), Ok(())) => {
                        after(&value);
                        Ok(value)
                    }
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Unavailable(e)),
                };
                let _ = reply_tx.send(outcome);
            })
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("committer stopped".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?;
        reply_rx
            .await
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            flushes: self.stats.flushes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Committer {
    /// Close the queue and wait for the thread, so that once the last `Store` is gone the
    /// database is closed too (a restart in the same process can reopen it).
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && std::thread::current().name() != Some(THREAD_NAME)
        {
            let _ = thread.join();
        }
    }
}

const THREAD_NAME: &str = "store-committer";

fn run(data: &Data, mut rx: mpsc::UnboundedReceiver<Job>, stats: &Counters) {
    let mut completions: Vec<Completion> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        completions.push(first(data));
        while completions.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => completions.push(job(data)),
                Err(_) => break,
            }
        }
        let flushed = data.flush().map_err(|e| {
            tracing::error!(error = %e, "storage flush failed");
            format!("flush failed: {e}")
        });
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .commits
            .fetch_add(completions.len() as u64, Ordering::Relaxed);
        for completion in completions.drain(..) {
            completion(flushed.clone());
        }
    }
}

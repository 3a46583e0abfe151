//! Outbox: the durable path from accepted events to Bitrix24 calls.
//!
//! Design notes
//! - States: an op is *queued* in `seq_op` from the moment its event is acknowledged until its
//!   result is final; it is *in flight* only in memory. Recovery is therefore trivial: at start
//!   every queued op is loaded again (`Outbox::start`), and an op whose result was not recorded
//!   before a crash is sent again (at-least-once). An op whose result was recorded is gone from
//!   `seq_op` in the same transaction, so it is never sent again.
//! - One worker task per portal (`worker.rs`) owns that portal's queue (`queue.rs`) and sends
//!   one request at a time, paced by the portal's leaky bucket (in `BitrixClient`).
//! - New ops arrive through the router in commit order (the committer's post-commit hook), which
//!   keeps each chat's ops in the order the platform's events were accepted.

pub mod deliverer;
pub mod execute;
pub mod queue;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::BitrixClient;
use crate::metrics::Metrics;
use crate::settings::RetrySettings;
use crate::store::{Op, PortalStatus, Store};
use queue::{Limits, PortalQueue};
use worker::{PortalMsg, PortalWorker};

/// What the workers share.
pub struct Context {
    pub store: Store,
    pub client: Arc<BitrixClient>,
    pub connector_id: String,
    pub limits: Limits,
    pub retry: RetrySettings,
    pub metrics: Arc<Metrics>,
    /// Woken whenever a deletion may have completed (a report to deliver).
    pub deliveries: Arc<Notify>,
    pub cancel: CancellationToken,
}

impl Context {
    fn is_installed(&self, portal: &str) -> bool {
        matches!(self.store.portal(portal), Ok(Some(p)) if p.status == PortalStatus::Installed)
    }
}

enum RouterMsg {
    Ops(Vec<Op>),
    Installed(String),
}

/// Handle to the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<RouterMsg>,
}

impl Outbox {
    /// Start the router with the ops recovered from storage.
    pub fn start(ctx: Arc<Context>, tracker: &TaskTracker, recovered: Vec<Op>) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox { tx };
        if !recovered.is_empty() {
            tracing::info!(ops = recovered.len(), "resuming queued Bitrix24 operations");
        }
        outbox.enqueue(recovered);
        tracker.spawn(route(ctx, tracker.clone(), rx));
        outbox
    }

    /// Hand durable ops to their portal's worker (call after they are committed, in commit order).
    pub fn enqueue(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            let _ = self.tx.send(RouterMsg::Ops(ops));
        }
    }

    /// A portal installed the app: release what was held for it.
    pub fn portal_installed(&self, member_id: &str) {
        let _ = self.tx.send(RouterMsg::Installed(member_id.to_string()));
    }
}

async fn route(
    ctx: Arc<Context>,
    tracker: TaskTracker,
    mut rx: mpsc::UnboundedReceiver<RouterMsg>,
) {
    let mut workers: HashMap<String, mpsc::UnboundedSender<PortalMsg>> = HashMap::new();
    let mut worker_for = |portal: &str| {
        workers
            .entry(portal.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let worker = PortalWorker {
                    portal: portal.to_string(),
                    queue: PortalQueue::default(),
                    rx,
                    ctx: ctx.clone(),
                    installed: false,
                };
                tracker.spawn(worker.run());
                tx
            })
            .clone()
    };
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg { Some(m) => m, None => return },
            _ = ctx.cancel.cancelled() => return,
        };
        match msg {
            RouterMsg::Ops(ops) => {
                ctx.metrics.queued_ops.inc_by(ops.len() as i64);
                let mut by_portal: HashMap<String, Vec<Op>> = HashMap::new();
                for op in ops {
                    by_portal.entry(op.portal.clone()).or_default().push(op);
                }
                for (portal, ops) in by_portal {
                    let _ = worker_for(&portal).send(PortalMsg::Ops(ops));
                }
            }
            RouterMsg::Installed(portal) => {
                let _ = worker_for(&portal).send(PortalMsg::Installed);
            }
        }
    }
}

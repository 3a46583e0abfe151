//! One task per portal: plan → wait for the portal's budget → send → record → repeat.
//!
//! The loop only selects over new ops, a timer and cancellation; the decisions live in
//! `queue.rs` (what to send) and `execute.rs` (what the reply means). One request is in flight
//! per portal at a time, as Bitrix24 advises.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::Context;
use super::execute::Executor;
use super::queue::{Call, Limits, Method, Plan, PortalQueue};
use crate::metrics::Metrics;
use crate::store::ops::{OpOutcome, OpResult};
use crate::store::{EventRecord, Op, OpKind, OpRef};

/// Pause after storage refused to record results.
const STORAGE_BACKOFF: Duration = Duration::from_secs(1);

/// Messages for a portal worker.
#[derive(Debug)]
pub(crate) enum PortalMsg {
    Ops(Vec<OpRef>),
    /// The portal (re)installed the app and is set up.
    Installed,
    /// The portal uninstalled the app: hold its work.
    Uninstalled,
    /// The connector was switched on or off on a line.
    Line {
        line: u64,
        open: bool,
    },
}

pub(crate) struct PortalWorker {
    pub portal: String,
    pub queue: PortalQueue,
    pub rx: mpsc::UnboundedReceiver<PortalMsg>,
    pub ctx: Arc<Context>,
    pub installed: bool,
    /// Lines where the connector is off: their items are held.
    pub closed_lines: HashSet<u64>,
    /// Items of events from this seq on are on disk only (the queue held `max_queued`, or the
    /// worker started with work on disk): read back in seq order as the queue drains. Every
    /// pending item of an earlier event is in the queue or in flight, so planning never lets
    /// an item overtake one of its chat that waits on disk.
    pub spilled: Option<u64>,
    /// Events before this seq were read from disk: their items arriving from the feed are
    /// already here.
    pub loaded_until: u64,
}

/// Events read from disk per refill step (each a decode), so one step stays short.
const REFILL_SCAN: usize = 20_000;

impl PortalWorker {
    pub(crate) async fn run(mut self) {
        // One cancellation future and one timer for the worker's life: the loop turns once per
        // arriving op, so it must not allocate a waiter on every turn.
        let token = self.ctx.cancel.clone();
        let mut cancelled = std::pin::pin!(token.cancelled());
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        self.installed = self.ctx.is_ready(&self.portal);
        self.closed_lines = self.ctx.closed_lines(&self.portal);
        loop {
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
            if self.ctx.cancel.is_cancelled() {
                return;
            }
            if self.spilled.is_some() && self.queue.len() < self.ctx.max_queued / 2 + 1 {
                self.refill().await;
                continue;
            }
            let next = if self.installed {
                self.queue.plan(
                    self.ctx.clock.now_ms(),
                    self.limits(),
                    |m| self.blocked_until(m),
                    |l| !self.closed_lines.contains(&l),
                )
            } else {
                Plan::Wait(None)
            };
            match next {
                Plan::Wait(at) => {
                    if let Some(at) = at {
                        let wait =
                            Duration::from_millis(at.saturating_sub(self.ctx.clock.now_ms()));
                        timer.as_mut().reset(tokio::time::Instant::now() + wait);
                    }
                    tokio::select! {
                        msg = self.rx.recv() => match msg {
                            Some(msg) => self.handle(msg),
                            None => return,
                        },
                        _ = timer.as_mut(), if at.is_some() => {}
                        _ = cancelled.as_mut() => return,
                    }
                }
                Plan::Send(_) => {
                    // Wait for the budget first; what arrives meanwhile joins the request.
                    tokio::select! {
                        _ = self.ctx.client.ready(&self.portal) => {}
                        _ = cancelled.as_mut() => return,
                    }
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg);
                    }
                    if let Plan::Send(calls) = self.queue.plan(
                        self.ctx.clock.now_ms(),
                        self.limits(),
                        |m| self.blocked_until(m),
                        |l| !self.closed_lines.contains(&l),
                    ) {
                        self.queue.take(&calls);
                        tokio::select! {
                            _ = self.send(calls) => {}
                            // Abandoned mid-flight: the ops are still on disk and resume on restart.
                            _ = cancelled.as_mut() => return,
                        }
                    }
                }
            }
        }
    }

    /// New ops from the feed: queued in memory up to `max_queued`; the rest wait on disk.
    fn take_new(&mut self, ops: Vec<OpRef>) {
        for op in ops {
            if op.seq < self.loaded_until || self.spilled.is_some() {
                continue;
            }
            if self.queue.len() >= self.ctx.max_queued {
                tracing::info!(portal = %self.portal, queued = self.queue.len(), "queue full: later items wait on disk");
                self.spilled = Some(op.seq);
                continue;
            }
            self.queue.push(op);
        }
    }

    /// Read the next window of this portal's items back from disk (durable events only).
    async fn refill(&mut self) {
        let Some(from) = self.spilled else { return };
        let (store, portal) = (self.ctx.store.clone(), self.portal.clone());
        let room = self.ctx.max_queued.saturating_sub(self.queue.len());
        let read = tokio::task::spawn_blocking(move || {
            store.portal_refs(&portal, from, room, REFILL_SCAN)
        })
        .await;
        match read {
            Ok(Ok(refill)) => {
                for op in refill.refs {
                    self.queue.push(op);
                }
                self.loaded_until = self.loaded_until.max(refill.until);
                self.spilled = refill.next;
            }
            Ok(Err(e)) => {
                tracing::error!(portal = %self.portal, error = %e, "cannot read queued items");
                tokio::time::sleep(STORAGE_BACKOFF).await;
            }
            Err(e) => {
                tracing::error!(portal = %self.portal, error = %e, "reading queued items failed");
                tokio::time::sleep(STORAGE_BACKOFF).await;
            }
        }
    }

    fn handle(&mut self, msg: PortalMsg) {
        match msg {
            PortalMsg::Ops(ops) => self.take_new(ops),
            PortalMsg::Installed => {
                self.installed = true;
                self.closed_lines = self.ctx.closed_lines(&self.portal);
            }
            PortalMsg::Uninstalled => self.installed = false,
            PortalMsg::Line { line, open: true } => {
                self.closed_lines.remove(&line);
            }
            PortalMsg::Line { line, open: false } => {
                self.closed_lines.insert(line);
            }
        }
    }

    /// Without `batch` every call is its own request: plan one at a time, so that each call's
    /// results are recorded before the next call goes out.
    fn limits(&self) -> Limits {
        let mut limits = self.ctx.limits;
        if self.ctx.client.batch_denied(&self.portal) {
            limits.max_calls = 1;
        }
        let budget = self.ctx.client.request_budget_ms();
        self.ctx.client.with_cost(&self.portal, |cost| {
            limits.budget_ms = cost.budget_ms(budget);
            for method in Method::ALL {
                limits.item_ms[method.index()] = cost.per_item_ms(method.rest_name());
            }
        });
        limits
    }

    fn blocked_until(&self, method: Method) -> Option<u64> {
        self.ctx
            .client
            .method_blocked_until(&self.portal, method.rest_name())
            .map(|s| (s.max(0) as u64) * 1000)
    }

    /// Load the payloads of planned items from their event records, one read per event and one
    /// per deletion item (an item that became final meanwhile, or whose record is unreadable,
    /// is dropped from the call).
    fn hydrate(&self, planned: Vec<Call<OpRef>>) -> Vec<Call<Op>> {
        let mut events: HashMap<u64, Option<EventRecord>> = HashMap::new();
        planned
            .into_iter()
            .map(|call| {
                let ops = call
                    .ops
                    .iter()
                    .filter_map(|r| {
                        let event = events.entry(r.seq).or_insert_with(|| {
                            self.ctx.store.event(r.seq).unwrap_or_else(|e| {
                                tracing::error!(portal = %self.portal, seq = r.seq, error = %e, "cannot read an event record");
                                None
                            })
                        });
                        let event = event.as_ref()?;
                        let mut op = self.ctx.store.item_op(event, r.item).unwrap_or_else(|e| {
                            tracing::error!(portal = %self.portal, seq = r.seq, error = %e, "cannot read a pending item");
                            None
                        })?;
                        self.resolve_reaction(&mut op);
                        Some(op)
                    })
                    .collect();
                Call { line: call.line, method: call.method, ops }
            })
            .filter(|call| !call.ops.is_empty())
            .collect()
    }

    /// A reaction needs the bot and the Bitrix24 id of the message the platform names.
    fn resolve_reaction(&self, op: &mut Op) {
        let OpKind::Reaction {
            message_id, target, ..
        } = &mut op.kind
        else {
            return;
        };
        let bot = self
            .ctx
            .store
            .portal(&self.portal)
            .ok()
            .flatten()
            .and_then(|p| p.bot_id);
        let message = self
            .ctx
            .store
            .operator_by_external(&self.portal, op.line, &op.chat_id, message_id)
            .ok()
            .flatten();
        *target = bot.zip(message);
    }

    /// Reactions that cannot be sent (no bot, or a message the gateway never relayed) are final
    /// at once, without a call.
    async fn settle_unsendable(&mut self, calls: &mut Vec<Call<Op>>) {
        let mut unsendable = Vec::new();
        for call in calls.iter_mut() {
            call.ops.retain(|op| match &op.kind {
                OpKind::Reaction { target: None, message_id, .. } => {
                    let bot = self.ctx.store.portal(&self.portal).ok().flatten().and_then(|p| p.bot_id);
                    let reason = if bot.is_none() {
                        "the portal has no chat-bot (bot disabled or not set up)".to_string()
                    } else {
                        format!("unknown message {message_id:?}: the gateway never relayed an operator message with this id in this chat")
                    };
                    unsendable.push(OpResult { op: op.clone(), outcome: OpOutcome::Failed { errors: vec![reason] } });
                    false
                }
                _ => true,
            });
        }
        calls.retain(|c| !c.ops.is_empty());
        if unsendable.is_empty() {
            return;
        }
        let count = unsendable.len() as i64;
        for r in &unsendable {
            tracing::warn!(portal = %self.portal, message = r.op.message_id(), outcome = ?r.outcome, "reaction not sent");
            Metrics::inc2(
                &self.ctx.metrics.items,
                "op",
                r.op.method().label(),
                "result",
                "failed",
            );
        }
        let clock = self.ctx.clock.clone();
        match self
            .ctx
            .store
            .commit(move |d| d.apply_results(&unsendable, clock.now_ms()))
            .await
        {
            Ok(()) => {
                self.ctx.metrics.queued_ops.dec_by(count);
                self.ctx.progress.send_modify(|n| *n += 1);
            }
            Err(e) => {
                tracing::error!(portal = %self.portal, error = %e, "cannot record reactions that cannot be sent")
            }
        }
    }

    async fn send(&mut self, planned: Vec<Call<OpRef>>) {
        let mut calls = self.hydrate(planned);
        self.settle_unsendable(&mut calls).await;
        if calls.is_empty() {
            return;
        }
        let span = request_span(&self.portal, &calls);
        self.send_calls(calls).instrument(span).await;
    }

    /// Record the attempt, send, record what Bitrix24 answered (inside the request's span).
    async fn send_calls(&mut self, mut calls: Vec<Call<Op>>) {
        // Once the store refuses writes no result can be recorded: a request sent now would be
        // sent again after the restart (and, for a first attempt, again after each failed
        // recording meanwhile, since nothing of it is on disk).
        if let Some(reason) = self.ctx.store.poisoned() {
            tracing::error!(portal = %self.portal, reason, "storage refuses writes: Bitrix24 requests held until restart");
            Metrics::inc1(&self.ctx.metrics.outbox_held, "reason", "storage");
            for op in calls.iter().flat_map(|c| &c.ops) {
                self.queue.push(op.to_ref());
            }
            tokio::time::sleep(STORAGE_BACKOFF).await;
            return;
        }
        // A retry's attempt is counted before the request leaves, without a sync of its own:
        // it becomes durable with the sync of the results that follow (one sync per request,
        // not two). A crash in between forgets it, and the item is sent again as if that
        // attempt had not happened; a crash loop still ends at the retry age limit. A first
        // attempt is not written ahead at all: forgetting it changes nothing (its item is
        // pending at attempt 0 either way), and the write would cost the log a page of disk
        // writes per request at a trickle.
        let retries = count_attempt(&mut calls);
        if !retries.is_empty()
            && let Err(e) = self
                .ctx
                .store
                .commit_unsynced(move |d| d.record_attempts(&retries))
                .await
        {
            tracing::error!(portal = %self.portal, error = %e, "cannot record an attempt; not sending");
            for op in calls.iter().flat_map(|c| &c.ops) {
                self.queue.push(op.to_ref());
            }
            tokio::time::sleep(STORAGE_BACKOFF).await;
            return;
        }
        let originals: Vec<OpRef> = calls
            .iter()
            .flat_map(|c| c.ops.iter().map(Op::to_ref))
            .collect();
        let executor = Executor {
            client: &self.ctx.client,
            portal: &self.portal,
            connector: &self.ctx.connector_id,
            retry: &self.ctx.retry,
            metrics: &self.ctx.metrics,
        };
        let executed = executor.execute(calls, || self.ctx.clock.now_ms()).await;
        if executed.not_installed {
            tracing::warn!(portal = %self.portal, "portal has no installed app: holding its events");
            self.installed = false;
        }
        let results = executed.results;
        let finals = results
            .iter()
            .filter(|r| r.outcome != OpOutcome::Retry)
            .count();
        summarise(&results, executed.unsent.len());
        let recorded = results.clone();
        let clock = self.ctx.clock.clone();
        let applied = self
            .ctx
            .store
            .commit(move |d| d.apply_results(&recorded, clock.now_ms()))
            .await;
        match applied {
            Ok(()) => {
                self.ctx.metrics.queued_ops.dec_by(finals as i64);
                for r in results {
                    if r.outcome == OpOutcome::Retry {
                        self.queue.push(r.op.to_ref());
                    }
                }
                self.ctx.progress.send_modify(|n| *n += 1);
            }
            Err(e) => {
                // Nothing was recorded: everything goes back as it was and will be sent again.
                tracing::error!(portal = %self.portal, error = %e, "cannot record Bitrix24 results");
                originals.into_iter().for_each(|op| self.queue.push(op));
                tokio::time::sleep(STORAGE_BACKOFF).await;
            }
        }
        executed
            .unsent
            .iter()
            .for_each(|op| self.queue.push(op.to_ref()));
    }
}

/// The span of one Bitrix24 request: the portal, what it carries, and the deletions it serves
/// (at most 20 ids are named), so that a deletion's log lines can be found by its id.
fn request_span(portal: &str, calls: &[Call<Op>]) -> tracing::Span {
    let mut deletions: Vec<&str> = calls
        .iter()
        .flat_map(|c| &c.ops)
        .filter_map(|op| match &op.kind {
            OpKind::Delete { deletion_id, .. } => Some(deletion_id.as_str()),
            _ => None,
        })
        .collect();
    deletions.dedup();
    deletions.truncate(20);
    let methods: Vec<&str> = calls.iter().map(|c| c.method.label()).collect();
    tracing::info_span!(
        "bitrix_request",
        portal,
        calls = calls.len(),
        items = calls.iter().map(|c| c.ops.len()).sum::<usize>(),
        methods = %methods.join(","),
        deletion_ids = %deletions.join(","),
    )
}

/// One line per request: how its items ended (not one line per item), with the first errors.
fn summarise(results: &[OpResult], unsent: usize) {
    let (mut done, mut retry) = (0usize, 0usize);
    let mut failed: Vec<(&str, &[String])> = Vec::new();
    for r in results {
        match &r.outcome {
            OpOutcome::Done { .. } => done += 1,
            OpOutcome::Retry => retry += 1,
            OpOutcome::Failed { errors } => failed.push((r.op.message_id(), errors)),
        }
    }
    if failed.is_empty() {
        tracing::info!(done, retry, unsent, "Bitrix24 request done");
    } else {
        let first: Vec<String> = failed
            .iter()
            .take(5)
            .map(|(id, errors)| format!("{id}: {}", errors.join("; ")))
            .collect();
        tracing::warn!(done, retry, unsent, failed = failed.len(), first_failures = ?first, "Bitrix24 request done; some items failed for good");
    }
}

/// Count an attempt on every op of `calls`; returns the retries among them, the ones whose
/// attempt is written ahead (a first attempt is not: forgetting it changes nothing).
fn count_attempt(calls: &mut [Call<Op>]) -> Vec<Op> {
    for op in calls.iter_mut().flat_map(|c| c.ops.iter_mut()) {
        op.attempts += 1;
    }
    calls
        .iter()
        .flat_map(|c| c.ops.iter().filter(|op| op.attempts > 1).cloned())
        .collect()
}

#[cfg(test)]
mod tests;

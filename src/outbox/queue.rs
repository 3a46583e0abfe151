//! The pending ops of one portal and the pure planning of the next request.
//!
//! Ordering: ops of one (line, chat) take effect in seq order. A chat contributes its *head run*
//! (consecutive due ops of the same method) to a request. Sends and updates of one chat stay in
//! one call, so a transient failure of one command can never let a later message overtake an
//! earlier one; deletes commute, so a long run of them may spread over several calls.
//!
//! Batching: calls carry up to `max_batch` items of one (line, method). Sends and updates go
//! out as soon as the portal's budget allows; deletes wait up to `linger` for more items of the
//! same line unless `max_batch` are already waiting. All ready calls of the portal (up to 50)
//! share one request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

pub use crate::store::Method;
use crate::store::OpRef;

impl Method {
    /// The REST method name.
    pub fn rest_name(self) -> &'static str {
        match self {
            Method::Send => "imconnector.send.messages",
            Method::Update => "imconnector.update.messages",
            Method::Delete => "imconnector.delete.messages",
            Method::ReactionAdd => "imbot.v2.Chat.Message.Reaction.add",
            Method::ReactionDelete => "imbot.v2.Chat.Message.Reaction.delete",
        }
    }

    /// Position in per-method tables.
    pub fn index(self) -> usize {
        match self {
            Method::Send => 0,
            Method::Update => 1,
            Method::Delete => 2,
            Method::ReactionAdd => 3,
            Method::ReactionDelete => 4,
        }
    }

    /// Every method, in [`Method::index`] order.
    pub const ALL: [Method; 5] = [
        Method::Send,
        Method::Update,
        Method::Delete,
        Method::ReactionAdd,
        Method::ReactionDelete,
    ];

    /// Short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Method::Send => "send",
            Method::Update => "update",
            Method::Delete => "delete",
            Method::ReactionAdd => "reaction_add",
            Method::ReactionDelete => "reaction_delete",
        }
    }
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items per call.
    pub max_batch: usize,
    /// How long deletes wait for company, in ms.
    pub linger_ms: u64,
    /// Calls per request (`batch` allows 50).
    pub max_calls: usize,
    /// Server time one request may be planned to take, in ms (see `bitrix/cost.rs`).
    pub budget_ms: f64,
    /// Estimated server time of one item, in ms, per method (indexed by [`Method::index`]).
    pub item_ms: [f64; 5],
}

impl Limits {
    /// No server-time budget (every item costs nothing).
    pub const UNBUDGETED: ([f64; 5], f64) = ([0.0; 5], f64::INFINITY);

    /// Estimated server time of one item of `method`, in ms.
    pub fn item_ms(&self, method: Method) -> f64 {
        self.item_ms[method.index()]
    }
}

/// One imconnector call: items of one line and method, in order. Planned with `OpRef`s, sent
/// with full `Op`s.
#[derive(Debug, Clone)]
pub struct Call<T> {
    pub line: u64,
    pub method: Method,
    pub ops: Vec<T>,
}

/// What to do next.
#[derive(Debug)]
pub enum Plan {
    /// Send these calls in one request.
    Send(Vec<Call<OpRef>>),
    /// Nothing is ready; something will be at this time (ms), or nothing is pending at all.
    Wait(Option<u64>),
}

type ChatKey = (u64, Arc<str>);
/// An op's identity and order: (event seq, item index).
type OpKey = (u64, u32);

/// Pending ops of one portal.
#[derive(Default)]
pub struct PortalQueue {
    ops: foldhash::HashMap<OpKey, OpRef>,
    chats: BTreeMap<ChatKey, VecDeque<OpKey>>,
}

/// A chat's head run while planning.
struct Run {
    line: u64,
    method: Method,
    seqs: Vec<OpKey>,
    eligible_at: u64,
    head_seq: OpKey,
}

impl PortalQueue {
    /// Number of pending ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Add (or put back) an op at its place in its chat's order.
    pub fn push(&mut self, op: OpRef) {
        let key = (op.line, op.chat.clone());
        let seq = op.key();
        if self.ops.insert(seq, op).is_some() {
            return;
        }
        let chat = self.chats.entry(key).or_default();
        // New work comes last in its chat; only an op put back needs searching for its place.
        if chat.back().is_none_or(|&last| last < seq) {
            chat.push_back(seq);
        } else {
            let at = chat.partition_point(|&s| s < seq);
            chat.insert(at, seq);
        }
    }

    /// Plan the next request at `now_ms`. `blocked` gives, for a method, the time (ms) until
    /// which the portal refuses it (operating limit); items of lines where `line_open` is false
    /// (the connector is off there) are held.
    pub fn plan(
        &self,
        now_ms: u64,
        limits: Limits,
        blocked: impl Fn(Method) -> Option<u64>,
        line_open: impl Fn(u64) -> bool,
    ) -> Plan {
        let mut wake: Option<u64> = None;
        let mut soon = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        let mut groups: BTreeMap<(u64, Method), Vec<Run>> = BTreeMap::new();
        for ((line, _), seqs) in &self.chats {
            if !line_open(*line) {
                continue;
            }
            let Some(head) = seqs.front().and_then(|s| self.ops.get(s)) else {
                continue;
            };
            if head.due_at_ms > now_ms {
                soon(head.due_at_ms);
                continue;
            }
            let method = head.method;
            if let Some(until) = blocked(method).filter(|&t| t > now_ms) {
                soon(until);
                continue;
            }
            let run: Vec<OpKey> = seqs
                .iter()
                .map_while(|s| {
                    self.ops
                        .get(s)
                        .filter(|op| op.method == method && op.due_at_ms <= now_ms)
                        .map(OpRef::key)
                })
                .collect();
            groups.entry((*line, method)).or_default().push(Run {
                line: *line,
                method,
                eligible_at: head.due_at_ms,
                head_seq: head.key(),
                seqs: run,
            });
        }
        let mut ready: Vec<Vec<Run>> = Vec::new();
        for ((_, method), runs) in groups {
            let count: usize = runs.iter().map(|r| r.seqs.len()).sum();
            let first = runs.iter().map(|r| r.eligible_at).min().unwrap_or(now_ms);
            let deadline = first.saturating_add(limits.linger_ms);
            if method != Method::Delete || count >= limits.max_batch || deadline <= now_ms {
                ready.push(runs);
            } else {
                soon(deadline);
            }
        }
        if ready.is_empty() {
            return Plan::Wait(wake);
        }
        // Oldest work first.
        ready.sort_by_key(|runs| runs.iter().map(|r| (r.eligible_at, r.head_seq)).min());
        let mut calls: Vec<Call<OpRef>> = Vec::new();
        let mut spent_ms = 0.0;
        for mut runs in ready {
            runs.sort_by_key(|r| r.head_seq);
            if !self.fill(&mut calls, runs, limits, &mut spent_ms) {
                break;
            }
        }
        Plan::Send(calls)
    }

    /// Append the runs of one (line, method) group as calls; false once `max_calls` is reached
    /// or the request's server-time budget is spent (the first item always goes, whatever its
    /// estimate, so that work never stalls; a chat's run cut short leaves its later ops queued
    /// behind, so order is kept).
    fn fill(
        &self,
        calls: &mut Vec<Call<OpRef>>,
        runs: Vec<Run>,
        limits: Limits,
        spent_ms: &mut f64,
    ) -> bool {
        let mut current: Option<Call<OpRef>> = None;
        for run in runs {
            // A reaction is a call of its own; imconnector calls carry up to `max_batch` items.
            let cap = match run.method {
                Method::ReactionAdd | Method::ReactionDelete => 1,
                _ => limits.max_batch,
            };
            let mut seqs = run.seqs.as_slice();
            if run.method != Method::Delete {
                // Never split a chat's sends or updates across calls.
                seqs = &seqs[..seqs.len().min(cap)];
                if current
                    .as_ref()
                    .is_some_and(|c| c.ops.len() + seqs.len() > cap)
                {
                    calls.extend(current.take());
                }
            }
            let item_ms = limits.item_ms(run.method);
            for seq in seqs {
                let planned =
                    !calls.is_empty() || current.as_ref().is_some_and(|c| !c.ops.is_empty());
                if planned && *spent_ms + item_ms > limits.budget_ms {
                    calls.extend(current.take());
                    return false;
                }
                *spent_ms += item_ms;
                if current.as_ref().is_some_and(|c| c.ops.len() >= cap) {
                    calls.extend(current.take());
                }
                if current.is_none() {
                    if calls.len() >= limits.max_calls {
                        return false;
                    }
                    current = Some(Call {
                        line: run.line,
                        method: run.method,
                        ops: Vec::new(),
                    });
                }
                if let (Some(call), Some(op)) = (current.as_mut(), self.ops.get(seq)) {
                    call.ops.push(op.clone());
                }
            }
        }
        calls.extend(current.take());
        calls.len() < limits.max_calls
    }

    /// Remove the ops of planned calls from the queue (they are now in flight). Each chat is
    /// filtered once, so taking n ops of one chat costs O(n), not O(n²).
    pub fn take(&mut self, calls: &[Call<OpRef>]) {
        let mut taken: foldhash::HashMap<ChatKey, foldhash::HashSet<OpKey>> = Default::default();
        for op in calls.iter().flat_map(|c| &c.ops) {
            if self.ops.remove(&op.key()).is_some() {
                taken
                    .entry((op.line, op.chat.clone()))
                    .or_default()
                    .insert(op.key());
            }
        }
        for (key, keys) in taken {
            if let Some(chat) = self.chats.get_mut(&key) {
                chat.retain(|s| !keys.contains(s));
                if chat.is_empty() {
                    self.chats.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

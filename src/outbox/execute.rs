//! Executing planned calls against a portal and turning replies into per-op outcomes.
//!
//! Replies are matched to ops by (chat id, external message id), not by position; only when
//! Bitrix24 echoes no ids at all and the counts agree is position used.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::queue::{Call as PlannedCall, Method};

type Call = PlannedCall<Op>;
use crate::bitrix::messages::{self, ItemResult};
use crate::bitrix::{BatchCommand, BitrixClient, BitrixError, Class, classify};
use crate::metrics::Metrics;
use crate::settings::RetrySettings;
use crate::store::ops::{OpOutcome, OpResult};
use crate::store::{Op, OpKind};

/// Code Bitrix24 gives for a method refused inside `batch`.
const BATCH_REFUSED: &str = "ERROR_BATCH_METHOD_NOT_ALLOWED";

/// Everything `execute` learned.
#[derive(Debug, Default)]
pub struct Executed {
    /// Outcomes to record (every op that was part of a sent call).
    pub results: Vec<OpResult>,
    /// Ops of calls that were never sent (throttled first, or refused inside `batch`): back to
    /// the queue. Their `attempts` counted a call that did not happen; it stays counted.
    pub unsent: Vec<Op>,
    /// The portal has no installed app (any more).
    pub not_installed: bool,
}

/// What the executor needs.
pub struct Executor<'a> {
    pub client: &'a BitrixClient,
    pub portal: &'a str,
    pub connector: &'a str,
    pub retry: &'a RetrySettings,
    pub metrics: &'a Metrics,
}

impl Executor<'_> {
    /// Send `calls` (one `batch` request when there are several) and classify every op.
    pub async fn execute(&self, mut calls: Vec<Call>, now_ms: impl Fn() -> u64) -> Executed {
        let mut out = Executed::default();
        self.fit_body_cap(&mut calls, &mut out.unsent);
        let replies = self.send(&calls).await;
        let now = now_ms();
        for (call, reply) in calls.into_iter().zip(replies) {
            match reply {
                None => out.unsent.extend(call.ops),
                Some(reply) => {
                    if reply.as_ref().is_err_and(BitrixError::holds_portal) {
                        out.not_installed = true;
                    }
                    out.results.extend(self.outcomes(call, reply, now));
                }
            }
        }
        out
    }

    /// Keep the request body under the portal's cap (1 MiB, less after a `413`): calls past it
    /// wait for the next request, and a first call larger than the cap alone is cut to the ops
    /// that fit (at least one; the rest keeps its order in the queue).
    fn fit_body_cap(&self, calls: &mut Vec<Call>, unsent: &mut Vec<Op>) {
        let cap = self.client.with_cost(self.portal, |c| c.body_cap());
        let mut total = 0;
        let mut keep = calls.len();
        for (i, call) in calls.iter_mut().enumerate() {
            let size = encoded_size(&self.params(call));
            if i == 0 && size > cap && call.ops.len() > 1 {
                let fits = (call.ops.len() * cap / size).clamp(1, call.ops.len() - 1);
                unsent.extend(call.ops.split_off(fits));
                total += encoded_size(&self.params(call));
                continue;
            }
            if i > 0 && total + size > cap {
                keep = i;
                break;
            }
            total += size;
        }
        for call in calls.drain(keep..) {
            unsent.extend(call.ops);
        }
    }

    /// One reply per call; None for a call that was not sent. Calls whose values hold `batch`'s
    /// back-reference patterns go as direct calls (inside `batch` Bitrix24 would rewrite them).
    async fn send(&self, calls: &[Call]) -> Vec<Option<Result<Value, BitrixError>>> {
        if calls.len() == 1 || self.client.batch_denied(self.portal) {
            return self.send_direct(calls).await;
        }
        let params: Vec<Value> = calls.iter().map(|c| self.params(c)).collect();
        let (direct, batched): (Vec<usize>, Vec<usize>) =
            (0..calls.len()).partition(|&i| has_back_reference(&params[i]));
        if batched.len() < 2 {
            return self.send_direct(calls).await;
        }
        let mut replies: Vec<Option<Result<Value, BitrixError>>> = vec![None; calls.len()];
        let commands: Vec<BatchCommand> = batched
            .iter()
            .map(|&i| BatchCommand {
                key: format!("c{i}"),
                method: calls[i].method.rest_name().to_string(),
                params: params[i].clone(),
            })
            .collect();
        let throttled = match self.client.batch(self.portal, &commands).await {
            // The portal refuses our method inside `batch`: from now on calls go one by one
            // (see the worker); these were not executed, so they are simply planned again.
            Err(e) if e.code() == Some(BATCH_REFUSED) => {
                self.client.deny_batch(self.portal);
                return replies;
            }
            Err(e) => {
                if self.request_failed(&e, calls.len() > 1 || calls[0].ops.len() > 1) {
                    return replies;
                }
                for &i in &batched {
                    replies[i] = Some(Err(e.clone()));
                }
                matches!(classify(&e), Class::Transient { throttle: true, .. }) || e.holds_portal()
            }
            Ok(reply) => {
                for ((&i, result), duration) in
                    batched.iter().zip(reply.results).zip(reply.durations)
                {
                    if let (Ok(_), Some(seconds)) = (&result, duration) {
                        self.learn(&calls[i], seconds);
                    }
                    replies[i] = match result {
                        Err(e) if e.code() == Some(BATCH_REFUSED) => {
                            self.client.deny_batch(self.portal);
                            None
                        }
                        other => Some(other),
                    };
                }
                false
            }
        };
        if !throttled {
            let direct_calls: Vec<Call> = direct.iter().map(|&i| calls[i].clone()).collect();
            let direct_replies = self.send_direct(&direct_calls).await;
            for (&i, reply) in direct.iter().zip(direct_replies) {
                replies[i] = reply;
            }
        }
        replies
    }

    /// Calls one by one; after a throttling reply (or a request too large) the rest are left
    /// unsent.
    async fn send_direct(&self, calls: &[Call]) -> Vec<Option<Result<Value, BitrixError>>> {
        let mut replies = Vec::with_capacity(calls.len());
        let mut stop = false;
        for call in calls {
            if stop {
                replies.push(None);
                continue;
            }
            let reply = self
                .client
                .call_timed(self.portal, call.method.rest_name(), self.params(call))
                .await;
            match reply {
                Ok((value, duration)) => {
                    if let Some(seconds) = duration {
                        self.learn(call, seconds);
                    }
                    replies.push(Some(Ok(value)));
                }
                Err(e) => {
                    if self.request_failed(&e, call.ops.len() > 1) {
                        stop = true;
                        replies.push(None);
                        continue;
                    }
                    stop = matches!(classify(&e), Class::Transient { throttle: true, .. })
                        || e.holds_portal();
                    replies.push(Some(Err(e)));
                }
            }
        }
        replies
    }

    /// Learn a method's cost per item from a call's reported server time.
    fn learn(&self, call: &Call, seconds: f64) {
        let method = call.method.rest_name();
        self.client
            .update_cost(self.portal, |c| c.observe(method, call.ops.len(), seconds));
    }

    /// A whole request failed. A front proxy's `413` / `414` shrinks the body cap and (when the
    /// request can be split) returns true: its ops are planned again, smaller, instead of
    /// failing. A non-JSON answer from a proxy (a `5xx` page, e.g. a request cut at the time
    /// limit) or a timeout halves the request budget; its ops retry as usual.
    fn request_failed(&self, e: &BitrixError, splittable: bool) -> bool {
        match e {
            BitrixError::Decode {
                status: 413 | 414, ..
            } => {
                tracing::warn!(
                    portal = self.portal,
                    "request too large for the portal's proxy: sending smaller ones"
                );
                self.client.update_cost(self.portal, |c| c.too_large());
                splittable
            }
            BitrixError::Decode { status, .. } if *status >= 500 => {
                tracing::warn!(
                    portal = self.portal,
                    status,
                    "the portal's proxy failed the request: planning smaller ones"
                );
                self.client.update_cost(self.portal, |c| c.cut());
                false
            }
            BitrixError::Timeout => {
                self.client.update_cost(self.portal, |c| c.cut());
                false
            }
            _ => false,
        }
    }

    fn params(&self, call: &Call) -> Value {
        if let Some(OpKind::Reaction {
            reaction, target, ..
        }) = call.ops.first().map(|op| &op.kind)
        {
            // One reaction per call (the planner never puts two together).
            let (bot_id, message_id) = target.unwrap_or_default();
            return json!({ "botId": bot_id, "messageId": message_id, "reaction": reaction });
        }
        let items: Vec<Value> = call
            .ops
            .iter()
            .map(|op| match &op.kind {
                OpKind::Send { message } | OpKind::Update { message } => {
                    messages::send_item(message)
                }
                OpKind::Delete {
                    message_id,
                    user_id,
                    ..
                } => messages::delete_item(user_id, message_id, &op.chat_id),
                OpKind::Reaction { .. } => Value::Null,
            })
            .collect();
        json!({ "CONNECTOR": self.connector, "LINE": call.line, "MESSAGES": items })
    }

    fn outcomes(&self, call: Call, reply: Result<Value, BitrixError>, now: u64) -> Vec<OpResult> {
        let method = call.method;
        if matches!(method, Method::ReactionAdd | Method::ReactionDelete) {
            let results: Vec<OpResult> = call
                .ops
                .into_iter()
                .map(|op| self.reaction_outcome(op, method, &reply, now))
                .collect();
            self.count(method, &results);
            return results;
        }
        let items = reply.and_then(|result| messages::parse_results(&result));
        // `attempts` already counts this call (recorded before it was sent).
        let ops = call.ops;
        let results: Vec<OpResult> = match items {
            Err(e) => ops
                .into_iter()
                .map(|op| self.failed_call(op, &e, now))
                .collect(),
            Ok(items) => match_items(&ops, items)
                .into_iter()
                .zip(ops)
                .map(|(item, op)| match item {
                    Some(item) => item_outcome(op, item),
                    None => {
                        let e = BitrixError::Decode {
                            status: 200,
                            detail: "Bitrix24 returned no result for this item".into(),
                        };
                        self.retry_or_give_up(op, &e, None, now)
                    }
                })
                .collect(),
        };
        self.count(method, &results);
        results
    }

    /// Metrics and logs of final and retried items.
    pub(crate) fn count(&self, method: Method, results: &[OpResult]) {
        for r in results {
            match &r.outcome {
                OpOutcome::Retry => Metrics::inc1(&self.metrics.item_retries, "op", method.label()),
                OpOutcome::Done { .. } => Metrics::inc2(
                    &self.metrics.items,
                    "op",
                    method.label(),
                    "result",
                    "success",
                ),
                OpOutcome::Failed { .. } => {
                    // Logged once per request, with the others (worker.rs `summarise`).
                    Metrics::inc2(
                        &self.metrics.items,
                        "op",
                        method.label(),
                        "result",
                        "failed",
                    )
                }
            }
        }
    }

    /// Reactions: an add that finds the reaction set, or a delete that finds it absent, is done;
    /// `ACCESS_DENIED` means the bot is not in the chat (final, with a clear error).
    fn reaction_outcome(
        &self,
        op: Op,
        method: Method,
        reply: &Result<Value, BitrixError>,
        now: u64,
    ) -> OpResult {
        let done = OpResult {
            op: op.clone(),
            outcome: OpOutcome::Done {
                bitrix_user_id: None,
                session: None,
            },
        };
        match reply {
            Ok(_) => done,
            Err(e) => match (method, e.code()) {
                (Method::ReactionAdd, Some("REACTION_ALREADY_SET")) => done,
                // Deleting a reaction that is not set (undocumented; the fake answers this).
                (Method::ReactionDelete, Some("REACTION_NOT_FOUND")) => done,
                (_, Some("ACCESS_DENIED")) => OpResult {
                    op,
                    outcome: OpOutcome::Failed {
                        errors: vec![format!(
                            "ACCESS_DENIED: the bot is not a member of this chat ({e})"
                        )],
                    },
                },
                _ => self.failed_call(op, e, now),
            },
        }
    }

    fn failed_call(&self, op: Op, e: &BitrixError, now: u64) -> OpResult {
        match classify(e) {
            Class::Final => OpResult {
                op,
                outcome: OpOutcome::Failed {
                    errors: vec![e.to_string()],
                },
            },
            Class::Transient { not_before, .. } => self.retry_or_give_up(op, e, not_before, now),
        }
    }

    fn retry_or_give_up(
        &self,
        mut op: Op,
        e: &BitrixError,
        not_before: Option<i64>,
        now: u64,
    ) -> OpResult {
        if self.retry.exhausted(op.attempts, op.accepted_at_ms, now) {
            let errors = vec![format!("gave up after {} attempts: {e}", op.attempts)];
            return OpResult {
                op,
                outcome: OpOutcome::Failed { errors },
            };
        }
        let backoff = now + self.retry.delay(op.attempts).as_millis() as u64;
        let hinted = not_before.map_or(0, |s| (s.max(0) as u64) * 1000);
        op.due_at_ms = backoff.max(hinted);
        op.last_error = Some(e.to_string());
        OpResult {
            op,
            outcome: OpOutcome::Retry,
        }
    }
}

fn item_outcome(op: Op, item: ItemResult) -> OpResult {
    let outcome = if item.success {
        OpOutcome::Done {
            bitrix_user_id: item.user,
            session: item.session,
        }
    } else {
        let errors = if item.errors.is_empty() {
            vec!["Bitrix24 reported SUCCESS=false without ERRORS".to_string()]
        } else {
            item.errors
        };
        OpOutcome::Failed { errors }
    };
    OpResult { op, outcome }
}

/// Bytes a call adds to a request body (its parameters form-encoded, as inside `batch`).
fn encoded_size(params: &Value) -> usize {
    crate::bitrix::form::encode(params).len()
}

/// Whether any value holds a pattern Bitrix24 substitutes inside `batch` (fact sheet §11:
/// `$result[..]`, `$time[..]`, `$next`, `$total`, `$error`).
pub(crate) fn has_back_reference(params: &Value) -> bool {
    match params {
        Value::String(s) => {
            s.contains('$')
                && ["$result[", "$time[", "$next", "$total", "$error"]
                    .iter()
                    .any(|p| s.contains(p))
        }
        Value::Array(items) => items.iter().any(has_back_reference),
        Value::Object(map) => map.values().any(has_back_reference),
        _ => false,
    }
}

/// Pair each op with its entry of `DATA.RESULT[]`.
fn match_items(ops: &[Op], items: Vec<ItemResult>) -> Vec<Option<ItemResult>> {
    if items.iter().all(|i| i.message_id.is_none()) {
        if items.len() == ops.len() {
            return items.into_iter().map(Some).collect();
        }
        return ops.iter().map(|_| None).collect();
    }
    let mut by_id: HashMap<String, VecDeque<ItemResult>> = HashMap::new();
    for item in items {
        if let Some(id) = item.message_id.clone() {
            by_id.entry(id).or_default().push_back(item);
        }
    }
    ops.iter()
        .map(|op| {
            let queue = by_id.get_mut(op.message_id())?;
            let at = queue
                .iter()
                .position(|i| i.chat_id.as_deref().is_none_or(|c| op.chat_id == c))?;
            queue.remove(at)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;

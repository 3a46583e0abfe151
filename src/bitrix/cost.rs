//! How much Bitrix24 server time a request will take, so that no request comes near the cloud's
//! 60 s cut (fact sheet §11): a cut request is half done, and a resend of
//! `imconnector.send.messages` duplicates messages (Bitrix24 does not de-duplicate by external id).
//!
//! Per method, the cost of one item is learned from what Bitrix24 reports (`time.duration` of a
//! direct call, `result_time[key].duration` of a `batch` command), divided by the items the call
//! carried. The estimate starts conservative for sends (the documented example: 1.5 s for one
//! message), rises at once to a slower sample and falls slowly (a fifth of the way per sample),
//! so one fast reply does not make the next request too big. A request cut by a proxy (`504` or
//! another non-JSON answer) halves the portal's budget for a while; a `413`/`414` halves its
//! body-size cap.

use std::collections::HashMap;

/// The most bytes one request body carries (the JS SDK's own guard is 1 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The smallest body cap a `413` can shrink it to.
const MIN_BODY_BYTES: usize = 64 * 1024;
/// The smallest share of the budget a cut can shrink it to.
const MIN_BUDGET_SHARE: f64 = 1.0 / 16.0;
/// The smallest per-item estimate (ms): replies that report nothing still cost something.
const FLOOR_MS: f64 = 1.0;

/// A conservative first guess of one item's server time (ms), before Bitrix24 reported any.
pub fn initial_ms(method: &str) -> f64 {
    match method {
        "imconnector.send.messages" => 1500.0,
        "imconnector.update.messages" => 1000.0,
        "imconnector.delete.messages" => 100.0,
        _ => 500.0,
    }
}

/// What one portal's requests cost.
#[derive(Debug)]
pub struct CostModel {
    per_item_ms: HashMap<String, f64>,
    /// Share of `request_budget_ms` in force (1.0 unless a request was cut lately).
    budget_share: f64,
    body_cap: usize,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            per_item_ms: HashMap::new(),
            budget_share: 1.0,
            body_cap: MAX_BODY_BYTES,
        }
    }
}

impl CostModel {
    /// Estimated server time of one item of `method`, in ms.
    pub fn per_item_ms(&self, method: &str) -> f64 {
        self.per_item_ms
            .get(method)
            .copied()
            .unwrap_or_else(|| initial_ms(method))
    }

    /// Learn from a call of `items` items that took `seconds` of server time.
    pub fn observe(&mut self, method: &str, items: usize, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 || items == 0 {
            return;
        }
        let sample = (seconds * 1000.0 / items as f64).max(FLOOR_MS);
        let current = self.per_item_ms(method);
        let next = if sample >= current {
            sample
        } else {
            current + (sample - current) / 5.0
        };
        self.per_item_ms.insert(method.to_string(), next);
        // Requests go through again: win the budget back slowly.
        self.budget_share = (self.budget_share * 1.25).min(1.0);
    }

    /// A request was cut (a proxy's `504` or other non-JSON failure): plan smaller ones.
    pub fn cut(&mut self) {
        self.budget_share = (self.budget_share / 2.0).max(MIN_BUDGET_SHARE);
    }

    /// A request was too large for the front proxy (`413` / `414`): send smaller bodies.
    pub fn too_large(&mut self) {
        self.body_cap = (self.body_cap / 2).max(MIN_BODY_BYTES);
    }

    /// The server time one request may be planned to take, in ms.
    pub fn budget_ms(&self, request_budget_ms: u64) -> f64 {
        request_budget_ms as f64 * self.budget_share
    }

    /// The most bytes one request body may carry.
    pub fn body_cap(&self) -> usize {
        self.body_cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &str = "imconnector.send.messages";

    #[test]
    fn sends_start_conservative_and_learn_from_replies() {
        let mut m = CostModel::default();
        assert_eq!(m.per_item_ms(SEND), 1500.0);
        assert_eq!(m.per_item_ms("imconnector.delete.messages"), 100.0);
        // A slower sample counts at once.
        m.observe(SEND, 2, 6.0);
        assert_eq!(m.per_item_ms(SEND), 3000.0);
        // A faster one a fifth of the way.
        m.observe(SEND, 10, 1.0);
        assert_eq!(m.per_item_ms(SEND), 3000.0 - (3000.0 - 100.0) / 5.0);
        for _ in 0..100 {
            m.observe(SEND, 10, 0.0);
        }
        assert!((m.per_item_ms(SEND) - FLOOR_MS).abs() < 0.01);
        m.observe(SEND, 0, 5.0);
        m.observe(SEND, 1, f64::NAN);
        assert!((m.per_item_ms(SEND) - FLOOR_MS).abs() < 0.01, "ignored");
    }

    #[test]
    fn cuts_and_oversized_requests_shrink_what_is_planned() {
        let mut m = CostModel::default();
        assert_eq!(m.budget_ms(20_000), 20_000.0);
        m.cut();
        m.cut();
        assert_eq!(m.budget_ms(20_000), 5_000.0);
        for _ in 0..10 {
            m.cut();
        }
        assert_eq!(m.budget_ms(16_000), 1_000.0, "not below a sixteenth");
        m.observe(SEND, 1, 1.0);
        assert_eq!(m.budget_ms(16_000), 1_250.0, "won back slowly");
        assert_eq!(m.body_cap(), MAX_BODY_BYTES);
        m.too_large();
        assert_eq!(m.body_cap(), MAX_BODY_BYTES / 2);
        for _ in 0..10 {
            m.too_large();
        }
        assert_eq!(m.body_cap(), MIN_BODY_BYTES);
    }
}

//! Capped exponential backoff with full jitter, and the give-up rule for items.

use std::time::Duration;

use crate::settings::RetrySettings;

/// Delay before attempt `attempt + 1`, after `attempt` failures (1-based): a random duration
/// in [d/2, d] where d = min(max, initial · 2^(attempt-1)). Half jitter keeps a floor so that a
/// throttled portal is not hit again at once, while spreading retries apart.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let ceiling = initial.saturating_mul(1u32 << exp).min(max);
    let floor = ceiling / 2;
    let spread = (ceiling - floor).as_millis() as u64;
    floor + Duration::from_millis(rand::random_range(0..=spread))
}

impl RetrySettings {
    /// [`backoff`] with these settings.
    pub fn delay(&self, attempt: u32) -> Duration {
        backoff(
            attempt,
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }

    /// Whether an item that has failed `attempts` times and was accepted at `accepted_at_ms`
    /// should be given up at `now_ms`.
    pub fn exhausted(&self, attempts: u32, accepted_at_ms: u64, now_ms: u64) -> bool {
        attempts >= self.max_attempts
            || now_ms.saturating_sub(accepted_at_ms) >= self.max_age_secs.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_is_capped() {
        let (initial, max) = (Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..200 {
            let d1 = backoff(1, initial, max);
            assert!((250..=500).contains(&(d1.as_millis() as u64)), "{d1:?}");
            let d4 = backoff(4, initial, max);
            assert!((2000..=4000).contains(&(d4.as_millis() as u64)), "{d4:?}");
            let d40 = backoff(40, initial, max);
            assert!(
                (30_000..=60_000).contains(&(d40.as_millis() as u64)),
                "{d40:?}"
            );
        }
    }

    #[test]
    fn items_are_given_up_by_attempts_or_by_age() {
        let r = RetrySettings {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            max_attempts: 3,
            max_age_secs: 10,
        };
        assert!(!r.exhausted(2, 0, 9_999));
        assert!(r.exhausted(3, 0, 0));
        assert!(r.exhausted(1, 0, 10_000));
    }
}

//! A fake messaging platform: [`FakeMessenger`] receives the gateway's signed outbound webhooks, [`MessengerClient`] posts signed events to the gateway.
//!
//! Both sides speak Standard Webhooks v1 through [`crate::webhooks`] (the simulators' own implementation); see `spec/gateway-api.md`
//! sections 2 (platform → gateway) and 4 (gateway → platform).

mod client;
mod server;

pub use client::{MessengerClient, RawHeaders};
pub use server::{Delivery, FakeMessenger, Mode};

use std::time::{SystemTime, UNIX_EPOCH};

use rand::distr::{Alphanumeric, SampleString};

/// A fresh `webhook-id`: `msg_` followed by 24 random ASCII letters and digits.
pub fn new_webhook_id() -> String {
    format!("msg_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
}

/// The real clock in unix seconds (0 if the clock reads before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;

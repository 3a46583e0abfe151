//! Messaging-platform boundary: the only code that knows the platform's payloads, inbound
//! (`inbound.rs`: validating `{"type", "data"}` events) and outbound (`outbound.rs`: signed POSTs
//! to the channel's `outbound_url`).

pub mod inbound;
pub mod outbound;

//! Simulators for openchannel-gateway's tests, benchmarks and sandbox: a fake Bitrix24 portal
//! (with its authorization server), a fake messaging platform, and a recording server standing
//! for an attacker's host. Real HTTP servers on loopback.
//!
//! This crate shares no code with the gateway: it decodes and encodes Bitrix24's forms
//! (`form.rs`) and signs Standard Webhooks (`webhooks.rs`) with its own code, so a codec bug on
//! either side fails the tests instead of passing them both ways.
pub mod form;
pub mod messenger;
pub mod portal;
pub mod recorder;
pub mod telegram;
pub mod webhooks;

//! Simulators for tests and the sandbox: a fake Bitrix24 portal (with its authorization
//! server), a fake messaging platform, and a recording server standing for an attacker's host.
pub mod messenger;
pub mod portal;
pub mod recorder;
pub mod telegram;

//! Simulated outside parties (messaging platform, Bitrix24 portal) for tests and the `sandbox` demo.

pub mod messenger;

//! Simulators for tests and the sandbox: a fake Bitrix24 portal and a fake messaging platform.
pub mod messenger;
pub mod portal;

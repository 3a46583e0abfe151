//! Simulators for tests and the sandbox.

pub mod portal;

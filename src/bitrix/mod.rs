//! Bitrix24 REST boundary: the only code that knows reqwest and Bitrix24's wire format.
//!
//! Limits respected here: at most 50 commands per `batch`, the per-portal leaky bucket
//! (`pacer.rs`), `503 QUERY_LIMIT_EXCEEDED` (pause the portal), `429 OPERATION_TIME_LIMIT`
//! (block that method until `operating_reset_at`), and `401 expired_token` (one coalesced refresh).

pub mod auth_scan;
pub mod classify;
pub mod client;
pub mod cost;
pub mod envelope;
pub mod error;
pub mod events;
pub mod form;
pub mod labels;
pub mod messages;
pub mod oauth;
pub mod operator_files;
pub mod pacer;
pub mod reactions;
pub mod tokens;

pub use classify::{Class, classify};
pub use client::{BatchCommand, BitrixClient, MAX_BATCH_COMMANDS};
pub use error::BitrixError;
pub use tokens::PortalTokens;

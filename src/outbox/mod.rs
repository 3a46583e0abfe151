//! Outbox: turns queued ops into Bitrix24 calls, portal by portal.
pub mod queue;

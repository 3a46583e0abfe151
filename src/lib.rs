//! openchannel-gateway: a gateway between a messaging platform and Bitrix24 Open Channels.
pub mod domain;
pub mod settings;
pub mod signature;
pub mod store;
pub mod bitrix;
pub mod metrics;
pub mod retry;

//! openchannel-gateway: a gateway between a messaging platform and Bitrix24 Open Channels.
pub mod bitrix;
pub mod domain;
pub mod metrics;
pub mod retry;
pub mod settings;
pub mod signature;
pub mod sim;
pub mod store;
pub mod outbox;
pub mod messenger;
pub mod report;

//! openchannel-gateway: a gateway between a messaging platform and Bitrix24 Open Channels.
pub mod bitrix;
pub mod cli;
pub mod domain;
pub mod http;
pub mod messenger;
pub mod metrics;
pub mod outbox;
pub mod report;
pub mod retry;
pub mod settings;
pub mod signature;
pub mod sim;
pub mod startup;
pub mod store;
pub mod telemetry;

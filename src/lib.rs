//! openchannel-gateway: a gateway between a messaging platform and Bitrix24 Open Channels.

pub mod bitrix;
pub mod sim;

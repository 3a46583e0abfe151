//! openchannel-gateway: a gateway between a messaging platform and Bitrix24 Open Channels.
//!
//! Layout (one module per boundary):
//! - `http`: the only code that knows actix-web (routes of the public contract).
//! - `store`: the only code that knows sled (trees, keys, records, group commit).
//! - `bitrix`: the only code that knows reqwest and Bitrix24's wire format.
//! - `messenger`: the platform's payloads, inbound and outbound.
//! - `outbox`: the durable path from accepted events to Bitrix24 calls and platform deliveries.
//! - `settings`, `startup`, `cli`, `telemetry`, `metrics`: running it.
//! - `telegram`: the Telegram adapter (contract §6): updates in, Bot API calls out, media links.
//! - `sandbox` (feature `sandbox`, on by default): the `sandbox` subcommand, a scripted tour of
//!   the gateway against the simulators of the `openchannel-sim` crate (which shares no code
//!   with this one).
pub mod bitrix;
pub mod cli;
pub mod clock;
pub mod data_dir;
pub mod domain;
pub mod http;
pub mod idle_refresh;
pub mod ids;
pub mod log_escape;
pub mod messenger;
pub mod metrics;
pub mod outbound_http;
pub mod outbox;
pub mod portal_cli;
pub mod report;
pub mod retry;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod settings;
pub mod setup;
pub mod signature;
pub mod startup;
pub mod store;
pub mod teardown;
pub mod telegram;
pub mod telemetry;
pub mod tls;

//! Integration tests: the real server on port 0 against a fake Bitrix24 portal and a fake
//! messaging platform, both real HTTP servers on loopback.

mod helpers;

mod bitrix_events;
mod bot;
mod cli;
mod client;
mod crash;
mod deletions;
mod deliveries;
mod events;
mod form_limits;
mod forwarding;
mod health;
mod held;
mod install;
mod placement;
mod placement_browser;
mod raw_http;
mod redirects;
mod reply_caps;
mod request_budget;
mod restart;
mod sandbox;
mod slow_bodies;
mod storage_full;
mod telegram;
mod trace;

//! HTTP boundary: the only code that knows actix-web. Routes of contract §1–§6.

mod admin;
mod bitrix_events;
mod body;
pub mod csrf;
mod deletions;
pub mod error;
mod events;
mod health;
mod install;
mod placement;
mod placement_auth;
mod placement_page;
mod placement_view;
mod telegram;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;

use crate::bitrix::BitrixClient;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::settings::{ChannelSettings, Settings};
use crate::signature::WebhookSecret;
use crate::store::Store;

pub use crate::clock::Clock;

/// A configured channel with its parsed secret.
pub struct Channel {
    pub settings: ChannelSettings,
    pub secret: WebhookSecret,
}

/// What handlers share.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub channels: HashMap<String, Channel>,
    pub store: Store,
    pub outbox: Outbox,
    pub client: Arc<BitrixClient>,
    pub metrics: Arc<Metrics>,
    /// The gateway's clock: signature windows, CSRF expiry, acceptance times.
    pub clock: Clock,
    /// The Bot API client of Telegram channels (media links).
    pub telegram: Arc<crate::telegram::api::BotApi>,
}

impl AppState {
    /// Ids of the channels bound to a portal.
    pub fn channels_of_portal(&self, member_id: &str) -> Vec<String> {
        self.settings
            .channels
            .iter()
            .filter(|c| c.portal == member_id)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Index the configured channels.
    pub fn channels_of(settings: &Settings) -> HashMap<String, Channel> {
        settings
            .channels
            .iter()
            .map(|c| {
                let channel = Channel {
                    settings: c.clone(),
                    secret: c.webhook_secret(),
                };
                (c.id.clone(), channel)
            })
            .collect()
    }
}

/// Register every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route(
            "/v1/channels/{channel}/events",
            web::post().to(events::receive),
        )
        .route(
            "/v1/channels/{channel}/telegram",
            web::post().to(telegram::receive),
        )
        .route("/media/{token}", web::get().to(telegram::media))
        .route("/v1/deletions/{deletion_id}", web::get().to(deletions::get))
        .route(
            "/v1/portals/{member_id}/setup",
            web::post().to(admin::setup),
        )
        .route(
            "/v1/portals/{member_id}/teardown",
            web::post().to(admin::teardown),
        )
        .route("/bitrix/install", web::post().to(install::install))
        .route("/bitrix/events", web::post().to(bitrix_events::receive))
        .route("/bitrix/bot", web::post().to(bitrix_events::receive))
        .route("/bitrix/placement", web::post().to(placement::page))
        .route(
            "/bitrix/placement/action",
            web::post().to(placement::action),
        );
}

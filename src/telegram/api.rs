//! The Bot API client: `{api_url}/bot<token>/<method>` with a JSON body, through the project's
//! hardened client (no redirects, capped reads). The bot token is in every URL, so no URL ever
//! leaves this module: errors are built without it (`reqwest::Error::without_url`), and log
//! lines name the method only. Telegram's flood limits are kept per bot ([`Flood`]); a `429`
//! holds its chat for `retry_after` and the call is made again after it (up to
//! [`MAX_FLOOD_WAITS`] times, each at most [`MAX_INLINE_WAIT`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::flood::Flood;
use crate::metrics::Metrics;
use crate::outbound_http::{self, SMALL_REPLY_CAP};
use crate::settings::TelegramSettings;

/// One Bot API call's timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A file download's timeout (20 MiB at a modest rate).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// `429`s waited out inside one call before it is given back as [`ApiError::Flood`].
pub const MAX_FLOOD_WAITS: u32 = 3;
/// The longest `retry_after` waited out inside a call; longer ones go back to the caller (a
/// delivery is then rescheduled, and its next call still waits for the chat).
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(60);

/// Methods as a fixed metric label set.
const METHODS: [&str; 10] = [
    "getWebhookInfo",
    "setWebhook",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "editMessageText",
    "deleteMessage",
    "deleteBusinessMessages",
    "getFile",
    "download",
];

/// Why a Bot API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// `{"ok": false}` with a 4xx `error_code` other than 429: Telegram will not do it.
    #[error("Telegram refused {method}: {code} {description}")]
    Refused {
        method: String,
        code: u16,
        description: String,
    },
    /// Still `429` after the waits this call may make.
    #[error("Telegram's flood control: retry after {retry_after} s")]
    Flood { retry_after: u64 },
    /// A 5xx, a redirect or an unreadable answer.
    #[error("the Bot API answered HTTP {status}")]
    Server { status: u16 },
    /// No answer.
    #[error("the Bot API did not answer: {0}")]
    Transport(String),
}

impl ApiError {
    /// Telegram will never do it (a retry cannot help).
    pub fn is_permanent(&self) -> bool {
        // 401/404: a wrong token or api_url, which an operator fixes; retried meanwhile.
        matches!(self, ApiError::Refused { code, .. } if !matches!(code, 401 | 404))
    }

    /// The description Telegram gave, lowercased (empty if none).
    pub fn description(&self) -> String {
        match self {
            ApiError::Refused { description, .. } => description.to_lowercase(),
            _ => String::new(),
        }
    }
}

/// Telegram's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// `getFile`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct File {
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub file_path: Option<String>,
}

/// The Bot API client shared by the webhook registration, the media links and deliveries.
pub struct BotApi {
    http: reqwest::Client,
    download: reqwest::Client,
    /// Per bot (keyed by the bot id, the token's public part).
    flood: Mutex<HashMap<String, Flood>>,
    metrics: Arc<Metrics>,
}

impl BotApi {
    /// A client with the gateway's hardened HTTP settings.
    pub fn new(metrics: Arc<Metrics>) -> Result<BotApi, String> {
        Ok(BotApi {
            http: outbound_http::client(CALL_TIMEOUT, CALL_TIMEOUT).map_err(|e| e.to_string())?,
            download: outbound_http::client(DOWNLOAD_TIMEOUT, CALL_TIMEOUT)
                .map_err(|e| e.to_string())?,
            flood: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Call `method` with a JSON body; `chat` (the external chat id) when it sends to a chat.
    pub async fn call(
        &self,
        bot: &TelegramSettings,
        method: &str,
        params: &Value,
        chat: Option<&str>,
    ) -> Result<Value, ApiError> {
        let url = format!(
            "{}/bot{}/{method}",
            bot.api_url.trim_end_matches('/'),
            bot.bot_token.expose_secret()
        );
        let mut waits = 0;
        loop {
            self.wait_turn(bot, chat).await;
            let result = self.once(&url, method, params).await;
            self.count(method, &result);
            match result {
                Err(ApiError::Flood { retry_after })
                    if waits < MAX_FLOOD_WAITS
                        && Duration::from_secs(retry_after) <= MAX_INLINE_WAIT =>
                {
                    waits += 1;
                    tracing::warn!(method, retry_after, "Telegram flood control: waiting");
                    self.back_off(bot, chat, Duration::from_secs(retry_after));
                }
                Err(ApiError::Flood { retry_after }) => {
                    self.back_off(bot, chat, Duration::from_secs(retry_after));
                    return Err(ApiError::Flood { retry_after });
                }
                other => return other,
            }
        }
    }

    async fn once(&self, url: &str, method: &str, params: &Value) -> Result<Value, ApiError> {
        let reply = self
            .http
            .post(url)
            .json(params)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        let status = reply.status().as_u16();
        let body = outbound_http::read_capped(reply, SMALL_REPLY_CAP)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else {
            return Err(if status == 429 {
                ApiError::Flood { retry_after: 1 }
            } else {
                ApiError::Server { status }
            });
        };
        if envelope.ok {
            return Ok(envelope.result);
        }
        let code = envelope.error_code.unwrap_or(status);
        match code {
            429 => Err(ApiError::Flood {
                retry_after: envelope
                    .parameters
                    .and_then(|p| p.retry_after)
                    .unwrap_or(1)
                    .max(1),
            }),
            400..=499 => Err(ApiError::Refused {
                method: method.to_string(),
                code,
                description: envelope
                    .description
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
            }),
            _ => Err(ApiError::Server { status: code }),
        }
    }

    /// `getFile`.
    pub async fn get_file(&self, bot: &TelegramSettings, file_id: &str) -> Result<File, ApiError> {
        let result = self
            .call(
                bot,
                "getFile",
                &serde_json::json!({ "file_id": file_id }),
                None,
            )
            .await?;
        serde_json::from_value(result).map_err(|_| ApiError::Server { status: 200 })
    }

    /// Start the download of a file `getFile` named; the caller streams the body (capped).
    pub async fn download(
        &self,
        bot: &TelegramSettings,
        file_path: &str,
    ) -> Result<reqwest::Response, ApiError> {
        if !is_safe_file_path(file_path) {
            return Err(ApiError::Server { status: 200 });
        }
        let url = format!(
            "{}/file/bot{}/{file_path}",
            bot.api_url.trim_end_matches('/'),
            bot.bot_token.expose_secret()
        );
        self.wait_turn(bot, None).await;
        let result = match self.download.get(url).send().await {
            Err(e) => Err(ApiError::Transport(e.without_url().to_string())),
            Ok(reply) if reply.status().is_success() => Ok(reply),
            Ok(reply) => Err(ApiError::Server {
                status: reply.status().as_u16(),
            }),
        };
        let outcome = match &result {
            Ok(_) => Ok(Value::Null),
            Err(e) => Err(e.clone()),
        };
        self.count("download", &outcome);
        result
    }

    async fn wait_turn(&self, bot: &TelegramSettings, chat: Option<&str>) {
        let at = {
            let mut flood = self.flood.lock();
            flood
                .entry(bot_id(bot))
                .or_default()
                .reserve(chat, Instant::now())
        };
        tokio::time::sleep_until(at.into()).await;
    }

    fn back_off(&self, bot: &TelegramSettings, chat: Option<&str>, wait: Duration) {
        let mut flood = self.flood.lock();
        flood
            .entry(bot_id(bot))
            .or_default()
            .back_off(chat, Instant::now(), wait);
    }

    fn count(&self, method: &str, result: &Result<Value, ApiError>) {
        let method = METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        let outcome = match result {
            Ok(_) => "ok",
            Err(ApiError::Refused { .. }) => "refused",
            Err(ApiError::Flood { .. }) => "flood",
            Err(ApiError::Server { .. }) => "server_error",
            Err(ApiError::Transport(_)) => "transport",
        };
        Metrics::inc2(
            &self.metrics.telegram_api,
            "method",
            method,
            "outcome",
            outcome,
        );
    }
}

/// The bot's id: the token's part before `:` (public: it is the bot's user id).
fn bot_id(bot: &TelegramSettings) -> String {
    let token = bot.bot_token.expose_secret();
    token.split_once(':').map_or("", |(id, _)| id).to_string()
}

/// A `file_path` from `getFile` that stays a relative path under the file root.
pub fn is_safe_file_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

#[cfg(test)]
mod tests;

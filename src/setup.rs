//! Setting a portal up as our imconnector provider (contract §5, fact sheet §5 setup order):
//! `imconnector.register` → `event.bind` of what is missing → per channel of the portal
//! `imconnector.activate` then `imconnector.connector.data.set` → `imconnector.status`.
//! Every step is idempotent: running it again changes nothing and binds nothing twice.

use serde_json::{Value, json};

use crate::bitrix::{BitrixClient, BitrixError};
use crate::settings::{ChannelSettings, Settings};

/// Events the gateway handles at `{public_url}/bitrix/events`.
pub const EVENTS: [&str; 6] = [
    "ONIMCONNECTORMESSAGEADD",
    "ONIMCONNECTORMESSAGEUPDATE",
    "ONIMCONNECTORMESSAGEDELETE",
    "ONIMCONNECTORSTATUSDELETE",
    "ONIMCONNECTORLINEDELETE",
    "ONAPPUNINSTALL",
];

/// Events the gateway handles at `{public_url}/bitrix/install` (a UI install receives its
/// application token with ONAPPINSTALL; an update removes every handler, so it is bound too).
pub const INSTALL_EVENTS: [&str; 2] = ["ONAPPINSTALL", "ONAPPUPDATE"];

/// Attempts per setup call when Bitrix24 fails transiently.
const ATTEMPTS: u32 = 5;

/// What setup did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct SetupReport {
    /// Events bound now (already bound ones are left alone).
    pub bound: Vec<String>,
    /// Per channel of the portal: its line and the `imconnector.status` result.
    pub lines: Vec<LineStatus>,
    /// The chat-bot's id (bot enabled), and whether it was registered now (false: found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<u64>,
    pub bot_registered: bool,
}

/// The state of one channel's line after setup.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineStatus {
    pub channel: String,
    pub line: u64,
    pub status: Value,
}

/// Run the setup of one portal.
pub async fn run(
    client: &BitrixClient,
    settings: &Settings,
    member_id: &str,
) -> Result<SetupReport, BitrixError> {
    let call = |method: &'static str, params: Value| {
        client.call_retrying(member_id, method, params, ATTEMPTS)
    };
    let base = settings.public_base();
    let connector = &settings.connector.id;
    let registered = call(
        "imconnector.register",
        json!({
            "ID": connector,
            "NAME": settings.connector.name,
            "ICON": { "DATA_IMAGE": icon_data_url(), "COLOR": "#2fc6f6", "SIZE": "90%", "POSITION": "center" },
            "PLACEMENT_HANDLER": format!("{base}/bitrix/placement"),
        }),
    )
    .await?;
    // `{"result": true}` or `{"result": {"result": true}}` (fact sheet §5.1 CONFLICT); a logical
    // failure arrives as HTTP 200 with `result: false` and an error code.
    let inner = registered.get("result").unwrap_or(&registered);
    if inner != &Value::Bool(true) {
        return Err(BitrixError::Api {
            status: 200,
            code: inner_str(&registered, "error")
                .unwrap_or("REGISTRATION_FAILED")
                .to_string(),
            description: inner_str(&registered, "error_description")
                .unwrap_or_default()
                .to_string(),
            operating_reset_at: None,
        });
    }
    let events_handler = format!("{base}/bitrix/events");
    let install_handler = format!("{base}/bitrix/install");
    let bound = call("event.get", json!({})).await?;
    let already = |event: &str, handler: &str| {
        bound.as_array().is_some_and(|list| {
            list.iter().any(|b| {
                b.get("event")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(event))
                    && b.get("handler").and_then(Value::as_str) == Some(handler)
            })
        })
    };
    let mut report = SetupReport::default();
    let wanted = EVENTS.iter().map(|e| (*e, events_handler.as_str())).chain(
        INSTALL_EVENTS
            .iter()
            .map(|e| (*e, install_handler.as_str())),
    );
    for (event, handler) in wanted {
        if !already(event, handler) {
            call("event.bind", json!({ "event": event, "handler": handler })).await?;
            report.bound.push(event.to_string());
        }
    }
    if settings.bot.enabled {
        let (id, registered) = bot(client, settings, member_id).await?;
        report.bot_id = Some(id);
        report.bot_registered = registered;
    }
    for channel in settings.channels.iter().filter(|c| c.portal == member_id) {
        call(
            "imconnector.activate",
            json!({ "CONNECTOR": connector, "LINE": channel.line, "ACTIVE": 1 }),
        )
        .await?;
        call(
            "imconnector.connector.data.set",
            data_set_params(settings, channel),
        )
        .await?;
        let status = call(
            "imconnector.status",
            json!({ "CONNECTOR": connector, "LINE": channel.line }),
        )
        .await?;
        report.lines.push(LineStatus {
            channel: channel.id.clone(),
            line: channel.line,
            status,
        });
    }
    Ok(report)
}

/// Find the bot by its code (`imbot.bot.list`) or register it as an Open Channels bot, and make
/// sure it is this application's: `imbot.bot.list` lists every application's bots, and
/// `imbot.register` returns an existing bot with the same CODE whatever application owns it
/// (fact sheet §11), so a bot found either way is adopted only once a call that only its owner
/// may make has succeeded.
async fn bot(
    client: &BitrixClient,
    settings: &Settings,
    member_id: &str,
) -> Result<(u64, bool), BitrixError> {
    let listed = client
        .call_retrying(member_id, "imbot.bot.list", json!({}), ATTEMPTS)
        .await?;
    let bots: Vec<&Value> = match &listed {
        Value::Object(map) => map.values().collect(),
        Value::Array(list) => list.iter().collect(),
        _ => Vec::new(),
    };
    let code = &settings.bot.code;
    if let Some(id) = bots
        .iter()
        .find(|b| {
            b.get("CODE")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case(code))
        })
        .and_then(|b| b.get("ID"))
        .and_then(crate::bitrix::envelope::as_i64)
    {
        ensure_ours(client, settings, member_id, id as u64).await?;
        return Ok((id as u64, false));
    }
    let handler = format!("{}/bitrix/bot", settings.public_base());
    let registered = client
        .call_retrying(
            member_id,
            "imbot.register",
            json!({
                "CODE": code,
                "TYPE": "O",
                "OPENLINE": "Y",
                "EVENT_HANDLER": handler,
                "PROPERTIES": { "NAME": settings.bot.name, "COLOR": "AQUA", "WORK_POSITION": "Open Channel Gateway" },
            }),
            ATTEMPTS,
        )
        .await?;
    let id = crate::bitrix::envelope::as_i64(&registered).ok_or_else(|| {
        let reply = crate::outbound_http::snippet(registered.to_string().as_bytes());
        tracing::warn!(portal = member_id, %reply, "imbot.register: no bot id in the reply");
        BitrixError::Decode {
            status: 200,
            detail: "imbot.register gave no bot id".into(),
        }
    })?;
    ensure_ours(client, settings, member_id, id as u64).await?;
    Ok((id as u64, true))
}

/// Bitrix24's answers to a call on another application's bot (v1, v2, and the generic one).
const NOT_THE_OWNER: [&str; 4] = [
    "APP_ID_ERROR",
    "BOT_OWNERSHIP_ERROR",
    "ACCESS_DENIED",
    "BOT_ID_ERROR",
];

/// `imbot.update` of the bot's CODE, unchanged: it succeeds only for the application that owns
/// the bot. Anything else is a final setup error that names `bot.code`.
async fn ensure_ours(
    client: &BitrixClient,
    settings: &Settings,
    member_id: &str,
    id: u64,
) -> Result<(), BitrixError> {
    let code = &settings.bot.code;
    let params = json!({ "BOT_ID": id, "FIELDS": { "CODE": code } });
    match client
        .call_retrying(member_id, "imbot.update", params, ATTEMPTS)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code().is_some_and(|c| NOT_THE_OWNER.contains(&c)) => Err(BitrixError::Api {
            status: 400,
            code: "BOT_CODE_TAKEN".into(),
            description: format!(
                "bot.code {code:?} is the code of bot {id}, which belongs to another application on this portal ({e}); set another bot.code"
            ),
            operating_reset_at: None,
        }),
        Err(e) => Err(e),
    }
}

/// Parameters of `imconnector.connector.data.set` for a channel's line.
pub fn data_set_params(settings: &Settings, channel: &ChannelSettings) -> Value {
    let connector = &settings.connector.id;
    json!({
        "CONNECTOR": connector,
        "LINE": channel.line,
        "DATA": { "ID": format!("{connector}_{}", channel.id), "NAME": format!("{} ({})", settings.connector.name, channel.id) },
    })
}

fn inner_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("result")
        .and_then(|r| r.get(key))
        .or_else(|| v.get(key))
        .and_then(Value::as_str)
}

/// The connector's icon: an SVG as a `data:` URL (URL-encoded, as Bitrix24 expects).
pub fn icon_data_url() -> String {
    const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 70 71"><path fill="#fff" d="M35 10c-14 0-25 9.6-25 21.5 0 6.3 3.2 12 8.3 16L16 60l13-6.3c1.9.4 3.9.6 6 .6 14 0 25-9.6 25-21.5S49 10 35 10z"/><circle cx="25" cy="32" r="3.5" fill="#2fc6f6"/><circle cx="35" cy="32" r="3.5" fill="#2fc6f6"/><circle cx="45" cy="32" r="3.5" fill="#2fc6f6"/></svg>"##;
    let encoded: String = url::form_urlencoded::byte_serialize(SVG.as_bytes()).collect();
    format!(
        "data:image/svg+xml;charset=US-ASCII,{}",
        encoded.replace('+', "%20")
    )
}

//! Teardown of a portal (`teardown --portal MEMBER_ID`, `POST /v1/portals/{id}/teardown`):
//! `imbot.unregister`, `imconnector.unregister`, `event.unbind` of what setup bound, then purge
//! the portal's data. Each step reports itself; a step that finds its work already done counts
//! as done, so running it again after a partial failure finishes the job. Nothing is purged
//! unless every Bitrix24 step succeeded (the tokens are needed to run them again).

use serde::Serialize;
use serde_json::{Value, json};

use crate::bitrix::{BitrixClient, BitrixError};
use crate::settings::Settings;
use crate::setup::{EVENTS, INSTALL_EVENTS};
use crate::store::{PortalStatus, Store};

/// One step and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub outcome: String,
}

/// The whole teardown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub steps: Vec<Step>,
    /// Every step succeeded (the portal's data is gone).
    pub completed: bool,
}

/// Tear a portal down.
pub async fn run(
    client: &BitrixClient,
    settings: &Settings,
    store: &Store,
    member_id: &str,
) -> Result<Report, BitrixError> {
    let portal = store
        .portal(member_id)?
        .ok_or_else(|| BitrixError::NotInstalled(member_id.to_string()))?;
    let mut steps = Vec::new();
    if portal.status == PortalStatus::Installed {
        if let Some(bot_id) = portal.bot_id {
            let answer = client
                .call(member_id, "imbot.unregister", json!({ "BOT_ID": bot_id }))
                .await;
            steps.push(step(
                format!("imbot.unregister {bot_id}"),
                answer,
                &["BOT_ID_ERROR"],
            ));
        }
        let connector = &settings.connector.id;
        let answer = client
            .call(
                member_id,
                "imconnector.unregister",
                json!({ "ID": connector }),
            )
            .await;
        steps.push(step(
            format!("imconnector.unregister {connector}"),
            unregistered(answer),
            &[],
        ));
        let events_handler = format!("{}/bitrix/events", settings.public_base());
        let install_handler = format!("{}/bitrix/install", settings.public_base());
        let bound = EVENTS
            .iter()
            .map(|e| (*e, &events_handler))
            .chain(INSTALL_EVENTS.iter().map(|e| (*e, &install_handler)));
        for (event, handler) in bound {
            let answer = client
                .call(
                    member_id,
                    "event.unbind",
                    json!({ "event": event, "handler": handler }),
                )
                .await;
            steps.push(step(format!("event.unbind {event}"), answer, &[]));
        }
    } else {
        steps.push(Step {
            step: "Bitrix24".into(),
            ok: true,
            outcome:
                "the app is uninstalled: Bitrix24 already removed the connector, bot and handlers"
                    .into(),
        });
    }
    let completed = steps.iter().all(|s| s.ok);
    if completed {
        let channels: Vec<String> = settings
            .channels
            .iter()
            .filter(|c| c.portal == member_id)
            .map(|c| c.id.clone())
            .collect();
        let member = member_id.to_string();
        let removed = store.purge_portal(&member, &channels).await?;
        steps.push(Step {
            step: "purge".into(),
            ok: true,
            outcome: format!("{removed} records removed"),
        });
    } else {
        steps.push(Step {
            step: "purge".into(),
            ok: false,
            outcome: "skipped: run teardown again once the failed steps can succeed".into(),
        });
    }
    Ok(Report { steps, completed })
}

/// `imconnector.unregister` answers HTTP 200 with `result: false` and an error code when the
/// connector is not there (fact sheet §5.5): already done.
fn unregistered(answer: Result<Value, BitrixError>) -> Result<Value, BitrixError> {
    match answer {
        Ok(v) if v == Value::Bool(true) || v.get("result") == Some(&Value::Bool(true)) => Ok(v),
        Ok(v) => Err(BitrixError::Api {
            status: 200,
            code: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("APPLICATION_UNREGISTRATION_ERROR")
                .to_string(),
            description: "not registered".into(),
            operating_reset_at: None,
        }),
        Err(e) => Err(e),
    }
}

fn step(name: String, answer: Result<Value, BitrixError>, already_done: &[&str]) -> Step {
    match answer {
        Ok(v) => Step {
            step: name,
            ok: true,
            outcome: format!("done ({v})"),
        },
        Err(e)
            if e.code().is_some_and(|c| {
                already_done.contains(&c) || c == "APPLICATION_UNREGISTRATION_ERROR"
            }) =>
        {
            Step {
                step: name,
                ok: true,
                outcome: format!("already done ({e})"),
            }
        }
        Err(e) => Step {
            step: name,
            ok: false,
            outcome: format!("failed: {e}"),
        },
    }
}

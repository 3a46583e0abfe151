//! Delivery-failure notices: when an operator's message cannot reach the platform, the bot says
//! so in the open-line chat with `SKIP_CONNECTOR=Y` (operators see it, the customer never does);
//! the notice is updated when the failure becomes final, and removed (`COMPLETE=Y`) when a later
//! attempt succeeds or the operator deletes the original. Best effort: a notice that cannot be
//! posted is logged, never retried in a loop (`CANT_EDIT_MESSAGE` after three days included).

use serde_json::json;

use crate::bitrix::BitrixClient;
use crate::clock::Clock;
use crate::settings::Settings;
use crate::store::{Notice, OperatorRecord, Store};

/// Failed attempts after which operators are told.
pub const NOTICE_AFTER_ATTEMPTS: u32 = 3;

/// What the bot can do about a message.
pub struct Notices<'a> {
    pub store: &'a Store,
    pub bitrix: &'a BitrixClient,
    pub settings: &'a Settings,
    pub clock: &'a Clock,
}

impl Notices<'_> {
    /// Delivery keeps failing (still retried): post a notice if there is none.
    pub async fn failing(&self, portal: &str, record: &OperatorRecord, reason: &str) {
        if record.notice.is_none() {
            let text = format!(
                "[b]Not delivered yet.[/b] The customer has not received this message; the gateway keeps trying. Last error: {reason}"
            );
            self.post(portal, record, text, false).await;
        }
    }

    /// Delivery failed for good: say so, updating the earlier notice if there is one.
    pub async fn failed(&self, portal: &str, record: &OperatorRecord, reason: &str) {
        let text =
            format!("[b]Not delivered.[/b] The customer did not receive this message: {reason}");
        match record.notice {
            Some(notice) if notice.final_failure => {}
            Some(notice) => {
                let Some(bot) = self.bot(portal) else { return };
                let params = json!({ "BOT_ID": bot, "MESSAGE_ID": notice.id, "MESSAGE": quote(record, &text, self.clock.now_ms()), "SKIP_CONNECTOR": "Y" });
                match self
                    .bitrix
                    .call(portal, "imbot.message.update", params)
                    .await
                {
                    Ok(_) => {
                        self.record(
                            portal,
                            record.im_message_id,
                            Some(Notice {
                                id: notice.id,
                                final_failure: true,
                            }),
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(portal, notice = notice.id, error = %e, "cannot update a delivery notice")
                    }
                }
            }
            None => self.post(portal, record, text, true).await,
        }
    }

    /// The message was delivered after all, or the operator deleted it: remove the notice.
    pub async fn resolved(&self, portal: &str, record: &OperatorRecord) {
        let (Some(notice), Some(bot)) = (record.notice, self.bot(portal)) else {
            return;
        };
        let params = json!({ "BOT_ID": bot, "MESSAGE_ID": notice.id, "COMPLETE": "Y" });
        if let Err(e) = self
            .bitrix
            .call(portal, "imbot.message.delete", params)
            .await
        {
            // CANT_EDIT_MESSAGE (older than three days) and the like: nothing more to do.
            tracing::warn!(portal, notice = notice.id, error = %e, "cannot remove a delivery notice");
        }
        self.record(portal, record.im_message_id, None).await;
    }

    async fn post(&self, portal: &str, record: &OperatorRecord, text: String, final_failure: bool) {
        let Some(bot) = self.bot(portal) else { return };
        let params = json!({
            "BOT_ID": bot,
            "DIALOG_ID": format!("chat{}", record.im_chat_id),
            "MESSAGE": quote(record, &text, self.clock.now_ms()),
            "SKIP_CONNECTOR": "Y",
            "URL_PREVIEW": "N",
        });
        match self.bitrix.call(portal, "imbot.message.add", params).await {
            Ok(id) => match crate::bitrix::envelope::as_i64(&id) {
                Some(id) => {
                    self.record(
                        portal,
                        record.im_message_id,
                        Some(Notice {
                            id: id as u64,
                            final_failure,
                        }),
                    )
                    .await
                }
                None => {
                    tracing::warn!(portal, answer = %id, "imbot.message.add answered no message id")
                }
            },
            Err(e) => tracing::warn!(portal, error = %e, "cannot post a delivery notice"),
        }
    }

    async fn record(&self, portal: &str, im_message_id: u64, notice: Option<Notice>) {
        let portal = portal.to_string();
        let committed = self
            .store
            .commit(move |d| d.set_notice(&portal, im_message_id, notice))
            .await;
        if let Err(e) = committed {
            tracing::error!(error = %e, "cannot record a delivery notice");
        }
    }

    fn bot(&self, portal: &str) -> Option<u64> {
        if !self.settings.bot.enabled {
            return None;
        }
        self.store
            .portal(portal)
            .ok()
            .flatten()
            .and_then(|p| p.bot_id)
    }
}

/// The notice text, with the start of the operator's message for context.
fn quote(record: &OperatorRecord, text: &str, now_ms: u64) -> String {
    let excerpt: String = record.text.chars().take(80).collect();
    let ellipsis = if record.text.chars().count() > 80 {
        "…"
    } else {
        ""
    };
    format!(
        "{text}\n[i]{excerpt}{ellipsis}[/i] (sent {})",
        crate::domain::rfc3339(record.created_at_ms.min(now_ms))
    )
}

//! Bitrix24's side: events from the portal (operator messages, disconnected lines, uninstall),
//! the operator-message mapping, channel states, and purging a portal.

use super::codec::{decode, encode, tx_get, tx_put};
use super::retention::{Kind, tx_index};
use super::{
    ChannelState, Data, DeliveryPayload, OperatorRecord, OperatorState, PortalRecord, PortalStatus,
    StoreError, Tx, TxResult, deliveries, keys, trees,
};
use crate::domain::OperatorMessage;

/// Event types for the platform (contract §4).
pub const OPERATOR_CREATED: &str = "operator.message.created";
pub const OPERATOR_UPDATED: &str = "operator.message.updated";
pub const OPERATOR_DELETED: &str = "operator.message.deleted";
pub const LINE_DISCONNECTED: &str = "line.disconnected";

/// A verified Bitrix24 event, resolved against the settings, ready to be stored.
#[derive(Debug, Clone)]
pub struct Intake {
    /// SHA-256 of the raw body: the same body twice is a replay.
    pub digest: Vec<u8>,
    pub portal: String,
    pub action: Action,
    pub now_ms: u64,
}

/// What the event means for us.
#[derive(Debug, Clone)]
pub enum Action {
    OperatorMessages {
        kind: OperatorKind,
        channel: String,
        line: u64,
        messages: Vec<OperatorMessage>,
    },
    LineDisconnected {
        channels: Vec<String>,
        line: u64,
        reason: String,
    },
    Uninstalled,
    /// The portal's chat-bot was deleted in Bitrix24.
    BotDeleted {
        bot_id: u64,
    },
    /// Nothing to do (another connector, an event we do not use); still remembered as seen.
    Ignore,
}

/// Which operator event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKind {
    Created,
    Updated,
    Deleted,
}

/// Result of [`Data::take_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// This body was taken before.
    Duplicate,
    /// Stored; this many deliveries were queued.
    Stored { deliveries: usize },
}

impl Data {
    /// Store a Bitrix24 event atomically (call inside `Store::commit`).
    pub fn take_event(&self, intake: &Intake) -> Result<IntakeOutcome, StoreError> {
        self.transaction(|tx| {
            if tx.digests.get(&intake.digest)?.is_some() {
                return Ok(IntakeOutcome::Duplicate);
            }
            tx.digests
                .insert(intake.digest.as_slice(), &intake.now_ms.to_be_bytes())?;
            tx_index(tx, Kind::Digest, intake.now_ms, &intake.digest)?;
            let deliveries = match &intake.action {
                Action::OperatorMessages {
                    kind,
                    channel,
                    line,
                    messages,
                } => {
                    let mut queued = 0;
                    for m in messages {
                        queued += operator_message(tx, intake, *kind, channel, *line, m)? as usize;
                    }
                    queued
                }
                Action::LineDisconnected {
                    channels,
                    line,
                    reason,
                } => {
                    for channel in channels {
                        let state = ChannelState {
                            active: false,
                            reason: Some(reason.clone()),
                            status: None,
                            updated_at_ms: intake.now_ms,
                        };
                        tx_put(tx.channels, channel.as_bytes(), &state)?;
                        let data = serde_json::json!({ "line": line, "reason": reason });
                        let id = format!("msg_line_{}", tx.any.generate_id()?);
                        deliveries::tx_enqueue(
                            tx,
                            channel,
                            id,
                            LINE_DISCONNECTED,
                            DeliveryPayload::Inline { data },
                            intake.now_ms,
                        )?;
                    }
                    channels.len()
                }
                Action::Uninstalled => {
                    if let Some(mut portal) = tx_get::<PortalRecord>(
                        tx.portals,
                        trees::MEMBERID_PORTAL,
                        intake.portal.as_bytes(),
                    )? {
                        portal.status = PortalStatus::Uninstalled;
                        portal.access_token.clear();
                        portal.refresh_token.clear();
                        portal.setup_at_ms = None;
                        portal.updated_at_ms = intake.now_ms;
                        tx_put(tx.portals, intake.portal.as_bytes(), &portal)?;
                    }
                    0
                }
                Action::BotDeleted { bot_id } => {
                    if let Some(mut portal) = tx_get::<PortalRecord>(
                        tx.portals,
                        trees::MEMBERID_PORTAL,
                        intake.portal.as_bytes(),
                    )? && portal.bot_id == Some(*bot_id)
                    {
                        portal.bot_id = None;
                        tx_put(tx.portals, intake.portal.as_bytes(), &portal)?;
                    }
                    0
                }
                Action::Ignore => 0,
            };
            Ok(IntakeOutcome::Stored { deliveries })
        })
    }

    /// An operator's message by its Bitrix24 id.
    pub fn operator(
        &self,
        portal: &str,
        im_message_id: u64,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        self.operators
            .get(keys::operator(portal, im_message_id))?
            .map(|v| decode(trees::BITRIXMSG_OPERATOR, &v))
            .transpose()
    }

    /// The Bitrix24 id of a message the gateway relayed, by the platform's id for it.
    pub fn operator_by_external(
        &self,
        portal: &str,
        line: u64,
        chat: &str,
        external_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .extmsgs
            .get(keys::message(portal, line, chat, external_id))?
            .and_then(|v| keys::parse_u64(trees::EXTMSG_BITRIXMSG, &v).ok()))
    }

    /// The platform took an operator's message under these ids: record them both ways.
    pub fn operator_delivered(
        &self,
        portal: &str,
        im_message_id: u64,
        external_ids: &[String],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            let key = keys::operator(portal, im_message_id);
            let Some(mut record) =
                tx_get::<OperatorRecord>(tx.operators, trees::BITRIXMSG_OPERATOR, &key)?
            else {
                return Ok(());
            };
            record.external_ids = external_ids.to_vec();
            if record.state == OperatorState::Pending
                || matches!(record.state, OperatorState::Failed { .. })
            {
                record.state = OperatorState::Delivered;
            }
            record.updated_at_ms = now_ms;
            for id in external_ids {
                let ext = keys::message(portal, record.line, &record.chat_id, id);
                tx.extmsgs.insert(ext, &keys::u64_be(im_message_id))?;
            }
            // Indexed when created: retention re-indexes a record written since.
            tx_put(tx.operators, &key, &record)
        })
    }

    /// An operator's message could not be delivered to the platform.
    pub fn operator_failed(
        &self,
        portal: &str,
        im_message_id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let key = keys::operator(portal, im_message_id);
        let Some(mut record) = self.operator(portal, im_message_id)? else {
            return Ok(());
        };
        record.state = OperatorState::Failed {
            reason: reason.to_string(),
        };
        record.updated_at_ms = now_ms;
        self.operators.insert(&key, encode(&record))?;
        Ok(())
    }

    /// Record (or clear) the bot's notice about an operator message.
    pub fn set_notice(
        &self,
        portal: &str,
        im_message_id: u64,
        notice: Option<super::Notice>,
    ) -> Result<(), StoreError> {
        if let Some(mut record) = self.operator(portal, im_message_id)? {
            record.notice = notice;
            self.operators
                .insert(keys::operator(portal, im_message_id), encode(&record))?;
        }
        Ok(())
    }

    /// A channel's state on its line.
    pub fn channel_state(&self, channel: &str) -> Result<Option<ChannelState>, StoreError> {
        self.channels
            .get(channel.as_bytes())?
            .map(|v| decode(trees::CHANNEL_STATE, &v))
            .transpose()
    }

    /// Record a channel's state (setup, the settings page).
    pub fn set_channel_state(&self, channel: &str, state: &ChannelState) -> Result<(), StoreError> {
        self.channels.insert(channel.as_bytes(), encode(state))?;
        Ok(())
    }
}

/// Store one operator message and queue its delivery; false if it was already known.
fn operator_message(
    tx: &Tx<'_>,
    intake: &Intake,
    kind: OperatorKind,
    channel: &str,
    line: u64,
    m: &OperatorMessage,
) -> TxResult<bool> {
    let key = keys::operator(&intake.portal, m.im_message_id);
    let known: Option<OperatorRecord> = tx_get(tx.operators, trees::BITRIXMSG_OPERATOR, &key)?;
    if kind == OperatorKind::Created && known.is_some() {
        return Ok(false);
    }
    // Indexed for retention once, when created (`retention.rs` re-indexes on a later write).
    let created = known.is_none();
    let mut record = known.unwrap_or_else(|| OperatorRecord {
        channel: channel.to_string(),
        line,
        chat_id: m.chat_id.clone(),
        im_chat_id: m.im_chat_id,
        im_message_id: m.im_message_id,
        text: m.text.clone(),
        operator_id: m.operator_id.clone(),
        files: m.files.clone(),
        external_ids: m.external_ids.clone(),
        // An edit or deletion of a message the gateway never relayed (sent before install):
        // the platform knows it by the ids Bitrix24 reports.
        state: if kind == OperatorKind::Created {
            OperatorState::Pending
        } else {
            OperatorState::Delivered
        },
        created_at_ms: intake.now_ms,
        updated_at_ms: intake.now_ms,
        notice: None,
    });
    if record.external_ids.is_empty() {
        record.external_ids = m.external_ids.clone();
    }
    record.updated_at_ms = intake.now_ms;
    let portal = intake.portal.clone();
    let (event_type, payload) = match kind {
        OperatorKind::Created => (
            OPERATOR_CREATED,
            DeliveryPayload::OperatorCreated {
                portal,
                im_message_id: m.im_message_id,
            },
        ),
        OperatorKind::Updated => {
            record.text = m.text.clone();
            let text = m.text.clone();
            (
                OPERATOR_UPDATED,
                DeliveryPayload::OperatorUpdated {
                    portal,
                    im_message_id: m.im_message_id,
                    text,
                },
            )
        }
        OperatorKind::Deleted => {
            record.state = OperatorState::Deleted;
            (
                OPERATOR_DELETED,
                DeliveryPayload::OperatorDeleted {
                    portal,
                    im_message_id: m.im_message_id,
                },
            )
        }
    };
    tx_put(tx.operators, &key, &record)?;
    if created {
        tx_index(tx, Kind::Operator, intake.now_ms, &key)?;
    }
    let webhook_id = match kind {
        // Stable per Bitrix24 message: a duplicate creation can be recognised by the platform.
        OperatorKind::Created => format!("msg_b24_{}_{}", intake.portal, m.im_message_id),
        _ => format!(
            "msg_b24_{}_{}_{}",
            intake.portal,
            m.im_message_id,
            tx.any.generate_id()?
        ),
    };
    deliveries::tx_enqueue(tx, channel, webhook_id, event_type, payload, intake.now_ms)?;
    Ok(true)
}

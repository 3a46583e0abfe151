//! External ids of contract §6: chat `"<chat.id>"`, or `"b:<business_connection_id>:<chat.id>"`
//! for a business chat (a business chat's id may equal an ordinary bot chat's, so the connection
//! is part of the key); message `"<chat id as above>:<message_id>"`; user `"<from.id>"`.

use crate::ids::{ChatId, MessageId};

/// A Telegram chat as the gateway keys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatKey {
    pub chat_id: i64,
    /// Set for a business chat.
    pub business_connection_id: Option<String>,
}

impl ChatKey {
    /// The external chat id.
    pub fn external(&self) -> ChatId {
        ChatId::new(match &self.business_connection_id {
            Some(conn) => format!("b:{conn}:{}", self.chat_id),
            None => self.chat_id.to_string(),
        })
    }

    /// The external id of a message of this chat.
    pub fn message(&self, message_id: i64) -> MessageId {
        MessageId::new(format!("{}:{message_id}", self.external()))
    }

    /// Parse an external chat id.
    pub fn parse(external: &str) -> Option<ChatKey> {
        match external.strip_prefix("b:") {
            Some(rest) => {
                let (conn, chat) = rest.rsplit_once(':')?;
                if conn.is_empty() {
                    return None;
                }
                Some(ChatKey {
                    chat_id: chat.parse().ok()?,
                    business_connection_id: Some(conn.to_string()),
                })
            }
            None => Some(ChatKey {
                chat_id: external.parse().ok()?,
                business_connection_id: None,
            }),
        }
    }
}

/// Parse an external message id into its chat and Telegram's `message_id`.
pub fn parse_message(external: &str) -> Option<(ChatKey, i64)> {
    let (chat, message) = external.rsplit_once(':')?;
    Some((ChatKey::parse(chat)?, message.parse().ok()?))
}

#[cfg(test)]
mod tests;

//! Reads of the ID mapping: external chat, user and message ids against Bitrix24's.

use super::codec::decode;
use super::{ChatLink, Data, MessageRecord, StoreError, UserLink, keys, trees};

impl Data {
    /// Bitrix24 chat and session of an external chat on a line.
    pub fn chat_link(
        &self,
        portal: &str,
        line: u64,
        chat: &str,
    ) -> Result<Option<ChatLink>, StoreError> {
        self.chats
            .get(keys::chat(portal, line, chat))?
            .map(|v| decode(trees::CHAT_LINK, &v))
            .transpose()
    }

    /// Bitrix24 user id of an external user.
    pub fn user_link(&self, portal: &str, user: &str) -> Result<Option<UserLink>, StoreError> {
        self.users
            .get(keys::user(portal, user))?
            .map(|v| decode(trees::USER_LINK, &v))
            .transpose()
    }

    /// What is known of an external message (sent, or queued).
    pub fn message_record(
        &self,
        portal: &str,
        line: u64,
        chat: &str,
        message: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let key = keys::message(portal, line, chat, message);
        // Queued (pending, beyond the in-memory index): in the inbox until its result.
        let stored = match self.messages.get(&key)? {
            Some(value) => Some(value),
            None => self.inbox.sends.get(&key)?,
        };
        stored.map(|v| decode(trees::MESSAGE_STATE, &v)).transpose()
    }
}

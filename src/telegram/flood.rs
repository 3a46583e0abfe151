//! Telegram's flood limits kept per bot (contract §6: about 1 message per second per chat and
//! 30 per second per bot), and `429 retry_after` honoured: a pure scheduler, one per bot. Each
//! call reserves the earliest instant it may leave at, which also books its slot, so concurrent
//! callers queue up instead of bursting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Spacing of calls to one chat.
pub const PER_CHAT: Duration = Duration::from_secs(1);
/// Spacing of calls of one bot (30 per second).
pub const PER_BOT: Duration = Duration::from_millis(34);
/// Chats remembered before the stale ones are dropped.
const PRUNE_AT: usize = 4096;

/// One bot's schedule.
#[derive(Debug)]
pub struct Flood {
    per_chat: Duration,
    per_bot: Duration,
    /// The earliest next call per chat.
    chats: HashMap<String, Instant>,
    /// The bot's booked slots, in order (those more than a spacing in the past are dropped):
    /// a call waiting for its chat does not hold calls to other chats.
    slots: Vec<Instant>,
    /// The bot may call nothing before this (a 429 without a chat).
    bot_blocked: Option<Instant>,
}

impl Default for Flood {
    fn default() -> Self {
        Flood::new(PER_CHAT, PER_BOT)
    }
}

impl Flood {
    /// A schedule with these spacings.
    pub fn new(per_chat: Duration, per_bot: Duration) -> Flood {
        Flood {
            per_chat,
            per_bot,
            chats: HashMap::new(),
            slots: Vec::new(),
            bot_blocked: None,
        }
    }

    /// Book the next call (to `chat`, or a call that sends nothing to a chat when `None`) and
    /// return when it may leave: not before `now`, the chat's next slot and the bot's.
    pub fn reserve(&mut self, chat: Option<&str>, now: Instant) -> Instant {
        if self.chats.len() >= PRUNE_AT {
            self.chats.retain(|_, at| *at > now);
        }
        let mut at = now.max(self.bot_blocked.unwrap_or(now));
        if let Some(chat) = chat {
            at = at.max(self.chats.get(chat).copied().unwrap_or(now));
        }
        // The first gap of `per_bot` around the booked slots at or after `at`.
        self.slots.retain(|s| *s + self.per_bot > now);
        for slot in &self.slots {
            if *slot + self.per_bot <= at {
                continue;
            }
            if at + self.per_bot <= *slot {
                break;
            }
            at = *slot + self.per_bot;
        }
        let index = self.slots.partition_point(|s| *s <= at);
        self.slots.insert(index, at);
        if let Some(chat) = chat {
            self.chats.insert(chat.to_string(), at + self.per_chat);
        }
        at
    }

    /// Telegram answered 429 with `retry_after`: nothing more to that chat (or, without a chat,
    /// from the bot) before `now + retry_after`.
    pub fn back_off(&mut self, chat: Option<&str>, now: Instant, retry_after: Duration) {
        let until = now + retry_after;
        match chat {
            Some(chat) => {
                let next = self.chats.entry(chat.to_string()).or_insert(until);
                *next = (*next).max(until);
            }
            None => self.bot_blocked = Some(self.bot_blocked.unwrap_or(until).max(until)),
        }
    }
}

#[cfg(test)]
mod tests;

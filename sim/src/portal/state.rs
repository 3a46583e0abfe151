//! Everything the fake portal remembers, and the public snapshot records tests inspect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::bucket::LeakyBucket;
use super::config::{FakePortalConfig, random_hex};
use super::faults::{FaultRule, OperatingBlock};

/// Bitrix24 user id that owns the installer's tokens (an administrator).
pub(crate) const ADMIN_USER_ID: u64 = 1;
/// Bitrix24 user id of the operator who writes in open-line chats.
pub(crate) const OPERATOR_USER_ID: u64 = 27;

/// A fresh access/refresh token pair, as an install or a refresh hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// Token for the `auth` parameter.
    pub access_token: String,
    /// Token for `/oauth/token/?grant_type=refresh_token`.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// One HTTP request to `/rest/`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Arrival time.
    pub at: Instant,
    /// Method as sent in the path (case kept, `.json` suffix removed).
    pub method: String,
    /// For `batch`: the method of every command, in order, as written in the command strings.
    pub commands: Vec<String>,
    /// HTTP status answered.
    pub status: u16,
    /// The `error` code when the whole request failed.
    pub error: Option<String>,
}

/// A client message received through `imconnector.send.messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    /// Connector id (lowercase).
    pub connector: String,
    /// Open line id.
    pub line: u64,
    /// External chat id (`chat.id`).
    pub chat_id: String,
    /// External user id (`user.id`).
    pub user_id: String,
    /// External message id (`message.id`; empty if none was sent).
    pub message_id: String,
    /// Id the portal gave the message (unique across all kinds of messages in this fake).
    pub internal_id: u64,
    /// Current text.
    pub text: String,
    /// `message.files` as sent.
    pub files: Vec<Value>,
    /// Deleted through `imconnector.delete.messages`.
    pub deleted: bool,
    /// Number of successful `imconnector.update.messages` edits.
    pub update_count: u32,
    /// Number of `imconnector.delete.messages` items that targeted this message, whatever their
    /// outcome (tests use it to prove an item is never sent again after its success).
    pub delete_requests: u32,
}

/// A connector registered with `imconnector.register`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeConnector {
    /// Lowercased `ID`.
    pub id: String,
    /// `NAME`.
    pub name: String,
    /// `PLACEMENT_HANDLER`.
    pub placement_handler: String,
    /// The whole `ICON` object.
    pub icon: Value,
    /// How many successful `imconnector.register` calls used this id.
    pub register_count: u32,
}

/// Per-(connector, line) state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FakeLine {
    /// Set by `imconnector.activate`.
    pub active: bool,
    /// Last `imconnector.connector.data.set` `DATA`.
    pub data: Option<Value>,
    /// Number of `imconnector.activate` calls.
    pub activate_calls: u32,
}

/// An `event.bind` registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBinding {
    /// Event name, uppercase.
    pub event: String,
    /// Handler URL.
    pub handler: String,
}

/// A bot registered with `imbot.register`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBot {
    /// `BOT_ID`.
    pub id: u64,
    /// `CODE`.
    pub code: String,
    /// `TYPE` (`B`, `O`, `H`, `S`).
    pub type_: String,
    /// `OPENLINE` = `Y` (forced for type `O`).
    pub openline: bool,
    /// Effective handler URLs keyed by parameter name (`EVENT_MESSAGE_ADD`, ...).
    pub handlers: Value,
    /// `PROPERTIES` as sent.
    pub properties: Value,
    /// Registered by another application of the portal: listed and returned by `imbot.register`
    /// for its CODE like any bot, but only its owner may update, unregister or post as it
    /// (fact sheet §11: `APP_ID_ERROR`, v2 `BOT_OWNERSHIP_ERROR`).
    pub foreign: bool,
}

/// A message posted with `imbot.message.add`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBotMessage {
    /// Message id returned to the caller.
    pub id: u64,
    /// Author bot.
    pub bot_id: u64,
    /// `DIALOG_ID` (`chat<id>` or a user id).
    pub dialog_id: String,
    /// Current text.
    pub text: String,
    /// `SKIP_CONNECTOR=Y` was sent.
    pub skip_connector: bool,
    /// Deleted (by `imbot.message.delete` or an empty `imbot.message.update`).
    pub deleted: bool,
    /// Deleted with `COMPLETE=Y`.
    pub complete_delete: bool,
}

/// An open-line session of one external chat.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Session {
    pub id: u64,
    pub chat_id: u64,
}

/// Where an open-line chat leads: the connector, line and external chat it was created for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ChatTarget {
    pub connector: String,
    pub line: u64,
    pub ext_chat_id: String,
}

/// A message going out to the client through the connector (operator message or forwarded bot message).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outbound {
    pub target: ChatTarget,
    pub im_chat_id: u64,
}

/// The mutable state behind the portal's mutex.
pub(crate) struct PortalState {
    pub bucket: Option<LeakyBucket>,
    /// Access token → expiry. Removed on uninstall (→ `NO_AUTH_FOUND`).
    pub access_tokens: HashMap<String, Instant>,
    pub refresh_tokens: HashSet<String>,
    pub refresh_count: usize,
    /// Every request to the authorization server, refused ones included.
    pub oauth_calls: usize,
    /// The `client_endpoint` the authorization server reports instead of the portal's own (a
    /// portal that moved).
    pub reported_client_endpoint: Option<String>,
    /// How many times the install page's `BX24.installFinish()` reached the portal.
    pub install_finished: usize,
    /// Requests cut at the time limit (after processing part of their items).
    pub cut_requests: usize,
    pub faults: Vec<FaultRule>,
    /// Lowercase method → operating-time block.
    pub operating_blocks: HashMap<String, OperatingBlock>,
    /// Lowercase method → accumulated processing seconds (`time.operating`).
    pub operating_totals: HashMap<String, f64>,
    pub requests: Vec<RequestRecord>,
    pub connectors: BTreeMap<String, FakeConnector>,
    pub lines: BTreeMap<(String, u64), FakeLine>,
    /// External user id → internal user id.
    pub users: HashMap<String, u64>,
    pub sessions: HashMap<ChatTarget, Session>,
    /// Open-line chat id → what it belongs to.
    pub chats: HashMap<u64, ChatTarget>,
    pub messages: Vec<FakeMessage>,
    /// (connector, line, chat id, message id) → indexes into `messages` (lookups stay fast when a
    /// benchmark fills the portal with thousands of messages).
    pub message_index: HashMap<(String, u64, String, String), Vec<usize>>,
    /// External message id → errors to answer for items carrying it.
    pub item_failures: HashMap<String, Vec<String>>,
    pub delivery_reports: Vec<Value>,
    /// IM message id → external ids reported through `send.status.delivery`.
    pub delivered_ext_ids: HashMap<u64, Vec<String>>,
    /// IM message id → outgoing message.
    pub outbound: BTreeMap<u64, Outbound>,
    /// Binding id (`event_handler_id`) and binding.
    pub bindings: Vec<(u64, FakeBinding)>,
    /// `downloadLink` token → (MIME type, bytes) of operators' files.
    pub downloads: HashMap<String, (String, Vec<u8>)>,
    pub bots: BTreeMap<u64, FakeBot>,
    /// Message id → message and the moment it was posted.
    pub bot_messages: BTreeMap<u64, (FakeBotMessage, SystemTime)>,
    pub reactions: Vec<(u64, u64, String)>,
    /// Chats the bots were removed from (`set_bot_in_chat(.., false)`).
    pub bot_absent_chats: HashSet<u64>,
    next_user: u64,
    next_session: u64,
    next_chat: u64,
    next_message: u64,
    next_bot: u64,
    next_binding: u64,
}

impl PortalState {
    pub(crate) fn new(config: &FakePortalConfig) -> Self {
        PortalState {
            bucket: config.bucket.map(|b| LeakyBucket::new(b, Instant::now())),
            access_tokens: HashMap::new(),
            refresh_tokens: HashSet::new(),
            refresh_count: 0,
            oauth_calls: 0,
            reported_client_endpoint: None,
            install_finished: 0,
            cut_requests: 0,
            faults: Vec::new(),
            operating_blocks: HashMap::new(),
            operating_totals: HashMap::new(),
            requests: Vec::new(),
            connectors: BTreeMap::new(),
            lines: BTreeMap::new(),
            users: HashMap::new(),
            sessions: HashMap::new(),
            chats: HashMap::new(),
            messages: Vec::new(),
            message_index: HashMap::new(),
            item_failures: HashMap::new(),
            delivery_reports: Vec::new(),
            delivered_ext_ids: HashMap::new(),
            outbound: BTreeMap::new(),
            bindings: Vec::new(),
            downloads: HashMap::new(),
            bots: BTreeMap::new(),
            bot_messages: BTreeMap::new(),
            reactions: Vec::new(),
            bot_absent_chats: HashSet::new(),
            // Starting points taken from the documentation examples, so ids look familiar in logs.
            next_user: 585,
            next_session: 323,
            next_chat: 1767,
            next_message: 86497,
            next_bot: 39,
            next_binding: 555,
        }
    }

    /// A new access token valid for `ttl`.
    pub(crate) fn mint_access_token(&mut self, ttl: Duration) -> String {
        let token = random_hex();
        self.access_tokens
            .insert(token.clone(), Instant::now() + ttl);
        token
    }

    /// A new access/refresh pair.
    pub(crate) fn issue_tokens(&mut self, ttl: Duration) -> IssuedTokens {
        let access_token = self.mint_access_token(ttl);
        let refresh_token = random_hex();
        self.refresh_tokens.insert(refresh_token.clone());
        IssuedTokens {
            access_token,
            refresh_token,
            expires_in: ttl.as_secs(),
        }
    }

    /// Internal id of an external user, created on first sight.
    pub(crate) fn user_id(&mut self, external: &str) -> u64 {
        if let Some(id) = self.users.get(external) {
            return *id;
        }
        let id = bump(&mut self.next_user);
        self.users.insert(external.to_owned(), id);
        id
    }

    /// The session (and open-line chat) of an external chat, created on first use.
    pub(crate) fn session(&mut self, target: &ChatTarget) -> Session {
        if let Some(session) = self.sessions.get(target) {
            return session.clone();
        }
        let session = Session {
            id: bump(&mut self.next_session),
            chat_id: bump(&mut self.next_chat),
        };
        self.sessions.insert(target.clone(), session.clone());
        self.chats.insert(session.chat_id, target.clone());
        session
    }

    /// Store a client message and index it.
    pub(crate) fn push_message(&mut self, m: FakeMessage) {
        let key = (
            m.connector.clone(),
            m.line,
            m.chat_id.clone(),
            m.message_id.clone(),
        );
        self.message_index
            .entry(key)
            .or_default()
            .push(self.messages.len());
        self.messages.push(m);
    }

    /// Indexes of the client messages with these ids, oldest first.
    pub(crate) fn messages_with(
        &self,
        connector: &str,
        line: u64,
        chat: &str,
        message: &str,
    ) -> Vec<usize> {
        let key = (
            connector.to_string(),
            line,
            chat.to_string(),
            message.to_string(),
        );
        self.message_index.get(&key).cloned().unwrap_or_default()
    }

    /// A new message id (shared by client, operator and bot messages so ids never collide).
    pub(crate) fn next_message_id(&mut self) -> u64 {
        bump(&mut self.next_message)
    }

    pub(crate) fn next_bot_id(&mut self) -> u64 {
        bump(&mut self.next_bot)
    }

    pub(crate) fn next_binding_id(&mut self) -> u64 {
        bump(&mut self.next_binding)
    }

    /// The open-line chat a message (client, operator or bot) lives in, if the fake knows the message.
    pub(crate) fn chat_of_message(&self, message_id: u64) -> Option<Option<u64>> {
        if let Some(m) = self.messages.iter().find(|m| m.internal_id == message_id) {
            let target = ChatTarget {
                connector: m.connector.clone(),
                line: m.line,
                ext_chat_id: m.chat_id.clone(),
            };
            return Some(self.sessions.get(&target).map(|s| s.chat_id));
        }
        if let Some(out) = self.outbound.get(&message_id) {
            return Some(Some(out.im_chat_id));
        }
        let (message, _) = self.bot_messages.get(&message_id)?;
        Some(
            message
                .dialog_id
                .strip_prefix("chat")
                .and_then(|id| id.parse().ok()),
        )
    }

    /// The connector serving `line`: an active one first, else any with state on that line, else the
    /// first registered connector.
    pub(crate) fn connector_for_line(&self, line: u64) -> Option<String> {
        let on_line = |want_active: bool| {
            self.lines
                .iter()
                .find(|((_, l), state)| *l == line && (state.active || !want_active))
                .map(|((c, _), _)| c.clone())
        };
        on_line(true)
            .or_else(|| on_line(false))
            .or_else(|| self.connectors.keys().next().cloned())
    }
}

fn bump(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter += 1;
    id
}

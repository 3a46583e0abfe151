//! What the connector settings page shows, independent of how it is drawn: the line's state
//! as `imconnector.status` reports it, the bound channels, an outcome notice and the buttons.

use serde_json::Value;

use super::csrf::Action;

/// What the page shows.
pub struct View {
    pub connector_name: String,
    pub connector_id: String,
    pub portal_domain: String,
    pub member_id: String,
    pub line: u64,
    pub state: LineState,
    /// (channel id, host of its outbound URL) of every channel bound to this portal and line.
    pub channels: Vec<(String, String)>,
    pub notice: Option<Notice>,
    pub forms: Vec<ActionForm>,
    /// Where the forms post: `{public_url}/bitrix/placement/action`.
    pub action_url: String,
}

/// The connector's state on the line, from `imconnector.status` (fact sheet §5.3).
pub enum LineState {
    /// The flags Bitrix24 reported (`None`: not in the answer).
    Known {
        active: Option<bool>,
        configured: Option<bool>,
        status: Option<bool>,
        error: Option<bool>,
    },
    /// The status call failed; why, in words for the page.
    Unknown(String),
}

impl LineState {
    /// Read the `imconnector.status` result (booleans, `Y`/`N` and `1`/`0` are understood).
    pub fn from_status(result: &Value) -> LineState {
        let flag = |key: &str| match result.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_i64().map(|n| n != 0),
            Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "Y" | "1" | "TRUE" => Some(true),
                "N" | "0" | "FALSE" | "" => Some(false),
                _ => None,
            },
            _ => None,
        };
        LineState::Known {
            active: flag("ACTIVE"),
            configured: flag("CONFIGURED"),
            status: flag("STATUS"),
            error: flag("ERROR"),
        }
    }

    /// Whether the connector is enabled on the line: `ACTIVE` when reported, else `CONFIGURED`
    /// (what `imconnector.activate` turns on); `None` when unknown.
    pub fn active(&self) -> Option<bool> {
        match self {
            LineState::Known {
                active, configured, ..
            } => active.or(*configured),
            LineState::Unknown(_) => None,
        }
    }
}

/// A message above the cards (the outcome of an action).
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

impl Notice {
    pub fn success(text: String) -> Notice {
        Notice { ok: true, text }
    }

    pub fn error(text: String) -> Notice {
        Notice { ok: false, text }
    }
}

/// One button with its hidden fields (CSRF token included).
pub struct ActionForm {
    pub action: Action,
    pub fields: Vec<(&'static str, String)>,
}

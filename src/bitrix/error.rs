//! Errors of the Bitrix24 boundary.

/// A failed call to a portal or to the OAuth server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BitrixError {
    /// No installed portal with this member_id (events for it are held).
    #[error("portal {0} has not installed the app")]
    NotInstalled(String),
    /// Connection refused, reset, DNS, TLS… (never includes the URL: it may carry secrets).
    #[error("request failed: {0}")]
    Transport(String),
    #[error("request timed out")]
    Timeout,
    /// Bitrix24's error envelope `{error, error_description}`. `status` is 0 for a command
    /// inside `batch` (Bitrix24 gives no per-command status).
    #[error("{code}: {description}")]
    Api {
        status: u16,
        code: String,
        description: String,
        /// Unix seconds when the method's operating budget frees up (429 OPERATION_TIME_LIMIT).
        operating_reset_at: Option<i64>,
    },
    /// A reply that is neither envelope (e.g. an HTML 502 page from a proxy).
    #[error("unexpected reply (HTTP {status}): {detail}")]
    Decode { status: u16, detail: String },
    /// The OAuth server refused to refresh the tokens.
    #[error("token refresh failed: {0}")]
    Refresh(String),
    /// Local storage failed while reading or saving portal tokens.
    #[error("storage: {0}")]
    Storage(String),
}

impl BitrixError {
    /// The Bitrix24 error code, if this is an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            BitrixError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn transport(e: reqwest::Error) -> BitrixError {
        if e.is_timeout() {
            BitrixError::Timeout
        } else {
            // without_url: the OAuth URL carries client_secret and refresh_token in its query.
            BitrixError::Transport(e.without_url().to_string())
        }
    }
}

impl From<crate::store::StoreError> for BitrixError {
    fn from(e: crate::store::StoreError) -> Self {
        BitrixError::Storage(e.to_string())
    }
}

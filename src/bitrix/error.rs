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
    /// A reply that is neither envelope (e.g. an HTML 502 page from a proxy, a redirect).
    /// `detail` says what was wrong in our words; the reply's own text is only ever logged as a
    /// bounded snippet, never shown on a page or in an API error.
    #[error("unexpected reply (HTTP {status}): {detail}")]
    Decode { status: u16, detail: String },
    /// The authorization server refused the refresh token (`invalid_grant`, `PAYMENT_REQUIRED`,
    /// `invalid_client`…).
    #[error("the authorization server refused the token: {code}")]
    Refresh { code: String, description: String },
    /// The portal's refresh token was refused for good: it must reinstall the app; its work is
    /// held meanwhile.
    #[error("portal {0} must reinstall the app (its authorization was revoked)")]
    NeedsReinstall(String),
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

    /// The portal cannot take calls now (not installed, or it must reinstall): hold its work.
    pub fn holds_portal(&self) -> bool {
        matches!(
            self,
            BitrixError::NotInstalled(_) | BitrixError::NeedsReinstall(_)
        )
    }

    /// An OAuth refusal that no retry can fix: the portal must reinstall (fact sheet §11).
    pub fn revokes_grant(&self) -> bool {
        matches!(self, BitrixError::Refresh { code, .. } if matches!(code.as_str(), "invalid_grant" | "PAYMENT_REQUIRED"))
    }

    pub(crate) fn read(e: crate::outbound_http::ReadError) -> BitrixError {
        match e {
            crate::outbound_http::ReadError::Timeout => BitrixError::Timeout,
            other => BitrixError::Transport(other.to_string()),
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

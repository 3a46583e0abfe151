//! Injected faults (errors, delays, operating-time blocks) and the rules that select them.

use std::time::{Duration, Instant, SystemTime};

use super::envelope::{ApiError, unix_secs};
use super::state::PortalState;

/// A failure the fake portal can inject into a `/rest/` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 500 `INTERNAL_SERVER_ERROR`.
    Internal,
    /// 503 `QUERY_LIMIT_EXCEEDED`, as if the leaky bucket were full.
    QueryLimit,
    /// 429 `OPERATION_TIME_LIMIT` for the rule's method (or the matched method when the rule has none)
    /// until `reset_in` has passed; every call of that method is refused meanwhile. Afterwards successful
    /// responses of that method carry the reset moment in `time.operating_reset_at`.
    OperationLimit {
        /// How long the method stays blocked.
        reset_in: Duration,
    },
    /// Process the request normally but answer only after this delay (to exercise client timeouts;
    /// the side effects happen even if the client gives up).
    Delay(Duration),
    /// 401 `expired_token`, whatever token was sent.
    ExpiredToken,
    /// 502 with an HTML (non-JSON) body, as a reverse proxy would answer.
    BadGateway,
    /// 413 with an HTML body, as a front proxy answers a body it finds too large (nothing is
    /// processed).
    TooLarge,
    /// A redirect (`status` 301/302/307/308) to `location`, as a portal that moved (or a
    /// hostile one) would answer; nothing is processed.
    Redirect {
        /// HTTP status.
        status: u16,
        /// The `Location` header.
        location: String,
    },
    /// Any error envelope.
    Error {
        /// HTTP status.
        status: u16,
        /// `error` value.
        code: String,
        /// `error_description` value.
        description: String,
    },
}

/// Which requests a [`Fault`] applies to, and how many times.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Method name (case-insensitive); `None` = any request. A named method also matches that method's
    /// commands inside `batch`, where the fault becomes the command's `result_error` entry.
    pub method: Option<String>,
    /// The fault to inject.
    pub fault: Fault,
    /// Number of matching requests (or batch commands) affected; `0` affects none.
    pub times: u32,
}

impl FaultRule {
    /// A rule for any request, once.
    pub fn any(fault: Fault) -> Self {
        FaultRule {
            method: None,
            fault,
            times: 1,
        }
    }

    /// A rule for one method, once.
    pub fn on(method: &str, fault: Fault) -> Self {
        FaultRule {
            method: Some(method.to_owned()),
            fault,
            times: 1,
        }
    }

    /// The same rule for `times` matching requests.
    pub fn times(self, times: u32) -> Self {
        FaultRule { times, ..self }
    }
}

/// An operating-time block set by [`Fault::OperationLimit`].
#[derive(Debug, Clone)]
pub(crate) struct OperatingBlock {
    pub until: Instant,
    pub reset_at_unix: u64,
}

/// Take the first rule matching `method` (lowercase). `include_any` selects whether method-less rules
/// count (they do for whole HTTP requests, not for commands inside a batch).
pub(crate) fn take(state: &mut PortalState, method: &str, include_any: bool) -> Option<Fault> {
    let position = state.faults.iter().position(|rule| {
        rule.times > 0
            && match &rule.method {
                Some(m) => m.eq_ignore_ascii_case(method),
                None => include_any,
            }
    })?;
    let rule = &mut state.faults[position];
    rule.times -= 1;
    let fault = rule.fault.clone();
    let blocked_method = rule
        .method
        .clone()
        .unwrap_or_else(|| method.to_owned())
        .to_ascii_lowercase();
    if rule.times == 0 {
        state.faults.remove(position);
    }
    if let Fault::OperationLimit { reset_in } = &fault {
        let reset_at_unix =
            unix_secs(SystemTime::now() + *reset_in).max(unix_secs(SystemTime::now()) + 1);
        state.operating_blocks.insert(
            blocked_method,
            OperatingBlock {
                until: Instant::now() + *reset_in,
                reset_at_unix,
            },
        );
    }
    Some(fault)
}

/// 429 while `method` (lowercase) is blocked by an operating-time limit.
pub(crate) fn operating_blocked(
    state: &PortalState,
    method: &str,
    now: Instant,
) -> Option<ApiError> {
    let block = state.operating_blocks.get(method)?;
    (now < block.until).then(|| {
        ApiError::new(
            429,
            "OPERATION_TIME_LIMIT",
            format!(
                "Method is blocked due to operation time limit. Reset at {}",
                block.reset_at_unix
            ),
        )
    })
}

/// The error a fault turns into. `None` for [`Fault::Delay`]; [`Fault::BadGateway`] becomes a 502
/// `BAD_GATEWAY` entry where no HTML page can be sent (inside a batch).
pub(crate) fn as_error(fault: &Fault, method: &str, state: &PortalState) -> Option<ApiError> {
    Some(match fault {
        Fault::Internal => ApiError::new(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
        Fault::QueryLimit => ApiError::new(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        Fault::OperationLimit { .. } => operating_blocked(state, method, Instant::now())
            .unwrap_or_else(|| ApiError::new(429, "OPERATION_TIME_LIMIT", "Method is blocked")),
        Fault::Delay(_) => return None,
        Fault::ExpiredToken => ApiError::new(
            401,
            "expired_token",
            "The access token provided has expired.",
        ),
        Fault::BadGateway | Fault::Redirect { .. } | Fault::TooLarge => {
            ApiError::new(502, "BAD_GATEWAY", "Bad Gateway")
        }
        Fault::Error {
            status,
            code,
            description,
        } => ApiError::new(*status, code, description.clone()),
    })
}

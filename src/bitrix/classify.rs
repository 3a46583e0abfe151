//! Pure classification of Bitrix24 failures into what the caller should do next.

use super::BitrixError;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later; `throttle` means the portal's request budget is exhausted (back off the
    /// whole portal, not only these items); `not_before` is a unix-seconds hint from Bitrix24.
    Transient {
        throttle: bool,
        not_before: Option<i64>,
    },
    /// Bitrix24 rejected the request itself; retrying the same request cannot succeed.
    Final,
}

/// Classify an error (fact sheet §1.5, §2).
pub fn classify(err: &BitrixError) -> Class {
    let transient = Class::Transient {
        throttle: false,
        not_before: None,
    };
    match err {
        BitrixError::Api {
            status,
            code,
            operating_reset_at,
            ..
        } => match code.as_str() {
            "QUERY_LIMIT_EXCEEDED" => Class::Transient {
                throttle: true,
                not_before: None,
            },
            "OPERATION_TIME_LIMIT" => Class::Transient {
                throttle: false,
                not_before: *operating_reset_at,
            },
            // The portal is gone for good.
            "PORTAL_DELETED" => Class::Final,
            // Token problems: refreshed by the client; if one still escapes, a later attempt
            // (after a refresh or a reinstall) can succeed.
            "expired_token"
            | "invalid_token"
            | "INTERNAL_SERVER_ERROR"
            | "ERROR_UNEXPECTED_ANSWER" => transient,
            // Hard blocks (fact sheet §11): the client suspends the portal for a day and says
            // until when; nothing is retried before.
            "NO_AUTH_FOUND" | "OVERLOAD_LIMIT" => Class::Transient {
                throttle: true,
                not_before: *operating_reset_at,
            },
            _ if *status == 429 => Class::Transient {
                throttle: true,
                not_before: *operating_reset_at,
            },
            _ if *status >= 500 => transient,
            _ => Class::Final,
        },
        // A redirect is not followed: the portal may have moved, and the next token refresh
        // brings its new address (contract §5), so it is worth retrying.
        BitrixError::Decode { status, .. }
            if (200..300).contains(status) || ((400..500).contains(status) && *status != 429) =>
        {
            Class::Final
        }
        BitrixError::Decode { .. }
        | BitrixError::Transport(_)
        | BitrixError::Timeout
        | BitrixError::NotInstalled(_)
        | BitrixError::NeedsReinstall(_)
        | BitrixError::Refresh { .. }
        | BitrixError::Storage(_) => transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> BitrixError {
        BitrixError::Api {
            status,
            code: code.into(),
            description: String::new(),
            operating_reset_at: Some(1_700_000_000),
        }
    }

    #[test]
    fn each_error_is_classified_as_the_fact_sheet_implies() {
        let t = |throttle, not_before| Class::Transient {
            throttle,
            not_before,
        };
        let cases = [
            (api(503, "QUERY_LIMIT_EXCEEDED"), t(true, None)),
            (api(0, "QUERY_LIMIT_EXCEEDED"), t(true, None)),
            (
                api(429, "OPERATION_TIME_LIMIT"),
                t(false, Some(1_700_000_000)),
            ),
            (api(429, "SOMETHING_NEW"), t(true, Some(1_700_000_000))),
            (api(500, "INTERNAL_SERVER_ERROR"), t(false, None)),
            (api(0, "INTERNAL_SERVER_ERROR"), t(false, None)),
            (api(502, "WHATEVER"), t(false, None)),
            (api(401, "expired_token"), t(false, None)),
            (api(401, "invalid_token"), t(false, None)),
            (api(401, "NO_AUTH_FOUND"), t(true, Some(1_700_000_000))),
            (api(503, "OVERLOAD_LIMIT"), t(true, Some(1_700_000_000))),
            (
                BitrixError::Decode {
                    status: 302,
                    detail: "a redirect (not followed)".into(),
                },
                t(false, None),
            ),
            (api(500, "PORTAL_DELETED"), Class::Final),
            (api(400, "ERROR_ARGUMENT"), Class::Final),
            (api(400, "NOT_ACTIVE_LINE"), Class::Final),
            (api(403, "WRONG_AUTH_TYPE"), Class::Final),
            (api(0, "ERROR_BATCH_METHOD_NOT_ALLOWED"), Class::Final),
            (BitrixError::Timeout, t(false, None)),
            (BitrixError::Transport("reset".into()), t(false, None)),
            (
                BitrixError::Decode {
                    status: 502,
                    detail: "html".into(),
                },
                t(false, None),
            ),
            (
                BitrixError::Decode {
                    status: 200,
                    detail: "{}".into(),
                },
                Class::Final,
            ),
            (BitrixError::NotInstalled("p".into()), t(false, None)),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&err), want, "{err:?}");
        }
    }
}

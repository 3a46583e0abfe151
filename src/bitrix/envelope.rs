//! The two reply envelopes of Bitrix24 REST (fact sheet §1.3, §1.4) as typed results.

use serde_json::Value;

use super::BitrixError;

/// A successful reply: `result` plus the optional `time` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    pub result: Value,
    /// `time.operating_reset_at`, when present (cloud only).
    pub operating_reset_at: Option<i64>,
    /// `total` of list methods.
    pub total: Option<u64>,
    /// `time.duration`: the server time the request took, in seconds.
    pub duration: Option<f64>,
}

/// Parse a reply body of any HTTP status into a success or a typed error.
pub fn parse(status: u16, body: &[u8]) -> Result<Success, BitrixError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| BitrixError::Decode {
        status,
        detail: if (300..400).contains(&status) {
            "a redirect (not followed)".into()
        } else {
            "not JSON".into()
        },
    })?;
    if let Some(err) = error_of(&value, status) {
        return Err(err);
    }
    if !(200..300).contains(&status) {
        return Err(BitrixError::Decode {
            status,
            detail: "no error envelope".into(),
        });
    }
    match value {
        Value::Object(mut map) if map.contains_key("result") => {
            let operating_reset_at = map
                .get("time")
                .and_then(|t| t.get("operating_reset_at"))
                .and_then(as_i64);
            let total = map.get("total").and_then(as_i64).map(|t| t.max(0) as u64);
            let duration = map
                .get("time")
                .and_then(|t| t.get("duration"))
                .and_then(Value::as_f64);
            Ok(Success {
                result: map.remove("result").unwrap_or(Value::Null),
                operating_reset_at,
                total,
                duration,
            })
        }
        _ => Err(BitrixError::Decode {
            status,
            detail: "no result".into(),
        }),
    }
}

/// `{error, error_description}` (top level, or one `result_error` entry of a batch) as an error.
pub fn error_of(value: &Value, status: u16) -> Option<BitrixError> {
    let code = value.get("error")?;
    let code = match code {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(BitrixError::Api {
        status,
        code,
        description: value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        operating_reset_at: value
            .get("time")
            .and_then(|t| t.get("operating_reset_at"))
            .and_then(as_i64),
    })
}

/// Integers that may arrive as JSON numbers or as strings (form-encoded sources).
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_envelope_yields_result_and_operating_reset() {
        let body = br#"{"result":{"SUCCESS":true},"time":{"start":1778747192.910734,"finish":1778747193.530359,"duration":0.6196,"processing":0.0323,"date_start":"2026-05-14T10:26:32+02:00","date_finish":"2026-05-14T10:26:33+02:00","operating_reset_at":1778747792,"operating":3.3076}}"#;
        let ok = parse(200, body).unwrap();
        assert_eq!(ok.result["SUCCESS"], Value::Bool(true));
        assert_eq!(ok.operating_reset_at, Some(1_778_747_792));
        assert_eq!(ok.duration, Some(0.6196));
    }

    #[test]
    fn a_success_envelope_without_time_is_fine() {
        let ok = parse(200, br#"{"result":true}"#).unwrap();
        assert_eq!(ok.result, Value::Bool(true));
        assert_eq!(ok.operating_reset_at, None);
    }

    #[test]
    fn error_envelopes_become_typed_errors_with_their_status() {
        let cases: [(u16, &[u8], &str); 4] = [
            (503, br#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#, "QUERY_LIMIT_EXCEEDED"),
            (401, br#"{"error":"expired_token","error_description":"The access token provided has expired."}"#, "expired_token"),
            (429, br#"{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked"}"#, "OPERATION_TIME_LIMIT"),
            (400, br#"{"error":"ERROR_ARGUMENT","error_description":"Argument 'LINE' is null or empty"}"#, "ERROR_ARGUMENT"),
        ];
        for (status, body, code) in cases {
            match parse(status, body) {
                Err(BitrixError::Api {
                    status: s, code: c, ..
                }) => {
                    assert_eq!(
                        (s, c.as_str()),
                        (status, code),
                        "{}",
                        String::from_utf8_lossy(body)
                    )
                }
                other => panic!("{code}: got {other:?}"),
            }
        }
    }

    #[test]
    fn non_json_and_unenveloped_replies_are_decode_errors() {
        assert!(matches!(
            parse(502, b"<html>Bad Gateway</html>"),
            Err(BitrixError::Decode { status: 502, .. })
        ));
        assert!(matches!(
            parse(200, br#"{"foo":1}"#),
            Err(BitrixError::Decode { status: 200, .. })
        ));
        assert!(matches!(
            parse(500, br#"{"result":1}"#),
            Err(BitrixError::Decode { status: 500, .. })
        ));
    }
}

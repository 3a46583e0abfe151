//! Reading method parameters the way PHP does: top-level names case-insensitively, scalars as text.
//!
//! Form bodies deliver every scalar as a string and JSON bodies deliver typed values, so every reader
//! here accepts both (`"107"` and `107` are the same LINE).

use serde_json::Value;

use super::envelope::ApiError;

/// Top-level parameter, name matched case-insensitively (Bitrix24 upper-cases v1 parameter names).
pub(crate) fn get<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    let map = params.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A scalar as text: strings as-is, numbers in decimal, booleans `"1"`/`""` (PHP's string cast);
/// containers and null → `None`.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

/// Non-empty text at a nested path (`["user", "id"]`), for item fields.
pub(crate) fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut node = value;
    for key in path {
        node = node.get(key)?;
    }
    scalar_text(node).filter(|s| !s.is_empty())
}

/// Optional non-empty top-level text.
pub(crate) fn opt_str(params: &Value, name: &str) -> Option<String> {
    get(params, name)
        .and_then(scalar_text)
        .filter(|s| !s.trim().is_empty())
}

/// Required non-empty text, else 400 `ERROR_ARGUMENT`.
pub(crate) fn req_str(params: &Value, name: &str) -> Result<String, ApiError> {
    opt_str(params, name).ok_or_else(|| ApiError::argument(name))
}

/// PHP `intval` of a parameter: missing or non-numeric → 0.
pub(crate) fn int(params: &Value, name: &str) -> u64 {
    get(params, name).map(int_value).unwrap_or(0)
}

/// PHP `intval` of a value.
pub(crate) fn int_value(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => {
            let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        }
        Value::Bool(b) => u64::from(*b),
        _ => 0,
    }
}

/// Required positive integer, else 400 `ERROR_ARGUMENT`.
pub(crate) fn req_int(params: &Value, name: &str) -> Result<u64, ApiError> {
    match int(params, name) {
        0 => Err(ApiError::argument(name)),
        n => Ok(n),
    }
}

/// `Y`/`N`-style flag: `Y`, `1`, `true` (any case) → true.
pub(crate) fn flag(params: &Value, name: &str) -> bool {
    get(params, name).is_some_and(flag_value)
}

/// The same test for a value that is already at hand.
pub(crate) fn flag_value(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        other => scalar_text(other)
            .is_some_and(|s| matches!(s.to_ascii_uppercase().as_str(), "Y" | "1" | "TRUE")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn readers_accept_form_and_json_shapes() {
        let p =
            json!({"connector": "x", "LINE": "107", "n": 5, "b": true, "empty": " ", "halt": "0"});
        assert_eq!(req_str(&p, "CONNECTOR").unwrap(), "x");
        assert_eq!(req_int(&p, "line").unwrap(), 107);
        assert_eq!(int(&p, "n"), 5);
        assert!(flag(&p, "b"));
        assert!(!flag(&p, "halt"));
        assert_eq!(req_str(&p, "empty"), Err(ApiError::argument("empty")));
        assert_eq!(req_int(&p, "missing"), Err(ApiError::argument("missing")));
        assert_eq!(
            text_at(&json!({"user": {"id": 42}}), &["user", "id"]).as_deref(),
            Some("42")
        );
    }
}

//! The simulators' own PHP-style form codec (`http_build_query` / `parse_str`), written apart
//! from the gateway's so that a codec bug on either side shows in the tests.
//!
//! Decoding: `a[b][c]=1`, `a[0]=x` and `a[]=x` (append) nest; every leaf is a JSON string; a
//! container whose keys are exactly `0..n-1` becomes an array; the last of repeated scalars wins.
//! Bounds keep a hostile body cheap (the fake is a test double, not a hardened server).
//! Encoding: objects as `key[sub]`, arrays as `key[0]`…, `true`/`false` as `1`/`0`, `null` as `""`,
//! numbers as their decimal text.

use serde_json::{Map, Value};

/// Most fields, bracket levels and key bytes the decoder takes.
const MAX_FIELDS: usize = 100_000;
const MAX_DEPTH: usize = 32;
const MAX_KEY_BYTES: usize = 4096;

/// Why a body does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(pub String);

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormError {}

/// Encode a JSON object as a form body.
pub fn encode(value: &Value) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    if let Value::Object(map) = value {
        for (key, child) in map {
            put(&mut out, key.clone(), child);
        }
    }
    out.finish()
}

fn put(out: &mut form_urlencoded::Serializer<'_, String>, name: String, value: &Value) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| put(out, format!("{name}[{k}]"), v)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| put(out, format!("{name}[{i}]"), v)),
        Value::String(s) => {
            out.append_pair(&name, s);
        }
        Value::Number(n) => {
            out.append_pair(&name, &n.to_string());
        }
        Value::Bool(b) => {
            out.append_pair(&name, if *b { "1" } else { "0" });
        }
        Value::Null => {
            out.append_pair(&name, "");
        }
    }
}

/// Decode a query string or form body.
pub fn decode(input: &str) -> Result<Value, FormError> {
    decode_bytes(input.as_bytes())
}

/// [`decode`] for raw bytes.
pub fn decode_bytes(input: &[u8]) -> Result<Value, FormError> {
    let mut root = Map::new();
    for (i, (name, value)) in form_urlencoded::parse(input).enumerate() {
        if i >= MAX_FIELDS {
            return Err(FormError(format!("more than {MAX_FIELDS} fields")));
        }
        if name.len() > MAX_KEY_BYTES {
            return Err(FormError(format!(
                "a key is longer than {MAX_KEY_BYTES} bytes"
            )));
        }
        let path = segments(&name)?;
        insert(&mut root, &path, value.into_owned())?;
    }
    Ok(arrays(Value::Object(root)))
}

/// `a[b][]` → `["a", "b", ""]`.
fn segments(name: &str) -> Result<Vec<String>, FormError> {
    let bad = || FormError(format!("malformed key {name:?}"));
    let (head, mut rest) = match name.find('[') {
        Some(at) => (&name[..at], &name[at..]),
        None => (name, ""),
    };
    if head.is_empty() {
        return Err(bad());
    }
    let mut out = vec![head.to_string()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(bad)?;
        let close = inner.find(']').ok_or_else(bad)?;
        out.push(inner[..close].to_string());
        rest = &inner[close + 1..];
        if out.len() > MAX_DEPTH {
            return Err(FormError(format!("more than {MAX_DEPTH} bracket levels")));
        }
    }
    Ok(out)
}

fn insert(map: &mut Map<String, Value>, path: &[String], value: String) -> Result<(), FormError> {
    let (first, rest) = path.split_first().expect("a path has a head");
    let key = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        map.insert(key, Value::String(value));
        return Ok(());
    }
    let child = map
        .entry(key.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(inner) => insert(inner, rest, value),
        _ => Err(FormError(format!(
            "{key:?} is both a value and a container"
        ))),
    }
}

/// Containers keyed exactly `0..n-1` become arrays (in index order).
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let n = map.len();
            let indexed = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
            if indexed {
                let mut map = map;
                Value::Array(
                    (0..n)
                        .map(|i| arrays(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                        .collect(),
                )
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_round_trip_as_php_sends_them() {
        let value = json!({
            "event": "ONIMCONNECTORMESSAGEADD",
            "data": {"MESSAGES": [{"im": {"chat_id": 5}, "message": {"text": "a&b=c [x]"}}], "ok": true},
            "auth": {"member_id": "m", "none": null}
        });
        let body = encode(&value);
        assert!(
            body.contains("data%5BMESSAGES%5D%5B0%5D%5Bim%5D%5Bchat_id%5D=5"),
            "{body}"
        );
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "event": "ONIMCONNECTORMESSAGEADD",
                "data": {"MESSAGES": [{"im": {"chat_id": "5"}, "message": {"text": "a&b=c [x]"}}], "ok": "1"},
                "auth": {"member_id": "m", "none": ""}
            })
        );
    }

    #[test]
    fn appends_plus_signs_and_bad_keys() {
        assert_eq!(
            decode("a[]=x&a[]=y&b=one+two").unwrap(),
            json!({"a": ["x", "y"], "b": "one two"})
        );
        assert_eq!(decode("a[1]=x").unwrap(), json!({"a": {"1": "x"}}));
        assert!(decode("a[b=1").is_err());
        assert!(decode("[x]=1").is_err());
        assert!(decode("a=1&a[b]=2").is_err());
    }
}

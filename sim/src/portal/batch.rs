//! `batch`: up to 50 `"method?query"` commands run in order with `$result[...]` references (§2.3).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::envelope::{ApiError, time_block};
use super::faults::{self, Fault};
use super::params;
use super::rest::{Ctx, dispatch};
use super::state::PortalState;
use crate::form;

/// Longest batch Bitrix24 accepts.
pub(crate) const MAX_COMMANDS: usize = 50;

/// `cmd` as ordered (key, command string) pairs; an array gets keys `0..n-1`.
fn commands(p: &Value) -> Vec<(String, Value)> {
    match params::get(p, "cmd") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Split `"method?query"`; the method keeps its case (for request records).
fn split(command: &str) -> (&str, &str) {
    let (method, query) = command.split_once('?').unwrap_or((command, ""));
    (method.strip_suffix(".json").unwrap_or(method), query)
}

/// The method of every command, for [`RequestRecord::commands`](super::RequestRecord).
pub(crate) fn command_methods(p: &Value) -> Vec<String> {
    commands(p)
        .iter()
        .map(|(_, c)| split(c.as_str().unwrap_or_default()).0.to_owned())
        .collect()
}

/// `[]` for an empty member, as PHP serializes an empty array.
fn member(map: Map<String, Value>) -> Value {
    if map.is_empty() {
        json!([])
    } else {
        Value::Object(map)
    }
}

/// Run the batch. Command-level failures go to `result_error`; the HTTP answer is 200 regardless.
pub(crate) fn run(
    st: &mut PortalState,
    cx: &mut Ctx<'_>,
    p: &Value,
    delay: &mut Option<Duration>,
) -> Result<Value, ApiError> {
    let cmds = commands(p);
    if cmds.is_empty() {
        return Err(ApiError::argument("cmd"));
    }
    if cmds.len() > MAX_COMMANDS {
        return Err(ApiError::bad(
            "ERROR_BATCH_LENGTH_EXCEEDED",
            format!(
                "Max batch length exceeded: {} commands, at most {MAX_COMMANDS}",
                cmds.len()
            ),
        ));
    }
    let halt = params::flag(p, "halt");
    let denied: Vec<String> = cx
        .shared
        .config
        .batch_denied_methods
        .iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let (mut results, mut errors, mut totals, mut times) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for (key, command) in cmds {
        if cx.cut {
            break;
        }
        let started = SystemTime::now();
        let spent_before = cx.spent;
        let outcome = run_one(st, cx, &command, &denied, &results, delay);
        match outcome {
            Ok(value) => {
                if let Some(items) = value.as_array() {
                    totals.insert(key.clone(), json!(items.len()));
                }
                let finish = SystemTime::now() + (cx.spent - spent_before);
                times.insert(key.clone(), Value::Object(time_block(started, finish)));
                results.insert(key, value);
            }
            Err(err) => {
                errors.insert(key, err.body());
                if halt {
                    break;
                }
            }
        }
    }
    Ok(json!({
        "result": member(results),
        "result_error": member(errors),
        "result_total": member(totals),
        // No fake method pages its results, so there is never a next page.
        "result_next": [],
        "result_time": member(times),
    }))
}

fn run_one(
    st: &mut PortalState,
    cx: &mut Ctx<'_>,
    command: &Value,
    denied: &[String],
    results: &Map<String, Value>,
    delay: &mut Option<Duration>,
) -> Result<Value, ApiError> {
    let text = command
        .as_str()
        .ok_or_else(|| ApiError::bad("ERROR_ARGUMENT", "A batch command must be a string"))?;
    let (method, query) = split(text);
    let method = method.to_ascii_lowercase();
    if method == "batch" || denied.contains(&method) {
        return Err(ApiError::new(
            405,
            "ERROR_BATCH_METHOD_NOT_ALLOWED",
            format!("Method '{method}' is not allowed for batch usage"),
        ));
    }
    // Faults aimed at this method hit the command, not the whole batch; a Delay delays the batch answer.
    if let Some(fault) = faults::take(st, &method, false) {
        match fault {
            Fault::Delay(d) => *delay = Some(delay.unwrap_or_default() + d),
            other => {
                return Err(faults::as_error(&other, &method, st).expect("only Delay has no error"));
            }
        }
    }
    if let Some(err) = faults::operating_blocked(st, &method, Instant::now()) {
        return Err(err);
    }
    let mut params = form::decode_bytes(query.as_bytes())
        .map_err(|e| ApiError::bad("INVALID_REQUEST", format!("Bad command: {e}")))?;
    substitute_all(&mut params, results);
    dispatch(st, cx, &method, &params)
}

/// Replace `$result[key][field]...` references in every string leaf.
fn substitute_all(value: &mut Value, results: &Map<String, Value>) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| substitute_all(v, results)),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute_all(v, results)),
        Value::String(text) if text.contains("$result[") => *value = substitute(text, results),
        _ => {}
    }
}

/// A string that is exactly one reference takes the referenced value whole (an id stays a number,
/// a list stays a list); references inside longer text are replaced by their text, missing ones by "".
fn substitute(text: &str, results: &Map<String, Value>) -> Value {
    if let Some((path, rest)) = parse_reference(text)
        && rest.is_empty()
    {
        return lookup(results, &path).cloned().unwrap_or_else(|| json!(""));
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("$result[") {
        out.push_str(&rest[..at]);
        match parse_reference(&rest[at..]) {
            Some((path, after)) => {
                let value = lookup(results, &path);
                out.push_str(&value.and_then(params::scalar_text).unwrap_or_default());
                rest = after;
            }
            None => {
                out.push_str("$result[");
                rest = &rest[at + "$result[".len()..];
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

/// `$result[a][b][0]tail` → (["a", "b", "0"], "tail").
fn parse_reference(text: &str) -> Option<(Vec<String>, &str)> {
    let mut rest = text.strip_prefix("$result")?;
    let mut path = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        let close = inner.find(']')?;
        path.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    (!path.is_empty()).then_some((path, rest))
}

fn lookup<'a>(results: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut node = results.get(first)?;
    for key in rest {
        node = match node {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let results: Map<String, Value> =
            serde_json::from_value(json!({"u": {"ID": 5, "DEP": [7, 8]}, "s": "x"})).unwrap();
        assert_eq!(substitute("$result[u][ID]", &results), json!(5));
        assert_eq!(substitute("$result[u][DEP]", &results), json!([7, 8]));
        assert_eq!(
            substitute("id-$result[u][DEP][1]-$result[s]!", &results),
            json!("id-8-x!")
        );
        assert_eq!(substitute("$result[nope][x]", &results), json!(""));
        assert_eq!(
            substitute("cost $result[ 5", &results),
            json!("cost $result[ 5")
        );
    }
}

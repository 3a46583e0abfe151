//! Temporary stand-in for the PHP form codec (replaced by the full one on merge).
use serde_json::Value;

pub fn encode(value: &Value) -> String {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (k, v) in map {
            walk(k.clone(), v, &mut out);
        }
    }
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(out)
        .finish()
}

fn walk(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| walk(format!("{prefix}[{k}]"), v, out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(format!("{prefix}[{i}]"), v, out)),
        Value::String(s) => out.push((prefix, s.clone())),
        Value::Bool(b) => out.push((prefix, if *b { "1" } else { "0" }.into())),
        Value::Null => out.push((prefix, String::new())),
        Value::Number(n) => out.push((prefix, n.to_string())),
    }
}

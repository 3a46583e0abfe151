//! PHP `http_build_query` / `parse_str` codec for Bitrix24 form bodies, query strings and `batch` commands.
//!
//! Bitrix24 sends events as `application/x-www-form-urlencoded` bodies with bracketed keys
//! (`data[MESSAGES][0][im][chat_id]=1807`) and `batch` commands are query strings in the same style
//! (fact sheet §1.2, §2.3, §4.2). This module is pure: no I/O, no allocation beyond the result.

use std::collections::HashMap;

use serde_json::{Map, Value};
use url::form_urlencoded;

/// Maximum bracket nesting accepted by [`decode`] (PHP's own default is 64; 32 is plenty for Bitrix payloads).
pub const MAX_DEPTH: usize = 32;
/// Maximum number of `name=value` fields accepted by [`decode`].
pub const MAX_FIELDS: usize = 10_000;

/// Why a form body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum FormError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("invalid percent-encoding in field {field:?}")]
    InvalidPercentEncoding {
        /// The raw (still encoded) field text.
        field: String,
    },
    /// The percent-decoded bytes are not UTF-8.
    #[error("field {field:?} is not valid UTF-8 after percent-decoding")]
    InvalidUtf8 {
        /// The raw (still encoded) field text.
        field: String,
    },
    /// A field whose name is empty (`=x`) or starts with a bracket (`[a]=x`).
    #[error("empty key in field {field:?}")]
    EmptyKey {
        /// The raw (still encoded) field text.
        field: String,
    },
    /// Brackets in the key do not pair up (`a[b=1`, `a]=1`, `a[b[c]]=1`, `a[b]c=1`).
    #[error("unbalanced brackets in key {key:?}")]
    UnbalancedBrackets {
        /// The decoded key.
        key: String,
    },
    /// The same path is used both as a scalar and as a container (`a=1&a[b]=2`).
    #[error("key {key:?} is used both as a scalar and as a container")]
    ScalarContainerConflict {
        /// The decoded key of the field that clashed.
        key: String,
    },
    /// More than [`MAX_DEPTH`] bracket levels.
    #[error("key {key:?} nests deeper than {max} levels")]
    TooDeep {
        /// The decoded key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_FIELDS`] fields.
    #[error("more than {max} fields")]
    TooManyFields {
        /// The limit.
        max: usize,
    },
}

/// Encode a JSON value as PHP `http_build_query` would.
///
/// Objects become `key[sub]`, arrays `key[0]`, `key[1]`…; strings are sent as-is, numbers as their
/// decimal text (integers are printed from their integer representation, never through `f64`),
/// `true` → `"1"` and `false` → `"0"` (PHP casts booleans to int in `http_build_query`, and Bitrix24
/// events use the same convention, fact sheet §4.2), `null` → `""` (PHP would drop the field; the events
/// table in §4.2 documents `null` as `""`, and keeping the key is the more informative choice).
/// Empty arrays/objects produce no field at all, exactly like PHP.
///
/// Keys and values are percent-encoded with `application/x-www-form-urlencoded` rules (space → `+`);
/// the brackets of nested keys are encoded as `%5B`/`%5D` like PHP does. The top level must be an
/// object; any other value encodes to `""`.
pub fn encode(value: &Value) -> String {
    let Value::Object(map) = value else {
        return String::new();
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, child) in map {
        encode_into(&mut out, key, child);
    }
    out.finish()
}

fn encode_into(out: &mut form_urlencoded::Serializer<'_, String>, name: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                encode_into(out, &format!("{name}[{key}]"), child);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                encode_into(out, &format!("{name}[{index}]"), child);
            }
        }
        // The serializer percent-encodes the whole name, brackets included.
        Value::String(text) => {
            out.append_pair(name, text);
        }
        // serde_json prints integers from their i64/u64 form, so large ids never lose precision.
        Value::Number(number) => {
            out.append_pair(name, &number.to_string());
        }
        Value::Bool(flag) => {
            out.append_pair(name, if *flag { "1" } else { "0" });
        }
        Value::Null => {
            out.append_pair(name, "");
        }
    }
}

/// Decode a form body / query string into nested JSON.
///
/// Every leaf is a JSON string. `a[b][c]=1`, `a[0][x]=..` and `a[]=x&a[]=y` (push) are understood.
/// A container whose keys are exactly `0..n-1` (in any order) becomes an array in index order, any other
/// container an object. A later duplicate of a scalar key wins (PHP semantics). `+` decodes to a space.
/// Unlike PHP, dots and spaces in top-level names are kept as they are, and malformed input is an error
/// instead of being silently repaired; see [`FormError`] for the cases.
pub fn decode(input: &str) -> Result<Value, FormError> {
    decode_bytes(input.as_bytes())
}

/// [`decode`] for raw bytes (an HTTP body). Invalid UTF-8 anywhere is an error.
pub fn decode_bytes(input: &[u8]) -> Result<Value, FormError> {
    let mut root = Node::new_map();
    let mut fields = 0usize;
    for field in input.split(|b| *b == b'&').filter(|f| !f.is_empty()) {
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(FormError::TooManyFields { max: MAX_FIELDS });
        }
        let raw = || String::from_utf8_lossy(field).into_owned();
        let (name, value) = match field.iter().position(|b| *b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..]),
            None => (field, &b""[..]),
        };
        let name = percent_decode(name)
            .ok_or_else(|| FormError::InvalidPercentEncoding { field: raw() })?;
        let value = percent_decode(value)
            .ok_or_else(|| FormError::InvalidPercentEncoding { field: raw() })?;
        let name = String::from_utf8(name).map_err(|_| FormError::InvalidUtf8 { field: raw() })?;
        let value =
            String::from_utf8(value).map_err(|_| FormError::InvalidUtf8 { field: raw() })?;
        let path = split_key(&name, raw)?;
        root.insert(&path, value, &name)?;
    }
    Ok(root.into_value(true))
}

/// Strict `application/x-www-form-urlencoded` byte decoding. `url::form_urlencoded::parse` is lossy
/// (it keeps a bad `%zz` verbatim and replaces invalid UTF-8), and we must reject both.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*input.get(i + 1)?)?;
                let lo = hex_digit(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Some(out)
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// One step of a decoded key path: a named/indexed child or a push (`[]`).
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Push,
}

/// Split `a[b][][c]` into `[Key(a), Key(b), Push, Key(c)]`.
fn split_key(name: &str, raw: impl Fn() -> String) -> Result<Vec<Segment>, FormError> {
    let unbalanced = || FormError::UnbalancedBrackets {
        key: name.to_owned(),
    };
    let base_end = name.find('[').unwrap_or(name.len());
    let base = &name[..base_end];
    if base.is_empty() {
        return Err(FormError::EmptyKey { field: raw() });
    }
    if base.contains(']') {
        return Err(unbalanced());
    }
    let mut path = vec![Segment::Key(base.to_owned())];
    let mut rest = &name[base_end..];
    while !rest.is_empty() {
        // Every remaining piece must be exactly `[...]` with no brackets inside.
        let inner_and_after = rest.strip_prefix('[').ok_or_else(unbalanced)?;
        let close = inner_and_after.find(']').ok_or_else(unbalanced)?;
        let inner = &inner_and_after[..close];
        if inner.contains('[') {
            return Err(unbalanced());
        }
        path.push(if inner.is_empty() {
            Segment::Push
        } else {
            Segment::Key(inner.to_owned())
        });
        if path.len() - 1 > MAX_DEPTH {
            return Err(FormError::TooDeep {
                key: name.to_owned(),
                max: MAX_DEPTH,
            });
        }
        rest = &inner_and_after[close + 1..];
    }
    Ok(path)
}

/// Intermediate tree: keeps first-insertion order and PHP's "next integer key" for pushes.
enum Node {
    Leaf(String),
    Map {
        entries: Vec<(String, Node)>,
        index: HashMap<String, usize>,
        next_index: u64,
    },
}

impl Node {
    fn new_map() -> Node {
        Node::Map {
            entries: Vec::new(),
            index: HashMap::new(),
            next_index: 0,
        }
    }

    /// Insert `value` at `path` below this map node. `key` is only used for error messages.
    fn insert(&mut self, path: &[Segment], value: String, key: &str) -> Result<(), FormError> {
        let conflict = || FormError::ScalarContainerConflict {
            key: key.to_owned(),
        };
        let Node::Map {
            entries,
            index,
            next_index,
        } = self
        else {
            return Err(conflict());
        };
        let (first, rest) = path
            .split_first()
            .expect("split_key never returns an empty path");
        let name = match first {
            Segment::Key(name) => name.clone(),
            Segment::Push => next_index.to_string(),
        };
        // PHP's push index is one past the largest non-negative integer key seen so far.
        if let Some(n) = canonical_index(&name) {
            *next_index = (*next_index).max(n.saturating_add(1));
        }
        let slot = match index.get(&name) {
            Some(&at) => &mut entries[at].1,
            None => {
                let fresh = if rest.is_empty() {
                    Node::Leaf(String::new())
                } else {
                    Node::new_map()
                };
                index.insert(name.clone(), entries.len());
                entries.push((name, fresh));
                &mut entries.last_mut().expect("just pushed").1
            }
        };
        match (slot, rest.is_empty()) {
            (Node::Leaf(text), true) => {
                // A later duplicate scalar wins, as in PHP.
                *text = value;
                Ok(())
            }
            (node @ Node::Map { .. }, false) => node.insert(rest, value, key),
            _ => Err(conflict()),
        }
    }

    /// Convert to JSON; `force_object` keeps the top level an object even for keys like `0=a`.
    fn into_value(self, force_object: bool) -> Value {
        match self {
            Node::Leaf(text) => Value::String(text),
            Node::Map { entries, .. } => {
                let n = entries.len();
                // Keys are unique, so n distinct indices that are all below n are exactly 0..n-1.
                let indices: Option<Vec<usize>> = entries
                    .iter()
                    .map(|(name, _)| {
                        canonical_index(name)
                            .filter(|i| *i < n as u64)
                            .map(|i| i as usize)
                    })
                    .collect();
                match indices {
                    Some(indices) if !force_object && n > 0 => {
                        let mut ordered: Vec<Option<Value>> = vec![None; n];
                        for ((_, node), i) in entries.into_iter().zip(indices) {
                            ordered[i] = Some(node.into_value(false));
                        }
                        Value::Array(ordered.into_iter().flatten().collect())
                    }
                    _ => Value::Object(
                        entries
                            .into_iter()
                            .map(|(name, node)| (name, node.into_value(false)))
                            .collect::<Map<_, _>>(),
                    ),
                }
            }
        }
    }
}

/// `"0"`, `"17"` → index; `"007"`, `"-1"`, `"x"` → not an index (PHP keeps those as string keys).
fn canonical_index(name: &str) -> Option<u64> {
    let n: u64 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

#[cfg(test)]
#[path = "form_tests.rs"]
mod tests;

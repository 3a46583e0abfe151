//! PHP `http_build_query` / `parse_str` codec for Bitrix24 form bodies, query strings and `batch` commands.
//!
//! Bitrix24 sends events as `application/x-www-form-urlencoded` bodies with bracketed keys
//! (`data[MESSAGES][0][im][chat_id]=1807`) and `batch` commands are query strings in the same style
//! (fact sheet §1.2, §2.3, §4.2). This module is pure: no I/O, no allocation beyond the result.
//!
//! Decoding is bounded by [`Limits`]: fields, nodes of the tree, bracket depth, key length and
//! entries per container. The work and memory of a decode are proportional to the smaller of the
//! input and those bounds (an adversarial `a[][][]…` body stops at the node bound instead of
//! allocating a map per bracket for every field), and it stops at the first bound crossed.

use std::collections::HashMap;

use serde_json::{Map, Value};
use url::form_urlencoded;

/// Bounds of one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `name=value` fields.
    pub max_fields: usize,
    /// Nodes of the decoded tree (containers and leaves, the root not counted).
    pub max_nodes: usize,
    /// Bracket levels below the top-level name.
    pub max_depth: usize,
    /// Bytes of one decoded field name, brackets included.
    pub max_key_bytes: usize,
    /// Entries of one container (object or array).
    pub max_entries: usize,
}

impl Limits {
    /// Requests from peers (`/bitrix/*` bodies, query strings): Bitrix24's events are a few KB
    /// with a few dozen fields and at most 6 levels (`data[MESSAGES][0][message][files][0][name]`).
    /// `max_fields` is PHP's own `max_input_vars` default, which Bitrix24's servers run with.
    pub const REQUEST: Limits = Limits {
        max_fields: 1_000,
        max_nodes: 4_096,
        max_depth: 16,
        max_key_bytes: 256,
        max_entries: 1_000,
    };
    /// Larger inputs from a trusted side (the fake portal decoding the gateway's own `batch`
    /// commands, whose calls may carry up to 1000 items); still bounded.
    pub const LARGE: Limits = Limits {
        max_fields: 100_000,
        max_nodes: 400_000,
        max_depth: 32,
        max_key_bytes: 4_096,
        max_entries: 100_000,
    };
}

/// Maximum bracket nesting accepted by [`decode`].
pub const MAX_DEPTH: usize = Limits::REQUEST.max_depth;
/// Maximum number of `name=value` fields accepted by [`decode`].
pub const MAX_FIELDS: usize = Limits::REQUEST.max_fields;
/// How much of an offending field or key an error message quotes.
const SNIPPET_CHARS: usize = 64;

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
    /// More than [`Limits::max_depth`] bracket levels.
    #[error("key {key:?} nests deeper than {max} levels")]
    TooDeep {
        /// The decoded key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// More than [`Limits::max_fields`] fields.
    #[error("more than {max} fields")]
    TooManyFields {
        /// The limit.
        max: usize,
    },
    /// More than [`Limits::max_nodes`] nodes in the decoded tree.
    #[error("more than {max} keys and values in the decoded form")]
    TooManyNodes {
        /// The limit.
        max: usize,
    },
    /// A field name longer than [`Limits::max_key_bytes`].
    #[error("key {key:?} is longer than {max} bytes")]
    KeyTooLong {
        /// The start of the decoded key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// A container with more than [`Limits::max_entries`] entries.
    #[error("key {key:?} holds more than {max} entries")]
    TooManyEntries {
        /// The decoded key of the field that crossed the bound.
        key: String,
        /// The limit.
        max: usize,
    },
}

/// The start of `text` (at most [`SNIPPET_CHARS`] characters, `…` when cut), so that an error
/// message never carries a peer's megabyte.
fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
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

/// Decode a form body / query string into nested JSON, within [`Limits::REQUEST`].
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
    decode_with(input, &Limits::REQUEST)
}

/// [`decode_bytes`] within other bounds.
pub fn decode_with(input: &[u8], limits: &Limits) -> Result<Value, FormError> {
    let mut root = Node::new_map();
    let mut budget = Budget { limits, nodes: 0 };
    let mut fields = 0usize;
    for field in input.split(|b| *b == b'&').filter(|f| !f.is_empty()) {
        fields += 1;
        if fields > limits.max_fields {
            return Err(FormError::TooManyFields {
                max: limits.max_fields,
            });
        }
        let raw = || {
            snippet(&String::from_utf8_lossy(
                &field[..field.len().min(4 * SNIPPET_CHARS)],
            ))
        };
        let (name, value) = match field.iter().position(|b| *b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..]),
            None => (field, &b""[..]),
        };
        let too_long = |key: &str| FormError::KeyTooLong {
            key: snippet(key),
            max: limits.max_key_bytes,
        };
        // Each decoded byte takes at most three encoded ones (`%5B`): a longer encoded name
        // is refused before it is decoded.
        if name.len() > 3 * limits.max_key_bytes {
            return Err(too_long(&raw()));
        }
        let name = percent_decode(name)
            .ok_or_else(|| FormError::InvalidPercentEncoding { field: raw() })?;
        let name = String::from_utf8(name).map_err(|_| FormError::InvalidUtf8 { field: raw() })?;
        if name.len() > limits.max_key_bytes {
            return Err(too_long(&name));
        }
        let value = percent_decode(value)
            .ok_or_else(|| FormError::InvalidPercentEncoding { field: raw() })?;
        let value =
            String::from_utf8(value).map_err(|_| FormError::InvalidUtf8 { field: raw() })?;
        let path = split_key(&name, raw, limits.max_depth)?;
        root.insert(&path, value, &name, &mut budget)?;
    }
    Ok(root.into_value(true))
}

/// What a decode has spent of its [`Limits`].
struct Budget<'a> {
    limits: &'a Limits,
    nodes: usize,
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
fn split_key(
    name: &str,
    raw: impl Fn() -> String,
    max_depth: usize,
) -> Result<Vec<Segment>, FormError> {
    let unbalanced = || FormError::UnbalancedBrackets { key: snippet(name) };
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
        if path.len() - 1 > max_depth {
            return Err(FormError::TooDeep {
                key: snippet(name),
                max: max_depth,
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
    fn insert(
        &mut self,
        path: &[Segment],
        value: String,
        key: &str,
        budget: &mut Budget<'_>,
    ) -> Result<(), FormError> {
        let conflict = || FormError::ScalarContainerConflict { key: snippet(key) };
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
                let limits = budget.limits;
                if entries.len() >= limits.max_entries {
                    return Err(FormError::TooManyEntries {
                        key: snippet(key),
                        max: limits.max_entries,
                    });
                }
                budget.nodes += 1;
                if budget.nodes > limits.max_nodes {
                    return Err(FormError::TooManyNodes {
                        max: limits.max_nodes,
                    });
                }
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
            (node @ Node::Map { .. }, false) => node.insert(rest, value, key, budget),
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
mod tests;

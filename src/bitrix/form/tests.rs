//! Unit tests for the `http_build_query` codec in `form.rs`.

use serde_json::{Value, json};

use super::*;

/// What a value looks like after a trip through the wire: every scalar a string, empty containers gone.
fn wire_shape(value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| wire_shape(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(wire_shape).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::String(s) => Some(Value::String(s.clone())),
        Value::Number(n) => Some(Value::String(n.to_string())),
        Value::Bool(b) => Some(Value::String(if *b { "1" } else { "0" }.into())),
        Value::Null => Some(Value::String(String::new())),
    }
}

fn round_trip(value: Value) {
    let encoded = encode(&value);
    let decoded = decode(&encoded).unwrap_or_else(|e| panic!("{encoded}: {e}"));
    assert_eq!(
        decoded,
        wire_shape(&value).unwrap_or_else(|| json!({})),
        "via {encoded}"
    );
}

#[test]
fn encodes_nested_keys_like_php() {
    let value = json!({"fields": {"TITLE": "My company", "PHONE": [{"VALUE": "112233", "VALUE_TYPE": "WORK"}]}});
    let encoded = encode(&value);
    // Insertion order is kept (serde_json `preserve_order`), as PHP arrays keep theirs.
    assert_eq!(
        encoded,
        "fields%5BTITLE%5D=My+company&fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=112233\
         &fields%5BPHONE%5D%5B0%5D%5BVALUE_TYPE%5D=WORK"
    );
}

#[test]
fn encodes_scalars() {
    let value = json!({"s": "a&b=c?d%e[f]#", "i": 9007199254740993u64, "n": -5, "f": 1.5, "t": true,
        "x": false, "z": null, "empty_a": [], "empty_o": {}});
    let encoded = encode(&value);
    assert_eq!(
        encoded,
        "s=a%26b%3Dc%3Fd%25e%5Bf%5D%23&i=9007199254740993&n=-5&f=1.5&t=1&x=0&z="
    );
}

#[test]
fn encode_of_non_object_is_empty() {
    assert_eq!(encode(&json!([1, 2])), "");
    assert_eq!(encode(&json!("x")), "");
    assert_eq!(encode(&Value::Null), "");
    assert_eq!(encode(&json!({})), "");
}

#[test]
fn decodes_fact_sheet_1_2_example() {
    let decoded =
        decode("fields[TITLE]=My%20company&fields[PHONE][0][VALUE]=112233&fields[PHONE][0][VALUE_TYPE]=WORK").unwrap();
    assert_eq!(
        decoded,
        json!({"fields": {"TITLE": "My company", "PHONE": [{"VALUE": "112233", "VALUE_TYPE": "WORK"}]}})
    );
}

#[test]
fn decodes_fact_sheet_4_2_event_sample() {
    let body = "event=ONIMCONNECTORMESSAGEADD&event_handler_id=555&data[CONNECTOR]=myconnector&data[LINE]=107\
        &data[MESSAGES][0][im][chat_id]=1807&data[MESSAGES][0][im][message_id]=86497\
        &data[MESSAGES][0][message][user_id]=27\
        &data[MESSAGES][0][message][text]=%5Bb%5DKlaus+Weber%3A%5B%2Fb%5D+%5Bbr%5DGuten+Tag%21\
        &data[MESSAGES][0][chat][id]=channel-123&ts=1773759161&auth[application_token]=abc";
    let decoded = decode(body).unwrap();
    assert_eq!(
        decoded,
        json!({
            "event": "ONIMCONNECTORMESSAGEADD", "event_handler_id": "555",
            "data": {"CONNECTOR": "myconnector", "LINE": "107", "MESSAGES": [{
                "im": {"chat_id": "1807", "message_id": "86497"},
                "message": {"user_id": "27", "text": "[b]Klaus Weber:[/b] [br]Guten Tag!"},
                "chat": {"id": "channel-123"}}]},
            "ts": "1773759161", "auth": {"application_token": "abc"}
        })
    );
}

#[test]
fn decodes_full_message_add_body_with_encoded_brackets() {
    let event = json!({
        "event": "ONIMCONNECTORMESSAGEADD", "event_handler_id": 7,
        "data": {"CONNECTOR": "oc_gw", "LINE": 3, "MESSAGES": [
            {"im": {"chat_id": 1807, "message_id": 86497}, "message": {"user_id": 27, "text": "héllo & bye"},
             "chat": {"id": "chat-1"}},
            {"im": {"chat_id": 1807, "message_id": 86498}, "message": {"user_id": 27, "text": "second"},
             "chat": {"id": "chat-1"}}]},
        "ts": 1773759161,
        "auth": {"access_token": "tok", "expires": 1773762761, "expires_in": 3600, "scope": "imconnector, imopenlines",
            "domain": "x.bitrix24.com", "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "F",
            "client_endpoint": "https://x.bitrix24.com/rest/", "member_id": "abc", "user_id": 27,
            "application_token": "apptok"}
    });
    let body = encode(&event);
    assert!(
        body.contains("data%5BMESSAGES%5D%5B1%5D%5Bim%5D%5Bmessage_id%5D=86498"),
        "{body}"
    );
    let decoded = decode(&body).unwrap();
    assert_eq!(
        decoded["data"]["MESSAGES"][0]["message"]["text"],
        "héllo & bye"
    );
    assert_eq!(decoded["data"]["MESSAGES"][1]["im"]["message_id"], "86498");
    assert_eq!(decoded["auth"]["scope"], "imconnector, imopenlines");
    round_trip(event);
}

#[test]
fn decodes_scalar_data_and_plus_as_space() {
    assert_eq!(
        decode("event=ONIMCONNECTORLINEDELETE&data=107").unwrap()["data"],
        "107"
    );
    assert_eq!(decode("a=b+c%2Bd").unwrap(), json!({"a": "b c+d"}));
}

#[test]
fn decodes_push_and_sparse_indices() {
    assert_eq!(decode("a[]=x&a[]=y").unwrap(), json!({"a": ["x", "y"]}));
    assert_eq!(
        decode("a[][k]=1&a[][k]=2").unwrap(),
        json!({"a": [{"k": "1"}, {"k": "2"}]})
    );
    // Out-of-order but complete indices still form an array, in index order.
    assert_eq!(decode("a[1]=y&a[0]=x").unwrap(), json!({"a": ["x", "y"]}));
    // Gaps, leading zeros and names make an object.
    assert_eq!(
        decode("a[0]=x&a[2]=z").unwrap(),
        json!({"a": {"0": "x", "2": "z"}})
    );
    assert_eq!(decode("a[00]=x").unwrap(), json!({"a": {"00": "x"}}));
    // A push after an explicit index continues from the largest index, like PHP.
    assert_eq!(
        decode("a[5]=x&a[]=y").unwrap(),
        json!({"a": {"5": "x", "6": "y"}})
    );
    assert_eq!(decode("a[0]=x&a[]=y").unwrap(), json!({"a": ["x", "y"]}));
}

#[test]
fn decode_keeps_field_order() {
    let decoded = decode("cmd[send]=a&cmd[app]=b&cmd[mid]=c&halt=1").unwrap();
    let keys: Vec<&String> = decoded["cmd"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["send", "app", "mid"]);
}

#[test]
fn decode_edge_cases() {
    assert_eq!(decode("").unwrap(), json!({}));
    assert_eq!(decode("&&a=1&&").unwrap(), json!({"a": "1"}));
    assert_eq!(decode("flag").unwrap(), json!({"flag": ""}));
    assert_eq!(
        decode("a=1&a=2").unwrap(),
        json!({"a": "2"}),
        "later duplicate wins"
    );
    assert_eq!(
        decode("0=a&1=b").unwrap(),
        json!({"0": "a", "1": "b"}),
        "top level stays an object"
    );
    assert_eq!(decode("a=x%3Dy=z").unwrap(), json!({"a": "x=y=z"}));
    assert_eq!(
        decode("a%5Bb%5D=1").unwrap(),
        json!({"a": {"b": "1"}}),
        "encoded brackets"
    );
    assert_eq!(
        decode("v=%5B%5D").unwrap(),
        json!({"v": "[]"}),
        "brackets in values are plain text"
    );
    assert_eq!(
        decode("a.b c=1").unwrap(),
        json!({"a.b c": "1"}),
        "no PHP dot mangling"
    );
    assert_eq!(
        decode_bytes("k=%C3%A9&l=é".as_bytes()).unwrap(),
        json!({"k": "é", "l": "é"})
    );
}

#[test]
fn round_trips() {
    round_trip(json!({"a": "1"}));
    round_trip(
        json!({"cmd": {"send": "imconnector.send.messages?CONNECTOR=x&LINE=1", "st": "app.info"}, "halt": 0}),
    );
    round_trip(json!({"deep": {"a": [[["x", "y"], []], {"b": null, "c": [true, false]}]}}));
    round_trip(json!({"weird keys": {"k=1&": "v&=?%#", "ünï": "çødé"}}));
    // An empty nested key cannot survive the trip: `a[]` means "push" on the wire (PHP behaves the same).
    assert_eq!(
        decode(&encode(&json!({"a": {"": "v"}}))).unwrap(),
        json!({"a": ["v"]})
    );
    round_trip(json!({"list": (0..25).map(|i| json!({"id": i})).collect::<Vec<_>>()}));
}

#[test]
fn rejects_unbalanced_brackets() {
    for bad in [
        "a[b=1",
        "a]=1",
        "a[b]c=1",
        "a[b[c]]=1",
        "a[b]]=1",
        "a[=1",
        "a%5Bb=1",
    ] {
        assert!(
            matches!(decode(bad), Err(FormError::UnbalancedBrackets { .. })),
            "{bad}: {:?}",
            decode(bad)
        );
    }
}

#[test]
fn rejects_scalar_container_conflicts() {
    for bad in [
        "a=1&a[b]=2",
        "a[b]=2&a=1",
        "a[0]=1&a[0][x]=2",
        "a[x][y]=1&a[x]=2",
        "a[]=1&a[0][k]=2",
    ] {
        assert_eq!(
            decode(bad),
            Err(FormError::ScalarContainerConflict {
                key: bad
                    .rsplit('&')
                    .next()
                    .unwrap()
                    .split('=')
                    .next()
                    .unwrap()
                    .to_owned()
            }),
            "{bad}"
        );
    }
}

#[test]
fn rejects_empty_keys() {
    for bad in ["=1", "a=1&=2", "[a]=1", "%5Ba%5D=1"] {
        assert!(
            matches!(decode(bad), Err(FormError::EmptyKey { .. })),
            "{bad}"
        );
    }
}

#[test]
fn rejects_bad_percent_encoding_and_utf8() {
    for bad in ["a=%", "a=%4", "a=%zz", "a%G1=1", "a=1&b=%%41"] {
        assert!(
            matches!(decode(bad), Err(FormError::InvalidPercentEncoding { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        decode("a=%FF%FE"),
        Err(FormError::InvalidUtf8 { .. })
    ));
    assert!(matches!(
        decode("%C3=1"),
        Err(FormError::InvalidUtf8 { .. })
    ));
    assert!(matches!(
        decode_bytes(b"a=\xff"),
        Err(FormError::InvalidUtf8 { .. })
    ));
}

#[test]
fn enforces_depth_limit() {
    let ok = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
    assert!(decode(&ok).is_ok());
    let too_deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
    assert_eq!(
        decode(&too_deep),
        Err(FormError::TooDeep {
            key: too_deep.trim_end_matches("=1").to_owned(),
            max: MAX_DEPTH
        })
    );
}

#[test]
fn enforces_field_limit() {
    let ok: Vec<String> = (0..MAX_FIELDS).map(|i| format!("a[]={i}")).collect();
    let decoded = decode(&ok.join("&")).unwrap();
    assert_eq!(decoded["a"].as_array().unwrap().len(), MAX_FIELDS);
    assert_eq!(decoded["a"][MAX_FIELDS - 1], (MAX_FIELDS - 1).to_string());
    let too_many = format!("{}&b=1", ok.join("&"));
    assert_eq!(
        decode(&too_many),
        Err(FormError::TooManyFields { max: MAX_FIELDS })
    );
}

#[test]
fn errors_have_readable_messages() {
    let err = decode("a[b=1").unwrap_err();
    assert_eq!(err.to_string(), "unbalanced brackets in key \"a[b\"");
    assert_eq!(
        decode("a=1&a[b]=2").unwrap_err().to_string(),
        "key \"a[b]\" is used both as a scalar and as a container"
    );
}

#[test]
fn enforces_node_key_and_entry_limits() {
    // 32 pushes per field: the node bound stops it long before the field bound.
    let field = format!("a{}=", "[]".repeat(15));
    let body = vec![field.as_str(); 500].join("&");
    assert_eq!(
        decode(&body),
        Err(FormError::TooManyNodes {
            max: Limits::REQUEST.max_nodes
        })
    );
    let long = format!("{}=1", "k".repeat(Limits::REQUEST.max_key_bytes + 1));
    let err = decode(&long).unwrap_err();
    assert!(matches!(err, FormError::KeyTooLong { .. }), "{err:?}");
    // The message quotes the start of the key only.
    assert!(err.to_string().len() < 200, "{err}");
    // Encoded brackets count once decoded; a name too long even encoded is refused undecoded.
    let encoded = format!("{}=1", "%5B".repeat(10 * Limits::REQUEST.max_key_bytes));
    assert!(matches!(
        decode(&encoded),
        Err(FormError::KeyTooLong { .. })
    ));
    let small = Limits {
        max_entries: 3,
        ..Limits::REQUEST
    };
    assert!(decode_with(b"a[]=1&a[]=2&a[]=3", &small).is_ok());
    assert_eq!(
        decode_with(b"a[]=1&a[]=2&a[]=3&a[]=4", &small),
        Err(FormError::TooManyEntries {
            key: "a[]".into(),
            max: 3
        })
    );
    assert!(matches!(
        decode_with(b"a=1&b=2&c=3&d=4", &small),
        Err(FormError::TooManyEntries { .. })
    ));
}

#[test]
fn errors_quote_only_the_start_of_a_huge_field() {
    let huge = format!("a=%zz{}", "x".repeat(100_000));
    let err = decode(&huge).unwrap_err();
    assert!(
        err.to_string().len() < 300,
        "{} bytes",
        err.to_string().len()
    );
    let deep = format!("a{}=1", "[x]".repeat(30));
    let err = decode(&deep).unwrap_err();
    assert!(matches!(err, FormError::TooDeep { .. }), "{err:?}");
    assert!(err.to_string().len() < 200);
}

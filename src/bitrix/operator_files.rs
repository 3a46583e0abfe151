//! Operators' attachments as the platform receives them (contract §4):
//! `files[{name, url, type?, size?}]` with an absolute `url`.
//!
//! ONIMCONNECTORMESSAGEADD describes them in an undocumented shape (fact sheet §11): production
//! connectors read `files[j][link]`, `[name]`, `[type]`; some captures add `[size]`, `[mime]` and
//! a portal-relative `[downloadLink]` (`/rest/download.json?token=…`). `link` is taken first,
//! then `downloadLink`; a relative one is made absolute against the portal's address (the
//! scheme and host of its stored `client_endpoint`). A file with no usable http(s) address is
//! left out (and logged by the caller).

use serde_json::{Map, Value, json};
use url::Url;

/// Bitrix24's kinds of file, passed on as `type`.
const KINDS: [&str; 4] = ["image", "file", "video", "audio"];

/// The contract's shape of each file Bitrix24 described; files without an address are dropped.
pub fn normalize(raw: &[Value], client_endpoint: &str) -> Vec<Value> {
    let origin = Url::parse(client_endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .and_then(|u| u.join("/").ok());
    raw.iter()
        .filter_map(Value::as_object)
        .filter_map(|file| one(file, origin.as_ref()))
        .collect()
}

fn one(file: &Map<String, Value>, origin: Option<&Url>) -> Option<Value> {
    let text = |key: &str| match file.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let url = ["link", "downloadLink", "url"]
        .iter()
        .find_map(|key| absolute(&text(key)?, origin))?;
    let name = text("name").unwrap_or_else(|| {
        url.path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "file".to_string())
    });
    let mut out = json!({ "name": name, "url": url.as_str() });
    if let Some(kind) = text("type")
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| KINDS.contains(&t.as_str()))
    {
        out["type"] = json!(kind);
    }
    if let Some(size) = text("size").and_then(|s| s.parse::<u64>().ok()) {
        out["size"] = json!(size);
    }
    Some(out)
}

/// `link` as an absolute http(s) URL: as it is when absolute, else joined to the portal's origin.
fn absolute(link: &str, origin: Option<&Url>) -> Option<Url> {
    let url = match Url::parse(link) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => origin?.join(link).ok()?,
        Err(_) => return None,
    };
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTAL: &str = "https://acme.bitrix24.com/rest/";

    #[test]
    fn production_shapes_become_the_contracts() {
        let raw = json!([
            {"name": "photo.jpg", "link": "https://acme.bitrix24.com/~aBc", "type": "image", "size": "20480"},
            {"id": "7", "name": "spec.pdf", "type": "file", "size": "512", "mime": "application/pdf",
             "downloadLink": "/rest/download.json?token=disk%7CaWQ9MTIz"},
            {"name": "voice.ogg", "link": "/disk/showFile/9/", "type": "AUDIO"},
        ]);
        let files = normalize(raw.as_array().unwrap(), PORTAL);
        assert_eq!(
            files,
            vec![
                json!({"name": "photo.jpg", "url": "https://acme.bitrix24.com/~aBc", "type": "image", "size": 20480}),
                json!({"name": "spec.pdf", "url": "https://acme.bitrix24.com/rest/download.json?token=disk%7CaWQ9MTIz", "type": "file", "size": 512}),
                json!({"name": "voice.ogg", "url": "https://acme.bitrix24.com/disk/showFile/9/", "type": "audio"}),
            ]
        );
    }

    #[test]
    fn link_wins_over_download_link_and_the_portals_port_is_kept() {
        let raw = json!([{"link": "/a/b.png", "downloadLink": "/rest/download.json?token=t"}]);
        let files = normalize(raw.as_array().unwrap(), "http://127.0.0.1:8123/rest/");
        assert_eq!(
            files,
            vec![json!({"name": "b.png", "url": "http://127.0.0.1:8123/a/b.png"})]
        );
    }

    #[test]
    fn unusable_files_are_left_out_and_odd_fields_dropped() {
        let raw = json!([
            {"name": "no address"},
            {"name": "script", "link": "javascript:alert(1)"},
            {"name": "data", "link": "data:text/plain,hi"},
            "not an object",
            {"name": "x", "link": "https://h/x", "type": "executable", "size": "-1", "mime": "a/b"},
        ]);
        let files = normalize(raw.as_array().unwrap(), PORTAL);
        assert_eq!(files, vec![json!({"name": "x", "url": "https://h/x"})]);
        // Without a usable portal address, only absolute links survive.
        let raw = json!([{"link": "/rel"}, {"link": "https://h/abs"}]);
        assert_eq!(normalize(raw.as_array().unwrap(), "").len(), 1);
    }
}

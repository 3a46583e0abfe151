//! The HTML of the connector settings page: one self-contained document (inline CSS, no
//! scripts, no external assets) in which every value is HTML-escaped, sent with headers that
//! keep it inside the portal's frame and out of caches.

use std::fmt::Write as _;

use actix_web::HttpResponse;

use super::csrf::Action;
use super::placement_view::{ActionForm, LineState, View};

/// The host of a URL (never its path, query or credentials); "(invalid URL)" otherwise.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(invalid URL)".into())
}

/// HTML-escape text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page as a response. `client_endpoint` (the portal's REST base) gives the origin allowed
/// to frame it.
pub fn respond(view: &View, client_endpoint: &str) -> HttpResponse {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors {}",
        frame_ancestor(client_endpoint)
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", csp))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        // Not `no-referrer`: under it browsers send `Origin: null` even with the page's own
        // form posts, and the action's Origin check could not tell them from an attacker's.
        // The page makes no cross-origin request, so nothing leaves it either way.
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("Cache-Control", "no-store"))
        .body(render(view))
}

/// The portal's origin (`https://DOMAIN`), or `'none'` if it is not a plain http(s) origin.
fn frame_ancestor(client_endpoint: &str) -> String {
    let origin = url::Url::parse(client_endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let plain = origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:/[]".contains(&b));
    if origin.is_empty() || !plain {
        "'none'".into()
    } else {
        origin
    }
}

/// (badge class, badge text, one-line explanation) of the line's state.
fn summary(state: &LineState) -> (&'static str, &'static str, String) {
    match state {
        LineState::Unknown(why) => (
            "muted",
            "Unknown",
            format!("Bitrix24 did not report the connector's state: {why}."),
        ),
        LineState::Known {
            error: Some(true), ..
        } => (
            "danger",
            "Error",
            "Bitrix24 reports an error for the connector on this line.".into(),
        ),
        _ if state.active() == Some(false) => (
            "muted",
            "Inactive",
            "The connector is disabled on this line: no messages are exchanged.".into(),
        ),
        LineState::Known {
            status: Some(true), ..
        } => (
            "success",
            "Connected",
            "Customer messages reach this open line and operator replies go back to the channel."
                .into(),
        ),
        _ => (
            "warning",
            "Not connected",
            "The connector is enabled on this line but Bitrix24 does not report it as working yet."
                .into(),
        ),
    }
}

fn render(v: &View) -> String {
    let mut html = String::with_capacity(8 * 1024);
    let title = format!("{} · line {}", v.connector_name, v.line);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main class=\"page\">\
         <header class=\"head\"><div class=\"logo\" aria-hidden=\"true\">{LOGO}</div><div>\
         <h1>{}</h1><p class=\"sub\">Connector settings · Open line <b>{}</b> · {}</p></div></header>",
        escape(&title),
        escape(&v.connector_name),
        v.line,
        escape(&v.portal_domain),
    );
    if let Some(n) = &v.notice {
        let (class, role) = if n.ok {
            ("ok", "status")
        } else {
            ("err", "alert")
        };
        let _ = write!(
            html,
            "<div class=\"notice notice-{class}\" role=\"{role}\">{}</div>",
            escape(&n.text)
        );
    }
    let (badge, label, explanation) = summary(&v.state);
    let _ = write!(
        html,
        "<section class=\"card\"><div class=\"card-head\"><h2>Connector on line {}</h2>\
         <span class=\"badge badge-{badge}\" id=\"state\">{label}</span></div>\
         <p class=\"lead\">{}</p>",
        v.line,
        escape(&explanation)
    );
    if let LineState::Known {
        active,
        configured,
        status,
        error,
    } = &v.state
    {
        html.push_str("<dl class=\"flags\">");
        let rows = [
            ("Active", "ACTIVE", active, false),
            ("Configured", "CONFIGURED", configured, false),
            ("Working", "STATUS", status, false),
            ("Error", "ERROR", error, true),
        ];
        for (name, key, value, bad_when_true) in rows {
            let Some(on) = value else { continue };
            let dot = match (on, bad_when_true) {
                (true, false) => "on",
                (true, true) => "bad",
                _ => "off",
            };
            let _ = write!(
                html,
                "<div><dt><span>{name}</span><code>{key}</code></dt><dd><span class=\"dot dot-{dot}\"></span>{}</dd></div>",
                if *on { "Yes" } else { "No" }
            );
        }
        html.push_str("</dl>");
    }
    render_actions(&mut html, &v.forms, &v.action_url);
    html.push_str(
        "</section><section class=\"card\"><div class=\"card-head\"><h2>Channel</h2></div>",
    );
    render_channels(&mut html, v);
    let _ = write!(
        html,
        "</section><footer>Connector <code>{}</code> · changes apply to line {} of this portal only.</footer>\
         </main></body></html>",
        escape(&v.connector_id),
        v.line
    );
    html
}

/// The buttons, each in its own form with its hidden fields; a hint when there is none.
fn render_actions(html: &mut String, forms: &[ActionForm], action_url: &str) {
    if forms.is_empty() {
        html.push_str(
            "<p class=\"hint\">Activation becomes available once a channel is configured for this line.</p>",
        );
        return;
    }
    html.push_str("<div class=\"actions\">");
    for f in forms {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"{}\">",
            escape(action_url)
        );
        for (name, value) in &f.fields {
            let _ = write!(
                html,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            );
        }
        let (class, label) = match f.action {
            Action::Activate => ("btn btn-primary", "Activate"),
            Action::Deactivate => ("btn btn-light", "Deactivate"),
        };
        let _ = write!(
            html,
            "<button type=\"submit\" class=\"{class}\">{label}</button></form>"
        );
    }
    html.push_str("</div>");
}

/// The channels bound to the line, or how to bind one.
fn render_channels(html: &mut String, v: &View) {
    if v.channels.is_empty() {
        let _ = write!(
            html,
            "<div class=\"empty\" id=\"no-channel\"><b>No channel configured for line {0}.</b>\
             <span>Add a <code>[[channels]]</code> entry with <code>portal = \"{1}\"</code> and \
             <code>line = {0}</code> to the gateway's settings, restart it and reopen this page.</span></div>",
            v.line,
            escape(&v.member_id)
        );
        return;
    }
    html.push_str(
        "<table class=\"channels\"><thead><tr><th>ID</th><th>Delivers to</th></tr></thead><tbody>",
    );
    for (id, host) in &v.channels {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            escape(id),
            escape(host)
        );
    }
    html.push_str("</tbody></table>");
}

/// The connector icon (same shape as the one registered with the portal).
const LOGO: &str = r##"<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"/></svg>"##;

/// The page's style sheet, inlined (the CSP allows inline styles and nothing else).
const STYLE: &str = include_str!("placement_page.css");

#[cfg(test)]
#[path = "placement_page_tests.rs"]
mod tests;

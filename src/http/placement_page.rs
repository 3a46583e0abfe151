//! The HTML of the connector settings page: one self-contained document (inline CSS, no
//! scripts, no external assets) built with maud, which escapes every value, sent with headers
//! that keep it inside the portal's frame and out of caches.

use actix_web::HttpResponse;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::csrf::Action;
use super::placement_view::{ActionForm, LineState, View};

/// The host of a URL (never its path, query or credentials); "(invalid URL)" otherwise.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(invalid URL)".into())
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
    let title = format!("{} · line {}", v.connector_name, v.line);
    let (badge, label, explanation) = summary(&v.state);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main class="page" {
                    header class="head" {
                        div class="logo" aria-hidden="true" { (PreEscaped(LOGO)) }
                        div {
                            h1 { (v.connector_name) }
                            p class="sub" {
                                "Connector settings · Open line " b { (v.line) } " · " (v.portal_domain)
                            }
                        }
                    }
                    @if let Some(n) = &v.notice {
                        @let (class, role) = if n.ok { ("notice notice-ok", "status") } else { ("notice notice-err", "alert") };
                        div class=(class) role=(role) { (n.text) }
                    }
                    section class="card" {
                        div class="card-head" {
                            h2 { "Connector on line " (v.line) }
                            span class={ "badge badge-" (badge) } id="state" { (label) }
                        }
                        p class="lead" { (explanation) }
                        (flags(&v.state))
                        (actions(&v.forms, &v.action_url))
                    }
                    section class="card" {
                        div class="card-head" { h2 { "Channel" } }
                        (channels(v))
                    }
                    footer {
                        "Connector " code { (v.connector_id) } " · changes apply to line " (v.line) " of this portal only."
                    }
                }
            }
        }
    }
    .into_string()
}

/// The line's flags as Bitrix24 reported them.
fn flags(state: &LineState) -> Markup {
    let LineState::Known {
        active,
        configured,
        status,
        error,
    } = state
    else {
        return html! {};
    };
    let rows = [
        ("Active", "ACTIVE", active, false),
        ("Configured", "CONFIGURED", configured, false),
        ("Working", "STATUS", status, false),
        ("Error", "ERROR", error, true),
    ];
    html! {
        dl class="flags" {
            @for (name, key, value, bad_when_true) in rows {
                @if let Some(on) = value {
                    @let dot = match (on, bad_when_true) {
                        (true, false) => "on",
                        (true, true) => "bad",
                        _ => "off",
                    };
                    div {
                        dt { span { (name) } code { (key) } }
                        dd { span class={ "dot dot-" (dot) } {} (if *on { "Yes" } else { "No" }) }
                    }
                }
            }
        }
    }
}

/// The buttons, each in its own form with its hidden fields; a hint when there is none.
fn actions(forms: &[ActionForm], action_url: &str) -> Markup {
    html! {
        @if forms.is_empty() {
            p class="hint" { "Activation becomes available once a channel is configured for this line." }
        } @else {
            div class="actions" {
                @for f in forms {
                    @let (class, label) = match f.action {
                        Action::Activate => ("btn btn-primary", "Activate"),
                        Action::Deactivate => ("btn btn-light", "Deactivate"),
                    };
                    form method="post" action=(action_url) {
                        @for (name, value) in &f.fields {
                            input type="hidden" name=(name) value=(value);
                        }
                        button type="submit" class=(class) { (label) }
                    }
                }
            }
        }
    }
}

/// The channels bound to the line, or how to bind one.
fn channels(v: &View) -> Markup {
    html! {
        @if v.channels.is_empty() {
            div class="empty" id="no-channel" {
                b { "No channel configured for line " (v.line) "." }
                span {
                    "Add a " code { "[[channels]]" } " entry with "
                    code { "portal = \"" (v.member_id) "\"" } " and " code { "line = " (v.line) }
                    " to the gateway's settings, restart it and reopen this page."
                }
            }
        } @else {
            table class="channels" {
                thead { tr { th { "ID" } th { "Delivers to" } } }
                tbody {
                    @for (id, host) in &v.channels {
                        tr { td { code { (id) } } td { (host) } }
                    }
                }
            }
        }
    }
}

/// The connector icon (same shape as the one registered with the portal).
const LOGO: &str = r##"<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"/></svg>"##;

/// The page's style sheet, inlined (the CSP allows inline styles and nothing else).
const STYLE: &str = include_str!("placement_page.css");

#[cfg(test)]
mod tests;

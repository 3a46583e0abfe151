//! Unit tests of the settings page's escaping, hosts, status flags and frame origin.

use super::*;

#[test]
fn every_value_on_the_page_is_escaped() {
    let hostile = r#"<script>x</script>"&'"#;
    let view = View {
        connector_name: hostile.into(),
        connector_id: hostile.into(),
        portal_domain: hostile.into(),
        member_id: hostile.into(),
        line: 7,
        state: LineState::Unknown(hostile.into()),
        channels: Vec::new(),
        notice: Some(super::super::placement_view::Notice::error(hostile.into())),
        forms: vec![ActionForm {
            action: Action::Activate,
            fields: vec![("csrf", hostile.into())],
        }],
        action_url: hostile.into(),
    };
    let page = render(&view);
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;x&lt;/script&gt;&quot;&amp;"),
        "{page}"
    );
    let empty = View {
        channels: Vec::new(),
        forms: Vec::new(),
        ..view
    };
    assert!(!render(&empty).contains("<script>"));
}

#[test]
fn hosts_never_carry_paths_or_credentials() {
    assert_eq!(
        host_of("https://user:pw@hooks.example.com:8443/x?token=1"),
        "hooks.example.com"
    );
    assert_eq!(host_of("not a url"), "(invalid URL)");
}

#[test]
fn status_flags_in_any_shape() {
    let s = LineState::from_status(
        &serde_json::json!({"CONFIGURED": "Y", "STATUS": 0, "ERROR": false}),
    );
    assert_eq!(s.active(), Some(true));
    let s = LineState::from_status(&serde_json::json!({"ACTIVE": false, "CONFIGURED": true}));
    assert_eq!(s.active(), Some(false));
    assert_eq!(LineState::Unknown("x".into()).active(), None);
}

#[test]
fn only_plain_origins_may_frame_the_page() {
    assert_eq!(
        frame_ancestor("https://acme.bitrix24.com/rest/"),
        "https://acme.bitrix24.com"
    );
    assert_eq!(
        frame_ancestor("http://127.0.0.1:8080/rest/"),
        "http://127.0.0.1:8080"
    );
    assert_eq!(frame_ancestor("https://a.com;script-src/rest/"), "'none'");
    assert_eq!(frame_ancestor("nonsense"), "'none'");
}

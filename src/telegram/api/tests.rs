use super::*;

#[test]
fn only_plain_relative_file_paths_are_downloaded() {
    assert!(is_safe_file_path("photos/file_0.jpg"));
    assert!(is_safe_file_path("documents/file-12.pdf"));
    for bad in [
        "",
        "/etc/passwd",
        "../bot123:x/getMe",
        "photos/../../x",
        "a//b",
        "a?b",
        "a#b",
        "http://evil.example/x",
        "a%2e%2e/b",
    ] {
        assert!(!is_safe_file_path(bad), "{bad}");
    }
}

#[test]
fn refusals_are_permanent_except_a_wrong_token_or_address() {
    let refused = |code| ApiError::Refused {
        method: "editMessageText".into(),
        code,
        description: "Bad Request: message can't be edited".into(),
    };
    assert!(refused(400).is_permanent());
    assert!(refused(403).is_permanent());
    assert!(!refused(401).is_permanent());
    assert!(!refused(404).is_permanent());
    assert!(!ApiError::Flood { retry_after: 5 }.is_permanent());
    assert!(!ApiError::Server { status: 502 }.is_permanent());
    assert!(!ApiError::Transport("x".into()).is_permanent());
    assert_eq!(
        refused(400).description(),
        "bad request: message can't be edited"
    );
}

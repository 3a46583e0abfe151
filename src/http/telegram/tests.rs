use super::*;

#[test]
fn only_plain_media_types_are_shown_inline() {
    assert_eq!(served_type("image/jpeg"), ("image/jpeg".into(), true));
    assert_eq!(served_type("audio/ogg"), ("audio/ogg".into(), true));
    assert!(!served_type("image/svg+xml").1);
    assert_eq!(served_type("text/html"), ("text/html".into(), false));
    assert_eq!(
        served_type("text/html; charset=x\r\nX-Evil: 1").0,
        "application/octet-stream"
    );
    assert_eq!(served_type("").0, "application/octet-stream");
}

#[test]
fn the_original_name_survives_in_the_disposition_without_breaking_the_header() {
    assert_eq!(
        disposition(false, "счёт 1.pdf"),
        "attachment; filename=\"____ 1.pdf\"; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82%201.pdf"
    );
    let evil = disposition(true, "a\"b\r\n.jpg");
    assert!(!evil.contains('\r') && !evil.contains('\n'), "{evil}");
    assert!(evil.starts_with("inline; filename=\"a_b__.jpg\""), "{evil}");
}

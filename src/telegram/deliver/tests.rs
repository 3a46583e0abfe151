use super::*;

#[test]
fn bitrix24_bbcode_becomes_plain_text() {
    assert_eq!(
        plain_text("[b]Anna Petrova:[/b][br]Hello [i]there[/i]"),
        "Anna Petrova:\nHello there"
    );
    assert_eq!(
        plain_text("see [url=https://x.example/a]the doc[/url]!"),
        "see the doc (https://x.example/a)!"
    );
    assert_eq!(
        plain_text("[URL=https://x.example]https://x.example[/URL]"),
        "https://x.example"
    );
    assert_eq!(
        plain_text("a [not a tag] b [unclosed"),
        "a [not a tag] b [unclosed"
    );
    assert_eq!(plain_text("x[/b]y"), "xy");
}

#[test]
fn long_text_is_sent_in_parts_of_4096_characters() {
    assert!(split_text("  ").is_empty());
    let long = "я".repeat(MAX_TEXT_CHARS * 2 + 1);
    let parts = split_text(&long);
    assert_eq!(
        parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
        [4096, 4096, 1]
    );
}

#[test]
fn only_operator_events_go_to_the_bot_api() {
    assert!(handles("operator.message.created"));
    assert!(handles("operator.message.updated"));
    assert!(handles("operator.message.deleted"));
    assert!(!handles("deletion.completed"));
    assert!(!handles("line.disconnected"));
}

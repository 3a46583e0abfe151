use super::*;

#[test]
fn every_mapped_code_is_one_bitrix24_knows() {
    for (emoji, code) in MAP {
        assert!(
            crate::bitrix::reactions::is_known(code),
            "{emoji} maps to unknown {code}"
        );
    }
}

#[test]
fn emoji_map_with_or_without_the_variation_selector_and_unknown_ones_do_not() {
    assert_eq!(bitrix_code("👍"), Some("like"));
    assert_eq!(bitrix_code("❤"), Some("redHeart"));
    assert_eq!(bitrix_code("❤\u{FE0F}"), Some("redHeart"));
    assert_eq!(bitrix_code("🐳"), None);
    assert_eq!(bitrix_code("❤‍🔥"), None);
    assert_eq!(bitrix_code(""), None);
}

//! The reaction codes Bitrix24 knows (fact sheet §8.8; the list "may change without notice").

/// Every documented reaction code.
pub const CODES: [&str; 48] = [
    "like",
    "dislike",
    "faceWithTearsOfJoy",
    "redHeart",
    "neutralFace",
    "fire",
    "cry",
    "slightlySmilingFace",
    "winkingFace",
    "laugh",
    "kiss",
    "wonder",
    "slightlyFrowningFace",
    "loudlyCryingFace",
    "faceWithStuckOutTongue",
    "faceWithStuckOutTongueAndWinkingEye",
    "smilingFaceWithSunglasses",
    "confusedFace",
    "flushedFace",
    "thinkingFace",
    "angry",
    "smilingFaceWithHorns",
    "faceWithThermometer",
    "facepalm",
    "poo",
    "flexedBiceps",
    "clappingHands",
    "raisedHand",
    "smilingFaceWithHeartEyes",
    "smilingFaceWithHearts",
    "pleadingFace",
    "relievedFace",
    "foldedHands",
    "okHand",
    "signHorns",
    "loveYouGesture",
    "clownFace",
    "partyingFace",
    "questionMark",
    "exclamationMark",
    "lightBulb",
    "bomb",
    "sleepingSymbol",
    "crossMark",
    "whiteHeavyCheckMark",
    "eyes",
    "handshake",
    "hundredPoints",
];

/// Whether Bitrix24 knows this reaction code (exact, case-sensitive).
pub fn is_known(code: &str) -> bool {
    CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_codes_are_known_and_others_are_not() {
        assert!(super::is_known("like"));
        assert!(super::is_known("hundredPoints"));
        assert!(!super::is_known("Like"));
        assert!(!super::is_known("thumbsup"));
        let unique: std::collections::HashSet<_> = super::CODES.iter().collect();
        assert_eq!(unique.len(), 48);
    }
}

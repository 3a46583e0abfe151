//! Telegram's reaction emoji → Bitrix24's reaction codes (fact sheet §8.8). Only the emoji with
//! a counterpart on both sides are mapped; the rest (and custom emoji, paid reactions) are
//! ignored. Telegram writes some emoji without the variation selector (`❤`), some clients add it
//! (`❤️`): both are accepted.

/// (Telegram emoji, Bitrix24 code).
const MAP: [(&str, &str); 27] = [
    ("👍", "like"),
    ("👎", "dislike"),
    ("❤", "redHeart"),
    ("🔥", "fire"),
    ("🥰", "smilingFaceWithHearts"),
    ("👏", "clappingHands"),
    ("😁", "laugh"),
    ("🤔", "thinkingFace"),
    ("🤬", "angry"),
    ("😡", "angry"),
    ("😢", "cry"),
    ("💩", "poo"),
    ("🙏", "foldedHands"),
    ("👌", "okHand"),
    ("🤡", "clownFace"),
    ("😍", "smilingFaceWithHeartEyes"),
    ("💯", "hundredPoints"),
    ("🤣", "faceWithTearsOfJoy"),
    ("😐", "neutralFace"),
    ("😭", "loudlyCryingFace"),
    ("👀", "eyes"),
    ("🤝", "handshake"),
    ("😈", "smilingFaceWithHorns"),
    ("😘", "kiss"),
    ("😎", "smilingFaceWithSunglasses"),
    ("🎉", "partyingFace"),
    ("🤨", "confusedFace"),
];

/// The Bitrix24 code of a Telegram reaction emoji, if it has one.
pub fn bitrix_code(emoji: &str) -> Option<&'static str> {
    let bare = emoji.trim_end_matches('\u{FE0F}');
    MAP.iter().find(|(e, _)| *e == bare).map(|(_, code)| *code)
}

#[cfg(test)]
mod tests;

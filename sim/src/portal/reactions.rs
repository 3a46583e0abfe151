//! `imbot.v2.Chat.Message.Reaction.add` / `.delete` (fact sheet §8.8).

use serde_json::{Value, json};

use super::envelope::ApiError;
use super::params;
use super::state::PortalState;

/// The 48 reaction codes of §8.8 (the fake's own copy of the documented list).
pub(crate) const REACTIONS: &[&str] = &[
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

/// Checked `(message id, bot id, reaction)` of a reaction call.
fn target(st: &PortalState, p: &Value) -> Result<(u64, u64, String), ApiError> {
    let bot_id = params::int(p, "botId");
    if bot_id == 0 {
        return Err(ApiError::bad("BOT_ID_REQUIRED", "Bot ID is required"));
    }
    match st.bots.get(&bot_id) {
        None => return Err(ApiError::bad("BOT_NOT_FOUND", "Bot not found")),
        Some(bot) if bot.foreign => {
            return Err(ApiError::bad(
                "BOT_OWNERSHIP_ERROR",
                "The bot belongs to another application",
            ));
        }
        Some(_) => {}
    }
    let message_id = params::int(p, "messageId");
    // No error code is documented for an unknown message; MESSAGE_NOT_FOUND is the fake's choice.
    let chat = st
        .chat_of_message(message_id)
        .ok_or_else(|| ApiError::bad("MESSAGE_NOT_FOUND", "Message not found"))?;
    let reaction = params::opt_str(p, "reaction").unwrap_or_default();
    // Codes are case-sensitive camelCase.
    if !REACTIONS.contains(&reaction.as_str()) {
        return Err(ApiError::bad("REACTION_NOT_FOUND", "Reaction not found"));
    }
    if chat.is_some_and(|chat| st.bot_absent_chats.contains(&chat)) {
        return Err(ApiError::new(
            403,
            "ACCESS_DENIED",
            "The bot is not a member of the chat",
        ));
    }
    Ok((message_id, bot_id, reaction))
}

pub(crate) fn add(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let key = target(st, p)?;
    if st.reactions.contains(&key) {
        return Err(ApiError::bad(
            "REACTION_ALREADY_SET",
            "Reaction already set",
        ));
    }
    st.reactions.push(key);
    Ok(json!({"result": true}))
}

pub(crate) fn delete(st: &mut PortalState, p: &Value) -> Result<Value, ApiError> {
    let key = target(st, p)?;
    // Deleting a reaction that is not set is undocumented (§8.8 GAP); the fake reuses REACTION_NOT_FOUND.
    let Some(at) = st.reactions.iter().position(|r| *r == key) else {
        return Err(ApiError::bad("REACTION_NOT_FOUND", "Reaction is not set"));
    };
    st.reactions.remove(at);
    Ok(json!({"result": true}))
}

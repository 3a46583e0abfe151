//! Label values of the `bitrix_requests` metric, from fixed sets: Bitrix24's error codes are
//! peer-controlled, and a portal answering arbitrary codes must not grow `/metrics` without
//! bound. Unknown codes and methods count as `other`.

/// Error codes the gateway knows (fact sheet §1.5, §2, §5, §8, §11) and the client's own kinds.
const CODES: &[&str] = &[
    "QUERY_LIMIT_EXCEEDED",
    "OPERATION_TIME_LIMIT",
    "OVERLOAD_LIMIT",
    "INTERNAL_SERVER_ERROR",
    "ERROR_UNEXPECTED_ANSWER",
    "PORTAL_DELETED",
    "expired_token",
    "invalid_token",
    "invalid_grant",
    "NO_AUTH_FOUND",
    "ACCESS_DENIED",
    "WRONG_AUTH_TYPE",
    "insufficient_scope",
    "INVALID_REQUEST",
    "WRONG_REQUEST",
    "ERROR_METHOD_NOT_FOUND",
    "ERROR_CORE",
    "ERROR_BATCH_LENGTH_EXCEEDED",
    "ERROR_BATCH_METHOD_NOT_ALLOWED",
    "PAYMENT_REQUIRED",
    "APP_ID_ERROR",
    "BOT_ID_ERROR",
    "BOT_OWNERSHIP_ERROR",
    "BOT_NOT_FOUND",
    "CANT_EDIT_MESSAGE",
    "MESSAGE_ID_ERROR",
    "REACTION_ALREADY_SET",
    "REACTION_NOT_FOUND",
    "not_installed",
    "transport",
    "timeout",
    "api",
    "decode",
    "refresh",
    "storage",
];

/// Methods the gateway calls.
const METHODS: &[&str] = &[
    "batch",
    "app.info",
    "event.get",
    "event.bind",
    "event.unbind",
    "imconnector.register",
    "imconnector.unregister",
    "imconnector.activate",
    "imconnector.status",
    "imconnector.list",
    "imconnector.chat.name.set",
    "imconnector.send.status.reading",
    "imconnector.connector.data.set",
    "imconnector.send.messages",
    "imconnector.update.messages",
    "imconnector.delete.messages",
    "imconnector.send.status.delivery",
    "imbot.register",
    "imbot.unregister",
    "imbot.update",
    "imbot.bot.list",
    "imbot.message.add",
    "imbot.message.update",
    "imbot.message.delete",
    "imbot.v2.Chat.Message.Reaction.add",
    "imbot.v2.Chat.Message.Reaction.delete",
];

/// `code` if it is a known error code or kind, else `other`.
pub fn outcome(code: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("other")
}

/// `method` if the gateway calls it, else `other`.
pub fn method(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_pass_and_anything_else_is_other() {
        assert_eq!(outcome("QUERY_LIMIT_EXCEEDED"), "QUERY_LIMIT_EXCEEDED");
        assert_eq!(outcome("expired_token"), "expired_token");
        assert_eq!(outcome("RANDOM_1234"), "other");
        assert_eq!(outcome("ACCESS_DENIED\"} 1\nforged"), "other");
        assert_eq!(
            method("imconnector.send.messages"),
            "imconnector.send.messages"
        );
        assert_eq!(
            method("imbot.v2.chat.message.reaction.add"),
            "imbot.v2.Chat.Message.Reaction.add"
        );
        assert_eq!(method("user.get"), "other");
    }
}

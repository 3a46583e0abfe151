//! All byte work for sled keys: 0xFF-separated parts, big-endian integers, and their inverses.

use super::StoreError;

/// Separator between key parts; never present in UTF-8 text.
pub const SEP: u8 = 0xFF;

/// Big-endian bytes of `n`, so that byte order is numeric order.
pub fn u64_be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Inverse of [`u64_be`].
pub fn parse_u64(tree: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        tree,
        detail: format!(
            "expected an 8-byte integer key, found {} bytes",
            bytes.len()
        ),
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn build(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part);
    }
    key
}

/// `seqitem_deletionitem`: seq ‖ item, fixed width (12 bytes), so one event's items are
/// contiguous and in item order.
pub fn seq_item(seq: u64, item: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&seq.to_be_bytes());
    key[8..].copy_from_slice(&item.to_be_bytes());
    key
}

/// Inverse of [`seq_item`].
pub fn parse_seq_item(tree: &'static str, bytes: &[u8]) -> Result<(u64, u32), StoreError> {
    if bytes.len() != 12 {
        return Err(StoreError::Corrupt {
            tree,
            detail: format!(
                "expected a 12-byte seq-item key, found {} bytes",
                bytes.len()
            ),
        });
    }
    let seq = parse_u64(tree, &bytes[..8])?;
    let item = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    Ok((seq, item))
}

/// `channelseq_due`: channel ‖ SEP ‖ seq.
pub fn channel_seq(channel: &str, seq: u64) -> Vec<u8> {
    build(&[channel.as_bytes(), &u64_be(seq)])
}

/// A key above every `channel_seq(channel, _)` (and below the next channel's keys).
pub fn channel_seq_end(channel: &str) -> Vec<u8> {
    // Nine 0xFF bytes sort above any 8-byte seq.
    build(&[channel.as_bytes(), &[SEP; 9]])
}

/// `webhookid_reply`: channel ‖ SEP ‖ webhook-id.
pub fn webhook(channel: &str, webhook_id: &str) -> Vec<u8> {
    build(&[channel.as_bytes(), webhook_id.as_bytes()])
}

/// `chat_link`: member_id ‖ SEP ‖ line ‖ chat.
pub fn chat(portal: &str, line: u64, chat: &str) -> Vec<u8> {
    let mut key = build(&[portal.as_bytes(), &u64_be(line)]);
    key.extend_from_slice(chat.as_bytes());
    key
}

/// `user_link`: member_id ‖ SEP ‖ user.
pub fn user(portal: &str, user: &str) -> Vec<u8> {
    build(&[portal.as_bytes(), user.as_bytes()])
}

/// `message_state`: member_id ‖ SEP ‖ line ‖ chat ‖ SEP ‖ message.
pub fn message(portal: &str, line: u64, chat_id: &str, message: &str) -> Vec<u8> {
    let mut key = chat(portal, line, chat_id);
    key.push(SEP);
    key.extend_from_slice(message.as_bytes());
    key
}

/// `bitrixmsg_operator`: member_id ‖ SEP ‖ Bitrix24 message id.
pub fn operator(portal: &str, im_message_id: u64) -> Vec<u8> {
    build(&[portal.as_bytes(), &u64_be(im_message_id)])
}

/// Prefix of every key of one channel in the trees keyed by channel first.
pub fn channel_prefix(channel: &str) -> Vec<u8> {
    let mut key = channel.as_bytes().to_vec();
    key.push(SEP);
    key
}

/// Prefix of every key of one portal in the trees keyed by member_id first.
pub fn portal_prefix(portal: &str) -> Vec<u8> {
    let mut key = portal.as_bytes().to_vec();
    key.push(SEP);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_sort_numerically() {
        for n in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(parse_u64("t", &u64_be(n)).unwrap(), n);
        }
        assert!(u64_be(255) < u64_be(256));
        assert!(matches!(
            parse_u64("t", b"short"),
            Err(StoreError::Corrupt { tree: "t", .. })
        ));
    }

    #[test]
    fn seq_item_keys_round_trip_and_group_one_event_in_item_order() {
        let k = seq_item(7, 3);
        assert_eq!(parse_seq_item("t", &k).unwrap(), (7, 3));
        assert!(seq_item(7, 255) < seq_item(7, 256));
        assert!(seq_item(7, u32::MAX) < seq_item(8, 0));
        assert!(k.starts_with(&u64_be(7)));
        assert!(parse_seq_item("t", b"short").is_err());
    }

    #[test]
    fn channel_seq_keys_order_by_seq_within_a_channel_and_end_before_the_next_channel() {
        assert!(channel_seq("a", 255) < channel_seq("a", 256));
        assert!(channel_seq("a", u64::MAX) < channel_seq_end("a"));
        assert!(channel_seq_end("a") < channel_seq("b", 0));
        assert!(channel_seq("a", 1).starts_with(&channel_prefix("a")));
    }

    #[test]
    fn message_keys_of_one_chat_share_the_chat_prefix_and_nothing_else_does() {
        let a = message("p", 7, "chat", "m1");
        assert!(a.starts_with(&chat("p", 7, "chat")));
        assert!(!message("p", 7, "chat2", "m1").starts_with(&{
            let mut k = chat("p", 7, "chat");
            k.push(SEP);
            k
        }));
        assert_ne!(message("p", 7, "c", "m"), message("p", 8, "c", "m"));
        assert!(a.starts_with(&portal_prefix("p")));
        assert!(!a.starts_with(&portal_prefix("p2")));
    }
}

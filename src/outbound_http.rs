//! The one way the gateway builds HTTP clients for the outside world (Bitrix24 portals, the
//! authorization servers, messaging platforms): redirects are never followed (a redirect is a
//! reply like any other, so a request can never be steered to an address we did not choose, nor
//! re-post a token elsewhere), and reply bodies are read up to a cap while streaming.

use std::time::Duration;

/// Most bytes read from a Bitrix24 portal's reply.
pub const PORTAL_REPLY_CAP: usize = 16 * 1024 * 1024;
/// Most bytes read from an authorization server's or a messaging platform's reply.
pub const SMALL_REPLY_CAP: usize = 64 * 1024;
/// How much of an unexpected reply goes into a log line.
pub const LOG_SNIPPET: usize = 200;

/// A client that follows no redirect, with the given overall and connect timeouts.
pub fn client(timeout: Duration, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    crate::tls::install_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("openchannel-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a reply body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("the reply is larger than {cap} bytes")]
    TooLarge { cap: usize },
    #[error("the reply timed out")]
    Timeout,
    #[error("reading the reply failed: {0}")]
    Transport(String),
}

/// Read a reply body, failing as soon as it grows past `cap` bytes (a `Content-Length` above the
/// cap fails before anything is read).
pub async fn read_capped(mut reply: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if reply.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge { cap });
    }
    let mut body = Vec::new();
    loop {
        match reply.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(ReadError::TooLarge { cap });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(ReadError::Timeout),
            Err(e) => return Err(ReadError::Transport(e.without_url().to_string())),
        }
    }
}

/// The start of a reply for a log line: at most [`LOG_SNIPPET`] bytes, whitespace collapsed,
/// control characters escaped (a peer's text must not forge a log line).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(LOG_SNIPPET)]);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_is_short_single_line_and_escaped() {
        let long = "x".repeat(1000);
        assert_eq!(snippet(long.as_bytes()).len(), LOG_SNIPPET);
        assert_eq!(snippet(b"a\n\nb\tc"), "a b c");
        assert_eq!(snippet(b"a\x1b[31mred"), "a\\u{1b}[31mred");
    }
}

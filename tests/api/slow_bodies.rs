//! A body that stops arriving: `408` once `server.body_timeout_ms` has passed, the connection
//! closed, and nothing allocated from what `Content-Length` announced. On the real binary.

use std::io::Write;

use crate::form_limits::{gateway, status_bytes};
use crate::raw_http;

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_gets_408_and_its_connection_is_closed() {
    let (child, port, _portal, _dir) =
        gateway("body_timeout_ms = 300\nmax_form_bytes = 4194304").await;
    let pid = child.0.id();
    for path in [
        "/bitrix/events",
        "/bitrix/install",
        "/v1/channels/acme/events",
    ] {
        let mut stream = raw_http::open_post(port, path, 1000);
        stream
            .write_all(b"event=ONIMCONNECTORMESSAGEADD&data")
            .unwrap();
        let started = std::time::Instant::now();
        let reply = raw_http::read_reply(&stream);
        assert_eq!(reply.status, 408, "{path}: {}", reply.body);
        assert!(reply.body.contains("request_timeout"), "{}", reply.body);
        assert_eq!(reply.header("connection"), Some("close"), "{path}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        assert!(raw_http::closed_by_server(&mut stream), "{path}: closed");
    }
    // Announcing 4 MiB and sending nothing reserves nothing: while 20 such requests stall, the
    // process's address space (sampled until their 408s arrive) stays far below 20 × 4 MiB more.
    let before = status_bytes(pid, "VmSize:");
    let stalled: Vec<_> = (0..20)
        .map(|_| raw_http::open_post(port, "/bitrix/events", 4 << 20))
        .collect();
    let replies = std::thread::spawn(move || {
        stalled
            .iter()
            .map(|s| raw_http::read_reply(s).status)
            .collect::<Vec<_>>()
    });
    let mut largest = before;
    while !replies.is_finished() {
        largest = largest.max(status_bytes(pid, "VmSize:"));
        std::thread::sleep(std::time::Duration::from_millis(2)); // a sampling interval
    }
    assert_eq!(replies.join().unwrap(), vec![408; 20]);
    let grown = largest.saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "address space grew by {} KiB",
        grown / 1024
    );
    // The server still answers.
    let reply = raw_http::post(port, "/bitrix/events", b"event=X");
    assert_eq!(reply.status, 401);
}

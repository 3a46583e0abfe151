//! HTTP/1.1 by hand over a TCP socket, for what a well-behaved client will not do: send a body
//! that stops half-way, or keep writing a body the server has already refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::helpers::WAIT;

/// A reply read off the socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Connect and send the request head of a form POST announcing `content_length` bytes.
pub fn open_post(port: u16, path: &str, content_length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {content_length}\r\n\r\n"
    )
    .expect("send the head");
    stream
}

/// POST `body` in full (from another thread, ignoring write errors: the server may answer and
/// close before reading it all) and read the reply.
pub fn post(port: u16, path: &str, body: &[u8]) -> RawReply {
    let stream = open_post(port, path, body.len());
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let reply = read_reply(&stream);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    reply
}

/// Read one reply: status line, headers and a `Content-Length` body.
pub fn read_reply(stream: &TcpStream) -> RawReply {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut reply = RawReply {
        status,
        headers,
        body: String::new(),
    };
    let length: usize = reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("reply body");
    reply.body = String::from_utf8_lossy(&body).into_owned();
    reply
}

/// True when the server has closed the connection (a read returns end of file).
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).is_ok()
}

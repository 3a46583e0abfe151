//! Text logs that a peer cannot forge: every control character inside a log line (a newline or
//! carriage return in a portal's `domain`, an event name, an error description…) is written
//! escaped (`\n`, `\r`, `\t`, `\u{1b}`), so one event is always exactly one line. The formatter
//! hands each event to the writer in one piece, ending with its own newline, which is kept.
//! JSON logs need none of this (serde escapes strings).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// `line` with control characters escaped; a final `\n` stays a line end. `keep_esc` leaves
/// ESC alone (for ANSI colours on a terminal).
pub fn escape_line(line: &[u8], keep_esc: bool) -> Vec<u8> {
    let (body, end) = match line.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    let mut out = Vec::with_capacity(line.len() + 8);
    for &byte in body {
        match byte {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x1b if keep_esc => out.push(byte),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{{{byte:x}}}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.extend_from_slice(end);
    out
}

/// A [`MakeWriter`] for stdout that escapes each event's line.
pub struct EscapingStdout {
    pub keep_esc: bool,
}

/// The writer of one event.
pub struct EscapingWriter {
    keep_esc: bool,
}

impl Write for EscapingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout()
            .lock()
            .write_all(&escape_line(buf, self.keep_esc))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl<'a> MakeWriter<'a> for EscapingStdout {
    type Writer = EscapingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            keep_esc: self.keep_esc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_value_cannot_start_a_new_line() {
        let line = b"INFO app installed domain=evil.example\n2026-01-01 ERROR forged\r\x07\n";
        let escaped = String::from_utf8(escape_line(line, false)).unwrap();
        assert_eq!(
            escaped,
            "INFO app installed domain=evil.example\\n2026-01-01 ERROR forged\\r\\u{7}\n"
        );
        assert_eq!(escaped.lines().count(), 1);
        assert_eq!(
            escape_line(b"\x1b[1mx\x1b[0m\n", true),
            b"\x1b[1mx\x1b[0m\n"
        );
        assert_eq!(escape_line(b"\x1b[1m\n", false), b"\\u{1b}[1m\n");
        assert_eq!(
            escape_line("ünïcode ok\n".as_bytes(), false),
            "ünïcode ok\n".as_bytes()
        );
    }
}

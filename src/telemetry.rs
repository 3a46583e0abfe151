//! Logging: `RUST_LOG` filters (default `info`); `GATEWAY_LOG_FORMAT=json` switches to JSON lines.
//! Text lines have their control characters escaped (`log_escape.rs`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (once; later calls are ignored).
pub fn init() {
    init_with_default("info");
}

/// As [`init`], with `level` as the filter when `RUST_LOG` is not set (the sandbox uses `warn`).
pub fn init_with_default(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let _ = if std::env::var("GATEWAY_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        // Peer-controlled values (a portal's domain, event names, error texts) cannot forge a line.
        builder
            .with_writer(crate::log_escape::EscapingStdout { keep_esc: ansi })
            .try_init()
    };
}

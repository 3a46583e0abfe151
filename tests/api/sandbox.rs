//! The binary's `sandbox`: runs the whole scripted tour against the built-in fakes and exits 0.

use std::process::Stdio;
use std::time::Duration;

/// Generous: the tour takes about a second, but CI machines can be slow and busy.
const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn sandbox_plays_the_whole_script_and_exits_0() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_openchannel-gateway"));
    cmd.arg("sandbox")
        .env_remove("RUST_LOG")
        .env_remove("GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropped on timeout or panic: the process is killed, not left behind.
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .expect("sandbox finished in time")
        .expect("sandbox ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    for expected in [
        "[8/8] Shutting down",
        "customer messages delivered  303/303",
        "edits applied                1/1",
        "deletions completed          300 items in 3 events: 299 succeeded, 1 failed",
        "bulk-shop-42: [\"Message is too old\"]",
        "Bitrix24 now shows 299 of the 300 bulk messages deleted",
        "0 rejected by the rate limit",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Deletions ride on few requests: 300 items are at least 6 calls of 50, a handful of requests.
    let carried = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("deletions carried by"))
        .expect("deletion request count");
    let requests: usize = carried.split_whitespace().next().unwrap().parse().unwrap();
    assert!((1..=6).contains(&requests), "{carried}");
    assert!(
        stdout.contains("operator replies relayed     2/2"),
        "{stdout}"
    );
    let requests_used = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Bitrix24 requests used"))
        .expect("requests used");
    assert!(
        requests_used
            .trim()
            .ends_with("0 rejected by the rate limit")
    );
}

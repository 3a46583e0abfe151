//! `openchannel-gateway sandbox` (contract §1): the real gateway against a simulated Bitrix24
//! portal and messaging platform on loopback, playing a scripted conversation and printing what
//! happened. For a newcomer with no Bitrix24 account.
//!
//! - `world`: starts the fakes and the gateway, installs the app, shuts everything down.
//! - `script`: the conversation (messages, an edit, operator replies); `deletions`: the burst of
//!   deletions; `telegram`: a Telegram business chat (a photo through a media link, an operator
//!   reply, a batch of customer deletions).
//! - `output`: numbered steps, timings, request listings and the final summary.
//!
//! Every wait is on a change signal (the gateway's progress counter, the portal's state, the
//! platform's deliveries) with a timeout; a timeout fails the run with a clear message.

mod deletions;
mod output;
mod script;
mod telegram;
mod world;

use std::process::ExitCode;
use std::time::Duration;

use output::{Printer, Tally, describe, human};
use world::{CHANNELS, World};

/// Steps printed, including start, installation and shutdown.
const STEPS: usize = 8;
/// How long the connector setup may take (it needs about 15 requests; the bucket holds 50).
const SETUP_WAIT: Duration = Duration::from_secs(60);

/// Run the sandbox; 0 when every step succeeded.
pub async fn run() -> ExitCode {
    println!(
        "openchannel-gateway sandbox: the real gateway between a simulated Bitrix24 portal and a\n\
         simulated messaging platform, all on loopback (no Bitrix24 account needed)."
    );
    let mut out = Printer::new(STEPS);
    let mut tally = Tally::default();
    out.step("Starting the simulated world");
    let world = match World::start().await {
        Ok(world) => world,
        Err(e) => return failed(&out, out.current(), &e),
    };
    let played = tokio::select! {
        played = play(&world, &mut out, &mut tally) => played,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let failed_at = out.current();
    let requests = world.portal.requests();
    let dir = world.dir.path().to_path_buf();
    if let Err(e) = played {
        // Stop cleanly anyway; the step's error is the one worth reporting.
        let _ = world.shutdown().await;
        return failed(&out, failed_at, &e);
    }
    out.step("Shutting down");
    if let Err(e) = world.shutdown().await {
        return failed(&out, out.current(), &e);
    }
    out.done(format!(
        "gateway stopped, storage closed, {} removed",
        dir.display()
    ));
    tally.print(&requests, out.elapsed());
    ExitCode::SUCCESS
}

/// Everything between start and shutdown.
async fn play(world: &World, out: &mut Printer, tally: &mut Tally) -> Result<(), String> {
    out.line(format!(
        "fake Bitrix24 portal  {}  (member_id {}, real rate limit: 2 requests/s, bucket 50)",
        world.portal.url(),
        world.portal.member_id()
    ));
    out.line(format!("fake platform         {}", world.messenger.url()));
    out.line(format!("fake Telegram Bot API {}", world.telegram.url()));
    out.line(format!(
        "gateway               {}  (settings and storage in {})",
        world.base,
        world.dir.path().display()
    ));
    for (id, line) in CHANNELS {
        out.line(format!(
            "channel               {id:<8} -> open line {line} of the portal"
        ));
    }
    let (tg_id, tg_line) = world::TELEGRAM_CHANNEL;
    out.line(format!(
        "channel               {tg_id:<8} -> open line {tg_line} of the portal (platform = \"telegram\")"
    ));
    out.done("everything is listening");

    out.step("Installing the app on the portal (ONAPPINSTALL -> /bitrix/install)");
    let status = world.install().await?;
    out.line(format!("-> POST /bitrix/install  <- {status}"));
    out.line(format!(
        "the gateway verified it at the trusted authorization server {} ({} token exchange): \
         the portal's address and tokens are the server's, not the request's",
        world.portal.oauth_base(),
        world.portal.oauth_calls()
    ));
    let member = world.portal.member_id();
    world
        .wait_store(
            "the connector setup",
            SETUP_WAIT,
            |store| matches!(store.portal(&member), Ok(Some(p)) if p.is_ready()),
        )
        .await?;
    let requests = world.portal.requests();
    out.line(format!(
        "the gateway set the portal up with {} requests: {}",
        requests.len(),
        describe(&requests)
    ));
    out.done("portal installed and ready");

    script::play(world, out, tally).await
}

/// Report a failed step; exit code 1.
fn failed(out: &Printer, step: usize, error: &str) -> ExitCode {
    eprintln!(
        "\nsandbox failed at step {step} after {}: {error}",
        human(out.elapsed())
    );
    ExitCode::from(1)
}

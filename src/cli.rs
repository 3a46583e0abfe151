//! Command line: `serve`, `check-config`, `sandbox` (contract §1), `setup`, `teardown`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::portal_cli::Operation;
use crate::settings::Settings;
use crate::startup::Application;

/// openchannel-gateway: a messaging platform ⇄ Bitrix24 Open Channels gateway.
#[derive(Debug, Parser)]
#[command(name = "openchannel-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Settings file layered over config/default.toml (also: GATEWAY_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the connector setup of a portal (register, bind events, activate the channels' lines).
    Setup {
        /// The portal's member_id.
        #[arg(long)]
        portal: String,
        /// Settings file layered over config/default.toml (also: GATEWAY_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Tear a portal down: unregister the bot and the connector, unbind the events, purge its data.
    Teardown {
        /// The portal's member_id.
        #[arg(long)]
        portal: String,
        /// Settings file layered over config/default.toml (also: GATEWAY_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load and validate settings, print the effective values (secrets masked).
    CheckConfig {
        /// Settings file layered over config/default.toml (also: GATEWAY_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Play a scripted conversation against a simulated Bitrix24 portal and messaging platform
    /// on loopback, print what happened, exit 0. No Bitrix24 account needed.
    Sandbox,
}

impl Command {
    /// Log filter used when `RUST_LOG` is not set: the sandbox keeps the gateway's own logs quiet.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Sandbox => "warn",
            _ => "info",
        }
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { config } => match Settings::load(config.as_deref()) {
            Ok(settings) => {
                // A closed stdout (`check-config | head -1`) is not an error of the settings:
                // write without `print!`, which panics on EPIPE.
                let mut text = settings.masked();
                for note in settings.notes() {
                    text.push_str(&format!("\n# note: {note}\n"));
                }
                text.push_str("\n# settings are valid\n");
                let mut stdout = std::io::stdout().lock();
                match stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("cannot write the settings: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Setup { portal, config } => {
            portal_operation(config, Operation::Setup, &portal).await
        }
        Command::Teardown { portal, config } => {
            portal_operation(config, Operation::Teardown, &portal).await
        }
        Command::Serve { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            serve(settings).await
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox => crate::sandbox::run().await,
        #[cfg(not(feature = "sandbox"))]
        Command::Sandbox => {
            eprintln!(
                "this build has no simulators: build with the default `sandbox` feature to run the sandbox"
            );
            ExitCode::from(2)
        }
    }
}

async fn portal_operation(config: Option<PathBuf>, operation: Operation, portal: &str) -> ExitCode {
    match Settings::load(config.as_deref()) {
        Ok(settings) => crate::portal_cli::run(settings, operation, portal).await,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let stop = app.stop_handle();
    let running = tokio::spawn(app.run_until_stopped());
    shutdown_signal().await;
    tracing::info!("shutting down");
    stop.stop().await;
    match running.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("server error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("server task failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

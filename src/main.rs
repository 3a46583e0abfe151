//! Thin binary: parse the command line, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use openchannel_gateway::{cli, telemetry};

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    telemetry::init_with_default(args.command.default_log_level());
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli::run(args)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

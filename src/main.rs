//! Thin binary: parse the command line, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use openchannel_gateway::{cli, telemetry};

/// jemalloc instead of the system allocator: sled's write path allocates and frees node
/// buffers at a high rate, and glibc's arenas kept the peak of a burst resident for good (the
/// scale bench: 230 MiB at rest after 100,000 messages with glibc, 131 MiB with jemalloc).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read by its `malloc_conf` symbol): a background thread returns
/// freed pages to the system after about a second, instead of at the next allocation after
/// ten, so a burst's memory goes back once it is over.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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

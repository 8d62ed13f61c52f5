//! `fleetscore`: the command-line entry point. All logic lives in the library.

use clap::Parser;
use fleetscore::cli::Cli;
use fleetscore::telemetry::Telemetry;

// mimalloc instead of glibc malloc: per-event and per-request allocations were about a tenth
// of the streaming and HTTP CPU profiles (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let telemetry = Telemetry::init(cli.log_format)?;
    let code = cli.run();
    telemetry.shutdown();
    Ok(std::process::ExitCode::from(code?.clamp(0, 255) as u8))
}

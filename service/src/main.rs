//! `fleetscore`: the command-line entry point. All logic lives in the library.

use clap::Parser;
use fleetscore::cli::Cli;

// mimalloc instead of glibc malloc: per-event and per-request allocations were about a tenth
// of the streaming and HTTP CPU profiles (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = Cli::parse().run()?;
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

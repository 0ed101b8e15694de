use std::process::ExitCode;

use clap::Parser;
use obole::cli::{run, Cli};

/// mimalloc rather than the system's: the intake allocates and frees many short-lived
/// buffers (webhook bodies, JSON, rows), where glibc's allocator spent a tenth of the
/// process's time (BENCHMARKS.md, fifth session). Built without transparent huge pages
/// (Cargo.toml says why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    obole::telemetry::init(cli.log_format);
    run(cli).await
}

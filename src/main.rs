use std::process::ExitCode;

use clap::Parser;
use obole::cli::{run, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    obole::telemetry::init(cli.log_format);
    run(cli).await
}

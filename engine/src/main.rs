//! The `leased` binary: see `leased --help`.

use clap::Parser;

use std::io::IsTerminal;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    leased::cli::run(leased::cli::Cli::parse())
}

//! The `leased` binary: see `leased --help`.

use clap::Parser;

use std::io::IsTerminal;

/// mimalloc instead of glibc's malloc: sled allocates a node per page it
/// reads, and a cold scan of a large store spent 42 % of its time in glibc's
/// `_int_malloc` (5× faster with mimalloc, measured in `benches/transfer.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    // RUST_LOG picks what is logged (default: info for the server, warnings
    // for the commands that print for people); LEASED_LOG_FORMAT=json writes
    // one JSON object per line for log collectors.
    let cli = leased::cli::Cli::parse();
    if !matches!(cli.command, leased::cli::Command::Serve(_)) {
        end_quietly_on_a_closed_pipe();
    }
    let level = if matches!(cli.command, leased::cli::Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("LEASED_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    leased::cli::run(cli)
}

/// Lets SIGPIPE end a command whose output pipe closed (`leased lease list
/// | head`), as it does other command-line tools; Rust ignores SIGPIPE, so
/// the next `println!` panicked. Not for `serve`, whose sockets and log
/// writes must never end it.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: sets this process's SIGPIPE disposition back to the default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Keeps the process's memory in 4 KiB pages. mimalloc asks for transparent
/// huge pages for its arenas, and a 2 MiB page counts whole in RSS however
/// little of it is in use: ~55 MB more at start and after traffic, with
/// no measurable gain in rate (bench/README.md, session 13).
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    let failed = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
    if failed {
        // Nothing is logged yet; the process runs as before, only larger.
        eprintln!("leased: could not turn transparent huge pages off: {}", std::io::Error::last_os_error());
    }
}

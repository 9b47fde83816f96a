//! `leased-bench`: a DHCP load generator that can saturate leased, a raw
//! responder that gives the packet-path limit of the machine, and the
//! comparison harness (bench/README.md).

mod commit_log;
mod generate;
mod mmsg;
mod report;
mod respond;
mod scaling;
mod table;

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Load generator, raw responder and comparison harness for leased")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate clients: full DORA exchanges against a server, bounded by
    /// duration and count; prints the figures, and writes them as JSON.
    Run(RunArgs),
    /// Answer every DISCOVER with a fixed OFFER and every REQUEST with a
    /// fixed ACK, on leased's sockets and receive loops, until the duration
    /// ends or SIGTERM/SIGINT: the packet-path limit of this machine.
    Respond(RespondArgs),
    /// Print the comparison table of the runs compare.sh left in DIR.
    Table {
        dir: PathBuf,
        /// Print only this server's median rate (leases/s) over its rounds.
        #[arg(long, value_name = "SERVER")]
        median_rate: Option<String>,
        /// Print only leased's own CPU per request (ns, over the responder's).
        #[arg(long, conflicts_with = "median_rate")]
        own_work_ns: bool,
    },
    /// Print the tables of the runs scaling.sh left in DIR and plot them
    /// (DIR/scaling.png).
    Scaling { dir: PathBuf },
}

#[derive(Args)]
struct RespondArgs {
    /// Listen on this address (relayed traffic; replies go to the relay).
    #[arg(long, required_unless_present = "interface")]
    listen: Option<SocketAddrV4>,
    /// Listen on port 67 of this interface (broadcast replies).
    #[arg(long, conflicts_with = "listen")]
    interface: Option<String>,
    /// The server identifier in the replies.
    #[arg(long, default_value = "198.18.0.1")]
    server_id: std::net::Ipv4Addr,
    /// Shard threads (each pinned to a core, like leased's workers).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Receive loop: io_uring or the portable recvmmsg/sendmmsg loop.
    #[arg(long, value_parser = ["uring", "portable"], default_value = "uring")]
    backend: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Hold each ACK until a commit to this file (written, `fdatasync`ed)
    /// that began after its REQUEST is done: the floor of a server that
    /// syncs before it acknowledges. The file is removed at the end.
    #[arg(long, value_name = "FILE")]
    commit_log: Option<PathBuf>,
    /// How the commit log is written: `ring`, written whole at the start
    /// then overwritten (the cheapest sync a file offers), or `append`, a
    /// growing file (as sled writes its log).
    #[arg(long, value_parser = ["ring", "append"], default_value = "ring", requires = "commit_log")]
    commit_layout: String,
    /// Spend this many nanoseconds of CPU on each DISCOVER and REQUEST
    /// before its reply (a spin): with `--commit-log`, the floor of a
    /// durable server plus a server's own work on the same core.
    #[arg(long, default_value_t = 0)]
    work_ns: u64,
}

#[derive(Args)]
struct RunArgs {
    /// The server's address (relay mode: its relay listener; direct: only
    /// the port is used, requests are broadcast).
    #[arg(long, default_value = "127.0.0.1:67")]
    server: SocketAddrV4,
    /// Act as a relay agent: giaddr and the port replies come to.
    #[arg(long, conflicts_with = "interface")]
    relay: Option<SocketAddrV4>,
    /// Act as clients directly on this interface (port 68, broadcast).
    #[arg(long, required_unless_present = "relay")]
    interface: Option<String>,
    /// Distinct clients (MAC addresses 02:00:00:00:00:00 + N).
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Number of the first client (offsets the MACs).
    #[arg(long, default_value_t = 1)]
    first_client: u32,
    /// Send a client identifier (option 61: type 1 + MAC).
    #[arg(long)]
    client_id: bool,
    /// Send a host name (option 12: bench-N).
    #[arg(long)]
    hostname: bool,
    /// Send this vendor class (option 60).
    #[arg(long)]
    vendor_class: Option<String>,
    /// Exchanges started per second (default: as fast as the window allows).
    #[arg(long)]
    rate: Option<u64>,
    /// Most exchanges in flight at once.
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// How long to start exchanges for, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after starting this many exchanges.
    #[arg(long)]
    count: Option<u64>,
    /// Renew each lease once after its ACK.
    #[arg(long)]
    renew: bool,
    /// Release each lease at the end of its exchange.
    #[arg(long)]
    release: bool,
    /// A reply later than this many milliseconds counts as a drop.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Pin the generator to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Send requests as segmented UDP sends (UDP_SEGMENT, up to 64 per
    /// system call). Only where the link cuts them before the server (a
    /// veth with gso_max_segs 1, a NIC): a server that receives the
    /// segmented packet whole picks the SO_REUSEPORT socket by its first
    /// datagram, which breaks steering by client.
    #[arg(long)]
    segment: bool,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(a) => run(a),
        Command::Respond(a) => respond(a),
        Command::Table { dir, own_work_ns: true, .. } => {
            print_or_fail(table::own_work_ns(&dir).map(|w| format!("{w:.0}\n")))
        }
        Command::Table { dir, median_rate: None, .. } => print_or_fail(table::render(&dir)),
        Command::Table { dir, median_rate: Some(name), .. } => {
            print_or_fail(table::median_rate(&dir, &name).map(|r| format!("{r:.0}\n")))
        }
        Command::Scaling { dir } => print_or_fail(scaling::render(&dir)),
    }
}

fn print_or_fail(text: Result<String, String>) -> ExitCode {
    match text {
        Ok(t) => {
            print!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn respond(a: RespondArgs) -> ExitCode {
    use leased::io::{Backend, Endpoint, Loops};
    use std::sync::atomic::Ordering;
    let endpoint = match (&a.listen, &a.interface) {
        (Some(addr), _) => Endpoint::Address(*addr),
        (None, Some(name)) => match leased::io::interfaces::list().map(|mut l| l.remove(name)) {
            Ok(Some(i)) => Endpoint::Interface(i),
            Ok(None) => return fail(&format!("there is no interface {name:?}")),
            Err(e) => return fail(&format!("cannot list interfaces: {e}")),
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let backend = if a.backend == "uring" { Backend::Uring } else { Backend::Portable };
    let counts = std::sync::Arc::new(respond::Counts::default());
    let layout = if a.commit_layout == "ring" { commit_log::Layout::Ring } else { commit_log::Layout::Append };
    let (log, committing) = match a.commit_log.as_deref().map(|p| commit_log::CommitLog::start(p, layout)).transpose() {
        Ok(started) => started.unzip(),
        Err(e) => return fail(&format!("cannot create the commit log: {e}")),
    };
    let started = Loops::start(&[endpoint], a.shards.max(1), backend, |index, sockets, wake| {
        if let Some(log) = &log {
            log.add_waker(wake);
        }
        respond::Responder::new(index, sockets, a.server_id, counts.clone(), log.clone(), a.work_ns)
    });
    let loops = match started {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen: {e}")),
    };
    println!("responder: ready");
    let stop = signals();
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(a.duration.clamp(0.0, 86_400.0));
    let mut failed = None;
    while std::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) && failed.is_none() {
        std::thread::sleep(Duration::from_millis(50));
        failed = log.as_ref().and_then(|l| l.error());
    }
    loops.stop();
    if let (Some(committing), Some(path)) = (committing, &a.commit_log) {
        let summary = committing.finish();
        let _ = std::fs::remove_file(path);
        println!("commit log: {} commits, {} bytes", summary.commits, summary.bytes);
    }
    if let Some(error) = failed {
        return fail(&error);
    }
    println!(
        "responder: {} received, {} sent, {} ignored",
        counts.received.load(Ordering::Relaxed),
        counts.sent.load(Ordering::Relaxed),
        counts.ignored.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("leased-bench: {message}");
    ExitCode::FAILURE
}

/// A flag set by SIGTERM or SIGINT.
fn signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Without the handler the signal still ends the process.
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
    flag
}

fn run(a: RunArgs) -> ExitCode {
    if !(a.duration.is_finite() && a.duration > 0.0 && a.duration <= 3600.0) {
        eprintln!("leased-bench: --duration must be between 0 and 3600 seconds");
        return ExitCode::from(2);
    }
    if let Some(cpu) = a.cpu {
        if let Err(e) = mmsg::pin(cpu) {
            return fail(&format!("cannot pin to CPU {cpu}: {e}"));
        }
    }
    let load = generate::Load {
        server: a.server,
        relay: a.relay,
        interface: a.interface,
        clients: a.clients,
        first_client: a.first_client,
        client_id: a.client_id,
        hostname: a.hostname,
        vendor_class: a.vendor_class,
        rate: a.rate,
        window: a.window,
        duration: Duration::from_secs_f64(a.duration),
        count: a.count,
        renew: a.renew,
        release: a.release,
        timeout: Duration::from_millis(a.timeout_ms),
        segment: a.segment,
    };
    let report = match generate::run(&load) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    println!("{}", report.summary());
    if let Some(path) = a.json {
        let text = serde_json::to_string_pretty(&report).expect("plain data serializes");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            return fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
    ExitCode::SUCCESS
}

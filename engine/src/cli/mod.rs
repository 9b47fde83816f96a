//! The `leased` command line (ARCHITECTURE §4).

mod check_config;
mod client;
mod database;
mod live;
mod manage;
mod notify;
mod serve;
mod show;
mod target;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// leased: a DHCPv4 server for ISP- and campus-scale networks.
#[derive(Debug, Parser)]
#[command(name = "leased", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGTERM or SIGINT.
    Serve(ConfigArgs),
    /// A DHCP client to test any server.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Validate a config (policy modules loaded as `serve` loads them) and print the effective scopes, pools
    /// and policy modules; exit 0 when valid, 1 otherwise.
    CheckConfig(ConfigArgs),
    /// Check the lease database's records and indexes; exit 1 on any problem.
    ValidateDatabase(database::DatabaseArgs),
    /// Copy the lease database into a new directory (safe while serving).
    Backup {
        #[command(flatten)]
        db: database::DatabaseArgs,
        /// New directory to write the backup into.
        #[arg(long)]
        output: PathBuf,
    },
    /// Write every lease to a file (or standard output) as JSON, CSV, Kea's lease file or SQLite.
    ExportLeases(transfer::ExportArgs),
    /// Import leases from our JSON, Kea's lease file or ISC dhcpd's (the server must be stopped).
    ImportLeases(transfer::ImportArgs),
    /// Leases: list, show, status, release (through the running server's API, else the data directory).
    #[command(subcommand)]
    Lease(manage::LeaseCommand),
    /// Pool utilisation.
    #[command(subcommand)]
    Pool(manage::PoolCommand),
    /// Reservations: list, add, remove (written into the config file).
    #[command(subcommand)]
    Reservation(manage::ReservationCommand),
    /// Print lease changes as the running server writes them.
    Monitor(manage::MonitorArgs),
    /// Print a shell completion script: `leased completions bash > /etc/bash_completion.d/leased`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Replace the lease database with a backup (the server must be stopped).
    Restore {
        #[command(flatten)]
        db: database::DatabaseArgs,
        /// Backup directory made by `leased backup`.
        #[arg(long)]
        from: PathBuf,
    },
}

/// `leased client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// DISCOVER, OFFER, REQUEST, ACK; exit 1 on NAK or timeout.
    Request(client::RequestArgs),
    /// REQUEST from a leased address (RENEWING); exit 1 on NAK or timeout.
    Renew(client::AddressArgs),
    /// RELEASE a leased address (no reply comes).
    Release(client::ReleaseArgs),
    /// INFORM: ask for the configuration of an address configured by hand.
    Inform(client::AddressArgs),
}

/// Where the config file is.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Config file (default: ./leased.hcl, then /etc/leased/leased.hcl).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConfigArgs {
    /// The file named, else the first default that exists.
    pub fn path(&self) -> PathBuf {
        if let Some(p) = &self.config {
            return p.clone();
        }
        let candidates = [PathBuf::from("leased.hcl"), PathBuf::from("/etc/leased/leased.hcl")];
        candidates.iter().find(|p| p.exists()).unwrap_or(&candidates[0]).clone()
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Client(ClientCommand::Request(args)) => client::request(&args),
        Command::Client(ClientCommand::Renew(args)) => client::renew(&args),
        Command::Client(ClientCommand::Release(args)) => client::release(&args),
        Command::Client(ClientCommand::Inform(args)) => client::inform(&args),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::ValidateDatabase(args) => database::validate(&args),
        Command::Backup { db, output } => database::backup(&db, &output),
        Command::Restore { db, from } => database::restore(&db, &from),
        Command::ExportLeases(args) => transfer::export(&args),
        Command::ImportLeases(args) => transfer::import(&args),
        Command::Lease(c) => manage::lease(&c),
        Command::Pool(c) => manage::pool(&c),
        Command::Reservation(c) => manage::reservation(&c),
        Command::Monitor(args) => manage::monitor(&args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "leased",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

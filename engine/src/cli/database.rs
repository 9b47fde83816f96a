//! `leased validate-database`, `leased backup`, `leased restore`: the sled
//! store seen from the command line, with no server running.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::transfer::counter;
use super::ConfigArgs;
use crate::config::{self, Config};
use crate::store::{self, Names, SledStore};

/// Where the database is: `--data-dir`, else the config's `database.path`.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Database directory (default: the config's database.path).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DatabaseArgs {
    pub(super) fn open_config(&self) -> Result<(Config, PathBuf), String> {
        let path = self.config.path();
        let config = config::load(&path)
            .map_err(|e| format!("{e}\nfix the config first (leased check-config --config {})", path.display()))?;
        let dir = self.data_dir.clone().unwrap_or_else(|| config.database.path.clone());
        Ok((config, dir))
    }
}

pub(super) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// sled's page cache for the command-line tools: a bound, not an
/// allocation. Whole-store scans and imports of a million leases thrash
/// a smaller one (an export of 1M took 18 s with 64 MiB, 2 s with this).
pub(super) const TOOL_CACHE_BYTES: u64 = 1 << 30;

pub(super) fn open(config: &Config, dir: &Path) -> Result<SledStore, String> {
    if !dir.exists() {
        return Err(format!("no database at {}: check --data-dir or the config's database.path", dir.display()));
    }
    SledStore::open(dir, Names::from_config(config), TOOL_CACHE_BYTES)
        .map_err(|e| format!("{e} (is a server running on it? stop it first)"))
}

/// Checks records and indexes; exit 1 on any problem.
pub fn validate(args: &DatabaseArgs) -> ExitCode {
    let (config, dir) = match args.open_config() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let bar = counter("checking");
    let checked =
        open(&config, &dir).and_then(|s| s.validate_counting(&mut |n| bar.set_position(n)).map_err(|e| e.to_string()));
    bar.finish_and_clear();
    let report = match checked {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if args.config.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        println!("{}: {} leases ({} bound)", dir.display(), report.leases, report.bound);
        println!("{}", if report.is_ok() { "database is consistent" } else { "database has problems (see above)" });
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `leased backup --output DIR`.
pub fn backup(args: &DatabaseArgs, output: &Path) -> ExitCode {
    let (config, dir) = match args.open_config() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let bar = counter("copying");
    let copied = open(&config, &dir)
        .and_then(|s| s.backup_counting(output, &mut |n| bar.set_position(n)).map_err(|e| e.to_string()));
    bar.finish_and_clear();
    match copied {
        Ok(keys) => {
            println!("backed up {} to {} ({keys} keys)", dir.display(), output.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `leased restore --from DIR`.
pub fn restore(args: &DatabaseArgs, from: &Path) -> ExitCode {
    let (config, dir) = match args.open_config() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if !from.exists() {
        return fail(format!("no backup at {}", from.display()));
    }
    let bar = counter("checking the backup");
    let restored = store::restore(from, &dir, &Names::from_config(&config), &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    match restored {
        Ok(leases) => {
            println!("restored {leases} leases from {} into {}", from.display(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) if e.to_string().contains("acquire lock") => {
            fail(format!("{e}: a server is using the database; stop it first"))
        }
        Err(e) => fail(e),
    }
}

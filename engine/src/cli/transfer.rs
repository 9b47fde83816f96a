//! `leased export-leases` and `leased import-leases`: leases to and from
//! files, from the data directory (import needs the server stopped).

use std::collections::HashMap;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::database::{fail, open, DatabaseArgs};
use crate::config::Config;
use crate::server::{InterfaceInfo, Server};
use crate::store::transfer::{self, ExportFormat, ImportFormat, ImportReport, RowSink};
use crate::store::{LeaseStore, Names};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// File to write (default: standard output; SQLite needs a file).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long, value_enum)]
    pub format: ImportFormat,
    /// The file to import.
    pub file: PathBuf,
}

/// A progress bar on the terminal (hidden when stderr is not one).
pub fn progress(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The core compiled from `config` without serving: interfaces the host
/// lacks (a config made for another machine) get a placeholder.
pub fn offline_server(config: &Config) -> Result<Server, String> {
    let mut infos: HashMap<String, InterfaceInfo> = crate::io::interfaces::list()
        .map(|l| l.iter().map(|(name, i)| (name.clone(), i.info())).collect())
        .unwrap_or_default();
    for name in config.scopes.iter().filter_map(|s| s.interface.clone()) {
        infos.entry(name).or_insert(InterfaceInfo { ifindex: 0, net: None });
    }
    Server::new(config, &infos).map_err(|e| e.to_string())
}

/// The file `path` is written to first, renamed over it once complete.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

pub fn export(args: &ExportArgs) -> ExitCode {
    let (config, dir) = match args.db.open_config() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let started = Instant::now();
    let store = match open(&config, &dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let names = Names::from_config(&config);
    let temp = args.output.as_deref().map(partial);
    let sink: std::io::Result<Box<dyn RowSink>> = match (args.format, &temp) {
        (ExportFormat::Sqlite, None) => return fail("SQLite needs a file: --output FILE"),
        (ExportFormat::Sqlite, Some(t)) => {
            let _ = std::fs::remove_file(t);
            transfer::sqlite::Sink::create(t).map(|s| Box::new(s) as Box<dyn RowSink>)
        }
        (format, Some(t)) => std::fs::File::create(t)
            .map(|f| transfer::text_sink(format, std::io::BufWriter::with_capacity(1 << 20, f), &names)),
        (format, None) => Ok(transfer::text_sink(format, std::io::BufWriter::new(std::io::stdout()), &names)),
    };
    let mut sink = match sink {
        Ok(s) => s,
        Err(e) => {
            return fail(format!("cannot write {}: {e}", args.output.as_deref().unwrap_or(Path::new("-")).display()))
        }
    };
    let bar = progress(if std::io::stderr().is_terminal() { store.len() as u64 } else { 0 }, "exporting");
    let mut counted = Counted { inner: sink.as_mut(), bar: &bar };
    let result = transfer::export_store(&store, &names, &mut counted).and_then(|n| sink.finish().map(|()| n));
    bar.finish_and_clear();
    let (written, unreadable) = match result {
        Ok(n) => n,
        Err(e) => {
            if let Some(t) = &temp {
                let _ = std::fs::remove_file(t);
            }
            return fail(format!("export failed: {e}"));
        }
    };
    if let (Some(t), Some(out)) = (&temp, &args.output) {
        if let Err(e) = std::fs::rename(t, out) {
            return fail(format!("cannot move {} to {}: {e}", t.display(), out.display()));
        }
    }
    if unreadable > 0 {
        eprintln!("warning: {unreadable} stored leases could not be read (damaged, or of scopes no longer configured): not exported");
    }
    if let Some(out) = &args.output {
        eprintln!("exported {written} leases to {} in {:.1} s", out.display(), started.elapsed().as_secs_f64());
    }
    ExitCode::SUCCESS
}

/// Counts rows on their way to a sink on the progress bar.
struct Counted<'a> {
    inner: &'a mut dyn RowSink,
    bar: &'a ProgressBar,
}

impl RowSink for Counted<'_> {
    fn row(&mut self, row: &transfer::LeaseRow) -> std::io::Result<()> {
        self.bar.inc(1);
        self.inner.row(row)
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn import(args: &ImportArgs) -> ExitCode {
    let (config, dir) = match args.db.open_config() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let started = Instant::now();
    let server = match offline_server(&config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let file = match std::fs::File::open(&args.file) {
        Ok(f) => BufReader::with_capacity(1 << 20, f),
        Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
    };
    let now = crate::lease::unix_now();
    let entries = match args.format {
        ImportFormat::Json => transfer::read_json(file),
        ImportFormat::KeaCsv => transfer::kea::read(file, now),
        ImportFormat::Dhcpd => transfer::dhcpd::read(file, now),
    };
    let entries = match entries {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
    };
    std::fs::create_dir_all(&dir).ok();
    let store = match open(&config, &dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let bar = progress(entries.len() as u64, "importing");
    let report = transfer::import(entries, &server, &store, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(format!("import failed (nothing after the last batch was written): {e}")),
    };
    if args.db.config.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_report(&report, &args.file, started.elapsed().as_secs_f64());
    }
    ExitCode::SUCCESS
}

fn print_report(r: &ImportReport, file: &Path, secs: f64) {
    println!(
        "{}: {} entries read; {} leases imported, {} unchanged, {} superseded by later entries, {} skipped ({secs:.1} s)",
        file.display(),
        r.read,
        r.imported,
        r.unchanged,
        r.superseded,
        r.skipped.len()
    );
    for (reason, n) in &r.filtered {
        println!("  left out: {n} {reason}");
    }
    for s in r.skipped.iter().take(20) {
        println!("  skipped line {}: {}", s.line, s.reason);
    }
    if r.skipped.len() > 20 {
        println!("  ... and {} more skipped (--json lists them all)", r.skipped.len() - 20);
    }
}

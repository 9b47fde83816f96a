//! `leased export-leases` and `leased import-leases`: leases to and from
//! files, from the data directory (import needs the server stopped).

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::database::{fail, open, DatabaseArgs};
use super::target::{Target, TargetArgs};
use crate::store::transfer::{self, ExportFile, ExportFormat, ImportFormat, ImportReport, RowSink};
use crate::store::{LeaseStore, Names};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// From the running server's API when one answers, else the data directory.
    #[command(flatten)]
    pub target: TargetArgs,
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

/// A running count on the terminal for work of unknown size (hidden when
/// stderr is not one).
pub fn counter(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {human_pos} keys ({per_sec})").expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Where an export's rows come from.
enum Rows {
    Store(crate::store::SledStore),
    Server(Target),
}

impl Rows {
    /// The running server, else the data directory; with the scope names
    /// in config order (Kea's subnet ids) and the number of leases.
    fn open(args: &TargetArgs) -> Result<(Rows, Names, u64), String> {
        if let Some(t) = Target::running(args)? {
            let scopes = t.get("/statistics")?["scopes"].take();
            let names = scopes.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str());
            let names = Names { scopes: names.map(|n| (n.to_string(), vec![])).collect() };
            let total = t.get("/status")?["store"]["leases"].as_u64().unwrap_or(0);
            return Ok((Rows::Server(t), names, total));
        }
        let (config, dir) = args.db.open_config()?;
        let store = open(&config, &dir)?;
        let total = if std::io::stderr().is_terminal() { store.len() as u64 } else { 0 };
        Ok((Rows::Store(store), Names::from_config(&config), total))
    }

    /// Writes every row to `sink`: how many, and how many stored ones could not be read.
    fn export(&self, names: &Names, sink: &mut dyn RowSink) -> std::io::Result<(u64, u64)> {
        let t = match self {
            Rows::Store(store) => return transfer::export_store(store, names, sink),
            Rows::Server(t) => t,
        };
        // Our JSON: `[`, one row per line with a comma after all but the last, `]`.
        let reader = t.stream("/leases/export?format=json").map_err(std::io::Error::other)?;
        let mut written = 0;
        for line in reader.lines() {
            let line = line?;
            let line = line.trim_end().trim_end_matches(',');
            if line.starts_with('{') {
                sink.row(&serde_json::from_str(line)?)?;
                written += 1;
            }
        }
        Ok((written, 0))
    }
}

pub fn export(args: &ExportArgs) -> ExitCode {
    let started = Instant::now();
    let (rows, names, total) = match Rows::open(&args.target) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let sink: std::io::Result<Box<dyn RowSink>> = match (&args.output, args.format) {
        (None, ExportFormat::Sqlite) => return fail("SQLite needs a file: --output FILE"),
        (None, format) => Ok(transfer::text_sink(format, std::io::BufWriter::new(std::io::stdout()), &names)),
        (Some(out), format) => ExportFile::create(format, out, &names).map(|f| Box::new(f) as Box<dyn RowSink>),
    };
    let mut sink = match sink {
        Ok(s) => s,
        Err(e) => {
            return fail(format!("cannot write {}: {e}", args.output.as_deref().unwrap_or(Path::new("-")).display()))
        }
    };
    let bar = progress(total, "exporting");
    let mut counted = Counted { inner: sink.as_mut(), bar: &bar };
    let result = rows.export(&names, &mut counted).and_then(|n| sink.finish().map(|()| n));
    bar.finish_and_clear();
    let (written, unreadable) = match result {
        Ok(n) => n,
        Err(e) => return fail(format!("export failed: {e}")),
    };
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
    let server = match super::live::build_offline(&config) {
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

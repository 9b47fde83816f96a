//! Lease export and import (ARCHITECTURE §4, §6). Every format goes
//! through one row type, [`LeaseRow`]: written from the store, or from a
//! running server's cache, as our JSON, our CSV, Kea's memfile CSV or
//! SQLite; read back from our JSON, Kea's memfile CSV and ISC dhcpd's
//! lease file, checked against the config, and written to the store.

mod auto;
pub mod dhcpd;
mod file;
mod import;
pub mod kea;
pub mod sqlite;

use std::io::{self, BufRead, Write};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use auto::{export_once, AutoExporter};
pub use file::ExportFile;
pub use import::{import, ImportReport, Incoming, Skipped};

use super::Names;
use crate::hex::{self, Hex};
use crate::lease::{HwAddr, LeaseRecord, LeaseState};

/// One lease in every export and import format: the record with names for
/// its scope and pool, binary fields in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    pub ip: Ipv4Addr,
    /// Hardware address, hex bytes with colons.
    pub mac: String,
    /// Hardware type (1: Ethernet).
    #[serde(default = "ethernet")]
    pub htype: u8,
    /// Client identifier (option 61), hex.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OFFERED, ALLOCATED, EXPIRED, RELEASED, ABANDONED or RESERVED.
    pub state: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub vendor_class: Option<String>,
    /// Relay agent circuit id (option 82.1), hex.
    #[serde(default)]
    pub circuit_id: Option<String>,
    /// Relay agent remote id (option 82.2), hex.
    #[serde(default)]
    pub remote_id: Option<String>,
    /// Unix seconds.
    pub start: u32,
    /// Unix seconds; 4294967295 for an infinite lease.
    pub end: u32,
    #[serde(default)]
    pub last_seen: u32,
    #[serde(default)]
    pub created: u32,
    #[serde(default)]
    pub updated: u32,
}

fn ethernet() -> u8 {
    1
}

/// Bytes as text (lossy UTF-8), None when empty.
pub fn text(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Bytes as hex, None when empty.
pub fn hex_field(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| Hex(bytes, "").to_string())
}

impl LeaseRow {
    /// The row of a stored or cached record; `names` gives its scope and pool names.
    pub fn of(r: &LeaseRecord, names: &Names) -> LeaseRow {
        let scope = names.scopes.get(r.scope as usize);
        let d = r.details.get();
        LeaseRow {
            ip: r.ip,
            mac: r.hw.to_string(),
            htype: r.hw.htype,
            client_id: hex_field(d.client_id),
            state: r.state.name().to_string(),
            scope: scope.map(|(name, _)| name.clone()),
            pool: scope.and_then(|(_, pools)| pools.get(r.pool as usize)).cloned(),
            hostname: text(d.hostname),
            vendor_class: text(d.vendor_class),
            circuit_id: hex_field(d.circuit_id),
            remote_id: hex_field(d.remote_id),
            start: r.start,
            end: r.end,
            last_seen: r.last_seen,
            created: r.created,
            updated: r.updated,
        }
    }

    /// The hardware address, or why it is not one.
    pub fn hw(&self) -> Result<HwAddr, String> {
        match hex::parse(&self.mac) {
            Some(b) if !b.is_empty() && b.len() <= 16 => Ok(HwAddr::new(self.htype, &b)),
            _ => Err(format!("{:?} is not a hardware address", self.mac)),
        }
    }

    pub fn lease_state(&self) -> Result<LeaseState, String> {
        (0..=5)
            .filter_map(LeaseState::from_u8)
            .find(|s| s.name().eq_ignore_ascii_case(&self.state))
            .ok_or_else(|| format!("unknown state {:?}", self.state))
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Our JSON: an array of rows, one per line.
    Json,
    /// Our CSV: the columns of the SQLite table.
    Csv,
    /// Kea's memfile lease file (Kea 2.2's columns).
    KeaCsv,
    /// An SQLite database with the table `dhcp_leases`.
    Sqlite,
}

/// The import formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Our JSON (as exported).
    Json,
    /// Kea's memfile lease file.
    KeaCsv,
    /// ISC dhcpd's dhcpd.leases.
    Dhcpd,
}

/// Where exported rows go, one at a time.
pub trait RowSink {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()>;
    /// Completes the output (closing brackets, indexes, flush).
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A sink writing `format` to `out` (`names`: the config's scopes, whose
/// order gives Kea's subnet ids); SQLite needs a file (use [`sqlite::Sink`]).
pub fn text_sink<W: Write + 'static>(format: ExportFormat, out: W, names: &Names) -> Box<dyn RowSink> {
    match format {
        ExportFormat::Json => Box::new(JsonSink { out, rows: 0 }),
        ExportFormat::Csv => Box::new(CsvSink { out: csv::Writer::from_writer(out), id: 0 }),
        ExportFormat::KeaCsv => Box::new(kea::Sink::new(out, names.scopes.iter().map(|(n, _)| n.clone()).collect())),
        ExportFormat::Sqlite => unreachable!("SQLite writes a file: sqlite::Sink"),
    }
}

/// `[`, one row per line with commas between, `]`: a JSON array that can
/// also be read a line at a time (for line numbers in import reports).
struct JsonSink<W: Write> {
    out: W,
    rows: u64,
}

impl<W: Write> RowSink for JsonSink<W> {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
        self.out.write_all(if self.rows == 0 { b"[\n" } else { b",\n" })?;
        serde_json::to_writer(&mut self.out, row)?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

/// The columns of the SQLite table `dhcp_leases` (ARCHITECTURE §6).
pub const TABLE_COLUMNS: [&str; 13] = [
    "id",
    "mac_address",
    "ip_address",
    "hostname",
    "vendor_class",
    "client_identifier",
    "lease_start",
    "lease_end",
    "last_seen",
    "state",
    "options",
    "created_at",
    "updated_at",
];

/// What the table's `options` column holds: the row's fields that have no
/// column of their own, as compact JSON.
pub fn options_json(row: &LeaseRow) -> String {
    let mut out = Vec::with_capacity(96);
    write_options_json(row, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// [`options_json`] into `out` (cleared first): no allocation per row
/// once `out` has grown.
pub fn write_options_json(row: &LeaseRow, out: &mut Vec<u8>) {
    #[derive(Serialize)]
    struct Options<'a> {
        htype: u8,
        scope: &'a Option<String>,
        pool: &'a Option<String>,
        circuit_id: &'a Option<String>,
        remote_id: &'a Option<String>,
    }
    out.clear();
    let options = Options {
        htype: row.htype,
        scope: &row.scope,
        pool: &row.pool,
        circuit_id: &row.circuit_id,
        remote_id: &row.remote_id,
    };
    serde_json::to_writer(out, &options).expect("writing JSON into memory cannot fail");
}

struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    id: u64,
}

impl<W: Write> RowSink for CsvSink<W> {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
        if self.id == 0 {
            self.out.write_record(TABLE_COLUMNS)?;
        }
        self.id += 1;
        let num = |n: u32| n.to_string();
        self.out.write_record([
            self.id.to_string(),
            row.mac.clone(),
            row.ip.to_string(),
            row.hostname.clone().unwrap_or_default(),
            row.vendor_class.clone().unwrap_or_default(),
            row.client_id.clone().unwrap_or_default(),
            num(row.start),
            num(row.end),
            num(row.last_seen),
            row.state.clone(),
            options_json(row),
            num(row.created),
            num(row.updated),
        ])?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.id == 0 {
            self.out.write_record(TABLE_COLUMNS)?;
        }
        self.out.flush()
    }
}

/// Rows per hand-over from the thread reading the store to the writer.
const PIPE_CHUNK: usize = 1024;

/// Every row of `store` (address order) to `sink`; returns the rows
/// written and the records that could not be read (damaged, or of a scope
/// the config no longer has). The store is read (pages decoded, rows
/// formed) on a thread of its own while this one formats and writes: an
/// export takes the longer of the two rather than their sum.
pub fn export_store(store: &dyn super::LeaseStore, names: &Names, sink: &mut dyn RowSink) -> io::Result<(u64, u64)> {
    let (full_tx, full_rx) = crossbeam::channel::bounded::<Vec<LeaseRow>>(4);
    // Emptied chunks go back, so the reader reuses their buffers.
    let (empty_tx, empty_rx) = crossbeam::channel::bounded::<Vec<LeaseRow>>(8);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let (mut rows, mut unreadable, mut open) = (Vec::with_capacity(PIPE_CHUNK), 0u64, true);
            store.scan(0, 1, &mut |item| match item {
                _ if !open => {}
                Ok(record) => {
                    rows.push(LeaseRow::of(&record, names));
                    if rows.len() == PIPE_CHUNK {
                        let next = empty_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(PIPE_CHUNK));
                        // A closed channel: the writer failed, the rest is not wanted.
                        open = full_tx.send(std::mem::replace(&mut rows, next)).is_ok();
                    }
                }
                Err(e) => {
                    unreadable += 1;
                    if unreadable <= 10 {
                        tracing::warn!(error = %e, "not exported");
                    }
                }
            });
            if open && !rows.is_empty() {
                let _ = full_tx.send(rows);
            }
            unreadable
        });
        let mut written = 0u64;
        let mut result = Ok(());
        'chunks: for mut rows in full_rx.iter() {
            for row in &rows {
                if let Err(e) = sink.row(row) {
                    result = Err(e);
                    break 'chunks;
                }
                written += 1;
            }
            rows.clear();
            let _ = empty_tx.try_send(rows);
        }
        drop(full_rx);
        let unreadable = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        result.map(|()| (written, unreadable))
    })
}

/// Leases a running server's cache exports per read lock: the lock is let
/// go between chunks, so a config reload never waits for a whole export.
const CACHE_CHUNK: usize = 4096;

/// Writes every lease of a running server's cache to `sink`, in address
/// order; the number written.
pub fn export_cache(server: &crate::server::SharedServer, sink: &mut dyn RowSink) -> io::Result<u64> {
    let (mut from, mut written) = (Some(Ipv4Addr::UNSPECIFIED), 0u64);
    let mut rows = Vec::with_capacity(CACHE_CHUNK);
    while let Some(start) = from {
        rows.clear();
        {
            let server = server.read();
            let names = Names::of(&server);
            server.cache().scan_from(start, |r| {
                rows.push(LeaseRow::of(r, &names));
                rows.len() < CACHE_CHUNK
            });
        }
        for row in &rows {
            sink.row(row)?;
        }
        written += rows.len() as u64;
        from = match rows.last() {
            Some(last) if rows.len() == CACHE_CHUNK => u32::from(last.ip).checked_add(1).map(Ipv4Addr::from),
            _ => None,
        };
    }
    Ok(written)
}

/// A line of an import file to parse, with its number.
type NumberedLine = (usize, String);

/// Lines per batch handed to a parsing thread.
const PARSE_BATCH: usize = 4096;

/// One line of our JSON layout: a row, a damaged row, or nothing (brackets).
fn parse_line(number: usize, line: &str) -> Option<Incoming> {
    let trimmed = line.trim().trim_end_matches(',');
    if matches!(trimmed, "" | "[" | "]" | "[]") {
        return None;
    }
    Some(match serde_json::from_str::<LeaseRow>(trimmed) {
        Ok(row) => Incoming::Row { line: number, row },
        Err(e) => Incoming::Bad { line: number, reason: format!("not a lease row: {e}") },
    })
}

/// Reads our JSON export: one row per line as written (each line's
/// number goes with it), or any JSON array of rows. Lines are parsed on
/// every core while this thread reads (parsing is most of an import's
/// reading time), and come back in file order.
pub fn read_json(mut input: impl BufRead) -> io::Result<Vec<Incoming>> {
    let mut rows = Vec::new();
    let mut number = 0;
    // Until the first row parses, this thread parses, keeping the text for
    // the fallback below (a file in another layout has no row on a line).
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let parsed = parse_line(number, &line);
        let first_row = matches!(parsed, Some(Incoming::Row { .. }));
        rows.extend(parsed);
        if first_row {
            return read_json_rows(input, rows, number);
        }
        if text.len() < (64 << 20) {
            text.push_str(&line);
        }
    }
    // Not our layout (e.g. pretty-printed): read it as one array.
    if !rows.is_empty() {
        if let Ok(all) = serde_json::from_str::<Vec<LeaseRow>>(&text) {
            return Ok(all.into_iter().enumerate().map(|(i, row)| Incoming::Row { line: i + 1, row }).collect());
        }
    }
    Ok(rows)
}

/// The rest of [`read_json`] once it knows the layout: batches of lines to
/// parsing threads, results put back in order after `rows`.
fn read_json_rows(mut input: impl BufRead, mut rows: Vec<Incoming>, mut number: usize) -> io::Result<Vec<Incoming>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let (to_parse, batches) = crossbeam::channel::bounded::<(usize, Vec<NumberedLine>)>(workers * 2);
    let (to_collect, parsed) = crossbeam::channel::unbounded::<(usize, Vec<Incoming>)>();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (batches, to_collect) = (batches.clone(), to_collect.clone());
            s.spawn(move || {
                for (index, lines) in batches {
                    let out = lines.iter().filter_map(|(n, l)| parse_line(*n, l)).collect();
                    if to_collect.send((index, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(to_collect);
        let mut sent = 0;
        let mut batch = Vec::with_capacity(PARSE_BATCH);
        let read = loop {
            let mut line = String::new();
            match input.read_line(&mut line) {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    number += 1;
                    batch.push((number, line));
                }
                Err(e) => break Err(e),
            }
            if batch.len() == PARSE_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(PARSE_BATCH));
                // The workers only stop once this sender is gone.
                let _ = to_parse.send((sent, full));
                sent += 1;
            }
        };
        if !batch.is_empty() {
            let _ = to_parse.send((sent, batch));
            sent += 1;
        }
        drop(to_parse);
        let mut done: Vec<Option<Vec<Incoming>>> = (0..sent).map(|_| None).collect();
        for (index, out) in parsed {
            done[index] = Some(out);
        }
        read?;
        rows.extend(done.into_iter().flatten().flatten());
        Ok(rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose scan yields `n` leases with one damaged record after
    /// the first.
    struct Numbered(u32);

    impl crate::store::LeaseStore for Numbered {
        fn write(&self, _: &[crate::store::LeaseChange]) -> Result<(), crate::store::StoreError> {
            unreachable!("exports only read")
        }
        fn flush(&self) -> Result<(), crate::store::StoreError> {
            Ok(())
        }
        fn scan(&self, _: usize, _: usize, f: &mut dyn FnMut(Result<LeaseRecord, crate::store::StoreError>)) {
            for i in 0..self.0 {
                let ip = Ipv4Addr::from(0xc612_0000 + i);
                let hw = HwAddr::new(1, &[2, 0, 0, 0, (i >> 8) as u8, i as u8]);
                f(Ok(crate::lease::test_record(ip, hw)));
                if i == 0 {
                    let error = crate::store::CodecError::Truncated;
                    f(Err(crate::store::StoreError::Corrupt { key: "i198.18.0.1".into(), error }));
                }
            }
        }
        fn len(&self) -> usize {
            self.0 as usize
        }
    }

    /// Keeps the addresses it is given; fails at row `fail_at` if set.
    struct Collect(Vec<Ipv4Addr>, Option<usize>);

    impl RowSink for Collect {
        fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
            if Some(self.0.len()) == self.1 {
                return Err(io::Error::other("disk full"));
            }
            self.0.push(row.ip);
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn names() -> Names {
        Names { scopes: vec![("lab".into(), vec!["dynamic".into()])] }
    }

    #[test]
    fn exports_every_row_in_order_across_chunks_and_counts_the_unreadable() {
        let n = PIPE_CHUNK as u32 * 3 + 7;
        let mut sink = Collect(Vec::new(), None);
        assert_eq!(export_store(&Numbered(n), &names(), &mut sink).unwrap(), (u64::from(n), 1));
        let expected: Vec<Ipv4Addr> = (0..n).map(|i| Ipv4Addr::from(0xc612_0000 + i)).collect();
        assert_eq!(sink.0, expected);
    }

    #[test]
    fn json_reads_back_by_line_with_bad_lines_numbered_and_pretty_arrays_whole() {
        let file = std::env::temp_dir().join(format!("leased-read-json-{}", std::process::id()));
        let mut sink = text_sink(ExportFormat::Json, std::fs::File::create(&file).unwrap(), &names());
        let (exported, _) = export_store(&Numbered(5), &names(), sink.as_mut()).unwrap();
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        let rows = |read: &[Incoming]| read.iter().filter(|r| matches!(r, Incoming::Row { .. })).count() as u64;

        let read = read_json(text.as_bytes()).unwrap();
        assert_eq!((rows(&read), read.len() as u64), (exported, exported));
        // A damaged line among them: reported under its own line number.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, r#"{"ip": 5},"#);
        let read = read_json(lines.join("\n").as_bytes()).unwrap();
        assert_eq!(rows(&read), exported);
        let bad: Vec<usize> =
            read.iter().filter_map(|r| if let Incoming::Bad { line, .. } = r { Some(*line) } else { None }).collect();
        assert_eq!(bad, [3]);
        // Pretty-printed, no row on a line of its own: read as one array.
        let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&values).unwrap();
        let read = read_json(pretty.as_bytes()).unwrap();
        assert_eq!((rows(&read), read.len() as u64), (exported, exported));
    }

    #[test]
    fn a_failing_writer_ends_the_export_with_its_error() {
        // The reader is chunks ahead when the writer fails: it must stop
        // instead of waiting on a full channel forever.
        let mut sink = Collect(Vec::new(), Some(PIPE_CHUNK + 5));
        let error = export_store(&Numbered(PIPE_CHUNK as u32 * 20), &names(), &mut sink).unwrap_err();
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(sink.0.len(), PIPE_CHUNK + 5);
    }
}

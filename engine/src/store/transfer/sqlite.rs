//! Export to SQLite: the table `dhcp_leases` of ARCHITECTURE §6 with
//! indexes on MAC, IP, state and lease end, so that reporting tools (and
//! `sqlite3 FILE "SELECT * FROM dhcp_leases"`) read it directly.

use std::io;
use std::path::Path;

use std::fmt::Write as _;

use super::{write_options_json, LeaseRow, RowSink};

const SCHEMA: &str = "
CREATE TABLE dhcp_leases (
    id                INTEGER PRIMARY KEY,
    mac_address       TEXT NOT NULL,
    ip_address        TEXT NOT NULL,
    hostname          TEXT,
    vendor_class      TEXT,
    client_identifier TEXT,
    lease_start       INTEGER NOT NULL,
    lease_end         INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    state             TEXT NOT NULL,
    options           TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);";

/// Built once every row is in: faster than keeping them up to date.
const INDEXES: &str = "
CREATE INDEX dhcp_leases_mac ON dhcp_leases (mac_address);
CREATE INDEX dhcp_leases_ip ON dhcp_leases (ip_address);
CREATE INDEX dhcp_leases_state ON dhcp_leases (state);
CREATE INDEX dhcp_leases_end ON dhcp_leases (lease_end);";

fn sql(e: rusqlite::Error) -> io::Error {
    io::Error::other(e)
}

/// Writes rows into a new SQLite file in one transaction.
pub struct Sink {
    db: rusqlite::Connection,
    path: std::path::PathBuf,
    id: i64,
    /// Reused for each row's address and options.
    ip: String,
    options: Vec<u8>,
}

impl Sink {
    /// Creates `path` (which must not exist: an export never overwrites a database).
    pub fn create(path: &Path) -> io::Result<Sink> {
        if path.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        let db = rusqlite::Connection::open(path).map_err(sql)?;
        // A new file written once: no journal needed until it is complete.
        db.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; PRAGMA threads = 4;").map_err(sql)?;
        db.execute_batch(SCHEMA).map_err(sql)?;
        db.execute_batch("BEGIN").map_err(sql)?;
        Ok(Sink {
            db,
            path: path.to_path_buf(),
            id: 0,
            ip: String::with_capacity(16),
            options: Vec::with_capacity(128),
        })
    }
}

impl RowSink for Sink {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
        self.id += 1;
        self.ip.clear();
        let _ = write!(self.ip, "{}", row.ip);
        write_options_json(row, &mut self.options);
        let options = std::str::from_utf8(&self.options).expect("serde_json writes UTF-8");
        let mut insert = self
            .db
            .prepare_cached("INSERT INTO dhcp_leases VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")
            .map_err(sql)?;
        insert
            .execute(rusqlite::params![
                self.id,
                row.mac,
                self.ip,
                row.hostname,
                row.vendor_class,
                row.client_id,
                row.start,
                row.end,
                row.last_seen,
                row.state,
                options,
                row.created,
                row.updated,
            ])
            .map_err(sql)?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.db.execute_batch("COMMIT").map_err(sql)?;
        self.db.execute_batch(INDEXES).map_err(sql)?;
        let path = self.path.clone();
        self.db.close().map_err(|(_, e)| sql(e))?;
        std::fs::File::open(path)?.sync_all()
    }
}

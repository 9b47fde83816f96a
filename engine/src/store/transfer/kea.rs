//! Kea's memfile lease file for DHCPv4 (`kea-leases4.csv`), in the columns
//! of Kea 2.2 (Debian bookworm's): written for a move to Kea, read for a
//! move from it. Kea escapes commas in text fields as `&#x2c`.

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;

use super::{Incoming, LeaseRow, RowSink};
use crate::hex::{self, Hex};
use crate::lease::NEVER;

/// Kea 2.2's header, in its order.
pub const HEADER: [&str; 11] = [
    "address",
    "hwaddr",
    "client_id",
    "valid_lifetime",
    "expire",
    "subnet_id",
    "fqdn_fwd",
    "fqdn_rev",
    "hostname",
    "state",
    "user_context",
];

/// Kea's lease states.
const DEFAULT: u32 = 0;
const DECLINED: u32 = 1;
const EXPIRED_RECLAIMED: u32 = 2;

fn escape(s: &str) -> String {
    s.replace(',', "&#x2c")
}

fn unescape(s: &str) -> String {
    s.replace("&#x2c", ",")
}

/// Writes rows as Kea's lease file; `subnet_ids` maps a scope name to
/// the subnet id written (scopes in config order, from 1).
pub struct Sink<W: Write> {
    out: W,
    scopes: Vec<String>,
    header: bool,
}

impl<W: Write> Sink<W> {
    pub fn new(out: W, scopes: Vec<String>) -> Self {
        Sink { out, scopes, header: false }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header {
            self.header = true;
            writeln!(self.out, "{}", HEADER.join(","))?;
        }
        Ok(())
    }
}

impl<W: Write> RowSink for Sink<W> {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
        self.header()?;
        let state = match row.state.as_str() {
            "ABANDONED" => DECLINED,
            "EXPIRED" | "RELEASED" => EXPIRED_RECLAIMED,
            _ => DEFAULT,
        };
        let lifetime = if row.end == NEVER { u64::from(NEVER) } else { u64::from(row.end.saturating_sub(row.start)) };
        let subnet = row.scope.as_ref().and_then(|s| self.scopes.iter().position(|n| n == s)).map_or(0, |i| i + 1);
        let client_id =
            row.client_id.as_deref().and_then(hex::parse).map(|b| Hex(&b, ":").to_string()).unwrap_or_default();
        writeln!(
            self.out,
            "{},{},{},{},{},{},0,0,{},{},",
            row.ip,
            row.mac,
            client_id,
            lifetime,
            u64::from(row.start) + lifetime,
            subnet,
            escape(row.hostname.as_deref().unwrap_or_default()),
            state
        )
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }
}

/// Reads a Kea lease file as Kea itself does: only leases in the default
/// state whose expiry is after `now`; the later of two entries for one
/// address wins (the import keeps one lease per client, the latest).
/// Columns are found by their header, so newer Kea files (with `pool_id`) read too.
pub fn read(input: impl Read, now: u32) -> io::Result<Vec<Incoming>> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = csv.headers().map_err(io::Error::other)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(address), Some(hwaddr), Some(lifetime), Some(expire), Some(state)) =
        (column("address"), column("hwaddr"), column("valid_lifetime"), column("expire"), column("state"))
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a Kea DHCPv4 lease file: its header is {:?}", headers.iter().collect::<Vec<_>>()),
        ));
    };
    let (client_id, hostname) = (column("client_id"), column("hostname"));
    let mut out = Vec::new();
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.push(Incoming::Bad { line, reason: format!("unreadable CSV: {e}") });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        let parsed = (|| -> Result<Option<LeaseRow>, String> {
            let ip: Ipv4Addr =
                field(address).parse().map_err(|_| format!("{:?} is not an IPv4 address", field(address)))?;
            let number = |i: usize, what: &str| {
                field(i).parse::<u64>().map_err(|_| format!("{what} {:?} is not a number", field(i)))
            };
            let (lifetime, expire, state) =
                (number(lifetime, "valid_lifetime")?, number(expire, "expire")?, number(state, "state")?);
            if state != u64::from(DEFAULT) || expire <= u64::from(now) {
                return Ok(None);
            }
            let infinite = lifetime >= u64::from(NEVER);
            let start = if infinite { expire - lifetime } else { expire.saturating_sub(lifetime) };
            let end = if infinite { NEVER } else { u32::try_from(expire).unwrap_or(NEVER - 1) };
            let start = u32::try_from(start).map_err(|_| format!("expire {expire} is out of range"))?;
            let client_id = client_id.map(field).filter(|c| !c.is_empty());
            if let Some(id) = client_id {
                hex::parse(id).ok_or_else(|| format!("client_id {id:?} is not hex"))?;
            }
            Ok(Some(LeaseRow {
                ip,
                mac: field(hwaddr).to_ascii_lowercase(),
                htype: 1,
                client_id: client_id.and_then(hex::parse).map(|b| Hex(&b, "").to_string()),
                state: "ALLOCATED".into(),
                scope: None,
                pool: None,
                hostname: hostname.map(|i| unescape(field(i))).filter(|h| !h.is_empty()),
                vendor_class: None,
                circuit_id: None,
                remote_id: None,
                start,
                end,
                last_seen: start,
                created: start,
                updated: start,
            }))
        })();
        out.push(match parsed {
            Ok(Some(row)) => Incoming::Row { line, row },
            Ok(None) if field(state) != "0" => Incoming::Filtered { line, reason: "not in Kea's default state" },
            Ok(None) => Incoming::Filtered { line, reason: "expired" },
            Err(reason) => Incoming::Bad { line, reason },
        });
    }
    Ok(out)
}

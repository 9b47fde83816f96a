//! The stored form of a lease: a format byte, then fixed fields and
//! length-prefixed strings, little-endian. Scopes and pools are stored by
//! name, not index, so a config that reorders them still recovers.

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::lease::{HwAddr, LeaseDetails, LeaseRecord, LeaseState, CLIENT_KEY_MAX, NO_POOL};

/// Format byte of the current record layout.
pub const FORMAT_V1: u8 = 1;

/// Why stored bytes are not a lease.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("record format {0} is unknown (this build reads format {FORMAT_V1})")]
    UnknownFormat(u8),
    #[error("record is truncated")]
    Truncated,
    #[error("record has state {0}, which does not exist")]
    BadState(u8),
    #[error("record names scope {0:?}, which the config does not have")]
    UnknownScope(String),
    #[error("record has {0} bytes after its end")]
    TrailingBytes(usize),
    #[error("record has client key {0:02x?}, which no client can have")]
    BadClientKey(Vec<u8>),
}

/// Scope and pool names by index, as in the running config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub scopes: Vec<(String, Vec<String>)>,
}

impl Names {
    fn scope_index(&self, name: &str) -> Option<usize> {
        self.scopes.iter().position(|(s, _)| s == name)
    }
}

/// Appends the stored form of `r` to `out`.
pub fn encode(r: &LeaseRecord, names: &Names, out: &mut Vec<u8>) {
    out.push(FORMAT_V1);
    out.extend_from_slice(&r.ip.octets());
    out.push(r.state as u8);
    out.push(r.hw.htype);
    put_bytes(out, r.hw.bytes());
    // Derived from the record and so redundant; kept so that the format
    // stays readable by earlier builds and decisive on reading.
    put_bytes(out, r.client_key(&mut [0; CLIENT_KEY_MAX]));
    let (scope, pools) = names.scopes.get(r.scope as usize).map_or(("", &[][..]), |(s, p)| (s.as_str(), p.as_slice()));
    put_bytes(out, scope.as_bytes());
    put_bytes(out, pools.get(r.pool as usize).map_or(&b""[..], |p| p.as_bytes()));
    let details = r.details.packed();
    out.extend_from_slice(&(details.len() as u16).to_le_bytes());
    out.extend_from_slice(details);
    for t in [r.start, r.end, r.last_seen, r.created, r.updated] {
        out.extend_from_slice(&t.to_le_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len().min(255);
    out.push(n as u8);
    out.extend_from_slice(&b[..n]);
}

/// Reads a stored lease. `holds_address` is left false: recovery decides it.
pub fn decode(bytes: &[u8], names: &Names) -> Result<LeaseRecord, CodecError> {
    let mut r = Reader(bytes);
    let format = r.u8()?;
    if format != FORMAT_V1 {
        return Err(CodecError::UnknownFormat(format));
    }
    let ip = Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4)?).map_err(|_| CodecError::Truncated)?);
    let state_byte = r.u8()?;
    let state = LeaseState::from_u8(state_byte).ok_or(CodecError::BadState(state_byte))?;
    let htype = r.u8()?;
    let hw = HwAddr::new(htype, r.short()?);
    let client = r.short()?;
    let scope_name = String::from_utf8_lossy(r.short()?).into_owned();
    let pool_name = r.short()?;
    let scope = names.scope_index(&scope_name).ok_or(CodecError::UnknownScope(scope_name))?;
    let pool = names.scopes[scope].1.iter().position(|p| p.as_bytes() == pool_name).map_or(NO_POOL, |p| p as u16);
    let details_len = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| CodecError::Truncated)?) as usize;
    let details = LeaseDetails::from_packed(r.take(details_len)?);
    let mut times = [0u32; 5];
    for t in &mut times {
        *t = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| CodecError::Truncated)?);
    }
    if !r.0.is_empty() {
        return Err(CodecError::TrailingBytes(r.0.len()));
    }
    let [start, end, last_seen, created, updated] = times;
    let mut record = LeaseRecord {
        ip,
        state,
        scope: scope as u16,
        pool,
        hw,
        details,
        start,
        end,
        last_seen,
        created,
        updated,
        holds_address: false,
    };
    adopt_client_key(&mut record, client)?;
    Ok(record)
}

/// Makes the stored client key the record's, as it decides who owns the
/// lease. The server writes keys that agree with the record's client
/// identifier and hardware address, but cut at 255 bytes: a 255-byte key
/// that begins the derived one is that. Anything else (a hand-made or
/// foreign record) rewrites the identifier or address it derives from.
fn adopt_client_key(record: &mut LeaseRecord, stored: &[u8]) -> Result<(), CodecError> {
    let mut buf = [0; CLIENT_KEY_MAX];
    let derived = record.client_key(&mut buf);
    if derived == stored || (stored.len() == 255 && derived.starts_with(stored)) {
        return Ok(());
    }
    match record.set_client_key(stored) {
        true => Ok(()),
        false => Err(CodecError::BadClientKey(stored.to_vec())),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn short(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u8()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Details, DETAILS_MAX};

    fn names() -> Names {
        Names {
            scopes: vec![
                ("lan".into(), vec!["default".into(), "guests".into()]),
                ("wan".into(), vec!["default".into()]),
            ],
        }
    }

    fn record() -> LeaseRecord {
        let mut buf = [0; DETAILS_MAX];
        let details = Details {
            hostname: b"laptop",
            vendor_class: b"MSFT 5.0",
            client_id: &[1, 2],
            circuit_id: b"",
            remote_id: b"r",
        };
        LeaseRecord {
            ip: Ipv4Addr::new(198, 18, 0, 7),
            state: LeaseState::Allocated,
            scope: 0,
            pool: 1,
            hw: HwAddr::new(1, &[2, 0, 0, 0, 0, 7]),
            details: LeaseDetails::from_packed(details.pack(&mut buf)),
            start: 10,
            end: 20,
            last_seen: 11,
            created: 5,
            updated: 11,
            holds_address: false,
        }
    }

    #[test]
    fn round_trips_and_maps_names_to_current_indices() {
        let r = record();
        let mut bytes = vec![];
        encode(&r, &names(), &mut bytes);
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode(&bytes, &names()), Ok(r.clone()));
        // The config lists the scopes the other way round now.
        let mut swapped = names();
        swapped.scopes.reverse();
        assert_eq!(decode(&bytes, &swapped).unwrap().scope, 1);
        let gone = Names { scopes: vec![("wan".into(), vec![])] };
        assert_eq!(decode(&bytes, &gone), Err(CodecError::UnknownScope("lan".into())));
    }

    #[test]
    fn damaged_records_are_typed_errors() {
        let mut bytes = vec![];
        encode(&record(), &names(), &mut bytes);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], &names()).is_err(), "prefix of {n} bytes");
        }
        let mut future = bytes.clone();
        future[0] = 9;
        assert_eq!(decode(&future, &names()), Err(CodecError::UnknownFormat(9)));
        let mut state = bytes.clone();
        state[5] = 42;
        assert_eq!(decode(&state, &names()), Err(CodecError::BadState(42)));
        bytes.push(0);
        assert_eq!(decode(&bytes, &names()), Err(CodecError::TrailingBytes(1)));
    }

    /// `record()`'s stored form with `key` as its stored client key.
    fn stored_with_key(key: &[u8]) -> Vec<u8> {
        let mut bytes = vec![];
        encode(&record(), &names(), &mut bytes);
        // format, ip, state, htype, hw (length + 6): the key's length is next.
        let at = 1 + 4 + 1 + 1 + 1 + 6;
        let old = bytes[at] as usize;
        let tail = bytes.split_off(at + 1 + old);
        bytes.truncate(at);
        bytes.push(key.len() as u8);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&tail);
        bytes
    }

    #[test]
    fn the_stored_client_key_decides_whose_lease_it_is() {
        let mut key = [0; CLIENT_KEY_MAX];
        // As written: the key agrees with the client identifier.
        assert_eq!(stored_with_key(&[1, 1, 2]), {
            let mut b = vec![];
            encode(&record(), &names(), &mut b);
            b
        });
        // A key by hardware address drops the identifier; another identifier replaces it.
        let by_hw = decode(&stored_with_key(&[0, 1, 2, 0, 0, 0, 0, 9]), &names()).unwrap();
        assert_eq!((by_hw.hw.bytes(), by_hw.details.get().client_id), (&[2, 0, 0, 0, 0, 9][..], &[][..]));
        assert_eq!(by_hw.details.get().hostname, b"laptop");
        let by_id = decode(&stored_with_key(&[1, 9, 9]), &names()).unwrap();
        assert_eq!(by_id.client_key(&mut key), &[1, 9, 9]);
        assert_eq!(by_id.hw, record().hw);
        assert_eq!(decode(&stored_with_key(&[2, 1]), &names()), Err(CodecError::BadClientKey(vec![2, 1])));
        // A 255-byte identifier's key is stored cut at 255 bytes: read back whole.
        let mut long = record();
        assert!(long.set_client_key(&[&[1][..], &[7; 255]].concat()));
        let mut bytes = vec![];
        encode(&long, &names(), &mut bytes);
        assert_eq!(decode(&bytes, &names()), Ok(long));
    }
}

//! [`LeaseStore`] on sled (=0.34.7): one tree, keys by prefix so that one
//! batch updating a lease and its indexes is atomic.
//!
//! | key | value |
//! |---|---|
//! | `i` ip | the record ([`super::codec`]) |
//! | `c` client key | ip of the client's latest lease |
//! | `e` end (BE) ip | empty: bound leases by expiry |
//! | `m` "schema" | schema version (u32 LE) |

use std::net::Ipv4Addr;
use std::path::Path;

use super::codec::{self, Names};
use super::{LeaseStore, StoreError};
use crate::lease::LeaseRecord;
use crate::server::LeaseChange;

/// Version of the key layout and record formats this build writes.
pub const SCHEMA_VERSION: u32 = 1;
pub(super) const SCHEMA_KEY: &[u8] = b"mschema";

/// A sled database holding the leases.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    names: Names,
}

fn ip_key(ip: Ipv4Addr) -> [u8; 5] {
    let o = ip.octets();
    [b'i', o[0], o[1], o[2], o[3]]
}

fn expiry_key(end: u32, ip: Ipv4Addr) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..5].copy_from_slice(&end.to_be_bytes());
    k[5..].copy_from_slice(&ip.octets());
    k
}

fn client_key(client: &[u8]) -> Vec<u8> {
    [&b"c"[..], client].concat()
}

impl SledStore {
    /// Opens (or creates) the database at `path`; `names` maps the running
    /// config's scope and pool indexes to the names records carry.
    pub fn open(path: &Path, names: Names, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_bytes).flush_every_ms(None).open()?;
        let tree = db.open_tree("leases")?;
        let display = path.display().to_string();
        match tree.get(SCHEMA_KEY)? {
            Some(v) => {
                let found = u32::from_le_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch { path: display, found, expected: SCHEMA_VERSION });
                }
            }
            None if tree.is_empty() => {
                tree.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes())?;
                db.flush()?;
            }
            None => return Err(StoreError::NoSchema(display)),
        }
        Ok(SledStore { db, tree, names })
    }

    /// The record stored for `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Result<Option<LeaseRecord>, StoreError> {
        match self.tree.get(ip_key(ip))? {
            None => Ok(None),
            Some(v) => codec::decode(&v, &self.names)
                .map(Some)
                .map_err(|error| StoreError::Corrupt { key: ip.to_string(), error }),
        }
    }

    /// The scope and pool names records are read with.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// The underlying tree, for tests that damage records on purpose.
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }
}

impl LeaseStore for SledStore {
    /// Writes without reading: the change says which expiry entry its
    /// previous version had. Client entries are hints, checked against the
    /// record they name (a client whose address passed to another keeps a
    /// stale one until compaction; recovery rebuilds the index from records).
    fn write(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut buf = Vec::with_capacity(128);
        for change in changes {
            let r = &change.record;
            // sled batches keep the last operation per key, so removing the
            // old entry and inserting an equal new one leaves it in place.
            if let Some(end) = change.previous_expiry {
                batch.remove(&expiry_key(end, r.ip));
            }
            buf.clear();
            codec::encode(r, &self.names, &mut buf);
            batch.insert(&ip_key(r.ip), buf.as_slice());
            batch.insert(client_key(r.client.as_bytes()), &r.ip.octets());
            if let Some(end) = r.expiry() {
                batch.insert(&expiry_key(end, r.ip), &[]);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn scan(&self, part: usize, parts: usize, f: &mut dyn FnMut(Result<LeaseRecord, StoreError>)) {
        let lo = (part * 256 / parts) as u8;
        let hi = ((part + 1) * 256 / parts) as u16;
        let start = vec![b'i', lo];
        let iter = if hi >= 256 {
            self.tree.range(start..[b'j'].to_vec())
        } else {
            self.tree.range(start..vec![b'i', hi as u8])
        };
        for item in iter {
            let item = item.map_err(StoreError::from).and_then(|(k, v)| {
                codec::decode(&v, &self.names).map_err(|error| StoreError::Corrupt { key: describe_key(&k), error })
            });
            f(item);
        }
    }

    fn len(&self) -> usize {
        self.tree.scan_prefix(b"i").count()
    }
}

fn describe_key(k: &[u8]) -> String {
    match k {
        [b'i', a, b, c, d] => Ipv4Addr::new(*a, *b, *c, *d).to_string(),
        other => format!("{other:02x?}"),
    }
}

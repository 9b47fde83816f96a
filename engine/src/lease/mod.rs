//! Leases: the record and its states (ARCHITECTURE §6), the cache shared by
//! the shards, and the address allocator.

mod active;
mod allocator;
mod cache;
mod record;

pub use active::CountBy;
pub use allocator::AddressMap;
pub use cache::LeaseCache;
pub use record::*;

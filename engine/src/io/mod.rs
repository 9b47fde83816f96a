//! Sockets and receive loops around the sans-IO core (ARCHITECTURE §2).
//!
//! Today: the portable loop on standard sockets for `ADDR:PORT` listeners
//! (relayed and unicast traffic). Interface listeners, the sharded
//! io_uring loops and broadcast reply routing come with the serve issue.

mod portable;

pub use portable::{PortableShard, ShardStats};

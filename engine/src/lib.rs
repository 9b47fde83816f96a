//! leased: a DHCPv4 server for ISP- and campus-scale networks.
//!
//! The crate is laid out as the packet flows (ARCHITECTURE §1): [`wire`]
//! decodes and encodes messages without copying, [`server`] decides each
//! message against the [`lease`] cache without any I/O, and [`config`] is the
//! operator's HCL file, checked.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod hex;
pub mod io;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod store;
pub mod wire;

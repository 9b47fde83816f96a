//! Metric names (ARCHITECTURE §8): the one place they are spelled out.

/// Histogram: seconds one store flush took.
pub const STORE_FLUSH_DURATION: &str = "leased_store_flush_duration_seconds";
/// Histogram: lease changes per committed batch.
pub const STORE_BATCH_SIZE: &str = "leased_store_batch_size";
/// Counter `{op}`: failed store writes and flushes (each retried).
pub const STORE_ERRORS: &str = "leased_store_errors_total";
/// Counter `{kind}`: problems found and resolved at recovery.
pub const RECOVERY_PROBLEMS: &str = "leased_recovery_problems_total";
/// Counter: datagrams received, per shard handle.
pub const PACKETS_RECEIVED: &str = "leased_packets_received_total";
/// Counter `{type}`: replies sent.
pub const PACKETS_SENT: &str = "leased_packets_sent_total";
/// Counter `{reason}`: datagrams dropped, by [`crate::server::Ignored::reason`] or I/O reason.
pub const PACKETS_DROPPED: &str = "leased_packets_dropped_total";
/// Gauge `{backend}`: 1 for the receive loop in use.
pub const IO_BACKEND_INFO: &str = "leased_io_backend_info";
/// Counter `{policy,result}`: policy module calls (ok, out_of_fuel, timeout, memory, trap).
pub const POLICY_CALLS: &str = "leased_policy_calls_total";
/// Histogram `{policy}`: seconds one policy module call took.
pub const POLICY_DURATION: &str = "leased_policy_duration_seconds";
/// Counter `{kind}`: anomalies raised by policies.
pub const ANOMALIES: &str = "leased_anomalies_total";

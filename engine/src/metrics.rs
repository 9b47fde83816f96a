//! Metric names (ARCHITECTURE §8): the one place they are spelled out.

/// Histogram: seconds one store flush took.
pub const STORE_FLUSH_DURATION: &str = "leased_store_flush_duration_seconds";
/// Histogram: lease changes per committed batch.
pub const STORE_BATCH_SIZE: &str = "leased_store_batch_size";
/// Counter `{op}`: failed store writes and flushes (each retried).
pub const STORE_ERRORS: &str = "leased_store_errors_total";
/// Counter `{kind}`: problems found and resolved at recovery.
pub const RECOVERY_PROBLEMS: &str = "leased_recovery_problems_total";

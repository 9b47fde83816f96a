//! Metric names (ARCHITECTURE §8): the one place they are spelled out.

/// Histogram: seconds one store flush took.
pub const STORE_FLUSH_DURATION: &str = "leased_store_flush_duration_seconds";
/// Histogram: lease changes per committed batch.
pub const STORE_BATCH_SIZE: &str = "leased_store_batch_size";
/// Gauge `{kind}`: lease changes (`journal`) and history events
/// (`history`) written and not yet folded into their keys (set at each scrape).
pub const STORE_BACKLOG: &str = "leased_store_backlog";
/// Counter `{op}`: failed store writes and flushes (each retried).
pub const STORE_ERRORS: &str = "leased_store_errors_total";
/// Counter `{kind}`: problems found and resolved at recovery.
pub const RECOVERY_PROBLEMS: &str = "leased_recovery_problems_total";
/// Histogram `{shard}`: seconds from a request's arrival (its batch) to its reply leaving.
pub const REQUEST_DURATION: &str = "leased_request_duration_seconds";
/// Counter `{shard,type}`: datagrams received, by DHCP message type ("other": none or unknown).
pub const PACKETS_RECEIVED: &str = "leased_packets_received_total";
/// Counter `{shard,type}`: replies sent.
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
/// Gauge `{scope,pool}`: dynamic bound leases (set at each scrape).
pub const LEASES_ACTIVE: &str = "leased_leases_active";
/// Gauge `{scope,pool}`: addresses of the pool.
pub const POOL_ADDRESSES: &str = "leased_pool_addresses";
/// Gauge `{scope,pool}`: share of the pool's addresses taken, 0..1.
pub const POOL_UTILIZATION: &str = "leased_pool_utilization_ratio";

/// Histogram buckets, fixed so that histograms add up across shards and
/// servers (ARCHITECTURE §2).
const BUCKETS: [(&str, &[f64]); 4] = [
    (
        REQUEST_DURATION,
        &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
    ),
    (STORE_FLUSH_DURATION, &[0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
    // Batches reach 256 changes in FULL, 4,096 in NORMAL and OFF.
    (STORE_BATCH_SIZE, &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]),
    (POLICY_DURATION, &[1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2]),
];

/// What each metric means, for the `# HELP` lines of a scrape.
const HELP: [(&str, &str); 16] = [
    (STORE_FLUSH_DURATION, "Seconds one store flush (a batch made stable in sled's log and synced to the disk) took."),
    (STORE_BATCH_SIZE, "Lease changes per committed store batch."),
    (
        STORE_BACKLOG,
        "Lease changes (journal) and history events written and not yet folded; under load folding waits until 1M and 2M, is paced to 4M and 8M, then goes flat out.",
    ),
    (STORE_ERRORS, "Failed store writes and flushes, each retried."),
    (RECOVERY_PROBLEMS, "Problems found and resolved at start-up recovery."),
    (REQUEST_DURATION, "Seconds from a request's arrival to its reply leaving (after durability for ACKs)."),
    (PACKETS_RECEIVED, "Datagrams received, by DHCP message type."),
    (PACKETS_SENT, "Replies sent, by DHCP message type."),
    (PACKETS_DROPPED, "Datagrams dropped, by reason."),
    (IO_BACKEND_INFO, "1 for the receive loop in use."),
    (POLICY_CALLS, "Policy module calls by result: ok, out_of_fuel, timeout, memory, trap."),
    (POLICY_DURATION, "Seconds one policy module call took (sampled)."),
    (ANOMALIES, "Anomalies raised by policies, by kind."),
    (LEASES_ACTIVE, "Bound dynamic leases of a pool."),
    (POOL_ADDRESSES, "Addresses of a pool."),
    (POOL_UTILIZATION, "Share of a pool's addresses taken, 0 to 1."),
];

/// How long a gauge outlives its last setting (they are set at each scrape).
pub const GAUGE_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The I/O backend serving, for [`IO_BACKEND_INFO`].
static IO_BACKEND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Records the I/O backend that serves (once, at start).
pub fn record_io_backend(label: &'static str) {
    let _ = IO_BACKEND.set(label);
    set_scrape_gauges();
}

/// Sets the process's own gauges again (before each render: a gauge not
/// set lately leaves the output, see [`install`]).
pub fn set_scrape_gauges() {
    if let Some(backend) = IO_BACKEND.get() {
        metrics::gauge!(IO_BACKEND_INFO, "backend" => *backend).set(1.0);
    }
}

/// Installs the process's Prometheus recorder; its handle renders
/// `/metrics`. Call it before any handle is created: handles made before
/// go nowhere.
pub fn install() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    // Gauges are set at each scrape (`set_scrape_gauges` and the API's pool
    // gauges); one not set by the last scrape belongs to something gone (a
    // pool removed by a reload) and leaves the output, rather than keep its
    // last value, and the alerts on it, forever.
    let mut builder =
        PrometheusBuilder::new().idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT));
    for (name, buckets) in BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets).map_err(|e| e.to_string())?;
    }
    let handle = builder.install_recorder().map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    for (name, help) in HELP {
        // The kind only matters to recorders that check it; Prometheus takes the help text.
        metrics::describe_counter!(name, help);
    }
    // Series of rare events exist at zero from the start, so that rates and
    // alerts on them work before the first one (Prometheus practice).
    for kind in crate::config::ANOMALY_KINDS {
        metrics::counter!(ANOMALIES, "kind" => kind).absolute(0);
    }
    for op in crate::store::STORE_OPS {
        metrics::counter!(STORE_ERRORS, "op" => op).absolute(0);
    }
    Ok(handle)
}

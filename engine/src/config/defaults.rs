//! Config defaults: the one place they are set.

use super::values::Secs;

pub const ENABLED: bool = true;
pub const WORKERS: u32 = 0;
pub const RELAY_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const AUTHORITATIVE: bool = false;
pub const DATABASE_PATH: &str = "/var/lib/leased";
/// sled's page cache in 512-byte units: 2 MiB. 5 MiB took ~30 MB more at
/// 1M leases for no measurable rate; 1 MiB saves ~12 MB more and cost
/// 6–15 % of the rate in some runs (bench/README.md, session 13).
pub const CACHE_SIZE: u64 = 4_096;
pub const DEFAULT_LEASE_TIME: Secs = Secs(86_400);
pub const MAX_LEASE_TIME: Secs = Secs(7 * 86_400);
pub const MIN_LEASE_TIME: Secs = Secs(60);
pub const GRACE_PERIOD: Secs = Secs(0);
pub const REUSE_EXPIRED: bool = true;
pub const REUSE_AFTER: Secs = Secs(0);
pub const VALIDATE_CLIENT: bool = true;
pub const REQUIRE_CLIENT_IDENTIFIER: bool = false;
/// Long enough for a client's REQUEST to follow its OFFER with retries.
pub const OFFER_HOLD_TIME: Secs = Secs(30);
/// Kea's decline-probation-period default.
pub const DECLINE_PROBATION: Secs = Secs(86_400);
pub const CLEANUP_ABANDONED: bool = true;
pub const CLEANUP_INTERVAL: Secs = Secs(15 * 60);
/// Name of a scope's pool from `range_start`..`range_end` when no named pool covers exactly that range.
pub const DEFAULT_POOL_NAME: &str = "default";
/// How long per-client lease history is kept.
pub const CLIENT_HISTORY_RETENTION: Secs = Secs(30 * 86_400);
/// How long expired and released leases are kept before they are dropped.
pub const EXPIRED_LEASE_RETENTION: Secs = Secs(30 * 86_400);
/// Scheduled backups: how often, how long kept, where.
pub const BACKUP_INTERVAL: Secs = Secs(3600);
pub const AUTO_EXPORT_INTERVAL: Secs = Secs(3600);
pub const BACKUP_RETENTION: Secs = Secs(7 * 86_400);
pub const BACKUP_PATH: &str = "/var/backups/leased";
/// `analytics.anomaly_detection`: the thresholds of ARCHITECTURE §5's example.
pub const EXCESSIVE_LEASES_PER_MINUTE: u32 = 10;
pub const RAPID_RENEWALS_PER_MINUTE: u32 = 5;
/// A campus access port sees a handful of new devices a minute; a
/// starvation tool sends hundreds a second.
pub const NEW_CLIENTS_PER_MINUTE: u32 = 60;
pub const POOL_UTILIZATION_WARNING: f64 = 80.0;
pub const POOL_UTILIZATION_CRITICAL: f64 = 95.0;
pub const ANOMALY_ACTIONS: [&str; 2] = ["alert", "log"];
pub const BLOCK_COOLDOWN: Secs = Secs(300);
/// Where the REST API, the web UI and `/metrics` listen.
pub const API_LISTEN: &str = "127.0.0.1:8080";

//! The validated configuration the server runs on.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use ipnet::Ipv4Net;

use super::values::{AddrRange, Mac, Secs};

/// A checked `dhcp { ... }` block.
#[derive(Debug, Clone)]
pub struct Config {
    pub enabled: bool,
    pub server_id: Option<Ipv4Addr>,
    /// Shard threads; 0 = one per core.
    pub workers: u32,
    /// Which receive loop the shards run.
    pub io_backend: IoBackend,
    pub listen: Vec<Listen>,
    pub relay_port: u16,
    pub client_port: u16,
    /// NAK requests of clients we have no record of, on our networks.
    pub authoritative: bool,
    pub database: Database,
    pub lease: LeasePolicy,
    pub scopes: Vec<Scope>,
    /// How long per-client lease history is kept (`persistence.retention.client_history`).
    pub history_retention: Secs,
    /// How long expired and released leases are kept (`persistence.retention.expired_leases`).
    pub expired_retention: Secs,
    /// `persistence.auto_export`, when enabled.
    pub auto_export: Option<AutoExport>,
    pub recovery: RecoveryPolicy,
    /// WebAssembly policy modules, run in this order after the standard ones.
    pub policies: Vec<PolicyModule>,
    /// `analytics.anomaly_detection` when enabled: carried out by the standard `anomaly` policy.
    pub anomaly_detection: Option<AnomalyDetection>,
    /// The REST API, web UI and `/metrics` (None: not served).
    pub api: Option<ApiConfig>,
}

/// `api = { listen, token_file }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub listen: std::net::SocketAddr,
    /// Holds the bearer token (None: reads open, writes refused).
    pub token_file: Option<std::path::PathBuf>,
}

/// What `analytics.anomaly_detection` watches for and does.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyDetection {
    /// Kinds to detect, of [`ANOMALY_KINDS`].
    pub detect: Vec<String>,
    /// New leases per minute of one MAC, or of one relay port, above which
    /// `excessive_leases` is raised.
    pub excessive_leases_per_minute: u32,
    /// Renewals per minute of one MAC above which `rapid_renewals` is raised.
    pub rapid_renewals_per_minute: u32,
    /// New clients per minute behind one relay port or one interface above
    /// which `unusual_patterns` (a starvation attack) is raised.
    pub new_clients_per_minute: u32,
    /// Utilisation (percent) of a pool that raises `pool_exhaustion` as a warning, then as critical.
    pub pool_utilization_warning: f64,
    pub pool_utilization_critical: f64,
    /// Of "alert" (record and count), "log", "block" (deny the MAC or relay port for `block_cooldown`).
    pub actions: Vec<String>,
    pub block_cooldown: Secs,
}

/// The anomaly kinds, in the order of their ids in the policy ABI.
pub const ANOMALY_KINDS: [&str; 4] = ["excessive_leases", "rapid_renewals", "unusual_patterns", "pool_exhaustion"];

/// A scope's `restrictions` and `max_concurrent_leases`: carried out by the
/// standard `restrictions` policy. They refuse new leases, never renewals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restrictions {
    pub max_leases_per_mac: Option<u32>,
    pub max_leases_per_hostname: Option<u32>,
    pub block_macs: Vec<Mac>,
    pub max_concurrent_leases: Option<u32>,
}

impl Restrictions {
    pub fn is_empty(&self) -> bool {
        *self == Restrictions::default()
    }
}

/// What happens to stored leases at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// Load the store into the server before serving.
    pub auto_recover: bool,
    /// Resolve clients holding two leases per `conflict_resolution` (else only count them).
    pub validate_on_recover: bool,
}

/// `io_backend`: io_uring, the portable loop, or io_uring where it can be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    Auto,
    Uring,
    Portable,
}

/// Where to receive DHCP traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Listen {
    /// An interface: broadcast-capable, bound to the device.
    Interface(String),
    /// An address for relayed or unicast traffic.
    Socket(SocketAddrV4),
}

/// Lease persistence settings.
#[derive(Debug, Clone)]
pub struct Database {
    pub path: PathBuf,
    pub sync_mode: SyncMode,
    pub cache_size: u64,
    /// Scheduled backups, when enabled.
    pub backup: Option<BackupSchedule>,
}

/// `database.backup`: a copy every `interval` into `path`, kept `retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    pub interval: Secs,
    pub retention: Secs,
    pub path: PathBuf,
}

/// `persistence.auto_export`: every lease written to `path` every
/// `interval` (and once at start), replacing the file whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoExport {
    pub interval: Secs,
    pub path: PathBuf,
    pub format: crate::store::transfer::ExportFormat,
}

/// When an acknowledged lease is on disk (ARCHITECTURE §2, as in SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// An ACK leaves only once its lease is flushed.
    Full,
    /// Flushed on a short interval; ACKs do not wait.
    Normal,
    /// Never flushed explicitly.
    Off,
}

/// One `client_lease_times` rule: every criterion given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTimeRule {
    /// MAC prefixes as written (checked), any of which may match.
    pub mac_prefix: Vec<String>,
    pub vendor_class: Option<String>,
    pub hostname_regex: Option<String>,
    pub lease_time: Secs,
}

/// A WebAssembly policy module of `policies = [...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyModule {
    pub name: String,
    pub path: PathBuf,
    /// Drop the request when the module fails (`on_error = "deny"`), else go on.
    pub deny_on_error: bool,
    pub fuel: Option<u64>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// The module's own config (JSON), passed to `policy_init`.
    pub config: serde_json::Value,
}

/// Server-wide lease rules.
#[derive(Debug, Clone)]
pub struct LeasePolicy {
    pub times: LeaseTimes,
    pub grace_period: Secs,
    pub renewal_time: Option<Secs>,
    pub rebinding_time: Option<Secs>,
    pub reuse_expired: bool,
    pub reuse_after: Secs,
    pub conflict_resolution: ConflictResolution,
    pub validate_client: bool,
    pub require_client_identifier: bool,
    pub offer_hold_time: Secs,
    pub decline_probation: Secs,
}

/// What to do when two clients claim one address (used by recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictResolution {
    Deny,
    Replace,
    Warn,
}

/// Default, minimum and maximum lease lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub default: Secs,
    pub min: Secs,
    pub max: Secs,
}

impl LeaseTimes {
    /// The lease for a client that asked for `requested` seconds (option 51).
    pub fn grant(&self, requested: Option<u32>) -> Secs {
        requested.map_or(self.default, |r| Secs(r).clamp(self.min, self.max))
    }
}

/// One network: where its clients come from and what they get.
#[derive(Debug, Clone)]
pub struct Scope {
    pub name: String,
    pub interface: Option<String>,
    pub relay_addresses: Vec<Ipv4Addr>,
    /// Known from the config, or at start from the interface's address.
    pub subnet: Option<Ipv4Net>,
    pub times: LeaseTimes,
    pub options: OptionValues,
    /// The scope's pools; `pools[0]` is the default pool (`range_start`..`range_end`,
    /// after the reserved range).
    pub pools: Vec<Pool>,
    /// The first `max_reservations` addresses of `range_start`..`range_end`:
    /// where the API places reservations; never handed out dynamically.
    pub reserved_range: Option<AddrRange>,
    pub reservations: Vec<Reservation>,
    pub cleanup_abandoned: bool,
    pub cleanup_interval: Secs,
    /// `client_lease_times`: carried out by the standard `lease_times` policy.
    pub client_lease_times: Vec<LeaseTimeRule>,
    pub restrictions: Restrictions,
}

/// A dynamic address range.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub range: AddrRange,
    pub times: LeaseTimes,
    /// Glob patterns on hostname or vendor class; empty = open to every client.
    pub allow: Vec<String>,
}

/// A fixed address for a client.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub mac: Option<Mac>,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// Match by hostname alone, whatever the MAC.
    pub allow_any_mac: bool,
    pub lease_time: Option<Secs>,
    pub options: OptionValues,
}

/// Option values handed to clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionValues {
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub domain_search: Vec<String>,
    pub ntp_servers: Vec<Ipv4Addr>,
    pub broadcast_address: Option<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub tftp_server: Option<String>,
    pub boot_file: Option<String>,
}

impl OptionValues {
    /// These values with `over`'s set ones taking precedence.
    pub fn overlaid(&self, over: &OptionValues) -> OptionValues {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            b.clone().or_else(|| a.clone())
        }
        fn list<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
            if b.is_empty() {
                a.to_vec()
            } else {
                b.to_vec()
            }
        }
        OptionValues {
            routers: list(&self.routers, &over.routers),
            dns_servers: list(&self.dns_servers, &over.dns_servers),
            domain_name: pick(&self.domain_name, &over.domain_name),
            domain_search: list(&self.domain_search, &over.domain_search),
            ntp_servers: list(&self.ntp_servers, &over.ntp_servers),
            broadcast_address: pick(&self.broadcast_address, &over.broadcast_address),
            mtu: pick(&self.mtu, &over.mtu),
            tftp_server: pick(&self.tftp_server, &over.tftp_server),
            boot_file: pick(&self.boot_file, &over.boot_file),
        }
    }
}

impl Scope {
    /// Whether `ip` belongs to this scope's network (its subnet, else its pools).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        match self.subnet {
            Some(net) => net.contains(&ip),
            None => self.pools.iter().any(|p| p.range.contains(ip)),
        }
    }
}

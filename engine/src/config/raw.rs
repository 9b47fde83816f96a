//! The config file as written: serde structures mirroring ARCHITECTURE §5.
//! Every struct refuses unknown keys; values stay strings here and are
//! checked, with their key paths, in `validate`.

// Sections of later work are parsed and checked now; their fields are read when they land.
#![allow(dead_code)]

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub dhcp: Dhcp,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    pub enabled: Option<bool>,
    pub server_id: Option<String>,
    pub workers: Option<u32>,
    pub io_backend: Option<String>,
    #[serde(default)]
    pub listen: Vec<String>,
    pub relay_port: Option<u16>,
    pub client_port: Option<u16>,
    pub authoritative: Option<bool>,
    pub database: Option<Database>,
    pub lease_policies: Option<LeasePolicies>,
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    #[serde(default)]
    pub scope: IndexMap<String, Scope>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    pub analytics: Option<Analytics>,
    pub api: Option<Api>,
    pub persistence: Option<Persistence>,
    pub recovery: Option<Recovery>,
    /// High availability: no schema yet; present means refused.
    pub ha: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub sync_mode: Option<String>,
    pub journal_mode: Option<String>,
    pub cache_size: Option<u64>,
    pub backup: Option<Backup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub retention: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LeasePolicies {
    pub default_lease_time: Option<String>,
    pub max_lease_time: Option<String>,
    pub min_lease_time: Option<String>,
    pub grace_period: Option<String>,
    pub renewal_time: Option<String>,
    pub rebinding_time: Option<String>,
    pub reuse_expired: Option<bool>,
    pub reuse_after: Option<String>,
    pub conflict_resolution: Option<String>,
    pub validate_client: Option<bool>,
    pub require_client_identifier: Option<bool>,
    /// How long an offered address stays held for its client (leased extension).
    pub offer_hold_time: Option<String>,
    /// How long a declined address stays out of the pool (leased extension).
    pub decline_probation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub mac: Option<String>,
    pub ip: String,
    pub hostname: Option<String>,
    pub allow_any_mac: Option<bool>,
    pub options: Option<DhcpOptions>,
}

/// Options handed to clients, on a scope or a reservation.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DhcpOptions {
    pub routers: Option<Vec<String>>,
    pub dns_servers: Option<Vec<String>>,
    pub domain_name: Option<String>,
    pub domain_search: Option<Vec<String>>,
    pub ntp_servers: Option<Vec<String>>,
    pub broadcast_address: Option<String>,
    pub mtu: Option<u16>,
    pub tftp_server: Option<String>,
    pub boot_file: Option<String>,
    /// Only on reservations.
    pub lease_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub interface: Option<String>,
    #[serde(default)]
    pub relay_addresses: Vec<String>,
    pub subnet: Option<String>,
    pub range_start: String,
    pub range_end: String,
    pub max_reservations: Option<u32>,
    pub lease_time: Option<String>,
    pub max_lease_time: Option<String>,
    pub min_lease_time: Option<String>,
    pub options: Option<DhcpOptions>,
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    pub client_lease_times: Option<Vec<ClientLeaseTime>>,
    pub restrictions: Option<Vec<Restriction>>,
    pub max_concurrent_leases: Option<u64>,
    pub cleanup_abandoned: Option<bool>,
    pub cleanup_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    pub range: String,
    pub lease_time: Option<String>,
    pub max_lease_time: Option<String>,
    pub min_lease_time: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLeaseTime {
    pub mac_prefix: Option<StringOrList>,
    pub vendor_class: Option<String>,
    pub hostname_regex: Option<String>,
    pub lease_time: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    pub max_leases_per_mac: Option<u32>,
    pub max_leases_per_hostname: Option<u32>,
    pub block_macs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    pub path: String,
    pub on_error: Option<String>,
    pub fuel: Option<u64>,
    pub memory: Option<String>,
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analytics {
    pub enabled: Option<bool>,
    pub anomaly_detection: Option<AnomalyDetection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyDetection {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub detect: Vec<String>,
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub actions: Vec<String>,
    pub block_cooldown: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub excessive_leases_per_minute: Option<u32>,
    pub rapid_renewals_per_minute: Option<u32>,
    pub pool_utilization_warning: Option<f64>,
    pub pool_utilization_critical: Option<f64>,
    pub new_clients_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    pub auto_recover: Option<bool>,
    pub validate_on_recover: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    pub retention: Option<Retention>,
    pub auto_export: Option<AutoExport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoExport {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub path: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub client_history: Option<String>,
    pub expired_leases: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub listen: Option<String>,
    pub token_file: Option<String>,
}

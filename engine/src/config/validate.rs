//! From the file as written ([`raw`]) to the checked [`Config`]: every value
//! parsed, every cross-reference checked, every error collected with its key
//! path (never just the first).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::defaults as d;
use super::model::*;
use super::raw;
use super::values::{AddrRange, Mac, MacPrefix, Secs};
use crate::store::transfer::ExportFormat;

/// Errors as (key path, message).
pub type Problems = Vec<(String, String)>;

/// Checks a parsed file.
pub fn validate(file: &raw::File) -> Result<Config, Problems> {
    let mut v = Validator::default();
    let config = v.dhcp(&file.dhcp);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(v.problems)
    }
}

#[derive(Default)]
struct Validator {
    problems: Problems,
}

const NOT_YET: &str = "is not implemented in this version of leased; remove it to run this config";

impl Validator {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push((path.into(), message.into()));
    }

    fn parse<T: FromStr>(&mut self, path: &str, s: &str, what: &str) -> Option<T> {
        match s.trim().parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(path, format!("{s:?} is not a valid {what}"));
                None
            }
        }
    }

    fn ip(&mut self, path: &str, s: &str) -> Option<Ipv4Addr> {
        self.parse(path, s, "IPv4 address")
    }

    fn ips(&mut self, path: &str, list: &Option<Vec<String>>) -> Vec<Ipv4Addr> {
        let list = list.as_deref().unwrap_or_default();
        list.iter().enumerate().filter_map(|(i, s)| self.ip(&format!("{path}[{i}]"), s)).collect()
    }

    fn secs(&mut self, path: &str, s: &Option<String>, default: Secs) -> Secs {
        match s {
            None => default,
            Some(s) => s.parse::<Secs>().unwrap_or_else(|e| {
                self.fail(path, e);
                default
            }),
        }
    }

    fn opt_secs(&mut self, path: &str, s: &Option<String>) -> Option<Secs> {
        s.as_ref().map(|_| self.secs(path, s, Secs(0)))
    }

    /// min ≤ default ≤ max, each falling back to `parent`; an unset default
    /// is the parent's, clamped into this level's min..max.
    fn times(
        &mut self,
        path: &str,
        default: &Option<String>,
        default_key: &str,
        min: &Option<String>,
        max: &Option<String>,
        parent: LeaseTimes,
    ) -> LeaseTimes {
        let min = self.secs(&format!("{path}.min_lease_time"), min, parent.min);
        let max = self.secs(&format!("{path}.max_lease_time"), max, parent.max);
        if min > max {
            self.fail(format!("{path}.min_lease_time"), format!("min_lease_time {min} is above max_lease_time {max}"));
            return LeaseTimes { default: parent.default, min, max: min };
        }
        let t = LeaseTimes {
            default: self.secs(&format!("{path}.{default_key}"), default, parent.default.clamp(min, max)),
            min,
            max,
        };
        if t.default < t.min || t.default > t.max {
            self.fail(
                format!("{path}.{default_key}"),
                format!("{default_key} {} is outside min_lease_time {} .. max_lease_time {}", t.default, t.min, t.max),
            );
        }
        t
    }

    fn dhcp(&mut self, r: &raw::Dhcp) -> Config {
        let server_id = r.server_id.as_deref().and_then(|s| self.ip("dhcp.server_id", s));
        let workers = r.workers.unwrap_or(d::WORKERS);
        if workers > 256 {
            self.fail("dhcp.workers", format!("{workers} shards is more than the 256 supported"));
        }
        let io_backend = match r.io_backend.as_deref().unwrap_or("auto") {
            "auto" => IoBackend::Auto,
            "uring" => IoBackend::Uring,
            "portable" => IoBackend::Portable,
            other => {
                self.fail("dhcp.io_backend", format!("{other:?} is not one of \"auto\", \"uring\", \"portable\""));
                IoBackend::Auto
            }
        };
        let listen = self.listen(&r.listen);
        for (key, port) in [("relay_port", r.relay_port), ("client_port", r.client_port)] {
            if port == Some(0) {
                self.fail(format!("dhcp.{key}"), "port 0 is not a usable port");
            }
        }
        let database = self.database(r.database.as_ref());
        let lease = self.lease_policies(r.lease_policies.as_ref().unwrap_or(&Default::default()));
        let mut scopes: Vec<Scope> = r.scope.iter().map(|(name, s)| self.scope(name, s, &lease, &listen)).collect();
        if scopes.is_empty() && r.enabled.unwrap_or(d::ENABLED) {
            self.fail("dhcp", "no scope is defined: add a `scope \"NAME\" { ... }` block");
        }
        self.global_reservations(&r.reservations, &mut scopes);
        self.cross_scope(&scopes);
        self.not_yet(r);
        let policies = self.policies(r);
        let anomaly_detection = r.analytics.as_ref().and_then(|a| self.anomaly_detection(a));
        let api = r.api.as_ref().and_then(|a| self.api(a));
        let retention = r.persistence.as_ref().and_then(|p| p.retention.as_ref());
        let history_retention = self.secs(
            "dhcp.persistence.retention.client_history",
            &retention.and_then(|r| r.client_history.clone()),
            d::CLIENT_HISTORY_RETENTION,
        );
        let expired_retention = self.secs(
            "dhcp.persistence.retention.expired_leases",
            &retention.and_then(|r| r.expired_leases.clone()),
            d::EXPIRED_LEASE_RETENTION,
        );
        let auto_export = r.persistence.as_ref().and_then(|p| p.auto_export.as_ref()).and_then(|a| self.auto_export(a));
        Config {
            enabled: r.enabled.unwrap_or(d::ENABLED),
            server_id,
            workers,
            io_backend,
            listen,
            relay_port: r.relay_port.unwrap_or(d::RELAY_PORT),
            client_port: r.client_port.unwrap_or(d::CLIENT_PORT),
            authoritative: r.authoritative.unwrap_or(d::AUTHORITATIVE),
            database,
            lease,
            scopes,
            history_retention,
            expired_retention,
            auto_export,
            recovery: RecoveryPolicy {
                auto_recover: r.recovery.as_ref().and_then(|x| x.auto_recover).unwrap_or(true),
                validate_on_recover: r.recovery.as_ref().and_then(|x| x.validate_on_recover).unwrap_or(true),
            },
            policies,
            anomaly_detection,
            api,
        }
    }

    fn api(&mut self, a: &raw::Api) -> Option<ApiConfig> {
        let listen = a.listen.as_deref().unwrap_or(d::API_LISTEN);
        let listen = self.parse("dhcp.api.listen", listen, "ADDR:PORT")?;
        let token_file = a.token_file.as_ref().map(std::path::PathBuf::from);
        if token_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            self.fail("dhcp.api.token_file", "is empty: give the path of a file holding the token");
        }
        Some(ApiConfig { listen, token_file })
    }

    fn listen(&mut self, list: &[String]) -> Vec<Listen> {
        if list.is_empty() {
            self.fail(
                "dhcp.listen",
                "no listen address: give interfaces (\"eth1\") and/or \"ADDR:PORT\" for relayed traffic",
            );
        }
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let path = format!("dhcp.listen[{i}]");
            if item.contains(':') {
                match item.parse::<SocketAddrV4>() {
                    Ok(a) => out.push(Listen::Socket(a)),
                    Err(_) => self.fail(path, format!("{item:?} is neither an interface name nor an IPv4 ADDR:PORT")),
                }
            } else if item.is_empty()
                || item.len() > 15
                || item.contains(['/', ' ', '\t'])
                || item == "."
                || item == ".."
            {
                self.fail(path, format!("{item:?} is not a valid interface name"));
            } else {
                out.push(Listen::Interface(item.clone()));
            }
        }
        let mut seen = HashSet::new();
        for (i, l) in out.iter().enumerate() {
            if !seen.insert(l.clone()) {
                self.fail(format!("dhcp.listen[{i}]"), "listed twice");
            }
        }
        out
    }

    fn database(&mut self, r: Option<&raw::Database>) -> Database {
        let mut db = Database {
            path: PathBuf::from(d::DATABASE_PATH),
            sync_mode: SyncMode::Full,
            cache_size: d::CACHE_SIZE,
            backup: None,
        };
        let Some(r) = r else { return db };
        if let Some(kind) = &r.kind {
            if kind != "sled" {
                self.fail(
                    "dhcp.database.type",
                    format!("database type {kind:?} is not supported: the only engine is \"sled\""),
                );
            }
        }
        if let Some(path) = &r.path {
            if path.is_empty() {
                self.fail("dhcp.database.path", "empty path");
            }
            db.path = PathBuf::from(path);
        }
        if let Some(mode) = &r.sync_mode {
            match mode.to_ascii_uppercase().as_str() {
                "FULL" => db.sync_mode = SyncMode::Full,
                "NORMAL" => db.sync_mode = SyncMode::Normal,
                "OFF" => db.sync_mode = SyncMode::Off,
                _ => self.fail("dhcp.database.sync_mode", format!("{mode:?} is not one of FULL, NORMAL, OFF")),
            }
        }
        if let Some(mode) = &r.journal_mode {
            if !mode.eq_ignore_ascii_case("WAL") {
                self.fail(
                    "dhcp.database.journal_mode",
                    format!("{mode:?} is not supported: sled is log-structured, only \"WAL\" is accepted"),
                );
            }
        }
        if let Some(size) = r.cache_size {
            db.cache_size = size;
        }
        if let Some(b) = &r.backup {
            let p = "dhcp.database.backup";
            let schedule = BackupSchedule {
                interval: self.secs(&format!("{p}.interval"), &b.interval, d::BACKUP_INTERVAL),
                retention: self.secs(&format!("{p}.retention"), &b.retention, d::BACKUP_RETENTION),
                path: PathBuf::from(b.path.as_deref().unwrap_or(d::BACKUP_PATH)),
            };
            if schedule.interval < Secs(60) {
                self.fail(
                    format!("{p}.interval"),
                    format!("backups every {} would copy the database constantly: use at least 1m", schedule.interval),
                );
            }
            if schedule.path == db.path {
                self.fail(format!("{p}.path"), "backups must not go into the database directory");
            }
            if b.enabled.unwrap_or(true) {
                db.backup = Some(schedule);
            }
        }
        db
    }

    fn lease_policies(&mut self, r: &raw::LeasePolicies) -> LeasePolicy {
        let p = "dhcp.lease_policies";
        let base = LeaseTimes { default: d::DEFAULT_LEASE_TIME, min: d::MIN_LEASE_TIME, max: d::MAX_LEASE_TIME };
        let times =
            self.times(p, &r.default_lease_time, "default_lease_time", &r.min_lease_time, &r.max_lease_time, base);
        let renewal_time = self.opt_secs(&format!("{p}.renewal_time"), &r.renewal_time);
        let rebinding_time = self.opt_secs(&format!("{p}.rebinding_time"), &r.rebinding_time);
        if let (Some(t1), Some(t2)) = (renewal_time, rebinding_time) {
            if t1 >= t2 {
                self.fail(format!("{p}.renewal_time"), format!("renewal_time {t1} must be below rebinding_time {t2}"));
            }
        }
        let conflict_resolution = match r.conflict_resolution.as_deref().unwrap_or("deny") {
            "deny" => ConflictResolution::Deny,
            "replace" => ConflictResolution::Replace,
            "warn" => ConflictResolution::Warn,
            other => {
                self.fail(format!("{p}.conflict_resolution"), format!("{other:?} is not one of deny, replace, warn"));
                ConflictResolution::Deny
            }
        };
        LeasePolicy {
            times,
            grace_period: self.secs(&format!("{p}.grace_period"), &r.grace_period, d::GRACE_PERIOD),
            renewal_time,
            rebinding_time,
            reuse_expired: r.reuse_expired.unwrap_or(d::REUSE_EXPIRED),
            reuse_after: self.secs(&format!("{p}.reuse_after"), &r.reuse_after, d::REUSE_AFTER),
            conflict_resolution,
            validate_client: r.validate_client.unwrap_or(d::VALIDATE_CLIENT),
            require_client_identifier: r.require_client_identifier.unwrap_or(d::REQUIRE_CLIENT_IDENTIFIER),
            offer_hold_time: self.secs(&format!("{p}.offer_hold_time"), &r.offer_hold_time, d::OFFER_HOLD_TIME),
            decline_probation: self.secs(&format!("{p}.decline_probation"), &r.decline_probation, d::DECLINE_PROBATION),
        }
    }

    fn options(
        &mut self,
        path: &str,
        r: &Option<raw::DhcpOptions>,
        allow_lease_time: bool,
    ) -> (OptionValues, Option<Secs>) {
        let Some(r) = r else { return Default::default() };
        let names = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        let values = OptionValues {
            routers: self.ips(&format!("{path}.routers"), &r.routers),
            dns_servers: self.ips(&format!("{path}.dns_servers"), &r.dns_servers),
            domain_name: r.domain_name.clone(),
            domain_search: names(&r.domain_search),
            ntp_servers: self.ips(&format!("{path}.ntp_servers"), &r.ntp_servers),
            broadcast_address: r
                .broadcast_address
                .as_deref()
                .and_then(|s| self.ip(&format!("{path}.broadcast_address"), s)),
            mtu: r.mtu,
            tftp_server: r.tftp_server.clone(),
            boot_file: r.boot_file.clone(),
        };
        for (key, name) in [("domain_name", &values.domain_name), ("tftp_server", &values.tftp_server)] {
            if let Some(n) = name {
                self.check_domain(&format!("{path}.{key}"), n);
            }
        }
        for (i, n) in values.domain_search.iter().enumerate() {
            self.check_domain(&format!("{path}.domain_search[{i}]"), n);
        }
        if let Some(mtu) = values.mtu {
            if mtu < 68 {
                self.fail(format!("{path}.mtu"), format!("MTU {mtu} is below the IPv4 minimum of 68"));
            }
        }
        if values.boot_file.as_ref().is_some_and(|f| f.len() > 127) {
            self.fail(format!("{path}.boot_file"), "longer than the 127 bytes of the BOOTP file field");
        }
        let lease_time = if allow_lease_time {
            self.opt_secs(&format!("{path}.lease_time"), &r.lease_time)
        } else {
            if r.lease_time.is_some() {
                self.fail(format!("{path}.lease_time"), "lease_time belongs on the scope or pool, not in its options");
            }
            None
        };
        (values, lease_time)
    }

    fn check_domain(&mut self, path: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.trim_end_matches('.').split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            });
        if !ok {
            self.fail(path, format!("{name:?} is not a valid domain name"));
        }
    }

    fn scope(&mut self, name: &str, r: &raw::Scope, lease: &LeasePolicy, listen: &[Listen]) -> Scope {
        let path = format!("dhcp.scope.{name}");
        let subnet = r.subnet.as_deref().and_then(|s| match s.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.fail(
                    format!("{path}.subnet"),
                    format!("{s:?} has host bits set: did you mean \"{}\"?", net.trunc()),
                );
                None
            }
            Err(_) => {
                self.fail(format!("{path}.subnet"), format!("{s:?} is not a CIDR subnet like \"198.18.0.0/16\""));
                None
            }
        });
        if let Some(iface) = &r.interface {
            if !listen.contains(&Listen::Interface(iface.clone())) {
                self.fail(format!("{path}.interface"), format!("interface {iface:?} is not in dhcp.listen"));
            }
        }
        let relay_addresses: Vec<Ipv4Addr> = r
            .relay_addresses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.ip(&format!("{path}.relay_addresses[{i}]"), s))
            .collect();
        if r.interface.is_none() && relay_addresses.is_empty() && subnet.is_none() {
            self.fail(&path, "the scope cannot be selected: give it an interface, relay_addresses or a subnet");
        }
        if r.interface.is_none() && subnet.is_none() && r.subnet.is_none() {
            self.fail(format!("{path}.subnet"), "a scope without an interface needs a subnet");
        }
        let times = self.times(&path, &r.lease_time, "lease_time", &r.min_lease_time, &r.max_lease_time, lease.times);
        let (options, _) = self.options(&format!("{path}.options"), &r.options, false);
        let start = self.ip(&format!("{path}.range_start"), &r.range_start);
        let end = self.ip(&format!("{path}.range_end"), &r.range_end);
        let mut pools = Vec::new();
        let mut reserved_range = None;
        if let (Some(start), Some(end)) = (start, end) {
            if start > end {
                self.fail(format!("{path}.range_end"), format!("range_end {end} is below range_start {start}"));
            } else {
                let mut range = AddrRange::new(start, end);
                self.inside_subnet(&format!("{path}.range_start"), subnet, &range);
                // The pool boundary: the first max_reservations addresses are kept for reservations.
                let reserved = u64::from(r.max_reservations.unwrap_or(0));
                if reserved >= range.len() {
                    self.fail(
                        format!("{path}.max_reservations"),
                        format!("{reserved} leaves no dynamic address in {range} ({} addresses)", range.len()),
                    );
                } else if reserved > 0 {
                    let first_dynamic = Ipv4Addr::from(u32::from(start) + reserved as u32);
                    reserved_range = Some(AddrRange::new(start, Ipv4Addr::from(u32::from(first_dynamic) - 1)));
                    range = AddrRange::new(first_dynamic, end);
                }
                pools.push(Pool { name: d::DEFAULT_POOL_NAME.into(), range, times, allow: vec![] });
            }
        }
        self.pools(&path, r, subnet, times, &mut pools);
        if let Some(reserved) = reserved_range {
            for p in pools.iter().skip(1) {
                if p.range.overlaps(&reserved) {
                    self.fail(
                        format!("{path}.pools"),
                        format!(
                            "pool {:?} ({}) overlaps the reserved range {reserved} (max_reservations)",
                            p.name, p.range
                        ),
                    );
                }
            }
        }
        let mut reservations = Vec::new();
        for (i, res) in r.reservations.iter().enumerate() {
            if let Some(res) = self.reservation(&format!("{path}.reservations[{i}]"), res) {
                if !subnet.is_none_or(|n| n.contains(&res.ip)) {
                    self.fail(
                        format!("{path}.reservations[{i}].ip"),
                        format!("{} is outside the scope's subnet", res.ip),
                    );
                }
                reservations.push(res);
            }
        }
        let client_lease_times = self.client_lease_times(&path, r);
        let restrictions = self.restrictions(&path, r);
        Scope {
            name: name.to_owned(),
            interface: r.interface.clone(),
            relay_addresses,
            subnet,
            times,
            options,
            pools,
            reserved_range,
            reservations,
            cleanup_abandoned: r.cleanup_abandoned.unwrap_or(d::CLEANUP_ABANDONED),
            cleanup_interval: self.secs(&format!("{path}.cleanup_interval"), &r.cleanup_interval, d::CLEANUP_INTERVAL),
            client_lease_times,
            restrictions,
        }
    }

    /// The scope's `client_lease_times` rules.
    fn client_lease_times(&mut self, path: &str, r: &raw::Scope) -> Vec<LeaseTimeRule> {
        let mut rules = Vec::new();
        for (i, rule) in r.client_lease_times.iter().flatten().enumerate() {
            let p = format!("{path}.client_lease_times[{i}]");
            let lease_time = self.secs(&format!("{p}.lease_time"), &Some(rule.lease_time.clone()), Secs(0));
            let prefixes: Vec<&String> = match &rule.mac_prefix {
                Some(raw::StringOrList::One(s)) => vec![s],
                Some(raw::StringOrList::Many(v)) => v.iter().collect(),
                None => vec![],
            };
            for s in &prefixes {
                if let Err(e) = s.parse::<MacPrefix>() {
                    self.fail(format!("{p}.mac_prefix"), e);
                }
            }
            if rule.mac_prefix.is_none() && rule.vendor_class.is_none() && rule.hostname_regex.is_none() {
                self.fail(&p, "a rule needs mac_prefix, vendor_class or hostname_regex");
            }
            if lease_time.is_infinite() {
                self.fail(format!("{p}.lease_time"), "a rule's lease time must be finite");
            }
            rules.push(LeaseTimeRule {
                mac_prefix: prefixes.into_iter().cloned().collect(),
                vendor_class: rule.vendor_class.clone(),
                hostname_regex: rule.hostname_regex.clone(),
                lease_time,
            });
        }
        rules
    }

    /// The scope's `restrictions` (a list of one-key objects, merged) and
    /// `max_concurrent_leases`.
    fn restrictions(&mut self, path: &str, r: &raw::Scope) -> Restrictions {
        let mut out = Restrictions::default();
        for (i, rule) in r.restrictions.iter().flatten().enumerate() {
            let p = format!("{path}.restrictions[{i}]");
            for (key, value, slot) in [
                ("max_leases_per_mac", rule.max_leases_per_mac, &mut out.max_leases_per_mac),
                ("max_leases_per_hostname", rule.max_leases_per_hostname, &mut out.max_leases_per_hostname),
            ] {
                let Some(n) = value else { continue };
                if n == 0 {
                    self.fail(format!("{p}.{key}"), "0 would refuse every client: use block_macs, or remove the rule");
                }
                if slot.replace(n).is_some() {
                    self.fail(format!("{p}.{key}"), format!("{key} is set twice"));
                }
            }
            for (j, mac) in rule.block_macs.iter().flatten().enumerate() {
                match mac.parse::<Mac>() {
                    Ok(m) => out.block_macs.push(m),
                    Err(e) => self.fail(format!("{p}.block_macs[{j}]"), e),
                }
            }
            if rule.max_leases_per_mac.is_none() && rule.max_leases_per_hostname.is_none() && rule.block_macs.is_none()
            {
                self.fail(&p, "a restriction needs max_leases_per_mac, max_leases_per_hostname or block_macs");
            }
        }
        if let Some(n) = r.max_concurrent_leases {
            match u32::try_from(n) {
                Ok(n) if n > 0 => out.max_concurrent_leases = Some(n),
                _ => {
                    self.fail(format!("{path}.max_concurrent_leases"), format!("{n} is not between 1 and {}", u32::MAX))
                }
            }
        }
        out
    }

    fn inside_subnet(&mut self, path: &str, subnet: Option<Ipv4Net>, range: &AddrRange) {
        let Some(net) = subnet else { return };
        if !(net.contains(&range.start) && net.contains(&range.end)) {
            self.fail(path, format!("range {range} is outside the subnet {net}"));
        } else if net.prefix_len() < 31 && (range.start == net.network() || range.end == net.broadcast()) {
            self.fail(path, format!("range {range} includes the network or broadcast address of {net}"));
        }
    }

    fn pools(
        &mut self,
        path: &str,
        r: &raw::Scope,
        subnet: Option<Ipv4Net>,
        scope_times: LeaseTimes,
        pools: &mut Vec<Pool>,
    ) {
        let mut names = HashSet::new();
        for (i, p) in r.pools.iter().enumerate() {
            let pp = format!("{path}.pools[{i}]");
            if p.name.is_empty() || !names.insert(p.name.clone()) {
                self.fail(format!("{pp}.name"), format!("pool name {:?} is empty or used twice in this scope", p.name));
            }
            let Ok(range) = p.range.parse::<AddrRange>().map_err(|e| self.fail(format!("{pp}.range"), e)) else {
                continue;
            };
            self.inside_subnet(&format!("{pp}.range"), subnet, &range);
            let times = self.times(&pp, &p.lease_time, "lease_time", &p.min_lease_time, &p.max_lease_time, scope_times);
            for (j, g) in p.allow.iter().enumerate() {
                if g.is_empty() {
                    self.fail(format!("{pp}.allow[{j}]"), "empty pattern");
                }
            }
            let pool = Pool { name: p.name.clone(), range, times, allow: p.allow.clone() };
            match pools.first_mut() {
                // A named pool with exactly the scope's range names the default pool.
                Some(default) if default.range == range && default.name == d::DEFAULT_POOL_NAME => *default = pool,
                _ => pools.push(pool),
            }
        }
        for i in 0..pools.len() {
            for j in i + 1..pools.len() {
                let (a, b) = (&pools[i], &pools[j]);
                let nested = a.range.covers(&b.range) || b.range.covers(&a.range);
                if a.range.overlaps(&b.range) && (!nested || a.range == b.range) {
                    self.fail(
                        format!("{path}.pools"),
                        format!("pools {:?} ({}) and {:?} ({}) overlap partially", a.name, a.range, b.name, b.range),
                    );
                }
            }
        }
    }

    fn reservation(&mut self, path: &str, r: &raw::Reservation) -> Option<Reservation> {
        let ip = self.ip(&format!("{path}.ip"), &r.ip);
        let mac = r.mac.as_deref().and_then(|m| m.parse::<Mac>().map_err(|e| self.fail(format!("{path}.mac"), e)).ok());
        let allow_any_mac = r.allow_any_mac.unwrap_or(false);
        if allow_any_mac && r.hostname.is_none() {
            self.fail(format!("{path}.allow_any_mac"), "allow_any_mac matches by hostname: give a hostname");
        }
        if r.mac.is_none() && !allow_any_mac {
            self.fail(path, "a reservation needs a mac, or a hostname with allow_any_mac = true");
        }
        if let Some(h) = &r.hostname {
            if h.is_empty() || h.len() > 255 {
                self.fail(format!("{path}.hostname"), "hostname must be 1 to 255 bytes");
            }
        }
        let (options, lease_time) = self.options(&format!("{path}.options"), &r.options, true);
        Some(Reservation { mac, ip: ip?, hostname: r.hostname.clone(), allow_any_mac, lease_time, options })
    }

    /// Places global reservations in the scope whose network holds their IP.
    fn global_reservations(&mut self, list: &[raw::Reservation], scopes: &mut [Scope]) {
        for (i, r) in list.iter().enumerate() {
            let path = format!("dhcp.reservations[{i}]");
            let Some(res) = self.reservation(&path, r) else { continue };
            match scopes.iter_mut().find(|s| s.contains(res.ip)) {
                Some(scope) => scope.reservations.push(res),
                None => self.fail(format!("{path}.ip"), format!("{} is outside every scope", res.ip)),
            }
        }
    }

    fn cross_scope(&mut self, scopes: &[Scope]) {
        let mut relays: HashMap<Ipv4Addr, &str> = HashMap::new();
        let mut macs: HashMap<Mac, Ipv4Addr> = HashMap::new();
        let mut ips: HashSet<Ipv4Addr> = HashSet::new();
        let mut hostnames: HashSet<String> = HashSet::new();
        for (i, a) in scopes.iter().enumerate() {
            let path = format!("dhcp.scope.{}", a.name);
            for b in &scopes[..i] {
                if let (Some(x), Some(y)) = (a.subnet, b.subnet) {
                    if x.contains(&y.network()) || y.contains(&x.network()) {
                        self.fail(
                            format!("{path}.subnet"),
                            format!("subnet {x} overlaps scope {:?}'s subnet {y}", b.name),
                        );
                    }
                }
            }
            for r in &a.relay_addresses {
                if let Some(other) = relays.insert(*r, &a.name) {
                    self.fail(
                        format!("{path}.relay_addresses"),
                        format!("relay address {r} is also listed by scope {other:?}"),
                    );
                }
            }
            for r in &a.reservations {
                let what = r.mac.map_or_else(|| r.hostname.clone().unwrap_or_default(), |m| m.to_string());
                if !ips.insert(r.ip) {
                    self.fail(format!("{path}.reservations"), format!("{} is reserved twice", r.ip));
                }
                if let Some(mac) = r.mac {
                    if let Some(prev) = macs.insert(mac, r.ip) {
                        self.fail(
                            format!("{path}.reservations"),
                            format!("{what} has two reservations ({prev} and {})", r.ip),
                        );
                    }
                }
                if r.allow_any_mac {
                    if let Some(h) = &r.hostname {
                        if !hostnames.insert(h.to_ascii_lowercase()) {
                            self.fail(format!("{path}.reservations"), format!("hostname {h:?} has two reservations"));
                        }
                    }
                }
                if let Some(net) = a.subnet {
                    if net.prefix_len() < 31 && (r.ip == net.network() || r.ip == net.broadcast()) {
                        self.fail(
                            format!("{path}.reservations"),
                            format!("{} is the network or broadcast address of {net}", r.ip),
                        );
                    }
                }
            }
        }
    }

    /// Sections parsed and checked now, carried out by later work.
    /// `policies = [...]`: names unique, paths given, limits in range.
    fn policies(&mut self, r: &raw::Dhcp) -> Vec<PolicyModule> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, p) in r.policies.iter().enumerate() {
            let at = format!("dhcp.policies[{i}]");
            if p.name.is_empty() || !names.insert(p.name.clone()) {
                self.fail(format!("{at}.name"), format!("{:?}: policy names must be unique and non-empty", p.name));
            }
            if p.path.is_empty() {
                self.fail(format!("{at}.path"), "empty path: give the module's .wasm file");
            }
            let deny_on_error = match p.on_error.as_deref() {
                None | Some("allow") => false,
                Some("deny") => true,
                Some(e) => {
                    self.fail(format!("{at}.on_error"), format!("{e:?} is not one of allow, deny"));
                    false
                }
            };
            if p.fuel == Some(0) {
                self.fail(format!("{at}.fuel"), "fuel 0 would stop every call");
            }
            let memory = p.memory.as_deref().and_then(|m| match parse_bytes(m) {
                Some(b) if (64 << 10..=64 << 20).contains(&b) => Some(b),
                _ => {
                    self.fail(format!("{at}.memory"), format!("{m:?}: give a size from \"64KiB\" to \"64MiB\""));
                    None
                }
            });
            let config = p.config.clone().unwrap_or(serde_json::Value::Object(Default::default()));
            out.push(PolicyModule {
                name: p.name.clone(),
                path: p.path.clone().into(),
                deny_on_error,
                fuel: p.fuel,
                memory,
                config,
            });
        }
        out
    }

    /// `analytics.anomaly_detection`; None when analytics or detection is off.
    fn anomaly_detection(&mut self, a: &raw::Analytics) -> Option<AnomalyDetection> {
        const P: &str = "dhcp.analytics.anomaly_detection";
        let ad = a.anomaly_detection.as_ref()?;
        for (i, k) in ad.detect.iter().enumerate() {
            if !ANOMALY_KINDS.contains(&k.as_str()) {
                self.fail(format!("{P}.detect[{i}]"), format!("{k:?} is not one of {}", ANOMALY_KINDS.join(", ")));
            }
        }
        for (i, k) in ad.actions.iter().enumerate() {
            if !["alert", "log", "block"].contains(&k.as_str()) {
                self.fail(format!("{P}.actions[{i}]"), format!("{k:?} is not one of alert, log, block"));
            }
        }
        let t = ad.thresholds.as_ref();
        let per_minute = |v: Option<u32>, default: u32| v.unwrap_or(default);
        let detection = AnomalyDetection {
            detect: if ad.detect.is_empty() {
                ANOMALY_KINDS.iter().map(|k| k.to_string()).collect()
            } else {
                ad.detect.clone()
            },
            excessive_leases_per_minute: per_minute(
                t.and_then(|t| t.excessive_leases_per_minute),
                d::EXCESSIVE_LEASES_PER_MINUTE,
            ),
            rapid_renewals_per_minute: per_minute(
                t.and_then(|t| t.rapid_renewals_per_minute),
                d::RAPID_RENEWALS_PER_MINUTE,
            ),
            new_clients_per_minute: per_minute(t.and_then(|t| t.new_clients_per_minute), d::NEW_CLIENTS_PER_MINUTE),
            pool_utilization_warning: t.and_then(|t| t.pool_utilization_warning).unwrap_or(d::POOL_UTILIZATION_WARNING),
            pool_utilization_critical: t
                .and_then(|t| t.pool_utilization_critical)
                .unwrap_or(d::POOL_UTILIZATION_CRITICAL),
            actions: if ad.actions.is_empty() {
                d::ANOMALY_ACTIONS.iter().map(|k| k.to_string()).collect()
            } else {
                ad.actions.clone()
            },
            block_cooldown: self.secs(&format!("{P}.block_cooldown"), &ad.block_cooldown, d::BLOCK_COOLDOWN),
        };
        for (key, v) in [
            ("excessive_leases_per_minute", detection.excessive_leases_per_minute),
            ("rapid_renewals_per_minute", detection.rapid_renewals_per_minute),
            ("new_clients_per_minute", detection.new_clients_per_minute),
        ] {
            if v == 0 {
                self.fail(format!("{P}.thresholds.{key}"), "must be at least 1");
            }
        }
        let (w, c) = (detection.pool_utilization_warning, detection.pool_utilization_critical);
        if !(0.0..=100.0).contains(&w) || !(0.0..=100.0).contains(&c) || w > c {
            self.fail(
                format!("{P}.thresholds"),
                format!("pool_utilization_warning {w} and pool_utilization_critical {c} must be percentages, warning ≤ critical"),
            );
        }
        if detection.block_cooldown.is_infinite() || detection.block_cooldown.0 == 0 {
            self.fail(format!("{P}.block_cooldown"), "must be a finite, non-zero duration");
        }
        (a.enabled.unwrap_or(true) && ad.enabled.unwrap_or(true)).then_some(detection)
    }

    fn auto_export(&mut self, a: &raw::AutoExport) -> Option<AutoExport> {
        let p = "dhcp.persistence.auto_export";
        let interval = self.secs(&format!("{p}.interval"), &a.interval, d::AUTO_EXPORT_INTERVAL);
        if interval.is_infinite() || interval < Secs(10) {
            self.fail(format!("{p}.interval"), format!("exports every {interval}: use at least 10s, finite"));
        }
        let path = match a.path.as_deref() {
            Some(p) if !p.trim().is_empty() => PathBuf::from(p),
            _ => {
                self.fail(format!("{p}.path"), "say which file to write: path = \"/var/lib/leased/leases.json\"");
                PathBuf::new()
            }
        };
        let format = match a.format.as_deref() {
            None => ExportFormat::Json,
            Some(f) => match <ExportFormat as clap::ValueEnum>::from_str(f, true) {
                Ok(format) => format,
                Err(_) => {
                    self.fail(format!("{p}.format"), format!("{f:?}: json, csv, kea-csv or sqlite"));
                    ExportFormat::Json
                }
            },
        };
        a.enabled.unwrap_or(true).then_some(AutoExport { interval, path, format })
    }

    fn not_yet(&mut self, r: &raw::Dhcp) {
        if r.ha.is_some() {
            self.fail("dhcp.ha", format!("high availability {NOT_YET}"));
        }
    }
}

/// "16MiB", "512KiB", "4MB", "65536": a size in bytes.
fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(factor)
}

//! The modules a config asks for: the standard ones its declarative
//! sections need (embedded, built from `policies/`), then its own
//! `policies = [...]`, in order. The standard ones run as `anomaly` (it
//! sees every attempt, also those refused later), `restrictions`, then
//! `lease_times`, which never refuses: a refused request costs the least.

use serde_json::json;

use std::sync::Arc;

use super::{OnError, PolicyEnv, PolicySet, PolicySpec, DEFAULT_FUEL, DEFAULT_MEMORY};
use crate::config::Config;
use crate::server::Server;

/// `policies/dist/lease_times.wasm`: `client_lease_times`.
pub const LEASE_TIMES: &[u8] = include_bytes!("../../../policies/dist/lease_times.wasm");
/// `policies/dist/restrictions.wasm`: `restrictions`, `max_concurrent_leases`.
pub const RESTRICTIONS: &[u8] = include_bytes!("../../../policies/dist/restrictions.wasm");
/// `policies/dist/anomaly.wasm`: `analytics.anomaly_detection`.
pub const ANOMALY: &[u8] = include_bytes!("../../../policies/dist/anomaly.wasm");

/// A standard module with its config.
fn standard(name: &str, wasm: &[u8], config: serde_json::Value) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        wasm: wasm.to_vec(),
        on_error: OnError::Allow,
        fuel: DEFAULT_FUEL,
        memory: DEFAULT_MEMORY,
        config: config.to_string(),
    }
}

/// The `scopes` member of every module's init input: scope and pool names
/// in the server's order (their ids).
pub fn scopes_json(server: &Server) -> String {
    names_json(server.scopes().iter().map(|s| (s.name.as_str(), s.pools.iter().map(|p| p.name.as_str()).collect())))
}

/// [`scopes_json`] of the server `config` would build (it keeps the
/// config's order of scopes and pools).
pub fn config_scopes_json(config: &Config) -> String {
    names_json(config.scopes.iter().map(|s| (s.name.as_str(), s.pools.iter().map(|p| p.name.as_str()).collect())))
}

fn names_json<'a>(scopes: impl Iterator<Item = (&'a str, Vec<&'a str>)>) -> String {
    let scopes: Vec<serde_json::Value> = scopes.map(|(name, pools)| json!({ "name": name, "pools": pools })).collect();
    serde_json::Value::Array(scopes).to_string()
}

/// The modules `config` asks for, compiled, checked and initialised for
/// `shards` shards over `env` (`scopes`: [`scopes_json`] of the server
/// they serve); None when it asks for none. What `serve` and a reload
/// load, and what `check-config` tries.
pub fn load(
    config: &Config,
    scopes: &str,
    shards: usize,
    env: Arc<dyn PolicyEnv>,
) -> Result<Option<Arc<PolicySet>>, String> {
    let specs = specs(config)?;
    if specs.is_empty() {
        return Ok(None);
    }
    PolicySet::load(specs, scopes, shards, env).map(Some).map_err(|e| e.to_string())
}

/// The modules of `config`; a module file that cannot be read is an error
/// naming it.
pub fn specs(config: &Config) -> Result<Vec<PolicySpec>, String> {
    let mut specs = Vec::new();
    if let Some(a) = &config.anomaly_detection {
        let section = json!({
            "detect": a.detect,
            "thresholds": {
                "excessive_leases_per_minute": a.excessive_leases_per_minute,
                "rapid_renewals_per_minute": a.rapid_renewals_per_minute,
                "new_clients_per_minute": a.new_clients_per_minute,
                "pool_utilization_warning": a.pool_utilization_warning,
                "pool_utilization_critical": a.pool_utilization_critical,
            },
            "actions": a.actions,
            "block_cooldown": a.block_cooldown.0,
        });
        specs.push(standard("anomaly", ANOMALY, section));
    }
    let restricted: serde_json::Map<String, serde_json::Value> = config
        .scopes
        .iter()
        .filter(|s| !s.restrictions.is_empty())
        .map(|s| {
            let r = &s.restrictions;
            let mut section = json!({ "block_macs": r.block_macs.iter().map(|m| m.to_string()).collect::<Vec<_>>() });
            for (key, value) in [
                ("max_leases_per_mac", r.max_leases_per_mac),
                ("max_leases_per_hostname", r.max_leases_per_hostname),
                ("max_concurrent_leases", r.max_concurrent_leases),
            ] {
                if let Some(n) = value {
                    section[key] = json!(n);
                }
            }
            (s.name.clone(), section)
        })
        .collect();
    if !restricted.is_empty() {
        specs.push(standard("restrictions", RESTRICTIONS, json!({ "scopes": restricted })));
    }
    let mut rules = serde_json::Map::new();
    for scope in config.scopes.iter().filter(|s| !s.client_lease_times.is_empty()) {
        let list: Vec<serde_json::Value> = scope
            .client_lease_times
            .iter()
            .map(|r| {
                let mut rule = json!({ "lease_time": r.lease_time.0 });
                if !r.mac_prefix.is_empty() {
                    rule["mac_prefix"] = json!(r.mac_prefix);
                }
                if let Some(v) = &r.vendor_class {
                    rule["vendor_class"] = json!(v);
                }
                if let Some(h) = &r.hostname_regex {
                    rule["hostname_regex"] = json!(h);
                }
                rule
            })
            .collect();
        rules.insert(scope.name.clone(), serde_json::Value::Array(list));
    }
    if !rules.is_empty() {
        specs.push(standard("lease_times", LEASE_TIMES, json!({ "scopes": rules })));
    }
    for m in &config.policies {
        let wasm = std::fs::read(&m.path)
            .map_err(|e| format!("policy {:?}: cannot read {}: {e}", m.name, m.path.display()))?;
        specs.push(PolicySpec {
            name: m.name.clone(),
            wasm,
            on_error: if m.deny_on_error { OnError::Deny } else { OnError::Allow },
            fuel: m.fuel.unwrap_or(DEFAULT_FUEL),
            memory: m.memory.map_or(DEFAULT_MEMORY, |b| b as usize),
            config: m.config.to_string(),
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_scope_names_are_the_servers() {
        let config = crate::config::parse(
            "dhcp {\n  listen = [\"127.0.0.1:6767\"]\n  scope \"b\" {\n    relay_addresses = [\"127.0.0.2\"]\n    subnet = \"198.18.1.0/24\"\n    range_start = \"198.18.1.10\"  range_end = \"198.18.1.200\"\n    pools = [ { name = \"cams\"  range = \"198.18.1.100-198.18.1.120\"  allow = [\"cam-*\"] } ]\n  }\n  scope \"a\" {\n    relay_addresses = [\"127.0.0.1\"]\n    subnet = \"198.18.0.0/24\"\n    range_start = \"198.18.0.10\"  range_end = \"198.18.0.20\"\n  }\n}\n",
            "t.hcl",
        )
        .unwrap();
        let server = Server::new(&config, &Default::default()).unwrap();
        let json = config_scopes_json(&config);
        assert_eq!(json, scopes_json(&server));
        assert_eq!(
            json, r#"[{"name":"b","pools":["default","cams"]},{"name":"a","pools":["default"]}]"#,
            "in the config's order, ids by position"
        );
    }
}

//! The modules a config asks for: the standard ones its declarative
//! sections need (embedded, built from `policies/`), then its own
//! `policies = [...]`, in order.

use serde_json::json;

use super::{OnError, PolicySpec, DEFAULT_FUEL, DEFAULT_MEMORY};
use crate::config::Config;
use crate::server::Server;

/// `policies/dist/lease_times.wasm`: `client_lease_times`.
pub const LEASE_TIMES: &[u8] = include_bytes!("../../../policies/dist/lease_times.wasm");

/// The `scopes` member of every module's init input: scope and pool names
/// in the server's order (their ids).
pub fn scopes_json(server: &Server) -> String {
    let scopes: Vec<serde_json::Value> = server
        .scopes()
        .iter()
        .map(|s| json!({ "name": s.name, "pools": s.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>() }))
        .collect();
    serde_json::Value::Array(scopes).to_string()
}

/// The modules of `config`; a module file that cannot be read is an error
/// naming it.
pub fn specs(config: &Config) -> Result<Vec<PolicySpec>, String> {
    let mut specs = Vec::new();
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
        specs.push(PolicySpec {
            name: "lease_times".into(),
            wasm: LEASE_TIMES.to_vec(),
            on_error: OnError::Allow,
            fuel: DEFAULT_FUEL,
            memory: DEFAULT_MEMORY,
            config: json!({ "scopes": rules }).to_string(),
        });
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

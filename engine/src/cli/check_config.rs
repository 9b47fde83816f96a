//! `leased check-config`: validate and show what would be served, policy
//! modules loaded as `serve` loads them.

use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use super::ConfigArgs;
use crate::config::{self, Config, Listen, Scope};
use crate::policy::{self, StandaloneEnv};

#[derive(Serialize)]
struct Summary {
    file: String,
    valid: bool,
    errors: Vec<String>,
    listen: Vec<String>,
    scopes: Vec<ScopeSummary>,
    dynamic_addresses: u64,
    /// The policy modules, in the order they run.
    policies: Vec<String>,
}

#[derive(Serialize)]
struct ScopeSummary {
    name: String,
    subnet: Option<String>,
    selected_by: Vec<String>,
    lease_time: String,
    pools: Vec<PoolSummary>,
    reservations: usize,
}

#[derive(Serialize)]
struct PoolSummary {
    name: String,
    range: String,
    addresses: u64,
    lease_time: String,
    min_lease_time: String,
    max_lease_time: String,
    allow: Vec<String>,
}

pub fn run(args: &ConfigArgs) -> ExitCode {
    let path = args.path();
    let file = path.display().to_string();
    let summary = match config::load(&path) {
        Ok(c) => summarize(file, &c),
        Err(errors) => Summary {
            file,
            valid: false,
            errors: errors.0.iter().map(|e| e.to_string()).collect(),
            listen: vec![],
            scopes: vec![],
            dynamic_addresses: 0,
            policies: vec![],
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("summary serializes"));
    } else {
        print_text(&summary);
    }
    if summary.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn summarize(file: String, c: &Config) -> Summary {
    let scopes: Vec<ScopeSummary> = c.scopes.iter().map(scope_summary).collect();
    let dynamic_addresses = scopes.iter().flat_map(|s| &s.pools).map(|p| p.addresses).sum();
    let (policies, errors) = match load_policies(c) {
        Ok(names) => (names, vec![]),
        Err(e) => (vec![], vec![e]),
    };
    Summary {
        file,
        valid: errors.is_empty(),
        errors,
        listen: c.listen.iter().map(describe_listen).collect(),
        scopes,
        dynamic_addresses,
        policies,
    }
}

/// The policy modules `c` asks for, read, compiled, checked and
/// initialised with their config as `serve` does (a module `serve` would
/// refuse is an error here too), with no server behind their imports;
/// their names.
fn load_policies(c: &Config) -> Result<Vec<String>, String> {
    let set = policy::standard::load(c, &policy::standard::config_scopes_json(c), 1, Arc::new(StandaloneEnv))?;
    Ok(set.map_or_else(Vec::new, |set| set.names().into_iter().map(str::to_string).collect()))
}

fn scope_summary(s: &Scope) -> ScopeSummary {
    let mut selected_by: Vec<String> = s.interface.iter().map(|i| format!("interface {i}")).collect();
    selected_by.extend(s.relay_addresses.iter().map(|a| format!("relay {a}")));
    if let Some(net) = s.subnet {
        selected_by.push(format!("giaddr in {net}"));
    }
    let own = |p: &config::Pool| {
        // Addresses of nested pools belong to those pools.
        let nested: u64 =
            s.pools.iter().filter(|q| q.range != p.range && p.range.covers(&q.range)).map(|q| q.range.len()).sum();
        p.range.len() - nested
    };
    ScopeSummary {
        name: s.name.clone(),
        subnet: s.subnet.map(|n| n.to_string()),
        selected_by,
        lease_time: s.times.default.to_string(),
        pools: s
            .pools
            .iter()
            .map(|p| PoolSummary {
                name: p.name.clone(),
                range: p.range.to_string(),
                addresses: own(p),
                lease_time: p.times.default.to_string(),
                min_lease_time: p.times.min.to_string(),
                max_lease_time: p.times.max.to_string(),
                allow: p.allow.clone(),
            })
            .collect(),
        reservations: s.reservations.len(),
    }
}

fn print_text(s: &Summary) {
    if !s.valid {
        for e in &s.errors {
            eprintln!("error: {e}");
        }
        eprintln!("{}: {} error(s); nothing would be served", s.file, s.errors.len());
        return;
    }
    println!("{}: valid", s.file);
    println!("listen: {}", s.listen.join(", "));
    if !s.policies.is_empty() {
        println!("policy modules: {}", s.policies.join(", "));
    }
    for scope in &s.scopes {
        println!();
        println!(
            "scope {:?}  subnet {}  selected by {}",
            scope.name,
            scope.subnet.as_deref().unwrap_or("(from its interface at start)"),
            scope.selected_by.join(", ")
        );
        println!("  lease {}  reservations {}", scope.lease_time, scope.reservations);
        for p in &scope.pools {
            let allow = if p.allow.is_empty() { String::new() } else { format!("  allow {}", p.allow.join(",")) };
            println!(
                "  pool {:<12} {:<33} {:>10} addresses  lease {} (min {}, max {}){allow}",
                format!("{:?}", p.name),
                p.range,
                p.addresses,
                p.lease_time,
                p.min_lease_time,
                p.max_lease_time
            );
        }
    }
    println!();
    println!("{} scope(s), {} dynamic addresses", s.scopes.len(), s.dynamic_addresses);
}

fn describe_listen(l: &Listen) -> String {
    match l {
        Listen::Interface(i) => format!("interface {i} (broadcast)"),
        Listen::Socket(a) => format!("{a} (relayed/unicast)"),
    }
}

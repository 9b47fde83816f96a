//! What policies cost per packet, same server, same packets, one run:
//! - renewals decided by the server alone, with a minimal module (the cost
//!   of one call), with each standard module alone (anomaly counting
//!   renewals; restrictions checking its blocked MACs; lease_times, four
//!   rules, the last one matching by hostname regex), and with all three;
//! - DISCOVERs of clients whose lease expired, alone and with all three:
//!   restrictions asks the server for three lease counts (MAC, host name,
//!   scope), the worst case per packet.
//!
//! The modules run over the real imports (`ServerEnv`: counts from the
//! cache's index); thresholds are set so that nothing trips.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leased::policy::{standard, OnError, PolicySet, PolicySpec, ServerEnv, DEFAULT_FUEL, DEFAULT_MEMORY};
use leased::server::{Meta, Server, SharedServer};

const CLIENTS: u16 = 4096;

fn bench(c: &mut Criterion) {
    let hcl = ISP_LAB.replace(
        "    subnet = \"100.64.0.0/10\"",
        r#"    subnet = "100.64.0.0/10"
    client_lease_times = [
      { mac_prefix = ["00:11:22", "aa:bb:cc"]  lease_time = "12h" },
      { vendor_class = "Printer"  lease_time = "2h" },
      { hostname_regex = "^(db|web)-[0-9]+$"  lease_time = "3h" },
      { hostname_regex = "^host-"  lease_time = "2h" },
    ]
    restrictions = [ { max_leases_per_mac = 1 }, { max_leases_per_hostname = 1 },
                     { block_macs = ["00:00:00:00:00:00", "02:00:00:ff:ff:01", "02:00:00:ff:ff:02"] } ]
    max_concurrent_leases = 4000000"#,
    )
    .replace(
        "  scope \"isp\"",
        r#"  analytics = { anomaly_detection = {
    thresholds = { excessive_leases_per_minute = 65535  rapid_renewals_per_minute = 65535  new_clients_per_minute = 65535 }
    actions = ["alert", "log", "block"]
  } }
  scope "isp""#,
    );
    let config = config(&hcl);
    let server = Server::new(&config, &Default::default()).unwrap();
    let meta = Meta { ifindex: 0, local: ISP_RELAY, now: T0 };
    let mut out = [0u8; 1500];
    let clients: Vec<TestClient> =
        (0..CLIENTS).map(|n| TestClient::new(n).relayed(ISP_RELAY).hostname(&format!("host-{n}"))).collect();
    let renewals: Vec<Vec<u8>> = clients
        .iter()
        .map(|cl| {
            let o = server.handle(&cl.discover(), &meta, &mut out).unwrap().reply.unwrap();
            server.handle(&cl.select(o.yiaddr, meta.local), &meta, &mut out).unwrap();
            cl.renew(o.yiaddr)
        })
        .collect();
    // The same clients later, their leases expired and swept.
    let later = Meta { now: T0 + 3 * 3600, ..meta };
    let discovers: Vec<Vec<u8>> = clients.iter().map(|cl| cl.discover()).collect();
    let scopes = standard::scopes_json(&server);
    let shared: SharedServer = Arc::new(parking_lot::RwLock::new(server));
    let env = || Arc::new(ServerEnv::new(shared.clone(), None).with_clock(Arc::new(|| T0 as i64)));
    let minimal =
        wat::parse_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies/lease_600s.wat")).unwrap();
    let extra = PolicySpec {
        name: "minimal".into(),
        wasm: minimal,
        on_error: OnError::Allow,
        fuel: DEFAULT_FUEL,
        memory: DEFAULT_MEMORY,
        config: "{}".into(),
    };
    let load = |specs: Vec<PolicySpec>| PolicySet::load(specs, &scopes, 1, env()).unwrap().shard(0).unwrap();
    let all = standard::specs(&config).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["anomaly", "restrictions", "lease_times"]);
    let mut solo = load(vec![extra]);
    let mut anomaly = load(vec![all[0].clone()]);
    let mut restrictions = load(vec![all[1].clone()]);
    let mut lease_times = load(vec![all[2].clone()]);
    let mut three = load(all);
    let server = shared.read();

    let mut g = c.benchmark_group("policy_cost_renewal");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % renewals.len();
        &renewals[i]
    };
    g.bench_function("no_policy", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, None).unwrap()))
    });
    g.bench_function("minimal", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, Some(&mut solo)).unwrap()))
    });
    for (name, set) in
        [("anomaly", &mut anomaly), ("restrictions", &mut restrictions), ("lease_times", &mut lease_times)]
    {
        g.bench_function(name, |b| {
            b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, Some(&mut *set)).unwrap()))
        });
    }
    g.bench_function("all_three", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, Some(&mut three)).unwrap()))
    });
    g.finish();
    assert_eq!(three.results(1)[0], three.results(0)[0], "every call ok, nothing refused");
    server.sweep(later.now);

    let mut g = c.benchmark_group("policy_cost_discover_after_expiry");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % discovers.len();
        &discovers[i]
    };
    g.bench_function("no_policy", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &later, &mut out, None).unwrap()))
    });
    g.bench_function("all_three", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &later, &mut out, Some(&mut three)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

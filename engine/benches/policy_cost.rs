//! What policies cost per packet: a renewal decided by the server alone,
//! with the standard lease_times module (four rules, the last one matching
//! by hostname regex), and with lease_times plus a minimal module (the cost
//! of one more call). Same server, same packets, one run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leased::policy::{standard, OnError, PolicyEnv, PolicySet, PolicySpec, DEFAULT_FUEL, DEFAULT_MEMORY};
use leased::server::{Meta, Server};

struct NoEnv;

impl PolicyEnv for NoEnv {
    fn now_unix(&self) -> i64 {
        T0 as i64
    }
    fn pool_utilization(&self, _: u16, _: u16) -> f32 {
        0.0
    }
    fn lease_count(&self, _: i32, _: &[u8]) -> u32 {
        0
    }
    fn anomaly(&self, _: &str, _: i32, _: &str) {}
}

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
    ]"#,
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
    let scopes = standard::scopes_json(&server);
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
    let solo = PolicySet::load(vec![extra.clone()], &scopes, 1, Arc::new(NoEnv)).unwrap();
    let mut solo = solo.shard(0).unwrap();
    let one = PolicySet::load(standard::specs(&config).unwrap(), &scopes, 1, Arc::new(NoEnv)).unwrap();
    let mut two_specs = standard::specs(&config).unwrap();
    two_specs.push(extra);
    let two = PolicySet::load(two_specs, &scopes, 1, Arc::new(NoEnv)).unwrap();
    let (mut one, mut two) = (one.shard(0).unwrap(), two.shard(0).unwrap());

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
    g.bench_function("lease_times", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, Some(&mut one)).unwrap()))
    });
    g.bench_function("lease_times_and_minimal", |b| {
        b.iter(|| black_box(server.handle_with(black_box(next()), &meta, &mut out, Some(&mut two)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

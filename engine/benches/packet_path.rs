//! Decode + handle + encode per packet against a cache of 1M leases:
//! DISCOVER of a known client, REQUEST (renewing) of a known client, and
//! the full DORA of a new client. Packets rotate over 64k clients so the
//! cache is not all hot in L1/L2.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leased::server::Meta;

const LEASES: u32 = 1_000_000;

fn client(n: u32) -> TestClient {
    let mut c = TestClient::new(0);
    c.mac = [2, 0, (n >> 24) as u8, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    c.xid = n;
    c.giaddr = ISP_RELAY;
    c.relay_info = Some(vec![1, 4, b'p', b'o', b'r', b't']);
    c.prl = vec![1, 3, 6, 15, 28, 42, 51, 58, 59];
    c
}

fn bench(c: &mut Criterion) {
    let lab = Lab::with(server(ISP_LAB));
    let meta = Meta { ifindex: 0, local: ISP_RELAY, now: T0 };
    let mut out = [0u8; 1500];
    let started = Instant::now();
    let mut addrs = Vec::with_capacity(LEASES as usize);
    for n in 0..LEASES {
        let cl = client(n);
        let o = lab.server.handle(&cl.discover(), &meta, &mut out).unwrap().reply.unwrap();
        let ack = lab.server.handle(&cl.select(o.yiaddr, meta.local), &meta, &mut out).unwrap();
        addrs.push(ack.reply.unwrap().yiaddr);
    }
    eprintln!("{LEASES} leases by DORA in {:?}; cache holds {}", started.elapsed(), lab.server.cache().len());

    let step = LEASES / 65_536;
    let discovers: Vec<Vec<u8>> = (0..65_536).map(|i| client(i * step).discover()).collect();
    let renewals: Vec<Vec<u8>> = (0..65_536).map(|i| client(i * step).renew(addrs[(i * step) as usize])).collect();

    let mut g = c.benchmark_group("packet_path_1M_leases");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("discover_known_client", |b| {
        b.iter(|| {
            i = (i + 1) & 0xffff;
            black_box(lab.server.handle(black_box(&discovers[i]), &meta, &mut out).unwrap());
        })
    });
    g.bench_function("request_renewing", |b| {
        b.iter(|| {
            i = (i + 1) & 0xffff;
            black_box(lab.server.handle(black_box(&renewals[i]), &meta, &mut out).unwrap());
        })
    });
    // New clients: DISCOVER then REQUEST, two packets per iteration.
    let mut n = LEASES;
    g.throughput(Throughput::Elements(2));
    g.bench_function("dora_new_client_2_packets", |b| {
        b.iter_batched(
            || {
                n += 1;
                let cl = client(n);
                (cl.discover(), cl)
            },
            |(discover, cl)| {
                let o = lab.server.handle(&discover, &meta, &mut out).unwrap().reply.unwrap();
                let request = cl.select(o.yiaddr, meta.local);
                black_box(lab.server.handle(&request, &meta, &mut out).unwrap());
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

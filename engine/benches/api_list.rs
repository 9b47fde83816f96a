//! `GET /leases` over 1M leases: every page of 1,000 walked with its
//! cursor (mean and worst page), then a page from the middle, a filtered
//! page and a search under criterion. Target: under 50 ms a page.
//!
//! `cargo bench --bench api_list` (LEASES=N to change the size).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use leased::api::{lease_page, LeaseQuery};
use leased::server::{Meta, Server};

fn leases() -> u32 {
    std::env::var("LEASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// A server holding `n` bound leases of distinct clients with host names.
fn filled(n: u32) -> Server {
    let server = server(ISP_LAB);
    let meta = Meta { ifindex: 0, local: ISP_RELAY, now: T0 };
    let mut out = [0u8; 1500];
    let mut c = TestClient::new(0).relayed(ISP_RELAY);
    for i in 0..n {
        c.mac = [2, 0, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        c.hostname = Some(format!("host-{i}"));
        let offer = server.handle(&c.discover(), &meta, &mut out).unwrap().reply.unwrap();
        server.handle(&c.select(offer.yiaddr, meta.local), &meta, &mut out).unwrap();
    }
    server
}

fn page(server: &Server, cursor: Option<String>, state: Option<&str>) -> serde_json::Value {
    let q = LeaseQuery { limit: Some(1000), cursor, state: state.map(String::from), ..Default::default() };
    lease_page(server, &q, T0).unwrap()
}

fn search(server: &Server, text: &str) -> serde_json::Value {
    let q = LeaseQuery { limit: Some(1000), q: Some(text.into()), ..Default::default() };
    lease_page(server, &q, T0).unwrap()
}

fn bench(c: &mut Criterion) {
    let n = leases();
    let started = Instant::now();
    let server = filled(n);
    println!("{n} leases made in {:.1} s", started.elapsed().as_secs_f64());

    let (mut pages, mut seen, mut worst, mut total) = (0u32, 0usize, Duration::ZERO, Duration::ZERO);
    let mut cursor = None;
    let mut middle = None;
    loop {
        let t = Instant::now();
        let body = page(&server, cursor.take(), None);
        let took = t.elapsed();
        (total, worst, pages) = (total + took, worst.max(took), pages + 1);
        seen += body["leases"].as_array().unwrap().len();
        if pages == n / 2000 {
            middle = body["next_cursor"].as_str().map(String::from);
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, n as usize, "every lease once");
    println!(
        "walked {seen} leases in {pages} pages of 1,000: mean {:.2} ms, worst {:.2} ms a page (target < 50 ms)",
        total.as_secs_f64() * 1e3 / f64::from(pages),
        worst.as_secs_f64() * 1e3
    );

    let mut g = c.benchmark_group("api_list_1m");
    g.sample_size(20);
    g.bench_function("page_of_1000_from_the_middle", |b| b.iter(|| black_box(page(&server, middle.clone(), None))));
    // The worst filter: nothing matches, so the page scans every lease.
    g.bench_function("filter_matching_nothing", |b| b.iter(|| black_box(page(&server, None, Some("ABANDONED")))));
    // A search for one host name: IP, MAC and host name of every lease looked at.
    let one = format!("host-{}", n / 2);
    assert_eq!(search(&server, &one)["leases"].as_array().unwrap().len(), 1);
    g.bench_function("search_one_host_name", |b| b.iter(|| black_box(search(&server, &one))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

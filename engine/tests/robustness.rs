//! No input makes the packet path panic: arbitrary bytes, structured
//! messages with random options, and hundreds of thousands of mutations of
//! real packets (bit flips, truncation, insertion, splicing). Every reply
//! the server does write must decode again and respect its size limits.

mod common;

use std::net::Ipv4Addr;
use std::time::Instant;

use common::*;
use leased::server::Server;
use leased::wire::{opt, MessageType, Options, Packet};
use proptest::prelude::*;

fn meta(now: u32) -> leased::server::Meta {
    leased::server::Meta { ifindex: LAN_IF, local: SERVER_ID, now }
}

/// Runs one datagram and checks any reply decodes and fits.
fn exercise(server: &Server, bytes: &[u8], now: u32) {
    // The decoder's accessors on their own, whatever the server thinks of it.
    if let Ok(p) = Packet::new_checked(bytes) {
        let _ = (p.xid(), p.chaddr(), p.ciaddr(), p.giaddr(), p.sname(), p.file());
        if let Ok(o) = Options::parse(bytes) {
            let _ = (o.message_type(), o.requested_ip(), o.server_id(), o.lease_time(), o.max_message_size());
            let _ = (
                o.client_id(),
                o.hostname(),
                o.vendor_class(),
                o.client_fqdn(),
                o.relay_agent_info(),
                o.subnet_selection(),
            );
            let _ = o.parameter_list();
        }
    }
    let mut out = [0u8; 1500];
    if let Ok(outcome) = server.handle(bytes, &meta(now), &mut out) {
        if let Some(reply) = outcome.reply {
            let r = &out[..reply.len];
            assert!(reply.len >= 300 && reply.len <= 1500 - 28, "reply of {} bytes", reply.len);
            let p = Packet::new_checked(r).expect("our reply decodes");
            assert_eq!(p.op(), 2);
            let o = Options::parse(r).expect("our reply's options decode");
            assert_eq!(o.message_type().unwrap(), reply.kind);
        }
    }
}

/// Valid packets of every kind, the seeds of the mutation test.
fn corpus() -> Vec<Vec<u8>> {
    let mut c = TestClient::new(7);
    c.client_id = Some(vec![0xff, 0, 0, 0, 1, 0, 1, 2, 3]);
    c.hostname = Some("mutant-host".into());
    c.vendor_class = Some("MSFT 5.0".into());
    c.max_size = Some(1500);
    let mut relayed = TestClient::new(8).relayed(RELAY);
    relayed.relay_info = Some(vec![1, 3, b'a', b'b', b'c', 2, 2, 9, 9, 5, 4, 198, 18, 8, 0, 11, 4, 198, 18, 250, 1]);
    let mut overloaded =
        c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::OVERLOAD, &[3]), (opt::HOSTNAME, b"a")]);
    overloaded[108..114].copy_from_slice(&[12, 2, b'b', b'c', 50, 4]);
    overloaded[44..47].copy_from_slice(&[81, 1, 0]);
    vec![
        c.discover(),
        c.discover_requesting(ip("198.18.0.150")),
        c.select(ip("198.18.0.100"), SERVER_ID),
        c.reboot(ip("198.18.0.100")),
        c.renew(ip("198.18.0.100")),
        c.release(ip("198.18.0.100")),
        c.decline(ip("198.18.0.100")),
        c.inform(ip("198.18.0.100")),
        relayed.discover(),
        relayed.select(ip("198.18.8.10"), RELAY),
        overloaded,
    ]
}

/// xorshift64*: a tiny deterministic generator, so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        match rng.below(7) {
            0 => bytes[rng.below(len)] ^= 1 << rng.below(8),
            1 => bytes[rng.below(len)] = rng.next() as u8,
            // Option area bytes matter most: hit them often.
            2 if len > 240 => bytes[240 + rng.below(len - 240)] = rng.next() as u8,
            3 => bytes.truncate(rng.below(len + 1)),
            4 => {
                let at = rng.below(len + 1);
                let n = rng.below(300);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let n = rng.below(other.len() - from + 1);
                let at = rng.below(len + 1);
                bytes.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {
                let at = rng.below(len + 1);
                bytes.splice(at..at, [rng.next() as u8, rng.below(256) as u8]);
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
}

#[test]
fn hundreds_of_thousands_of_mutated_packets_never_panic() {
    let server = lab_server(true);
    let seeds = corpus();
    let mut rng = Rng(0x5eed_1ea5_ed00_0001);
    let started = Instant::now();
    let cases = 2_000_000;
    let mut bytes = Vec::with_capacity(2048);
    for i in 0..cases {
        bytes.clear();
        bytes.extend_from_slice(&seeds[rng.below(seeds.len())]);
        mutate(&mut rng, &seeds, &mut bytes);
        exercise(&server, &bytes, T0 + i / 1000);
        if i % 50_000 == 0 {
            server.sweep(T0 + i / 1000);
        }
    }
    let elapsed = started.elapsed();
    eprintln!("{cases} mutated packets in {elapsed:?} ({:.0}/s)", cases as f64 / elapsed.as_secs_f64());
    assert!(elapsed.as_secs() < 60, "the mutation run must stay within a minute");
    // What the garbage did not break: every bound lease holds its address bit.
    let mut bound = 0;
    server.cache().for_each(|r| {
        if r.state.is_bound() {
            bound += 1;
            assert!(r.holds_address && server.scopes()[r.scope as usize].map.is_taken(r.ip), "{r:?}");
        }
    });
    assert!(bound > 0, "the mutations should still produce some leases");
}

fn shared_server() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| lab_server(false))
}

/// A BOOTREQUEST header with the cookie, then `options` as given.
fn header_then(options: &[u8], chaddr: [u8; 6], giaddr: [u8; 4], ciaddr: [u8; 4], flags: u16) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[10..12].copy_from_slice(&flags.to_be_bytes());
    b[12..16].copy_from_slice(&ciaddr);
    b[24..28].copy_from_slice(&giaddr);
    b[28..34].copy_from_slice(&chaddr);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(options);
    b
}

fn option_tlv() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(vec![0u8, 1, 3, 12, 50, 51, 52, 53, 54, 55, 57, 60, 61, 81, 82, 118, 255]);
    (prop_oneof![interesting, any::<u8>()], prop::collection::vec(any::<u8>(), 0..40), any::<bool>()).prop_map(
        |(code, value, honest)| {
            let mut v = vec![code];
            if code != 0 && code != 255 {
                v.push(if honest { value.len() as u8 } else { value.len().wrapping_add(3) as u8 });
                v.extend_from_slice(&value);
            }
            v
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        exercise(shared_server(), &bytes, T0);
    }

    #[test]
    fn structured_messages_with_random_options_never_panic(
        kind in 1u8..=9,
        opts in prop::collection::vec(option_tlv(), 0..12),
        mac in any::<[u8; 6]>(),
        relayed in any::<bool>(),
        ciaddr in prop::sample::select(vec![[0u8; 4], [198, 18, 0, 100], [198, 18, 8, 10], [10, 0, 0, 1]]),
        flags in any::<u16>(),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut o = vec![53, 1, kind];
        for t in opts { o.extend_from_slice(&t); }
        o.extend_from_slice(&tail);
        let giaddr = if relayed { RELAY.octets() } else { [0; 4] };
        exercise(shared_server(), &header_then(&o, mac, giaddr, ciaddr, flags), T0);
    }
}

//! Whole client lifecycles through the sans-IO server: DORA, renew, rebind,
//! reboot, release, decline, expiry and reuse, reservations, pools, relays,
//! and clients racing for addresses.

mod common;

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::sync::Arc;

use common::*;
use leased::lease::LeaseState;
use leased::server::{ChangeKind, Destination, Ignored};
use leased::wire::{opt, MessageType};

#[test]
fn dora_leases_the_lowest_free_address_with_scope_options() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    let offer = lab.answer(&c.discover());
    assert_eq!(offer.kind(), MessageType::Offer);
    assert_eq!(offer.yiaddr(), ip("198.18.0.100"));
    assert_eq!(offer.option(opt::SERVER_ID), Some(SERVER_ID.octets().to_vec()));
    assert_eq!(offer.option_u32(opt::LEASE_TIME), Some(3600));
    assert_eq!(offer.option(opt::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(offer.option(opt::ROUTERS), Some(vec![198, 18, 0, 1]));
    assert_eq!(offer.option(opt::DNS_SERVERS), Some(vec![198, 18, 0, 2, 198, 18, 0, 3]));
    assert!(offer.outcome.change.is_none(), "an offer is not persisted");
    // No broadcast flag and no ciaddr: unicast to yiaddr at chaddr.
    assert_eq!(offer.reply.to, Destination::Hardware(SocketAddrV4::new(ip("198.18.0.100"), 68)));
    let held = lab.server.cache().get(ip("198.18.0.100")).unwrap();
    assert_eq!(held.state, LeaseState::Offered);
    assert_eq!(held.end, T0 + 30);

    let ack = lab.answer(&c.select(offer.yiaddr(), SERVER_ID));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.yiaddr(), ip("198.18.0.100"));
    let change = ack.outcome.change.clone().unwrap();
    assert_eq!(change.kind, ChangeKind::Allocated);
    assert_eq!(change.record.state, LeaseState::Allocated);
    assert_eq!(change.record.end, T0 + 3600);
    assert_eq!(change.record.hw.bytes(), &c.mac);
    // A second client gets the next address.
    assert_eq!(lab.dora(&TestClient::new(2)), ip("198.18.0.101"));
}

#[test]
fn broadcast_flag_sends_the_reply_to_broadcast() {
    let lab = Lab::new(true);
    let mut c = TestClient::new(1);
    c.broadcast = true;
    assert_eq!(lab.answer(&c.discover()).reply.to, Destination::Broadcast);
}

#[test]
fn renewing_and_rebinding_extend_the_same_lease() {
    let mut lab = Lab::new(true);
    let c = TestClient::new(1);
    let addr = lab.dora(&c);
    lab.advance(1800);
    let ack = lab.answer(&c.renew(addr));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.yiaddr(), addr);
    assert_eq!(ack.packet().ciaddr(), addr);
    assert_eq!(ack.reply.to, Destination::Unicast(SocketAddrV4::new(addr, 68)));
    let change = ack.outcome.change.unwrap();
    assert_eq!(change.kind, ChangeKind::Renewed);
    assert_eq!(change.record.end, lab.now + 3600);

    lab.advance(3200);
    let mut rebinding = c.clone();
    rebinding.broadcast = true;
    let ack = lab.answer(&rebinding.renew(addr));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.outcome.change.unwrap().kind, ChangeKind::Renewed);
}

#[test]
fn renewing_an_address_of_another_client_is_refused() {
    let lab = Lab::new(true);
    let a = lab.dora(&TestClient::new(1));
    let thief = TestClient::new(2);
    lab.dora(&thief);
    let nak = lab.answer(&thief.renew(a));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(lab.server.cache().get(a).unwrap().hw.bytes(), &TestClient::new(1).mac);
}

#[test]
fn init_reboot_keeps_the_address_on_the_same_network_and_naks_elsewhere() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    let addr = lab.dora(&c);
    let ack = lab.answer(&c.reboot(addr));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.yiaddr(), addr);

    // The client moved to the branch network behind the relay: wrong network.
    let moved = c.clone().relayed(RELAY);
    let nak = lab.answer(&moved.reboot(addr));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(nak.yiaddr(), ip("0.0.0.0"));
    assert_eq!(nak.option_u32(opt::LEASE_TIME), None);
    // Through a relay a NAK asks the relay to broadcast (RFC 2131 §4.3.2).
    assert!(nak.packet().broadcast());
    assert_eq!(nak.reply.to, Destination::Relay(SocketAddrV4::new(RELAY, 67)));

    // On the LAN, a remembered address of the same network that is not its lease.
    let nak = lab.answer(&c.reboot(ip("198.18.0.120")));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(nak.reply.to, Destination::Broadcast);
}

#[test]
fn unknown_clients_get_nak_when_authoritative_and_silence_otherwise() {
    let stranger = TestClient::new(9);
    let lab = Lab::new(true);
    assert_eq!(lab.answer(&stranger.reboot(ip("198.18.0.130"))).kind(), MessageType::Nak);
    assert_eq!(lab.answer(&stranger.renew(ip("198.18.0.130"))).kind(), MessageType::Nak);
    let lab = Lab::new(false);
    assert_eq!(lab.send(&stranger.reboot(ip("198.18.0.130"))).unwrap_err(), Ignored::UnknownClient);
    assert_eq!(lab.send(&stranger.renew(ip("198.18.0.130"))).unwrap_err(), Ignored::UnknownClient);
    // Wrong network is a NAK even when not authoritative.
    assert_eq!(lab.answer(&stranger.reboot(ip("198.18.8.10"))).kind(), MessageType::Nak);
}

#[test]
fn release_frees_the_address_and_the_client_gets_it_back_while_free() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    let addr = lab.dora(&c);
    let out = lab.send(&c.release(addr)).unwrap();
    assert!(out.is_none(), "RELEASE gets no reply");
    let r = lab.server.cache().get(addr).unwrap();
    assert_eq!(r.state, LeaseState::Released);
    assert!(!lab.server.scopes()[0].map.is_taken(addr));
    // Sticky: the returning client gets its old address back.
    assert_eq!(lab.dora(&c), addr);
    // Released again, then taken by someone else: the first client gets another.
    lab.send(&c.release(addr)).unwrap();
    assert_eq!(lab.dora(&TestClient::new(2)), addr);
    assert_ne!(lab.dora(&c), addr);
}

#[test]
fn release_of_someone_elses_lease_changes_nothing() {
    let lab = Lab::new(true);
    let addr = lab.dora(&TestClient::new(1));
    assert_eq!(lab.send(&TestClient::new(2).release(addr)).unwrap_err(), Ignored::UnknownLease);
    assert_eq!(lab.server.cache().get(addr).unwrap().state, LeaseState::Allocated);
}

#[test]
fn decline_abandons_the_address_for_its_probation_time() {
    let mut lab = Lab::new(true);
    let c = TestClient::new(1);
    let addr = lab.dora(&c);
    let out = lab.server.handle(&c.decline(addr), &lab.meta(), &mut [0; 1500]).unwrap();
    let change = out.change.unwrap();
    assert_eq!(change.kind, ChangeKind::Declined);
    assert_eq!(change.record.state, LeaseState::Abandoned);
    // Neither the decliner nor anyone else gets it during probation.
    assert_ne!(lab.dora(&c), addr);
    assert_ne!(lab.dora(&TestClient::new(2)), addr);
    lab.advance(3600);
    let changes = lab.server.sweep(lab.now);
    assert!(changes.iter().any(|c| c.kind == ChangeKind::Reclaimed && c.record.ip == addr));
    assert_eq!(lab.dora(&TestClient::new(3)), addr);
}

#[test]
fn expiry_waits_for_grace_then_reuse_after_and_keeps_addresses_sticky() {
    let mut lab = Lab::new(true);
    let (a, b) = (TestClient::new(1), TestClient::new(2));
    let addr_a = lab.dora(&a);
    lab.advance(3600 + 299);
    assert!(lab.server.sweep(lab.now).is_empty(), "inside the grace period");
    lab.advance(1);
    let changes = lab.server.sweep(lab.now);
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].kind, changes[0].record.ip), (ChangeKind::Expired, addr_a));
    // Held for its client during reuse_after: a newcomer gets the next address.
    assert_ne!(lab.dora(&b), addr_a);
    // The old client comes back and gets its address again.
    assert_eq!(lab.dora(&a), addr_a);

    // Expire again; after reuse_after anyone may have it.
    lab.advance(3600 + 300 + 600);
    lab.server.sweep(lab.now);
    assert!(!lab.server.scopes()[0].map.is_taken(addr_a));
    assert_eq!(lab.dora(&TestClient::new(3)), addr_a);
}

#[test]
fn reuse_expired_false_takes_the_oldest_expired_only_when_exhausted() {
    let hcl = LAB.replace("AUTHORITATIVE", "true").replace("reuse_after = \"10m\"", "reuse_expired = false");
    let mut lab = Lab::with(server(&hcl));
    let branch = |n| TestClient::new(n).relayed(RELAY);
    let first = lab.dora(&branch(1));
    lab.advance(60);
    lab.dora(&branch(2));
    lab.dora(&branch(3));
    lab.advance(4 * 3600);
    lab.server.sweep(lab.now);
    assert!(lab.server.scopes()[1].map.is_taken(first), "expired addresses stay held");
    assert_eq!(lab.dora(&branch(4)), first, "the oldest expired lease gives way");
}

#[test]
fn reservations_by_mac_and_hostname() {
    let lab = Lab::new(true);
    let mut printer = TestClient::new(0xaa01);
    printer.prl.push(opt::BOOTFILE);
    let offer = lab.answer(&printer.discover());
    assert_eq!(offer.yiaddr(), ip("198.18.0.150"));
    assert_eq!(offer.option_u32(opt::LEASE_TIME), Some(u32::MAX), "infinite lease");
    assert_eq!(&offer.packet().file()[..11], b"printer.cfg");
    let ack = lab.answer(&printer.select(offer.yiaddr(), SERVER_ID));
    assert_eq!(ack.outcome.change.unwrap().record.state, LeaseState::Reserved);

    // Any MAC with hostname voip01 gets .60.
    let phone = TestClient::new(0x0777).hostname("VoIP01");
    assert_eq!(lab.dora(&phone), ip("198.18.0.60"));

    // A reserved address is never given to others, even asked for, even when full.
    let other = TestClient::new(5);
    assert_ne!(lab.answer(&other.discover_requesting(ip("198.18.0.150"))).yiaddr(), ip("198.18.0.150"));
    let mut seen = HashSet::new();
    for n in 100..300u16 {
        match lab.send(&TestClient::new(n).discover()) {
            Ok(Some(a)) => assert!(seen.insert(a.yiaddr())),
            Ok(None) => unreachable!(),
            Err(e) => assert_eq!(e, Ignored::PoolExhausted),
        }
    }
    assert!(!seen.contains(&ip("198.18.0.150")));
    // A reserved client may not take another address.
    assert_eq!(lab.answer(&printer.reboot(ip("198.18.0.120"))).kind(), MessageType::Nak);
}

#[test]
fn a_client_given_a_reservation_elsewhere_gives_up_its_old_lease() {
    let mut lab = Lab::new(true);
    let laptop = TestClient::new(0x0b01);
    let old = lab.dora(&laptop);
    assert_eq!(old, ip("198.18.0.100"));
    // The operator reserves .160 for it; the config is reloaded live.
    let reserved = LAB
        .replace("reservations = [", "reservations = [\n    { mac = \"02:00:00:00:0b:01\"  ip = \"198.18.0.160\" },");
    let next = server(&reserved.replace("AUTHORITATIVE", "true"));
    next.take_over(&lab.server, lab.now);
    lab.server = next;
    lab.advance(60);
    // Its renewal of the old address is refused; its DISCOVER is offered the
    // reservation, and that OFFER carries the release of the old lease.
    assert_eq!(lab.answer(&laptop.renew(old)).kind(), MessageType::Nak);
    let offer = lab.answer(&laptop.discover());
    assert_eq!(offer.yiaddr(), ip("198.18.0.160"));
    let change = offer.outcome.change.clone().expect("the old lease released with the OFFER");
    assert_eq!((change.kind, change.record.ip, change.record.state), (ChangeKind::Released, old, LeaseState::Released));
    assert_eq!(lab.answer(&laptop.select(offer.yiaddr(), SERVER_ID)).kind(), MessageType::Ack);
    // The old address is free at once for the next client.
    assert_eq!(lab.dora(&TestClient::new(0x0b02)), old);
    assert_eq!(lab.server.cache().get(old).unwrap().hw.bytes(), &[2, 0, 0, 0, 0x0b, 0x02]);
    // The reservation removed again: its lease is a plain one until it ends.
    assert_eq!(lab.server.cache().get(ip("198.18.0.160")).unwrap().state, LeaseState::Reserved);
    let next = server(&LAB.replace("AUTHORITATIVE", "true"));
    next.take_over(&lab.server, lab.now);
    assert_eq!(next.cache().get(ip("198.18.0.160")).unwrap().state, LeaseState::Allocated);
}

#[test]
fn named_pools_by_allow_glob_and_overflow_into_open_pools() {
    let lab = Lab::new(true);
    let server = TestClient::new(1).hostname("server-web");
    let offer = lab.answer(&server.discover());
    assert_eq!(offer.yiaddr(), ip("198.18.0.10"));
    assert_eq!(offer.option_u32(opt::LEASE_TIME), Some(4 * 3600), "the pool's lease time");
    // The restricted pool refuses others even when they ask for it.
    let plain = TestClient::new(2);
    assert_eq!(lab.answer(&plain.discover_requesting(ip("198.18.0.11"))).yiaddr(), ip("198.18.0.100"));
    // Once the default pool is used up (99 addresses: .150 is reserved, `plain`
    // holds .100), open pools take over with their own times.
    for n in 10..110u16 {
        let got = lab.dora(&TestClient::new(n));
        assert!(got >= ip("198.18.0.101") && got != ip("198.18.0.150"));
    }
    let guest = lab.answer(&TestClient::new(200).discover());
    assert_eq!(guest.yiaddr(), ip("198.18.0.202"), ".200 and .201 went to the last two of the loop");
    assert_eq!(guest.option_u32(opt::LEASE_TIME), Some(900));
    let mut asks_long = TestClient::new(201);
    asks_long.lease_time = Some(86_400);
    assert_eq!(lab.answer(&asks_long.discover()).option_u32(opt::LEASE_TIME), Some(1800), "the pool's max");
}

#[test]
fn requested_address_is_offered_when_free_and_in_a_pool() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    assert_eq!(lab.answer(&c.discover_requesting(ip("198.18.0.177"))).yiaddr(), ip("198.18.0.177"));
    // Outside every pool: the next free address instead.
    let d = TestClient::new(2);
    assert_eq!(lab.answer(&d.discover_requesting(ip("198.18.0.5"))).yiaddr(), ip("198.18.0.100"));
    // Taken: the next free address.
    let e = TestClient::new(3);
    assert_eq!(lab.answer(&e.discover_requesting(ip("198.18.0.177"))).yiaddr(), ip("198.18.0.101"));
}

#[test]
fn relayed_clients_are_served_from_the_relays_scope() {
    let lab = Lab::new(true);
    let mut c = TestClient::new(1).relayed(RELAY);
    c.relay_info = Some(vec![1, 4, b'p', b'o', b'r', b't', 2, 2, 0xbe, 0xef, 9, 3, 1, 2, 3]);
    let offer = lab.answer(&c.discover());
    assert_eq!(offer.yiaddr(), ip("198.18.8.10"));
    assert_eq!(offer.reply.to, Destination::Relay(SocketAddrV4::new(RELAY, 67)));
    assert_eq!(offer.packet().giaddr(), RELAY);
    assert_eq!(offer.option(opt::ROUTERS), Some(vec![198, 18, 8, 1]));
    // Option 82 comes back unchanged, as the last option.
    assert_eq!(offer.option(opt::RELAY_AGENT_INFO), c.relay_info);
    assert_eq!(offer.option_order().last(), Some(&opt::RELAY_AGENT_INFO));
    let ack = lab.answer(&c.select(offer.yiaddr(), SERVER_ID));
    let details = ack.outcome.change.unwrap().record.details;
    assert_eq!(details.get().circuit_id, b"port");
    assert_eq!(details.get().remote_id, &[0xbe, 0xef]);
}

#[test]
fn link_selection_and_subnet_selection_pick_the_scope() {
    let lab = Lab::new(true);
    // A relay on an unknown address, naming the branch link (RFC 3527).
    let mut c = TestClient::new(1).relayed(ip("198.18.99.1"));
    assert_eq!(lab.send(&c.discover()).unwrap_err(), Ignored::NoScope);
    c.relay_info = Some(vec![5, 4, 198, 18, 8, 0]);
    assert_eq!(lab.answer(&c.discover()).yiaddr(), ip("198.18.8.10"));
    // Option 118 on the LAN interface picks the branch too (RFC 3011).
    let mut d = TestClient::new(2);
    d.extra.push((opt::SUBNET_SELECTION, vec![198, 18, 8, 0]));
    assert_eq!(lab.answer(&d.discover()).yiaddr(), ip("198.18.8.11"));
}

#[test]
fn server_id_override_is_used_and_accepted() {
    let lab = Lab::new(true);
    let mut c = TestClient::new(1).relayed(RELAY);
    c.relay_info = Some(vec![11, 4, 198, 18, 250, 1]);
    let offer = lab.answer(&c.discover());
    assert_eq!(offer.option(opt::SERVER_ID), Some(RELAY.octets().to_vec()));
    let ack = lab.answer(&c.select(offer.yiaddr(), RELAY));
    assert_eq!(ack.kind(), MessageType::Ack);
}

#[test]
fn a_request_for_another_server_drops_our_hold() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    let offered = lab.answer(&c.discover()).yiaddr();
    assert_eq!(lab.send(&c.select(offered, ip("198.18.0.254"))).unwrap_err(), Ignored::OtherServer);
    assert!(lab.server.cache().get(offered).is_none());
    assert_eq!(lab.answer(&TestClient::new(2).discover()).yiaddr(), offered);
}

#[test]
fn an_expired_offer_is_swept_and_a_late_request_still_gets_a_free_address() {
    let mut lab = Lab::new(true);
    let c = TestClient::new(1);
    let offered = lab.answer(&c.discover()).yiaddr();
    lab.advance(31);
    assert!(lab.server.sweep(lab.now).is_empty(), "offers are not persisted");
    assert!(lab.server.cache().get(offered).is_none());
    assert!(!lab.server.scopes()[0].map.is_taken(offered));
    assert_eq!(lab.answer(&c.select(offered, SERVER_ID)).kind(), MessageType::Ack);
    // ...but not one someone else took meanwhile.
    let d = TestClient::new(2);
    let offered_d = lab.answer(&d.discover()).yiaddr();
    lab.advance(31);
    lab.server.sweep(lab.now);
    lab.dora(&TestClient::new(3));
    assert_eq!(lab.answer(&d.select(offered_d, SERVER_ID)).kind(), MessageType::Nak);
}

#[test]
fn inform_gets_options_but_no_lease() {
    let lab = Lab::new(true);
    let c = TestClient::new(1);
    let ack = lab.answer(&c.inform(ip("198.18.0.7")));
    assert_eq!(ack.kind(), MessageType::Ack);
    assert_eq!(ack.yiaddr(), ip("0.0.0.0"));
    assert_eq!(ack.packet().ciaddr(), ip("198.18.0.7"));
    assert_eq!(ack.option_u32(opt::LEASE_TIME), None);
    assert_eq!(ack.option(opt::DNS_SERVERS), Some(vec![198, 18, 0, 2, 198, 18, 0, 3]));
    assert_eq!(ack.reply.to, Destination::Unicast(SocketAddrV4::new(ip("198.18.0.7"), 68)));
    assert!(ack.outcome.change.is_none());
}

#[test]
fn the_relay_scope_runs_out_and_says_so() {
    let lab = Lab::new(true);
    for n in 1..=3 {
        lab.dora(&TestClient::new(n).relayed(RELAY));
    }
    assert_eq!(lab.send(&TestClient::new(4).relayed(RELAY).discover()).unwrap_err(), Ignored::PoolExhausted);
}

#[test]
fn clients_racing_never_share_an_address() {
    let lab = Arc::new(Lab::new(true));
    let threads: Vec<_> = (0..4u16)
        .map(|t| {
            let lab = lab.clone();
            std::thread::spawn(move || {
                (0..25u16)
                    .map(|i| {
                        // Every client asks for the same address.
                        let c = TestClient::new(t * 100 + i + 1);
                        let offer = lab.answer(&c.discover_requesting(ip("198.18.0.150")));
                        let offer = lab.answer(&c.select(offer.yiaddr(), SERVER_ID));
                        offer.yiaddr()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 100);
    assert_eq!(unique.len(), 100, "an address was leased twice");
}

#[test]
fn two_clients_requesting_one_address_in_discover_get_different_offers() {
    let lab = Lab::new(true);
    let want = ip("198.18.0.140");
    let a = lab.answer(&TestClient::new(1).discover_requesting(want)).yiaddr();
    let b = lab.answer(&TestClient::new(2).discover_requesting(want)).yiaddr();
    assert_eq!(a, want);
    assert_ne!(b, want);
    // And the loser cannot grab it with a REQUEST either.
    assert_eq!(lab.answer(&TestClient::new(2).select(want, SERVER_ID)).kind(), MessageType::Nak);
}

//! The request view the core writes for policies (ABI v1), read back with
//! the SDK's own `RequestView`: every accessor a policy author uses sees
//! what the client sent and what the server knows.

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased::server::{Meta, PolicyHook, Verdict, VIEW_MAX};
use leased::wire::{opt, MessageType};
use leased_policy::{LeaseState, RequestView, DISCOVER, REQUEST};

/// Keeps a copy of each view it is asked about; decides nothing.
struct Recorder {
    buf: Box<[u8; VIEW_MAX]>,
    views: Vec<Vec<u8>>,
}

impl Recorder {
    fn new() -> Self {
        // Stale bytes from an earlier view must not leak into the next.
        Recorder { buf: Box::new([0xee; VIEW_MAX]), views: vec![] }
    }
}

impl PolicyHook for Recorder {
    fn view_buffer(&mut self) -> &mut [u8; VIEW_MAX] {
        &mut self.buf
    }
    fn decide(&mut self, len: usize) -> Verdict {
        self.views.push(self.buf[..len].to_vec());
        Verdict::default()
    }
}

#[test]
fn the_view_carries_the_request_and_the_clients_lease() {
    let server = lab_server(true);
    let mut hook = Recorder::new();
    let mut out = [0u8; 1500];
    let mut client = TestClient::new(7).relayed(RELAY).hostname("Cam-7");
    client.vendor_class = Some("android-dhcp".into());
    client.client_id = Some(vec![1, 2, 0, 0, 0, 0, 7]);
    client.relay_info = Some(vec![1, 3, b'p', b'1', b'7', 2, 2, 0xab, 0xcd]);
    let meta = Meta { ifindex: 0, local: SERVER_ID, now: T0 };

    let offer = server.handle_with(&client.discover(), &meta, &mut out, Some(&mut hook)).unwrap().reply.unwrap();
    let later = Meta { now: T0 + 60, ..meta };
    server.handle_with(&client.select(offer.yiaddr, SERVER_ID), &later, &mut out, Some(&mut hook)).unwrap();
    let renew_at = Meta { now: T0 + 600, ..meta };
    server.handle_with(&client.renew(offer.yiaddr), &renew_at, &mut out, Some(&mut hook)).unwrap();
    // Not asked about: releases go straight to the core.
    server.handle_with(&client.release(offer.yiaddr), &renew_at, &mut out, Some(&mut hook)).unwrap();
    assert_eq!(hook.views.len(), 3, "policies see DISCOVER and REQUEST only");

    let discover = RequestView::new(&hook.views[0]).unwrap();
    assert_eq!(discover.message_type(), DISCOVER);
    assert!(discover.relayed() && !discover.broadcast() && !discover.reserved());
    assert_eq!((discover.htype(), discover.chaddr()), (1, &[2, 0, 0, 0, 0, 7][..]));
    assert_eq!(discover.giaddr(), RELAY.octets());
    assert_eq!((discover.ciaddr(), discover.requested_ip()), ([0; 4], None));
    assert_eq!(discover.hostname(), Some(&b"Cam-7"[..]));
    assert_eq!(discover.vendor_class(), Some(&b"android-dhcp"[..]));
    assert_eq!(discover.client_id(), Some(&[1, 2, 0, 0, 0, 0, 7][..]));
    assert_eq!((discover.circuit_id(), discover.remote_id()), (Some(&b"p17"[..]), Some(&[0xab, 0xcd][..])));
    assert_eq!(discover.scope(), 1, "the branch scope, second in the config");
    assert_eq!((discover.lease(), discover.ifindex(), discover.now()), (None, 0, T0));
    let codes: Vec<u8> = discover.options().map(|(code, _)| code).collect();
    assert_eq!(codes, [opt::MESSAGE_TYPE, opt::CLIENT_ID, opt::HOSTNAME, opt::VENDOR_CLASS, 55, 82]);

    let select = RequestView::new(&hook.views[1]).unwrap();
    assert_eq!((select.message_type(), select.requested_ip()), (REQUEST, Some(offer.yiaddr.octets())));
    let offered = select.lease().expect("the offer is the client's lease");
    // Pool 0: the scope's own range.
    assert_eq!((offered.state, offered.ip, offered.pool), (LeaseState::Offered, offer.yiaddr.octets(), Some(0)));
    assert_eq!(select.now(), T0 + 60);

    let renew = RequestView::new(&hook.views[2]).unwrap();
    assert_eq!((renew.message_type(), renew.ciaddr()), (REQUEST, offer.yiaddr.octets()));
    let bound = renew.lease().unwrap();
    assert_eq!((bound.state, bound.ip), (LeaseState::Allocated, offer.yiaddr.octets()));
    // Bound at T0 + 60 for the default hour; asked at T0 + 600.
    assert_eq!(bound.remaining_secs, 3600 - 540);
    assert_eq!(renew.now(), T0 + 600);
}

#[test]
fn the_view_marks_reservations_pools_and_the_ingress_interface() {
    let server = lab_server(true);
    let mut hook = Recorder::new();
    let mut out = [0u8; 1500];
    let meta = Meta { ifindex: LAN_IF, local: SERVER_ID, now: T0 };
    // The printer has a reservation by MAC.
    let mut printer = TestClient::new(0xaa01);
    printer.broadcast = true;
    server.handle_with(&printer.discover(), &meta, &mut out, Some(&mut hook)).unwrap();
    // A guest-pool lease: its pool id is in the view of the renewal.
    let guest = TestClient::new(9);
    let want = Ipv4Addr::new(198, 18, 0, 200);
    let offer = server.handle_with(&guest.discover_requesting(want), &meta, &mut out, Some(&mut hook)).unwrap();
    let ip = offer.reply.unwrap().yiaddr;
    assert_eq!(ip, want);
    server.handle_with(&guest.select(ip, SERVER_ID), &meta, &mut out, Some(&mut hook)).unwrap();
    server.handle_with(&guest.message(MessageType::Request, ip, &[]), &meta, &mut out, Some(&mut hook)).unwrap();

    let view = RequestView::new(&hook.views[0]).unwrap();
    assert!(view.reserved() && view.broadcast() && !view.relayed());
    assert_eq!((view.ifindex(), view.scope(), view.hostname()), (LAN_IF, 0, None));
    let renew = RequestView::new(hook.views.last().unwrap()).unwrap();
    // Pool ids count the scope's range first: lan's are range, servers, guests.
    assert_eq!(renew.lease().unwrap().pool, Some(2));
    assert_eq!(renew.ifindex(), LAN_IF);
}

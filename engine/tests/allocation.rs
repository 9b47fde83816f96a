//! The packet path allocates nothing per packet in steady state: a counting
//! global allocator watches `Server::handle` for a renewal and for a
//! DISCOVER of a known client.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use leased::wire::MessageType;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn renewals_and_known_discovers_do_not_allocate() {
    let mut lab = Lab::new(true);
    let mut clients: Vec<TestClient> = (1..=50).map(TestClient::new).collect();
    for c in &mut clients[25..] {
        c.client_id = Some(vec![0xff, 0, 0, 0, 9, c.mac[5]]);
        c.hostname = Some(format!("host-{}", c.mac[5]));
        c.relay_info = Some(vec![1, 2, b'p', c.mac[5]]);
        *c = c.clone().relayed(RELAY);
    }
    // Fewer clients on the branch than it has addresses.
    clients.truncate(28);
    let addrs: Vec<_> = clients.iter().map(|c| lab.dora(c)).collect();
    let renewals: Vec<Vec<u8>> = clients.iter().zip(&addrs).map(|(c, a)| c.renew(*a)).collect();
    let discovers: Vec<Vec<u8>> = clients.iter().map(TestClient::discover).collect();
    let mut out = [0u8; 1500];
    lab.advance(600);
    let meta = lab.meta();

    let mut acks = 0;
    let renew_allocs = allocations(|| {
        for round in 0..20 {
            for bytes in &renewals {
                let o = lab
                    .server
                    .handle(bytes, &leased::server::Meta { now: meta.now + round, ..meta }, &mut out)
                    .unwrap();
                assert_eq!(o.reply.unwrap().kind, MessageType::Ack);
                // The lease change goes to the store: dropping it frees, never allocates.
                drop(o.change.unwrap());
                acks += 1;
            }
        }
    });
    assert_eq!(acks, 20 * renewals.len());
    assert_eq!(renew_allocs, 0, "renewals allocated {renew_allocs} times in {acks} packets");

    let discover_allocs = allocations(|| {
        for bytes in discovers.iter().cycle().take(1000) {
            let o = lab.server.handle(bytes, &meta, &mut out).unwrap();
            assert_eq!(o.reply.unwrap().kind, MessageType::Offer);
        }
    });
    assert_eq!(discover_allocs, 0, "DISCOVERs of known clients allocated {discover_allocs} times");

    // The counter does count: a new client's first DISCOVER stores a new
    // lease, whose long hostname does not fit inside the record.
    let newcomer = TestClient::new(999).hostname(&"newcomer-".repeat(6)).discover();
    assert!(
        allocations(|| {
            lab.server.handle(&newcomer, &meta, &mut out).unwrap();
        }) > 0
    );
}

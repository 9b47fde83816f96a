//! The sans-IO protocol core (RFC 2131 §4.3): one decoded request in, a
//! reply and a lease change out. No sockets, clocks or files: the caller
//! passes the time and the ingress facts in [`Meta`], so every rule is
//! testable with byte vectors.
//!
//! Address choice for a DISCOVER, in order: the client's current or
//! previous lease, its reservation, the requested address when free and in
//! a pool the client may use, the lowest free address of its pools (pools
//! whose `allow` names the client first, then open pools, the default pool
//! first). An offered address is held for `offer_hold_time`. A reservation
//! that names another address than the client's current lease wins, so
//! that an operator's edit takes effect at the client's next DISCOVER.

mod expiry;
mod options;
mod outcome;
mod policy;
mod reply;
mod restore;
mod scopes;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use thiserror::Error;

pub use options::EncodedOptions;
pub use outcome::{ChangeKind, Destination, Ignored, LeaseChange, Outcome, Reply};
pub use policy::{PolicyAction, PolicyHook, Verdict, VIEW_HEADER, VIEW_MAX};
pub use restore::{Restored, TakeOver};
use scopes::ScopeIndex;
pub use scopes::{InterfaceInfo, PoolRt, ReservationRt, ScopeRt};

use crate::config::{Config, ConflictResolution, LeasePolicy, Secs};
use crate::lease::*;
use crate::wire::{self, opt, MessageBuilder, MessageType, Options, Packet, RelayAgentInfo};

/// Facts about a datagram that only the I/O layer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Interface the datagram arrived on (0 when unknown).
    pub ifindex: u32,
    /// Our address it was sent to or arrived at (IP_PKTINFO), the default server identifier.
    pub local: Ipv4Addr,
    /// Receive time.
    pub now: UnixTime,
}

/// Receives a lease change while its record is locked (see [`Server::handle_and_submit`]).
type Submit<'a> = &'a mut dyn FnMut(LeaseChange);

/// The running server, shared by the shards and replaced whole on reload
/// (the shards hold the read side while they decide a batch).
pub type SharedServer = std::sync::Arc<parking_lot::RwLock<Server>>;

/// Why a config cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error("scope {0:?} has no subnet and its interface has no IPv4 network")]
    NoSubnet(String),
    #[error("scope {0:?} uses interface {1:?}, which does not exist")]
    UnknownInterface(String, String),
    #[error("{0} scopes is more than the 65535 supported")]
    TooManyScopes(usize),
}

/// The protocol core: compiled config, lease cache and allocators, shared by
/// all shards through `&self`.
pub struct Server {
    policy: LeasePolicy,
    server_id: Option<Ipv4Addr>,
    authoritative: bool,
    relay_port: u16,
    client_port: u16,
    scopes: Vec<ScopeRt>,
    index: ScopeIndex,
    cache: LeaseCache,
    validate_on_recover: bool,
}

/// Lease, renewal (T1) and rebinding (T2) times of one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub lease: Secs,
    pub t1: Secs,
    pub t2: Secs,
}

/// One decoded request and who sent it.
struct Request<'a> {
    kind: MessageType,
    packet: &'a Packet<&'a [u8]>,
    opts: &'a Options<'a>,
    hw: HwAddr,
    key: &'a [u8],
    relay: Option<RelayAgentInfo<'a>>,
    hostname: Option<&'a [u8]>,
    vendor_class: Option<&'a [u8]>,
    meta: &'a Meta,
    /// What the shard's policies decided (Continue without policies).
    verdict: Verdict,
}

impl Request<'_> {
    /// The lease time to grant within bounds: a policy's, else the client's option 51.
    fn lease_wanted(&self) -> Result<Option<u32>, Ignored> {
        match self.verdict.lease_secs {
            0 => Ok(self.opts.lease_time()?),
            secs => Ok(Some(secs)),
        }
    }

    fn hostname_str(&self) -> Option<&str> {
        self.hostname.and_then(|h| std::str::from_utf8(h).ok())
    }
    fn vendor_str(&self) -> Option<&str> {
        self.vendor_class.and_then(|h| std::str::from_utf8(h).ok())
    }
    fn owns(&self, r: &LeaseRecord) -> bool {
        r.is_client(self.key)
    }
}

impl Server {
    /// Compiles `config`; `interfaces` maps interface names to what the
    /// system knows of them (scopes on an interface need it).
    pub fn new(config: &Config, interfaces: &HashMap<String, InterfaceInfo>) -> Result<Self, BuildError> {
        if config.scopes.len() > u16::MAX as usize {
            return Err(BuildError::TooManyScopes(config.scopes.len()));
        }
        let scopes = config
            .scopes
            .iter()
            .map(|s| {
                let iface = match &s.interface {
                    Some(name) => Some(
                        *interfaces
                            .get(name)
                            .ok_or_else(|| BuildError::UnknownInterface(s.name.clone(), name.clone()))?,
                    ),
                    None => None,
                };
                ScopeRt::new(s, iface)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let index = ScopeIndex::new(&scopes, &config.scopes);
        let cache = LeaseCache::new(lease_spans(&scopes));
        Ok(Server {
            policy: config.lease.clone(),
            server_id: config.server_id,
            authoritative: config.authoritative,
            relay_port: config.relay_port,
            client_port: config.client_port,
            scopes,
            index,
            cache,
            validate_on_recover: config.recovery.validate_on_recover,
        })
    }

    /// The lease cache.
    pub fn cache(&self) -> &LeaseCache {
        &self.cache
    }

    /// The compiled scopes, in config order.
    /// The configured `server_id` (None: each interface's own address).
    pub fn configured_server_id(&self) -> Option<Ipv4Addr> {
        self.server_id
    }

    pub fn scopes(&self) -> &[ScopeRt] {
        &self.scopes
    }

    /// Decides one datagram. A reply, if any, is written to `out` (at least
    /// [`wire::MIN_REPLY`] bytes; 1500 covers every reply).
    pub fn handle(&self, datagram: &[u8], meta: &Meta, out: &mut [u8]) -> Result<Outcome, Ignored> {
        self.handle_with(datagram, meta, out, None)
    }

    /// [`Server::handle`] with the shard's policies deciding DISCOVERs and
    /// REQUESTs first (ARCHITECTURE §9).
    pub fn handle_with(
        &self,
        datagram: &[u8],
        meta: &Meta,
        out: &mut [u8],
        policies: Option<&mut dyn PolicyHook>,
    ) -> Result<Outcome, Ignored> {
        let mut change = None;
        let reply = self.handle_and_submit(datagram, meta, out, policies, &mut |c| change = Some(c))?;
        Ok(Outcome { reply, change })
    }

    /// [`Server::handle_with`], handing the lease change the datagram makes
    /// (at most one) to `submit` while its record is still locked: whoever
    /// changes the address next (another shard's client, the API, the
    /// expiry sweep) submits after it, so the store gets an address's
    /// changes in the order they were made. The shards use this.
    pub fn handle_and_submit(
        &self,
        datagram: &[u8],
        meta: &Meta,
        out: &mut [u8],
        policies: Option<&mut dyn PolicyHook>,
        submit: Submit,
    ) -> Result<Option<Reply>, Ignored> {
        let packet = Packet::new_checked(datagram)?;
        if packet.op() != wire::code::BOOTREQUEST {
            return Err(Ignored::NotClientMessage);
        }
        let mut opts = Options::new(datagram);
        opts.read()?;
        let kind = opts.message_type()?;
        let hw = HwAddr::new(packet.htype(), packet.chaddr());
        if self.policy.validate_client && !valid_hardware(hw.bytes()) {
            return Err(Ignored::InvalidClient);
        }
        let client_id = opts.client_id()?;
        if self.policy.require_client_identifier && client_id.is_none() {
            return Err(Ignored::NoClientId);
        }
        let mut key_buf = [0u8; CLIENT_KEY_MAX];
        let mut req = Request {
            kind,
            packet: &packet,
            opts: &opts,
            hw,
            key: ClientKey::encode(&mut key_buf, client_id, &hw),
            relay: opts.relay_agent_info()?,
            hostname: opts.hostname()?,
            vendor_class: opts.vendor_class()?,
            meta,
            verdict: Verdict::default(),
        };
        if let (Some(hook), MessageType::Discover | MessageType::Request) = (policies, kind) {
            let len = self.write_view(&req, self.select_scope(&req), hook.view_buffer());
            req.verdict = hook.decide(len);
            match (req.verdict.action, kind) {
                (PolicyAction::Deny, _) | (PolicyAction::Nak, MessageType::Discover) => {
                    return Err(Ignored::PolicyDenied)
                }
                (PolicyAction::Nak, _) => {
                    let si = self.select_scope(&req).ok_or(Ignored::NoScope)?;
                    return self.nak(&req, out, si);
                }
                _ => {}
            }
        }
        match kind {
            MessageType::Discover => self.discover(&req, out, submit),
            MessageType::Request => self.request(&req, out, submit),
            MessageType::Release => self.release(&req, submit),
            MessageType::Decline => self.decline(&req, submit),
            MessageType::Inform => self.inform(&req, out),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => Err(Ignored::NotClientMessage),
        }
    }

    fn discover(&self, req: &Request, out: &mut [u8], submit: Submit) -> Result<Option<Reply>, Ignored> {
        let si = self.select_scope(req).ok_or(Ignored::NoScope)?;
        let scope = &self.scopes[si];
        let now = req.meta.now;
        let reservation = scope.reservation_for(req.hw.htype, req.hw.bytes(), req.hostname);
        let prev = self.cache.client_ip(req.key);
        let ip = self.choose_address(req, si, prev, reservation)?;
        // The client moves (a reservation elsewhere, its pool no longer
        // admits it): the server would not ACK its old address again.
        if let Some(p) = prev.filter(|p| *p != ip) {
            self.give_up(req, si, p, submit);
        }
        // Hold the address for this client; a bound lease stays bound.
        let refreshed = self.cache.get_mut(ip).filter(|r| req.owns(r)).map(|mut r| {
            if !r.state.is_bound() {
                r.state = LeaseState::Offered;
                r.end = now.saturating_add(self.policy.offer_hold_time.0);
            }
            r.last_seen = now;
            r.holds_address = true;
        });
        if refreshed.is_none() {
            let pool = scope.pool_of(ip).map_or(NO_POOL, |p| p as u16);
            let hold = now.saturating_add(self.policy.offer_hold_time.0);
            self.cache.insert(self.new_record(req, si, pool, ip, LeaseState::Offered, hold));
        }
        let terms = self.terms(si, scope.pool_of(ip), reservation, req.lease_wanted()?);
        Ok(Some(self.reply(req, out, MessageType::Offer, ip, Some(terms), si, reservation)?))
    }

    /// Frees the client's old address `ip` in scope `si` when it moves to
    /// another: a bound lease is released (the change to persist), a hold
    /// dropped. A lease in another scope is left to run out.
    fn give_up(&self, req: &Request, si: usize, ip: Ipv4Addr, submit: Submit) {
        let Some(mut r) = self.cache.get_mut(ip).filter(|r| req.owns(r) && r.scope as usize == si) else {
            return;
        };
        if r.state.is_bound() {
            return submit(self.release_record(&mut r, req.meta.now));
        }
        drop(r);
        if let Some(r) = self.cache.remove_if(ip, |r| r.state == LeaseState::Offered && req.owns(r)) {
            self.free_address(&r);
        }
    }

    /// The address to offer, secured for this client (see the module docs).
    fn choose_address(
        &self,
        req: &Request,
        si: usize,
        prev: Option<Ipv4Addr>,
        reservation: Option<&ReservationRt>,
    ) -> Result<Ipv4Addr, Ignored> {
        let scope = &self.scopes[si];
        if let Some(prev) = prev {
            if reservation.is_none_or(|r| r.ip == prev) && self.secure(req, si, prev) {
                return Ok(prev);
            }
        }
        if let Some(r) = reservation {
            return Ok(r.ip);
        }
        if let Some(ip) = req.opts.requested_ip()? {
            let admitted =
                scope.pool_of(ip).is_some_and(|p| scope.pools[p].admits(req.hostname_str(), req.vendor_str()));
            if admitted && scope.reservation_at(ip).is_none() && self.secure(req, si, ip) {
                return Ok(ip);
            }
        }
        if let PolicyAction::Pool(p) = req.verdict.action {
            for seg in scope.pools.get(p as usize).map_or(&[][..], |p| &p.segments[..]) {
                if let Some(ip) = scope.map.claim_lowest(seg.start, seg.end) {
                    return Ok(ip);
                }
            }
        }
        let (host, vendor) = (req.hostname_str(), req.vendor_str());
        let named = scope.pools.iter().filter(|p| p.allow_matches(host, vendor));
        let open = scope.pools.iter().filter(|p| p.admits(None, None));
        for pool in named.chain(open) {
            for seg in &pool.segments {
                if let Some(ip) = scope.map.claim_lowest(seg.start, seg.end) {
                    return Ok(ip);
                }
            }
        }
        if !self.policy.reuse_expired {
            if let Some(ip) = self.reclaim_oldest_expired(req, si) {
                return Ok(ip);
            }
        }
        Err(Ignored::PoolExhausted)
    }

    /// Makes `ip` of scope `si` this client's to use: it holds it already, or its bit is
    /// claimed now. On success a record of another client at `ip`, if any,
    /// no longer holds the address and will be replaced.
    fn secure(&self, req: &Request, si: usize, ip: Ipv4Addr) -> bool {
        let map = &self.scopes[si].map;
        match self.cache.get_mut(ip) {
            Some(mut r) => {
                if r.holds_address {
                    return req.owns(&r) && r.state != LeaseState::Abandoned && r.scope as usize == si;
                }
                let claimed = map.claim(ip);
                r.holds_address = claimed && req.owns(&r);
                claimed
            }
            None => map.claim(ip),
        }
    }

    /// With `reuse_expired = false`, an exhausted pool takes over the
    /// address of the longest-expired lease of the scope.
    fn reclaim_oldest_expired(&self, req: &Request, si: usize) -> Option<Ipv4Addr> {
        let mut oldest: Option<(UnixTime, Ipv4Addr)> = None;
        let (host, vendor) = (req.hostname_str(), req.vendor_str());
        let scope = &self.scopes[si];
        self.cache.for_each(|r| {
            let admitted = scope.pools.get(r.pool as usize).is_some_and(|p| p.admits(host, vendor));
            if r.scope as usize == si
                && r.state == LeaseState::Expired
                && r.holds_address
                && admitted
                && oldest.is_none_or(|o| r.end < o.0)
            {
                oldest = Some((r.end, r.ip));
            }
        });
        let (end, ip) = oldest?;
        let mut r = self.cache.get_mut(ip)?;
        if r.state != LeaseState::Expired || r.end != end || !r.holds_address {
            return None;
        }
        // The bit stays set; the record passes to the new client below.
        r.holds_address = false;
        drop(r);
        self.cache.remove_if(ip, |r| !r.holds_address);
        Some(ip)
    }

    fn request(&self, req: &Request, out: &mut [u8], submit: Submit) -> Result<Option<Reply>, Ignored> {
        let p = req.packet;
        let requested = req.opts.requested_ip()?;
        let ciaddr = p.ciaddr();
        if let Some(id) = req.opts.server_id()? {
            // SELECTING: the client answers an OFFER.
            if !self.is_ours(req, id) {
                self.drop_offer(req);
                return Err(Ignored::OtherServer);
            }
            let ip = requested.or((!ciaddr.is_unspecified()).then_some(ciaddr)).ok_or(Ignored::BadRequest)?;
            let si = self.select_scope(req).ok_or(Ignored::NoScope)?;
            return self.confirm(req, si, ip, true, out, submit);
        }
        if let (Some(ip), true) = (requested, ciaddr.is_unspecified()) {
            // INIT-REBOOT: the client checks an address it remembers.
            let Some(si) = self.select_scope(req) else {
                return Err(Ignored::NoScope);
            };
            if !self.scopes[si].subnet.contains(&ip) {
                return self.nak(req, out, si);
            }
            return self.confirm(req, si, ip, false, out, submit);
        }
        if ciaddr.is_unspecified() {
            return Err(Ignored::BadRequest);
        }
        // RENEWING (unicast) or REBINDING (broadcast): the client has ciaddr.
        let si = match p.giaddr().is_unspecified() {
            true => self.index.by_address(ciaddr),
            false => self.select_scope(req),
        };
        let Some(si) = si else {
            return Err(Ignored::NoScope);
        };
        if !self.scopes[si].subnet.contains(&ciaddr) {
            return self.nak(req, out, si);
        }
        self.confirm(req, si, ciaddr, false, out, submit)
    }

    /// ACKs `ip` when the client may have it: a reserved client only its
    /// reservation; others the address of their own lease, or the one they
    /// select after an OFFER, while it is free or theirs. A client we know
    /// under another address gets a NAK; one we have no record of gets a
    /// NAK when authoritative, else silence (RFC 2131 §4.3.2).
    fn confirm(
        &self,
        req: &Request,
        si: usize,
        ip: Ipv4Addr,
        selecting: bool,
        out: &mut [u8],
        submit: Submit,
    ) -> Result<Option<Reply>, Ignored> {
        let scope = &self.scopes[si];
        let reservation = scope.reservation_for(req.hw.htype, req.hw.bytes(), req.hostname);
        let allowed = if let Some(r) = reservation {
            r.ip == ip
        } else if scope.reservation_at(ip).is_some() {
            false
        } else if selecting || self.cache.is_owned_by(ip, req.key) {
            let admitted =
                scope.pool_of(ip).is_some_and(|p| scope.pools[p].admits(req.hostname_str(), req.vendor_str()));
            admitted && self.secure(req, si, ip)
        } else if self.authoritative || self.cache.client_ip(req.key).is_some() {
            false
        } else {
            return Err(Ignored::UnknownClient);
        };
        if !allowed {
            return self.nak(req, out, si);
        }
        let pool = scope.pool_of(ip);
        let terms = self.terms(si, pool, reservation, req.lease_wanted()?);
        // The reply first: a reply that cannot be built leaves the lease as it was.
        let reply = self.reply(req, out, MessageType::Ack, ip, Some(terms), si, reservation)?;
        self.bind(req, si, ip, pool, reservation.is_some(), terms, submit);
        Ok(Some(reply))
    }

    /// Records the binding of `ip` to the client (its bit already secured)
    /// and submits the change while the record is locked.
    #[allow(clippy::too_many_arguments)]
    fn bind(
        &self,
        req: &Request,
        si: usize,
        ip: Ipv4Addr,
        pool: Option<usize>,
        reserved: bool,
        terms: Terms,
        submit: Submit,
    ) {
        let now = req.meta.now;
        let end = if terms.lease.is_infinite() { NEVER } else { now.saturating_add(terms.lease.0) };
        let state = if reserved { LeaseState::Reserved } else { LeaseState::Allocated };
        let pool = pool.map_or(NO_POOL, |p| p as u16);
        let mut buf = [0u8; DETAILS_MAX];
        let packed = self.details(req).pack(&mut buf);
        if let Some(mut r) = self.cache.get_mut(ip).filter(|r| req.owns(r)) {
            let kind = if r.state.is_bound() { ChangeKind::Renewed } else { ChangeKind::Allocated };
            r.state = state;
            r.scope = si as u16;
            r.pool = pool;
            r.hw = req.hw;
            r.start = now;
            r.end = end;
            r.last_seen = now;
            r.updated = now;
            r.holds_address = true;
            if !r.details.matches(packed) {
                r.details = LeaseDetails::from_packed(packed);
            }
            return submit(LeaseChange { kind, record: r.clone() });
        }
        let record = self.new_record(req, si, pool, ip, state, end);
        let stored =
            self.cache.insert_and(record, |r| submit(LeaseChange { kind: ChangeKind::Allocated, record: r.clone() }));
        // Cannot fail: a secured address is in a pool or reservation, which the cache spans.
        debug_assert!(stored, "{ip} has no slot in the lease cache");
    }

    fn new_record(
        &self,
        req: &Request,
        si: usize,
        pool: u16,
        ip: Ipv4Addr,
        state: LeaseState,
        end: UnixTime,
    ) -> LeaseRecord {
        let now = req.meta.now;
        let mut buf = [0u8; DETAILS_MAX];
        // The record's key derives from the same option 61 and chaddr as req.key.
        let record = LeaseRecord {
            ip,
            state,
            scope: si as u16,
            pool,
            hw: req.hw,
            details: LeaseDetails::from_packed(self.details(req).pack(&mut buf)),
            start: now,
            end,
            last_seen: now,
            created: now,
            updated: now,
            holds_address: true,
        };
        debug_assert!(record.is_client(req.key));
        record
    }

    fn details<'a>(&self, req: &Request<'a>) -> Details<'a> {
        let relay = req.relay.unwrap_or_default();
        Details {
            hostname: req.hostname.unwrap_or_default(),
            vendor_class: req.vendor_class.unwrap_or_default(),
            client_id: req.opts.client_id().ok().flatten().unwrap_or_default(),
            circuit_id: relay.circuit_id.unwrap_or_default(),
            remote_id: relay.remote_id.unwrap_or_default(),
        }
    }

    /// The client chose another server: free the address we offered it.
    fn drop_offer(&self, req: &Request) {
        let Some(prev) = self.cache.for_client(req.key) else { return };
        if prev.state != LeaseState::Offered {
            return;
        }
        if let Some(r) = self.cache.remove_if(prev.ip, |r| r.state == LeaseState::Offered && req.owns(r)) {
            self.free_address(&r);
        }
    }

    /// Returns `r`'s address to its pool unless a reservation keeps it.
    fn free_address(&self, r: &LeaseRecord) {
        let scope = &self.scopes[r.scope as usize];
        if r.holds_address && scope.reservation_at(r.ip).is_none() {
            scope.map.release(r.ip);
        }
    }

    fn release(&self, req: &Request, submit: Submit) -> Result<Option<Reply>, Ignored> {
        self.server_id_matches(req)?;
        let ip = req.packet.ciaddr();
        let mut r =
            self.cache.get_mut(ip).filter(|r| req.owns(r) && r.state.is_bound()).ok_or(Ignored::UnknownLease)?;
        r.last_seen = req.meta.now;
        submit(self.release_record(&mut r, req.meta.now));
        Ok(None)
    }

    /// Releases the bound lease at `ip` for an operator (the API), as a
    /// client's DHCPRELEASE would: state RELEASED, the address back in its
    /// pool at once (a reserved address stays held for its owner). None
    /// when no lease is bound there.
    pub fn release_lease(&self, ip: Ipv4Addr, now: UnixTime) -> Option<LeaseChange> {
        self.release_lease_and(ip, now, |_| {})
    }

    /// [`Server::release_lease`], calling `locked` with the change before
    /// the record is unlocked: submitted there, it reaches the store ahead
    /// of the client's next change of the address (a renewal answered a
    /// moment later must not be journaled before the release).
    pub fn release_lease_and(
        &self,
        ip: Ipv4Addr,
        now: UnixTime,
        locked: impl FnOnce(&LeaseChange),
    ) -> Option<LeaseChange> {
        let mut r = self.cache.get_mut(ip).filter(|r| r.state.is_bound())?;
        let change = self.release_record(&mut r, now);
        locked(&change);
        Some(change)
    }

    fn release_record(&self, r: &mut LeaseRecord, now: UnixTime) -> LeaseChange {
        self.free_address(r);
        r.holds_address = self.scopes[r.scope as usize].reservation_at(r.ip).is_some();
        r.state = LeaseState::Released;
        r.end = now;
        r.updated = now;
        LeaseChange { kind: ChangeKind::Released, record: r.clone() }
    }

    fn decline(&self, req: &Request, submit: Submit) -> Result<Option<Reply>, Ignored> {
        self.server_id_matches(req)?;
        let ip = req.opts.requested_ip()?.ok_or(Ignored::BadRequest)?;
        let mut r = self.cache.get_mut(ip).filter(|r| req.owns(r) && r.holds_address).ok_or(Ignored::UnknownLease)?;
        let now = req.meta.now;
        // The address is in use by someone unknown: keep it out of the pool.
        r.state = LeaseState::Abandoned;
        r.end = now.saturating_add(self.policy.decline_probation.0);
        r.updated = now;
        r.last_seen = now;
        submit(LeaseChange { kind: ChangeKind::Declined, record: r.clone() });
        Ok(None)
    }

    fn inform(&self, req: &Request, out: &mut [u8]) -> Result<Option<Reply>, Ignored> {
        let ciaddr = req.packet.ciaddr();
        let si = self.index.by_address(ciaddr).or_else(|| self.select_scope(req)).ok_or(Ignored::NoScope)?;
        let reservation = self.scopes[si].reservation_at(ciaddr).filter(|r| r.mac.is_some_and(|m| m == req.hw.bytes()));
        Ok(Some(self.reply(req, out, MessageType::Ack, Ipv4Addr::UNSPECIFIED, None, si, reservation)?))
    }

    fn nak(&self, req: &Request, out: &mut [u8], si: usize) -> Result<Option<Reply>, Ignored> {
        Ok(Some(self.reply(req, out, MessageType::Nak, Ipv4Addr::UNSPECIFIED, None, si, None)?))
    }

    /// Scope of a client: link or subnet selection, else the relay, else the interface.
    fn select_scope(&self, req: &Request) -> Option<usize> {
        let link = req.relay.and_then(|r| r.link_selection).or(req.opts.subnet_selection().ok().flatten());
        if let Some(addr) = link {
            return self.index.by_address(addr);
        }
        let giaddr = req.packet.giaddr();
        if !giaddr.is_unspecified() {
            return self.index.by_relay(giaddr);
        }
        self.index.by_interface(req.meta.ifindex)
    }

    fn server_id(&self, req: &Request) -> Ipv4Addr {
        req.relay.and_then(|r| r.server_id_override).or(self.server_id).unwrap_or(req.meta.local)
    }

    fn is_ours(&self, req: &Request, id: Ipv4Addr) -> bool {
        id == self.server_id(req) || Some(id) == self.server_id || id == req.meta.local
    }

    fn server_id_matches(&self, req: &Request) -> Result<(), Ignored> {
        match req.opts.server_id()? {
            Some(id) if !self.is_ours(req, id) => Err(Ignored::OtherServer),
            _ => Ok(()),
        }
    }

    /// Lease time: a reservation's fixed time, else the client's request
    /// clamped to the pool's (else scope's) bounds. T1/T2 from the config
    /// when shorter than the lease, else 50 % and 87.5 %.
    fn terms(
        &self,
        si: usize,
        pool: Option<usize>,
        reservation: Option<&ReservationRt>,
        requested: Option<u32>,
    ) -> Terms {
        let scope = &self.scopes[si];
        let times = pool.map_or(scope.times, |p| scope.pools[p].times);
        let lease = reservation.and_then(|r| r.lease_time).unwrap_or_else(|| times.grant(requested));
        if lease.is_infinite() {
            return Terms { lease, t1: Secs::INFINITE, t2: Secs::INFINITE };
        }
        let default_t2 = Secs((lease.0 as u64 * 7 / 8) as u32);
        let t2 = self.policy.rebinding_time.filter(|t| *t < lease).unwrap_or(default_t2);
        let t1 = self.policy.renewal_time.filter(|t| *t < t2).unwrap_or(Secs(lease.0 / 2).min(t2));
        Terms { lease, t1, t2 }
    }
}

/// The addresses that can hold a lease: each scope's pool span, and each
/// reservation outside it.
fn lease_spans(scopes: &[ScopeRt]) -> Vec<(Ipv4Addr, u32)> {
    let mut spans = Vec::new();
    for s in scopes {
        spans.push((s.map.base(), s.map.len()));
        // The reserved range keeps the leases it had when the boundary moved over them.
        let reserved = s.reserved_range.filter(|r| !s.map.covers(r.start) && !s.map.covers(r.end));
        if let Some(r) = reserved {
            spans.push((r.start, r.len() as u32));
        }
        let elsewhere = |ip| !s.map.covers(ip) && !reserved.is_some_and(|r| r.contains(ip));
        spans.extend(s.reservations.iter().filter(|r| elsewhere(r.ip)).map(|r| (r.ip, 1)));
    }
    spans
}

/// chaddr is not all-zero, broadcast or multicast (`validate_client`).
fn valid_hardware(hw: &[u8]) -> bool {
    !hw.is_empty() && hw.iter().any(|&b| b != 0) && !hw.iter().all(|&b| b == 0xff) && hw[0] & 1 == 0
}

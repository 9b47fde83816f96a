//! Where policies sit in the decision path: for every DISCOVER and REQUEST
//! the core writes the request view of ABI v1 (ARCHITECTURE §9, layout in
//! `wasm-sdk/src/view.rs`) and asks the shard's [`PolicyHook`] for a
//! [`Verdict`]. The core stays sans-IO: the hook is whatever the caller
//! passes (the wasm host in `crate::policy`, or a test double).

use super::*;

/// Bytes of the fixed view header.
pub const VIEW_HEADER: usize = 80;
/// Room for a whole view: header, strings and the options of a datagram.
pub const VIEW_MAX: usize = VIEW_HEADER + 1536 + 5 * 255;

/// What policies decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    pub action: PolicyAction,
    /// Lease seconds to grant (clamped by the scope or pool); 0: the server decides.
    pub lease_secs: u32,
}

/// The action of a [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyAction {
    #[default]
    Continue,
    /// Drop silently.
    Deny,
    /// NAK a REQUEST (a DISCOVER is dropped).
    Nak,
    /// Take the address from this pool (index in the scope's pools).
    Pool(u16),
}

/// A shard's policies: decides one request view.
pub trait PolicyHook {
    /// Where the core writes the view: the hook's own, so that no 3 KiB
    /// buffer is zeroed per packet.
    fn view_buffer(&mut self) -> &mut [u8; VIEW_MAX];
    /// Decides the view just written: the first `len` bytes of the buffer.
    fn decide(&mut self, len: usize) -> Verdict;
}

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

impl Server {
    /// Writes the ABI v1 view of `req` (served by scope `si`) into `buf`;
    /// its length. Bytes past it are left as they were.
    pub(super) fn write_view(&self, req: &Request, si: Option<usize>, buf: &mut [u8; VIEW_MAX]) -> usize {
        let p = req.packet;
        buf[..VIEW_HEADER].fill(0);
        buf[0] = req.kind as u8;
        // State + 1, pool, seconds left, address of the client's lease.
        let lease = self.cache.client_ip(req.key).and_then(|ip| {
            self.cache
                .read(ip, |r| {
                    req.owns(r).then(|| (r.state as u8 + 1, r.pool, r.end.saturating_sub(req.meta.now), r.ip))
                })
                .flatten()
        });
        let reserved =
            si.is_some_and(|si| self.scopes[si].reservation_for(req.hw.htype, req.hw.bytes(), req.hostname).is_some());
        buf[1] = u8::from(p.flags() & 0x8000 != 0)
            | u8::from(!p.giaddr().is_unspecified()) << 1
            | u8::from(lease.is_some()) << 2
            | u8::from(reserved) << 3;
        buf[2] = req.hw.htype;
        buf[3] = req.hw.bytes().len() as u8;
        buf[4..8].copy_from_slice(&p.giaddr().octets());
        buf[8..12].copy_from_slice(&p.ciaddr().octets());
        let requested = req.opts.requested_ip().ok().flatten().unwrap_or(Ipv4Addr::UNSPECIFIED);
        buf[12..16].copy_from_slice(&requested.octets());
        let hw = req.hw.bytes();
        buf[16..16 + hw.len().min(16)].copy_from_slice(&hw[..hw.len().min(16)]);
        put_u16(buf, 34, si.map_or(u16::MAX, |s| s as u16));
        put_u16(buf, 36, u16::MAX);
        if let Some((state, pool, left, ip)) = lease {
            buf[32] = state;
            put_u16(buf, 36, pool);
            buf[40..44].copy_from_slice(&left.to_le_bytes());
            buf[48..52].copy_from_slice(&ip.octets());
        }
        buf[44..48].copy_from_slice(&req.meta.ifindex.to_le_bytes());
        buf[76..80].copy_from_slice(&req.meta.now.to_le_bytes());
        let relay = req.relay.as_ref();
        let fields: [Option<&[u8]>; 6] = [
            req.hostname,
            req.vendor_class,
            req.opts.client_id().ok().flatten(),
            relay.and_then(|r| r.circuit_id),
            relay.and_then(|r| r.remote_id),
            req.opts.raw(),
        ];
        let mut at = VIEW_HEADER;
        for (i, field) in fields.iter().enumerate() {
            let Some(bytes) = field else { continue };
            let len = bytes.len().min(buf.len() - at).min(u16::MAX as usize);
            buf[at..at + len].copy_from_slice(&bytes[..len]);
            put_u16(buf, 52 + i * 4, at as u16);
            put_u16(buf, 54 + i * 4, len as u16);
            at += len;
        }
        at
    }
}

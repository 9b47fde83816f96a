//! Classic BPF programs that keep each client on one shard (ARCHITECTURE §2).
//!
//! Both programs compute the same hash of the client hardware address: the
//! reuseport program picks the socket of a unicast datagram, and the socket
//! filter of shard k keeps only hash k, because broadcast datagrams reach
//! every socket of the group.

use std::io;
use std::os::fd::RawFd;

use libc::sock_filter;

/// chaddr's offset in the DHCP message; the hash reads its bytes 2..6.
const CHADDR: u32 = 28;
/// A UDP header precedes the payload in what a socket filter sees.
const UDP_HEADER: u32 = 8;
/// Knuth's multiplicative constant: spreads sequential MACs over shards.
const MIX: u32 = 0x9e37_79b1;

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code: code as u16, jt, jf, k }
}

// Opcode parts (linux/filter.h).
const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const LD_LEN: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_LEN;
const MUL_K: u32 = libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K;
const RSH_K: u32 = libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K;
const MOD_K: u32 = libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K;
const JGE_K: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JEQ_K: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const RET_A: u32 = libc::BPF_RET | libc::BPF_A;
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;

/// The shard of a client, as the programs compute it.
pub fn shard_of(chaddr: &[u8; 16], shards: u32) -> u32 {
    let word = u32::from_be_bytes([chaddr[2], chaddr[3], chaddr[4], chaddr[5]]);
    (word.wrapping_mul(MIX) >> 16) % shards.max(1)
}

/// `A = shard_of(chaddr)` with chaddr at `base + CHADDR`.
fn hash(base: u32, shards: u32) -> [sock_filter; 4] {
    [stmt(LD_W_ABS, base + CHADDR + 2), stmt(MUL_K, MIX), stmt(RSH_K, 16), stmt(MOD_K, shards)]
}

/// `SO_ATTACH_REUSEPORT_CBPF`: returns the index of the socket in the group
/// (the kernel runs it on the UDP payload).
pub fn steering(shards: u32) -> Vec<sock_filter> {
    let mut prog = hash(0, shards).to_vec();
    prog.push(stmt(RET_A, 0));
    prog
}

/// `SO_ATTACH_FILTER` of shard `shard`: keeps datagrams whose client hashes
/// to it. Datagrams too short to hold a chaddr go to shard 0 alone, which
/// counts and drops them.
pub fn keep_own(shard: u32, shards: u32) -> Vec<sock_filter> {
    let short = if shard == 0 { u32::MAX } else { 0 };
    let h = hash(UDP_HEADER, shards);
    vec![
        stmt(LD_LEN, 0),
        jump(JGE_K, UDP_HEADER + CHADDR + 6, 1, 0),
        stmt(RET_K, short),
        h[0],
        h[1],
        h[2],
        h[3],
        jump(JEQ_K, shard, 0, 1),
        stmt(RET_K, u32::MAX),
        stmt(RET_K, 0),
    ]
}

/// Attaches `prog` with socket option `option` (`SO_ATTACH_FILTER` or
/// `SO_ATTACH_REUSEPORT_CBPF`).
pub fn attach(fd: RawFd, option: libc::c_int, prog: &[sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut sock_filter };
    // SAFETY: fprog points at `prog`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_macs_spread_over_shards() {
        let mut counts = [0u32; 2];
        for i in 0..1000u32 {
            let mut chaddr = [0u8; 16];
            chaddr[..6].copy_from_slice(&[0x02, 0, 0, 0, (i >> 8) as u8, i as u8]);
            counts[shard_of(&chaddr, 2) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 400), "{counts:?}");
    }
}

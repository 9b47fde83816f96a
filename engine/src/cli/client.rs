//! `leased client request`: a DORA exchange against any server, printed
//! step by step (ARCHITECTURE §4).

use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::Duration;

use crate::client::RelayClient;
use crate::config::Mac;

/// Where to send and as which client.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The server, ADDR:PORT.
    #[arg(long)]
    pub server: SocketAddrV4,
    /// Act as a relay agent at ADDR:PORT: giaddr = ADDR, replies come to PORT.
    #[arg(long)]
    pub relay: SocketAddrV4,
    /// Client hardware address (default: a random locally administered one).
    #[arg(long)]
    pub mac: Option<Mac>,
    /// Seconds to wait for each reply, retransmitting meanwhile.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

pub fn request(args: &RequestArgs) -> ExitCode {
    let mac = args.mac.map_or_else(random_mac, |m| m.0);
    let mut client = match RelayClient::new(args.server, args.relay, mac) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot act as relay on {}: {e}", args.relay);
            return ExitCode::FAILURE;
        }
    };
    client.timeout = Duration::from_secs(args.timeout);
    match client.request(&mut std::io::stdout()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn random_mac() -> [u8; 6] {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let b = (t ^ (std::process::id() as u64) << 24).to_be_bytes();
    // Locally administered, unicast.
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

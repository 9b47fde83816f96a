//! `leased client request|renew|release|inform`: DHCP exchanges against any
//! server, printed step by step (ARCHITECTURE §4).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use crate::client::{mac, Client, ClientError, Via};
use crate::config::{ClientId, Mac};

/// How to reach the server and as which client.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Act as a client on this interface (broadcasts from port 68; needs root).
    #[arg(long, conflicts_with = "relay")]
    pub interface: Option<String>,
    /// The server, ADDR:PORT: required with --relay; with --interface, unicast to it.
    #[arg(long)]
    pub server: Option<SocketAddrV4>,
    /// Act as a relay agent at ADDR:PORT: giaddr = ADDR, replies come to PORT.
    #[arg(long, requires = "server")]
    pub relay: Option<SocketAddrV4>,
    /// Client hardware address (request: a random locally administered one by default).
    #[arg(long, conflicts_with = "detect_mac")]
    pub mac: Option<Mac>,
    /// Use the interface's own hardware address.
    #[arg(long, requires = "interface")]
    pub detect_mac: bool,
    /// Seconds to wait for each reply, retransmitting meanwhile.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Send this host name (option 12).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Send this vendor class (option 60), e.g. to test a policy.
    #[arg(long)]
    pub vendor_class: Option<String>,
    /// Send this client identifier (option 61): hex bytes, a type and the
    /// identifier, e.g. 01:02:00:00:00:00:01 (type 1, a MAC address).
    #[arg(long)]
    pub client_id: Option<ClientId>,
}

/// `request`: DISCOVER, OFFER, REQUEST, ACK.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub target: Target,
}

/// `renew` and `inform`: from the client's address.
#[derive(Debug, clap::Args)]
pub struct AddressArgs {
    #[command(flatten)]
    pub target: Target,
    /// The client's leased address (ciaddr).
    #[arg(long)]
    pub ip: Ipv4Addr,
}

/// `release`: give the address back.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub target: Target,
    /// The leased address.
    #[arg(long)]
    pub ip: Ipv4Addr,
    /// The server that leased it (option 54).
    #[arg(long)]
    pub server_id: Ipv4Addr,
}

impl Target {
    /// The client, or the line to print when it cannot be set up.
    fn client(&self, need_mac: bool) -> Result<Client, String> {
        let via = match (&self.interface, self.relay, self.server) {
            (Some(name), _, server) => Via::Interface { name: name.clone(), server },
            (None, Some(relay), Some(server)) => Via::Relay { server, relay },
            _ => return Err("say where the server is: --interface IF, or --server ADDR:PORT --relay ADDR:PORT".into()),
        };
        let mac = match (self.mac, &self.interface) {
            (Some(m), _) => m.0,
            (None, Some(name)) if self.detect_mac => mac::of_interface(name)?,
            (None, _) if need_mac => {
                return Err("say which client: --mac MAC (or --detect-mac with --interface)".into())
            }
            (None, _) => mac::synthetic(),
        };
        let mut client = Client::new(&via, mac).map_err(|e| match &via {
            Via::Interface { name, .. } => {
                format!("cannot use interface {name}: {e} (it needs root and a free port 68)")
            }
            Via::Relay { relay, .. } => format!("cannot act as relay on {relay}: {e}"),
        })?;
        client.timeout = Duration::from_secs(self.timeout);
        client.hostname = self.hostname.clone();
        client.vendor_class = self.vendor_class.clone();
        client.client_id = self.client_id.clone().map(|id| id.0);
        Ok(client)
    }
}

fn finish(result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn with_client(target: &Target, need_mac: bool, f: impl FnOnce(Client) -> Result<(), ClientError>) -> ExitCode {
    match target.client(need_mac) {
        Ok(c) => finish(f(c)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn request(args: &RequestArgs) -> ExitCode {
    with_client(&args.target, false, |c| c.request(&mut std::io::stdout()).map(drop))
}

pub fn renew(args: &AddressArgs) -> ExitCode {
    with_client(&args.target, true, |c| c.renew(args.ip, &mut std::io::stdout()).map(drop))
}

pub fn release(args: &ReleaseArgs) -> ExitCode {
    with_client(&args.target, true, |c| c.release(args.ip, args.server_id, &mut std::io::stdout()))
}

pub fn inform(args: &AddressArgs) -> ExitCode {
    with_client(&args.target, false, |c| c.inform(args.ip, &mut std::io::stdout()).map(drop))
}

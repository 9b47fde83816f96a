//! The web UI's Diagnostics panel: the built-in DHCP client (`client`) run
//! against this server as a relay agent on one of its scopes' local relay
//! addresses, its steps streamed as it prints them (the CLI's format).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::leases::parse_mac;
use super::{ApiError, Shared};
use crate::client::{mac, Client, Via};
use crate::lease::{ClientKey, HwAddr, CLIENT_KEY_MAX};

/// Where the built-in client reaches this server: its relayed listen
/// address, and a relay address of a scope that is local here.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosticsTarget {
    pub server: SocketAddrV4,
    pub relay: SocketAddrV4,
}

#[derive(Deserialize)]
pub struct Run {
    /// `request` or `release`.
    action: String,
    /// None: a synthetic, locally administered MAC; `detected`: this
    /// host's (a listen interface's, else the first interface with one).
    mac: Option<String>,
}

/// Sends each written line to the response as it comes.
struct Lines(tokio::sync::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(Ok(buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn run(
    State(state): State<Shared>,
    body: Result<Json<Run>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match start(state, body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start(
    state: Shared,
    body: Result<Json<Run>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(run) = body
        .map_err(|e| ApiError::bad_request(format!("send {{\"action\": \"request\" | \"release\", \"mac\"}}: {e}")))?;
    let target = state.diagnostics.ok_or_else(|| {
        ApiError::bad_request("diagnostics need relay mode: an ADDR:PORT in listen and a scope whose relay_addresses include a local address")
    })?;
    let (mac, detected_on) = match run.mac.as_deref().filter(|m| !m.is_empty()) {
        Some("detected") => {
            let (name, m) = mac::detect(&state.listen).map_err(ApiError::bad_request)?;
            (m, Some(name))
        }
        Some(m) => (parse_mac(m)?.0, None),
        None => (mac::synthetic(), None),
    };
    let release = match run.action.as_str() {
        "request" => None,
        "release" => {
            let mut key = [0u8; CLIENT_KEY_MAX];
            let hw = HwAddr::new(1, &mac);
            let ip = state
                .server
                .read()
                .cache()
                .for_client(ClientKey::encode(&mut key, None, &hw))
                .filter(|r| r.state.is_bound())
                .map(|r| r.ip)
                .ok_or_else(|| ApiError::not_found(format!("{hw} holds no lease to release")))?;
            Some(ip)
        }
        other => return Err(ApiError::bad_request(format!("unknown action {other:?}: request or release"))),
    };
    // One run at a time: they share the relay port.
    let guard = state
        .diagnostics_lock
        .clone()
        .try_lock_owned()
        .map_err(|_| super::reservations::conflict("a diagnostics run is in progress"))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("diagnostics".into())
        .spawn(move || {
            let _one = guard;
            let mut out = Lines(tx);
            let hw = HwAddr::new(1, &mac);
            let origin = detected_on.map(|name| format!(" (detected on {name})")).unwrap_or_default();
            let _ = writeln!(out, "Client {hw}{origin} via relay {} to {}", target.relay, target.server);
            let result =
                Client::new(&Via::Relay { server: target.server, relay: target.relay }, mac).and_then(|mut c| {
                    c.timeout = Duration::from_secs(5);
                    match release {
                        None => c.request(&mut out).map(drop),
                        Some(ip) => c.release(ip, *target.server.ip(), &mut out),
                    }
                });
            if let Err(e) = result {
                let _ = writeln!(out, "error: {e}");
            }
        })
        .map_err(ApiError::internal)?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}

/// The target of `config`, if it serves relayed traffic on an address and
/// a scope relays through an address of this host.
pub fn target(config: &crate::config::Config, local: impl Fn(Ipv4Addr) -> bool) -> Option<DiagnosticsTarget> {
    let server = config.listen.iter().find_map(|l| match l {
        crate::config::Listen::Socket(a) => Some(*a),
        crate::config::Listen::Interface(_) => None,
    })?;
    let relay = config.scopes.iter().flat_map(|s| s.relay_addresses.iter()).copied().find(|a| local(*a))?;
    Some(DiagnosticsTarget { server, relay: SocketAddrV4::new(relay, config.relay_port) })
}

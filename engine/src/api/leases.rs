//! Lease routes: list with filters and cursor paging over the cache (in
//! address order, so a page starts where the last one ended without a
//! walk), by IP, by MAC, history and counts.

use std::net::Ipv4Addr;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{ok, Answer, ApiError, Shared};
use crate::config::Mac;
use crate::lease::{ClientKey, HwAddr, LeaseRecord, LeaseState, CLIENT_KEY_MAX};
use crate::server::{ChangeKind, Server};
use crate::store::transfer::{export_cache, hex_field, text, text_sink, ExportFormat};
use crate::store::Names;

/// Most leases one page may ask for.
const PAGE_MAX: usize = 10_000;

/// A lease as the API shows it: names for scope and pool, times as Unix
/// seconds, `expires_in` from now.
pub fn lease_json(server: &Server, r: &LeaseRecord, now: u32) -> Value {
    let scope = server.scopes().get(r.scope as usize);
    let pool = scope.and_then(|s| s.pools.get(r.pool as usize));
    let d = r.details.get();
    json!({
        "ip": r.ip.to_string(),
        "mac": r.hw.to_string(),
        "state": r.state.name(),
        "scope": scope.map(|s| s.name.as_str()),
        "pool": pool.map(|p| p.name.as_str()),
        "hostname": text(d.hostname),
        "vendor_class": text(d.vendor_class),
        "client_id": hex_field(d.client_id),
        "circuit_id": text(d.circuit_id),
        "remote_id": hex_field(d.remote_id),
        "start": r.start,
        "end": r.end,
        "expires_in": r.end.saturating_sub(now),
        "last_seen": r.last_seen,
        "created": r.created,
        "updated": r.updated,
    })
}

pub(super) fn parse_ip(s: &str) -> Result<Ipv4Addr, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request(format!("{s:?} is not an IPv4 address")))
}

pub(super) fn parse_mac(s: &str) -> Result<Mac, ApiError> {
    s.parse().map_err(|e| ApiError::bad_request(format!("{s:?} is not a MAC address: {e}")))
}

/// What `GET /leases` asks for.
#[derive(Debug, Default, Deserialize)]
pub struct LeaseQuery {
    /// One state or several, comma-separated.
    pub state: Option<String>,
    pub scope: Option<String>,
    /// Part of the IP, MAC or host name (any case).
    pub q: Option<String>,
    pub limit: Option<usize>,
    /// The last address of the previous page.
    pub cursor: Option<String>,
}

/// One page of leases in address order (the body of `GET /leases`): at
/// most `limit`, from after `cursor`, with the cursor of the next page
/// when this one is full.
pub fn lease_page(server: &Server, q: &LeaseQuery, now: u32) -> Result<Value, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to {PAGE_MAX}")));
    }
    let want_states = match &q.state {
        None => u8::MAX,
        Some(list) => list.split(',').map(str::trim).try_fold(0u8, |mask, s| {
            let state = (0..=5).filter_map(LeaseState::from_u8).find(|st| st.name().eq_ignore_ascii_case(s));
            state.map(|st| mask | 1 << st as u8).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown state {s:?}: OFFERED, ALLOCATED, EXPIRED, RELEASED, ABANDONED or RESERVED"
                ))
            })
        })?,
    };
    let search = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(Search::new);
    let want_scope = match &q.scope {
        None => None,
        Some(name) => Some(
            server
                .scopes()
                .iter()
                .position(|s| s.name == *name)
                .ok_or_else(|| ApiError::not_found(format!("no scope {name:?}")))? as u16,
        ),
    };
    let from = match &q.cursor {
        None => Ipv4Addr::UNSPECIFIED,
        Some(c) => match u32::from(parse_ip(c)?).checked_add(1) {
            Some(next) => Ipv4Addr::from(next),
            None => return Ok(json!({ "leases": [], "next_cursor": null })),
        },
    };
    let (mut leases, mut last) = (Vec::with_capacity(limit.min(1000)), None);
    server.cache().scan_from(from, |r| {
        if want_states & (1 << r.state as u8) != 0
            && want_scope.is_none_or(|s| r.scope == s)
            && search.as_ref().is_none_or(|s| s.finds(r))
        {
            leases.push(lease_json(server, r, now));
            last = Some(r.ip);
        }
        leases.len() < limit
    });
    // A full page may have more after it; a short one ended the scan.
    let next = last.filter(|_| leases.len() == limit).map(|ip| ip.to_string());
    Ok(json!({ "leases": leases, "next_cursor": next }))
}

/// A search of the lease list: part of an IP, a MAC or a host name, in any
/// case. Written out by hand and without allocating: a search may look at
/// a million leases.
struct Search(memchr::memmem::Finder<'static>);

impl Search {
    fn new(text: &str) -> Self {
        Search(memchr::memmem::Finder::new(text.to_ascii_lowercase().as_bytes()).into_owned())
    }

    fn finds(&self, r: &LeaseRecord) -> bool {
        let mut buf = [0u8; 256];
        let hostname = r.details.get().hostname;
        let n = hostname.len().min(buf.len());
        for (b, h) in buf.iter_mut().zip(&hostname[..n]) {
            *b = h.to_ascii_lowercase();
        }
        self.0.find(&buf[..n]).is_some()
            || self.0.find(ip_text(r.ip, &mut buf)).is_some()
            || self.0.find(mac_text(r.hw.bytes(), &mut buf)).is_some()
    }
}

/// `ip` in dotted decimal, as `Ipv4Addr` shows it.
fn ip_text(ip: Ipv4Addr, buf: &mut [u8; 256]) -> &[u8] {
    let mut n = 0;
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        for (digit, shown) in [(o / 100, o >= 100), (o / 10 % 10, o >= 10), (o % 10, true)] {
            if shown {
                buf[n] = b'0' + digit;
                n += 1;
            }
        }
    }
    &buf[..n]
}

/// Hardware address bytes as lower-case hex pairs with colons, as `HwAddr` shows them.
fn mac_text<'a>(bytes: &[u8], buf: &'a mut [u8; 256]) -> &'a [u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            buf[n] = b':';
            n += 1;
        }
        buf[n] = HEX[usize::from(b >> 4)];
        buf[n + 1] = HEX[usize::from(b & 15)];
        n += 2;
    }
    &buf[..n]
}

pub async fn list(State(state): State<Shared>, Query(q): Query<LeaseQuery>) -> Answer {
    lease_page(&state.server.read(), &q, (state.clock)()).map(ok)
}

pub async fn by_ip(State(state): State<Shared>, Path(ip): Path<String>) -> Answer {
    let ip = parse_ip(&ip)?;
    let server = state.server.read();
    let lease = server.cache().read(ip, |r| lease_json(&server, r, (state.clock)()));
    lease.map(|l| ok(json!({ "lease": l }))).ok_or_else(|| ApiError::not_found(format!("no lease at {ip}")))
}

/// The leases of a MAC: its lease under the MAC as client key at once;
/// others (clients that send a client identifier) by a scan.
pub async fn by_mac(State(state): State<Shared>, Path(mac): Path<String>) -> Answer {
    let mac = parse_mac(&mac)?;
    let hw = HwAddr::new(1, &mac.0);
    let server = state.server.read();
    let now = (state.clock)();
    let mut buf = [0u8; CLIENT_KEY_MAX];
    let key = ClientKey::encode(&mut buf, None, &hw);
    let mut leases = vec![];
    match server.cache().for_client(key) {
        Some(r) => leases.push(lease_json(&server, &r, now)),
        None => server.cache().scan_from(Ipv4Addr::UNSPECIFIED, |r| {
            if r.hw == hw {
                leases.push(lease_json(&server, r, now));
            }
            true
        }),
    }
    if leases.is_empty() {
        return Err(ApiError::not_found(format!("no lease of {}", hw)));
    }
    Ok(ok(json!({ "leases": leases })))
}

/// Releases the bound lease at the address: RELEASED, the address free
/// at once; answers once the change is durable.
pub async fn release(State(state): State<Shared>, Path(ip): Path<String>) -> Answer {
    let ip = parse_ip(&ip)?;
    tokio::task::spawn_blocking(move || {
        let now = (state.clock)();
        let (change, seq, shown) = {
            let server = state.server.read();
            // Submitted before the record is unlocked: ahead of a renewal
            // the client may get a moment later.
            let mut seq = 0;
            let change = server
                .release_lease_and(ip, now, |change| seq = state.writer.lock().submit(change.clone()))
                .ok_or_else(|| ApiError::not_found(format!("no bound lease at {ip}")))?;
            let shown = lease_json(&server, &change.record, now);
            (change, seq, shown)
        };
        tracing::info!(%ip, mac = %change.record.hw, "lease released through the API");
        // Waits without holding the writer: the next release submits meanwhile.
        let waiter = state.writer.lock().waiter();
        if !waiter.wait(seq, std::time::Duration::from_secs(5)) {
            return Err(ApiError::internal("the store did not make the release durable within 5 s"));
        }
        Ok(ok(json!({ "lease": shown })))
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(Deserialize)]
pub struct MacQuery {
    mac: Option<String>,
}

pub async fn history(State(state): State<Shared>, Query(q): Query<MacQuery>) -> Answer {
    let mac = parse_mac(q.mac.as_deref().ok_or_else(|| ApiError::bad_request("give ?mac=MAC"))?)?;
    let events = state.store.history(&mac.0).map_err(ApiError::internal)?;
    Ok(ok(json!({ "mac": HwAddr::new(1, &mac.0).to_string(), "events": events })))
}

/// Changes of the window `secs` before `now`, by what operators call them.
fn window(state: &super::ApiState, now: u32, secs: u32) -> Value {
    let n = state.events.since(now, secs);
    let k = |c: ChangeKind| n[c as usize];
    json!({
        "new_leases": k(ChangeKind::Allocated),
        "renewals": k(ChangeKind::Renewed),
        "releases": k(ChangeKind::Released),
        "expirations": k(ChangeKind::Expired),
        "declined": k(ChangeKind::Declined),
    })
}

/// Leases by state, the average granted lease time of bound ones, and the
/// changes of the last hour and day (counted since the server started).
pub async fn stats(State(state): State<Shared>) -> Answer {
    let now = (state.clock)();
    let server = state.server.read();
    let mut by_state = [0u64; 6];
    let (mut bound, mut seconds) = (0u64, 0u64);
    server.cache().scan_from(Ipv4Addr::UNSPECIFIED, |r| {
        by_state[r.state as usize] += 1;
        if r.state.is_bound() && r.end != u32::MAX {
            bound += 1;
            seconds += u64::from(r.end.saturating_sub(r.start));
        }
        true
    });
    let states: serde_json::Map<String, Value> =
        (0..6u8).filter_map(LeaseState::from_u8).map(|s| (s.name().to_string(), json!(by_state[s as usize]))).collect();
    Ok(ok(json!({
        "total": server.cache().len(),
        "by_state": states,
        "abandoned": by_state[LeaseState::Abandoned as usize],
        "average_lease_secs": seconds.checked_div(bound).unwrap_or(0),
        "last_hour": window(&state, now, 3600),
        "last_day": window(&state, now, 86_400),
    })))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// Every lease as our JSON (default), CSV or Kea's lease file, streamed
/// as it is written from the cache (a million leases never sit in memory).
pub async fn export(State(state): State<Shared>, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    let format = match q.format.as_deref().unwrap_or("json") {
        "json" => ExportFormat::Json,
        "csv" => ExportFormat::Csv,
        "kea-csv" => ExportFormat::KeaCsv,
        other => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: json, csv or kea-csv (SQLite: leased export-leases --format sqlite)"
            )))
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        let names = Names::of(&state.server.read());
        let mut sink = text_sink(format, ChunkWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) }, &names);
        let done = export_cache(&state.server, sink.as_mut()).and_then(|n| sink.finish().map(|()| n));
        match done {
            Ok(n) => tracing::info!(leases = n, "leases exported through the API"),
            Err(e) => {
                tracing::warn!(error = %e, "export through the API ended early");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let kind = if format == ExportFormat::Json { "application/json" } else { "text/csv; charset=utf-8" };
    Ok(([(header::CONTENT_TYPE, kind)], Body::from_stream(chunks)).into_response())
}

/// Bytes of the export sent at a time.
const CHUNK: usize = 256 * 1024;

/// An export's output, handed to the response in chunks (the receiver
/// gone, the client left: the write fails and the export stops).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the client went away"))
    }
}

/// Lease changes as the store writes them, as server-sent events: `lease`
/// events carry the lease (as `GET /leases/{ip}` shows it) and `event`, the
/// kind of change; `lagged` says how many a slow reader missed.
pub async fn events(
    State(state): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let feed = state.events.watch();
    let mut stopping = state.stopping.subscribe();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = futures_util::stream::unfold((feed, state), |(mut feed, state)| async move {
        let event = match feed.recv().await {
            Ok((kind, record)) => {
                let mut lease = lease_json(&state.server.read(), &record, (state.clock)());
                lease["event"] = json!(kind.label());
                Event::default().event("lease").data(lease.to_string())
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a lease event watcher fell behind");
                Event::default().event("lagged").data(json!({ "missed": missed }).to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (feed, state)))
    });
    Sse::new(futures_util::StreamExt::take_until(stream, Box::pin(stopped))).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn search_texts_are_what_the_api_shows(ip: u32, mac in proptest::collection::vec(any::<u8>(), 1..=16)) {
            let mut buf = [0u8; 256];
            let ip = Ipv4Addr::from(ip);
            let shown = ip.to_string();
            prop_assert_eq!(ip_text(ip, &mut buf), shown.as_bytes());
            let hw = HwAddr::new(1, &mac);
            let shown = hw.to_string();
            prop_assert_eq!(mac_text(hw.bytes(), &mut buf), shown.as_bytes());
        }
    }
}

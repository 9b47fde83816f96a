//! Reservations and the pool boundary. Both live in the config file:
//! every change is an edit of the operator's file (`config::edit`, layout
//! and comments kept), checked, written atomically and reloaded live by
//! the serve loop; a refused change leaves file and server as they were.
//!
//! Per scope, the first `max_reservations` addresses of its range are the
//! reserved range (where reservations made here go) and the rest the
//! dynamic pool.

use std::net::Ipv4Addr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::leases::{lease_json, parse_ip, parse_mac};
use super::{ok, Answer, ApiError, Shared};
use crate::config::{edit, AddrRange};
use crate::lease::LeaseState;
use crate::server::{ScopeRt, Server};

pub(super) fn conflict(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::CONFLICT, message.into())
}

/// The index of scope `name`, or the only scope when none is named.
fn scope_index(server: &Server, name: Option<&str>) -> Result<usize, ApiError> {
    match name {
        Some(n) => server
            .scopes()
            .iter()
            .position(|s| s.name == n)
            .ok_or_else(|| ApiError::not_found(format!("no scope {n:?}"))),
        None if server.scopes().len() == 1 => Ok(0),
        None => Err(ApiError::bad_request("several scopes: say which one (scope)")),
    }
}

/// A host name that can be written into the config as it is.
fn check_hostname(h: &str) -> Result<(), ApiError> {
    let fine = !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("{h:?} is not a host name (letters, digits, '-', '.', '_')")))
    }
}

fn reservation_json(server: &Server, scope: &ScopeRt, r: &crate::server::ReservationRt, now: u32) -> Value {
    let lease = server.cache().read(r.ip, |l| lease_json(server, l, now));
    json!({
        "scope": scope.name,
        "ip": r.ip.to_string(),
        "mac": r.mac.map(|m| crate::lease::HwAddr::new(1, &m).to_string()),
        "hostname": r.hostname,
        "in_reserved_range": scope.reserved_range.is_some_and(|x| x.contains(r.ip)),
        "lease": lease,
    })
}

pub async fn list(State(state): State<Shared>) -> Answer {
    let server = state.server.read();
    let now = (state.clock)();
    let list: Vec<Value> = server
        .scopes()
        .iter()
        .flat_map(|s| s.reservations.iter().map(move |r| (s, r)))
        .map(|(s, r)| reservation_json(&server, s, r, now))
        .collect();
    Ok(ok(json!({ "reservations": list })))
}

/// The scope's reserved range, or why there is none.
fn reserved_range(scope: &ScopeRt) -> Result<AddrRange, ApiError> {
    scope.reserved_range.ok_or_else(|| {
        ApiError::bad_request(format!(
            "scope {:?} has no reserved range: set one with POST /api/dhcp/pool-boundary",
            scope.name
        ))
    })
}

/// Checks that `ip` can be reserved for `mac` in scope `si`: inside its
/// reserved range, reserved for nobody else, leased to nobody else.
fn check_address(server: &Server, si: usize, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), ApiError> {
    let scope = &server.scopes()[si];
    let range = reserved_range(scope)?;
    if !range.contains(ip) {
        return Err(ApiError::bad_request(format!("{ip} is outside the reserved range {range} of {:?}", scope.name)));
    }
    if let Some(r) = scope.reservation_at(ip).filter(|r| r.mac != Some(mac)) {
        let whose = r
            .mac
            .map_or_else(|| r.hostname.clone().unwrap_or_default(), |m| crate::lease::HwAddr::new(1, &m).to_string());
        return Err(conflict(format!("{ip} is already reserved for {whose}")));
    }
    let other =
        server.cache().read(ip, |l| (l.state.is_bound() && l.hw.bytes() != mac).then(|| l.hw.to_string())).flatten();
    if let Some(holder) = other {
        return Err(conflict(format!("{ip} is in use by {holder}")));
    }
    Ok(())
}

/// The lowest address of scope `si`'s reserved range that `mac` may take.
fn free_reserved(server: &Server, si: usize, mac: [u8; 6]) -> Result<Ipv4Addr, ApiError> {
    let scope = &server.scopes()[si];
    let range = reserved_range(scope)?;
    (u32::from(range.start)..=u32::from(range.end))
        .map(Ipv4Addr::from)
        .find(|ip| check_address(server, si, *ip, mac).is_ok())
        .ok_or_else(|| {
            conflict(format!("the reserved range {range} of {:?} is full: move the pool boundary", scope.name))
        })
}

/// The config entry of a reservation.
fn entry(mac: [u8; 6], ip: Ipv4Addr, hostname: Option<&str>) -> String {
    let mac = crate::lease::HwAddr::new(1, &mac);
    match hostname {
        Some(h) => format!("{{ mac = \"{mac}\"  ip = \"{ip}\"  hostname = \"{h}\" }}"),
        None => format!("{{ mac = \"{mac}\"  ip = \"{ip}\" }}"),
    }
}

/// Applies an edit of the config text under the edit lock: the new text
/// goes through the serve loop (check, atomic write, live reload).
async fn apply(
    state: &Shared,
    change: impl FnOnce(&Server, &str) -> Result<String, ApiError>,
) -> Result<String, ApiError> {
    let _one_at_a_time = state.edit_lock.lock().await;
    let text = state.config_text.read().clone();
    let new = change(&state.server.read(), &text)?;
    super::info::reconfigure(state, new).await
}

#[derive(Deserialize)]
pub struct NewReservation {
    mac: String,
    ip: Option<String>,
    hostname: Option<String>,
    scope: Option<String>,
}

pub async fn create(
    State(state): State<Shared>,
    body: Result<Json<NewReservation>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(new) = body.map_err(|e| {
        ApiError::bad_request(format!("send {{\"mac\", \"ip\" (optional), \"hostname\" (optional)}}: {e}"))
    })?;
    let mac = parse_mac(&new.mac)?.0;
    let ip = new.ip.as_deref().map(parse_ip).transpose()?;
    if let Some(h) = &new.hostname {
        check_hostname(h)?;
    }
    let mut placed = None;
    apply(&state, |server, text| {
        if let Some(f) = find(server, Some(mac), None) {
            let scope = &server.scopes()[f.scope].name;
            return Err(conflict(format!("{} already has a reservation: {} in {scope:?}", new.mac, f.ip)));
        }
        let si = match ip {
            Some(ip) => match server.scopes().iter().position(|s| s.subnet.contains(&ip)) {
                Some(si) => si,
                None => return Err(ApiError::bad_request(format!("{ip} is in no scope's subnet"))),
            },
            None => scope_index(server, new.scope.as_deref())?,
        };
        let ip = match ip {
            Some(ip) => check_address(server, si, ip, mac).map(|_| ip)?,
            None => free_reserved(server, si, mac)?,
        };
        placed = Some(ip);
        edit::add_reservation(text, &entry(mac, ip, new.hostname.as_deref())).map_err(ApiError::internal)
    })
    .await?;
    let ip = placed.unwrap_or(Ipv4Addr::UNSPECIFIED);
    Ok(ok(
        json!({ "reservation": { "mac": crate::lease::HwAddr::new(1, &mac).to_string(), "ip": ip.to_string(), "hostname": new.hostname } }),
    ))
}

/// A reservation's key in a path: a MAC or an IP.
fn parse_key(key: &str) -> Result<(Option<[u8; 6]>, Option<Ipv4Addr>), ApiError> {
    if let Ok(ip) = key.parse::<Ipv4Addr>() {
        return Ok((None, Some(ip)));
    }
    key.parse::<crate::config::Mac>()
        .map(|m| (Some(m.0), None))
        .map_err(|_| ApiError::bad_request(format!("{key:?} is neither a MAC nor an IPv4 address")))
}

/// A reservation of the running server.
struct Found {
    scope: usize,
    mac: Option<[u8; 6]>,
    ip: Ipv4Addr,
    hostname: Option<String>,
}

/// The reservation a key names.
fn find(server: &Server, mac: Option<[u8; 6]>, ip: Option<Ipv4Addr>) -> Option<Found> {
    server.scopes().iter().enumerate().find_map(|(si, s)| {
        s.reservations.iter().find(|r| (mac.is_some() && r.mac == mac) || Some(r.ip) == ip).map(|r| Found {
            scope: si,
            mac: r.mac,
            ip: r.ip,
            hostname: r.hostname.clone(),
        })
    })
}

/// Index of the reservation in the file's `dhcp.reservations`, or why it cannot be changed here.
fn index_in_file(
    server: &Server,
    text: &str,
    mac: Option<[u8; 6]>,
    ip: Option<Ipv4Addr>,
    key: &str,
) -> Result<usize, ApiError> {
    match edit::find_reservation(text, mac, ip) {
        Some(i) => Ok(i),
        None if find(server, mac, ip).is_some() => Err(conflict(format!(
            "the reservation of {key} is written inside a scope block of the config: change it there"
        ))),
        None => Err(ApiError::not_found(format!("no reservation of {key}"))),
    }
}

pub async fn remove(State(state): State<Shared>, Path(key): Path<String>) -> Answer {
    let (mac, ip) = parse_key(&key)?;
    apply(&state, |server, text| {
        let i = index_in_file(server, text, mac, ip, &key)?;
        edit::remove_reservation(text, i).map_err(ApiError::internal)
    })
    .await?;
    Ok(ok(json!({ "removed": key })))
}

#[derive(Deserialize)]
pub struct ChangedReservation {
    ip: Option<String>,
    hostname: Option<String>,
}

/// Changes a reservation's address (within the reserved range) or host name.
pub async fn update(
    State(state): State<Shared>,
    Path(key): Path<String>,
    body: Result<Json<ChangedReservation>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(change) = body.map_err(|e| ApiError::bad_request(format!("send {{\"ip\" and/or \"hostname\"}}: {e}")))?;
    let (mac, ip) = parse_key(&key)?;
    let new_ip = change.ip.as_deref().map(parse_ip).transpose()?;
    if let Some(h) = &change.hostname {
        check_hostname(h)?;
    }
    let mut result = None;
    apply(&state, |server, text| {
        let i = index_in_file(server, text, mac, ip, &key)?;
        let old = find(server, mac, ip).ok_or_else(|| ApiError::not_found(format!("no reservation of {key}")))?;
        let owner =
            old.mac.ok_or_else(|| conflict(format!("the reservation of {key} is by host name: change it in the config")))?;
        let ip = new_ip.unwrap_or(old.ip);
        if ip != old.ip {
            check_address(server, old.scope, ip, owner)?;
        }
        let hostname = change.hostname.clone().or(old.hostname);
        result = Some(json!({ "mac": crate::lease::HwAddr::new(1, &owner).to_string(), "ip": ip.to_string(), "hostname": hostname }));
        let removed = edit::remove_reservation(text, i).map_err(ApiError::internal)?;
        edit::add_reservation(&removed, &entry(owner, ip, hostname.as_deref())).map_err(ApiError::internal)
    })
    .await?;
    Ok(ok(json!({ "reservation": result })))
}

/// Turns the bound lease at an address into a reservation of its MAC (host
/// name kept) at the lowest free address of the reserved range.
pub async fn pin(State(state): State<Shared>, Path(ip): Path<String>) -> Answer {
    let ip = parse_ip(&ip)?;
    let mut result = None;
    apply(&state, |server, text| {
        let lease = server
            .cache()
            .read(ip, |r| {
                (r.state.is_bound() && r.state != LeaseState::Reserved)
                    .then(|| (r.scope, r.hw, r.details.get().hostname.to_vec()))
            })
            .flatten()
            .ok_or_else(|| ApiError::not_found(format!("no dynamic lease at {ip} to pin")))?;
        let (scope, hw, host) = lease;
        let mac: [u8; 6] =
            hw.bytes().try_into().map_err(|_| ApiError::bad_request(format!("{hw} is not an Ethernet MAC")))?;
        if let Some(f) = find(server, Some(mac), None) {
            let scope = &server.scopes()[f.scope].name;
            return Err(conflict(format!("{hw} already has a reservation: {} in {scope:?}", f.ip)));
        }
        let hostname = String::from_utf8(host).ok().filter(|h| check_hostname(h).is_ok());
        // A lease inside the reserved range keeps its address; others move into it.
        let at = match check_address(server, scope as usize, ip, mac) {
            Ok(()) => ip,
            Err(_) => free_reserved(server, scope as usize, mac)?,
        };
        result = Some(json!({ "mac": hw.to_string(), "ip": at.to_string(), "hostname": hostname }));
        edit::add_reservation(text, &entry(mac, at, hostname.as_deref())).map_err(ApiError::internal)
    })
    .await?;
    Ok(ok(json!({ "reservation": result })))
}

#[derive(Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// The boundary of scope `si` and what it may be moved to.
fn boundary(server: &Server, si: usize) -> Value {
    let s = &server.scopes()[si];
    let dynamic = s.pools[0].range;
    let range = AddrRange::new(s.reserved_range.map_or(dynamic.start, |r| r.start), dynamic.end);
    let current = s.reserved_range.map_or(0, |r| r.len());
    let active = u64::from(super::info::active(server, si, None));
    let reservations_in_range = s.reservations.iter().filter(|r| range.contains(r.ip)).count() as u64;
    // The dynamic range must keep room for every active lease of the range
    // but those on reservations (they stay in the reserved range, counted by `min`).
    let mut dynamic_active = 0u64;
    server.cache().scan_from(range.start, |r| {
        if r.ip > range.end {
            return false;
        }
        dynamic_active += u64::from(r.state.is_bound() && s.reservation_at(r.ip).is_none());
        true
    });
    let (min, max) = (reservations_in_range, (range.len() - 1).min(range.len().saturating_sub(dynamic_active)));
    json!({
        "scope": s.name,
        "range": range.to_string(),
        "size": range.len(),
        "max_reservations": current,
        "reserved_range": s.reserved_range.map(|r| r.to_string()),
        "dynamic_range": dynamic.to_string(),
        "reservations": reservations_in_range,
        "active_leases": active,
        "active_in_range": dynamic_active,
        "min": min,
        "max": max,
        "recommended": (range.len() / 5).clamp(min, max.max(min)),
    })
}

pub async fn get_boundary(State(state): State<Shared>, Query(q): Query<ScopeQuery>) -> Answer {
    let server = state.server.read();
    let si = scope_index(&server, q.scope.as_deref())?;
    Ok(ok(boundary(&server, si)))
}

#[derive(Deserialize)]
pub struct NewBoundary {
    scope: Option<String>,
    max_reservations: u64,
}

/// Moves the boundary within its constraints, live.
pub async fn set_boundary(
    State(state): State<Shared>,
    body: Result<Json<NewBoundary>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(new) =
        body.map_err(|e| ApiError::bad_request(format!("send {{\"max_reservations\": N, \"scope\": NAME}}: {e}")))?;
    let mut scope = String::new();
    apply(&state, |server, text| {
        let si = scope_index(server, new.scope.as_deref())?;
        let b = boundary(server, si);
        let (min, max) = (b["min"].as_u64().unwrap_or(0), b["max"].as_u64().unwrap_or(0));
        if !(min..=max).contains(&new.max_reservations) {
            return Err(ApiError::bad_request(format!(
                "max_reservations {} is out of range: {min} (reservations in the range) to {max} (range size less its active leases not on a reservation)",
                new.max_reservations
            )));
        }
        scope = server.scopes()[si].name.clone();
        edit::set_scope_key(text, &scope, "max_reservations", &new.max_reservations.to_string()).map_err(ApiError::internal)
    })
    .await?;
    let server = state.server.read();
    let si = scope_index(&server, Some(&scope))?;
    Ok(ok(boundary(&server, si)))
}

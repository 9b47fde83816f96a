//! Server-wide routes: health, status, statistics, the running config,
//! pool utilisation, anomalies and the Prometheus scrape.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, Answer, ApiError, Shared};
use crate::lease::CountBy;
use crate::metrics as m;
use crate::server::Server;

pub async fn health() -> Answer {
    Ok(ok(json!({ "status": "ok" })))
}

pub async fn status(State(state): State<Shared>) -> Answer {
    let server = state.server.read();
    let store_bytes = state.store.size_on_disk().map_err(ApiError::internal)?;
    Ok(ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "io_backend": state.backend,
        "shards": state.shards,
        "store": { "engine": "sled", "leases": server.cache().len(), "size_bytes": store_bytes },
    })))
}

/// Dynamic leases of scope `scope`, pool `pool` (None: all its pools).
pub(super) fn active(server: &Server, scope: usize, pool: Option<usize>) -> u32 {
    let [s0, s1] = (scope as u16).to_le_bytes();
    match pool {
        Some(p) => {
            let [p0, p1] = (p as u16).to_le_bytes();
            server.cache().active_count(CountBy::Pool, &[s0, s1, p0, p1])
        }
        None => server.cache().active_count(CountBy::Scope, &[s0, s1]),
    }
}

/// Reservations, active leases of devices without one, pool capacity and
/// hosts (both), per scope and in total.
pub async fn statistics(State(state): State<Shared>) -> Answer {
    let server = state.server.read();
    let (mut reservations, mut leases, mut capacity, mut most) = (0usize, 0u64, 0u64, 0u64);
    let scopes: Vec<Value> = server
        .scopes()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let usage = s.usage(None);
            let active = u64::from(active(&server, i, None));
            let max_reservations = s.reserved_range.map_or(0, |r| r.len());
            reservations += s.reservations.len();
            leases += active;
            capacity += usage.size;
            most += max_reservations;
            json!({
                "name": s.name,
                "subnet": s.subnet.to_string(),
                "reservations": s.reservations.len(),
                "max_reservations": max_reservations,
                "active_leases": active,
                "pool_capacity": usage.size,
                "hosts": s.reservations.len() as u64 + active,
            })
        })
        .collect();
    Ok(ok(json!({
        "server_id": server.configured_server_id().map(|ip| ip.to_string()),
        "listen": state.listen,
        "reservations": reservations,
        "max_reservations": most,
        "active_leases": leases,
        "pool_capacity": capacity,
        "hosts": reservations as u64 + leases,
        "scopes": scopes,
    })))
}

#[derive(Deserialize)]
pub struct NewConfig {
    config: String,
}

/// Checks a new config, writes it over the file (temporary file, fsync,
/// rename) and reloads it live; on any failure nothing changes.
pub async fn set_config(
    State(state): State<Shared>,
    body: Result<axum::Json<NewConfig>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let axum::Json(new) =
        body.map_err(|e| ApiError::bad_request(format!("send {{\"config\": \"the HCL text\"}}: {e}")))?;
    let summary = reconfigure(&state, new.config).await?;
    Ok(ok(json!({ "message": summary })))
}

/// Hands a new config text to the serve loop and waits for its answer:
/// a summary, or 422 with why it was refused (nothing changed then).
pub(super) async fn reconfigure(state: &Shared, text: String) -> Result<String, ApiError> {
    let (reply, answer) = std::sync::mpsc::channel();
    state
        .reconfigure
        .send(super::ConfigRequest { text, reply })
        .map_err(|_| ApiError::internal("the server is stopping"))?;
    tokio::task::spawn_blocking(move || answer.recv_timeout(std::time::Duration::from_secs(60)))
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| ApiError::internal("the reload did not finish within 60 s"))?
        .map_err(ApiError::unprocessable)
}

pub async fn config(State(state): State<Shared>) -> Answer {
    Ok(ok(json!({ "path": state.config_path.display().to_string(), "text": *state.config_text.read() })))
}

/// Every pool of every scope: size, addresses taken, dynamic leases.
fn pools(server: &Server) -> Vec<Value> {
    let mut out = vec![];
    for (si, s) in server.scopes().iter().enumerate() {
        for (pi, p) in s.pools.iter().enumerate() {
            let u = s.usage(Some(pi));
            out.push(json!({
                "scope": s.name,
                "pool": p.name,
                "range": format!("{}-{}", p.range.start, p.range.end),
                "size": u.size,
                "taken": u.taken,
                "active_leases": active(server, si, Some(pi)),
                "utilization": u.ratio(),
            }));
        }
    }
    out
}

pub async fn utilization(State(state): State<Shared>) -> Answer {
    Ok(ok(json!({ "pools": pools(&state.server.read()) })))
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

pub async fn anomalies(State(state): State<Shared>, Query(q): Query<Limit>) -> Answer {
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 10000"));
    }
    let list = state.store.anomalies(limit).map_err(ApiError::internal)?;
    Ok(ok(json!({ "anomalies": list })))
}

/// The pool gauges, set from the running server at each scrape (exact, and
/// no work between scrapes); those of a pool gone since leave the output
/// ([`m::GAUGE_IDLE_TIMEOUT`]).
fn set_pool_gauges(server: &Server) {
    for (si, s) in server.scopes().iter().enumerate() {
        for (pi, p) in s.pools.iter().enumerate() {
            let u = s.usage(Some(pi));
            let labels = [("scope", s.name.clone()), ("pool", p.name.clone())];
            metrics::gauge!(m::POOL_ADDRESSES, &labels).set(u.size as f64);
            metrics::gauge!(m::POOL_UTILIZATION, &labels).set(u.ratio());
            metrics::gauge!(m::LEASES_ACTIVE, &labels).set(f64::from(active(server, si, Some(pi))));
        }
    }
}

pub async fn metrics(State(state): State<Shared>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError(StatusCode::SERVICE_UNAVAILABLE, "no metrics recorder in this process".into()).into_response();
    };
    set_pool_gauges(&state.server.read());
    let backlog = state.store.backlog();
    metrics::gauge!(m::STORE_BACKLOG, "kind" => "journal").set(backlog.journal as f64);
    metrics::gauge!(m::STORE_BACKLOG, "kind" => "history").set(backlog.history as f64);
    m::set_scrape_gauges();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

//! The REST API (ARCHITECTURE §7, under `/api/dhcp`) and `/metrics`, served
//! by axum on a thread of its own with a single-threaded tokio runtime: the
//! shards never share a scheduler with HTTP clients.
//!
//! Every answer is JSON: `{"success": true, ...}` or `{"success": false,
//! "error": "..."}` with a fitting status. A bearer token from
//! `api.token_file`, compared in constant time, is needed for reads when it
//! is set and for writes always.

mod auth;
mod diagnostics;
mod info;
mod leases;
mod reservations;

pub use diagnostics::{target as diagnostics_target, DiagnosticsTarget};
pub use leases::{lease_page, LeaseQuery};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use tracing::{error, info};

use crate::server::SharedServer;
use crate::store::{LeaseEvents, ShardWriter, SledStore};

/// What the routes read and change.
pub struct ApiState {
    pub server: SharedServer,
    pub store: Arc<SledStore>,
    /// The process's Prometheus recorder (None: `/metrics` says it is off).
    pub metrics: Option<PrometheusHandle>,
    /// The bearer token (None: reads are open, writes refused).
    pub token: Option<String>,
    /// Receive loop in use and shard count, for `/status`.
    pub backend: &'static str,
    pub shards: usize,
    pub started: Instant,
    /// The running config's file and text, for `GET /config`.
    pub config_path: std::path::PathBuf,
    /// Replaced by the serve loop on reload.
    pub config_text: Arc<parking_lot::RwLock<String>>,
    /// The server's clock (Unix seconds): tests let time pass.
    pub clock: fn() -> u32,
    /// Lease changes the API makes (releases) go to the store through it.
    pub writer: parking_lot::Mutex<ShardWriter>,
    /// Lease changes by kind over the last day, as written.
    pub events: Arc<LeaseEvents>,
    /// Addresses the server listens on for relayed and unicast traffic (the
    /// server address where no `server_id` is configured).
    pub listen: Vec<String>,
    /// Where the Diagnostics panel's client reaches this server (None: not in relay mode).
    pub diagnostics: Option<DiagnosticsTarget>,
    /// One diagnostics run at a time.
    pub diagnostics_lock: Arc<tokio::sync::Mutex<()>>,
    /// One config edit at a time (each reads the text the last one wrote).
    pub edit_lock: tokio::sync::Mutex<()>,
    /// New config texts go to the serve loop, which applies them.
    pub reconfigure: crossbeam::channel::Sender<ConfigRequest>,
    /// Turns true when the API stops: open event streams end then.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// A new config for the serve loop: it checks the text, writes it over the
/// config file atomically and reloads; the answer is a summary or why not
/// (and then the running and the on-disk config are as they were).
pub struct ConfigRequest {
    pub text: String,
    pub reply: std::sync::mpsc::Sender<Result<String, String>>,
}

type Shared = Arc<ApiState>;

/// A failed request: its status and a message for people.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
    fn unprocessable(message: impl Into<String>) -> Self {
        ApiError(StatusCode::UNPROCESSABLE_ENTITY, message.into())
    }
    fn internal(message: impl std::fmt::Display) -> Self {
        error!("api: {message}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "success": false, "error": self.1 }))).into_response()
    }
}

/// `{"success": true}` with the members of `body` (an object).
fn ok(body: Value) -> Json<Value> {
    let mut out = serde_json::Map::from_iter([("success".to_string(), Value::Bool(true))]);
    if let Value::Object(members) = body {
        out.extend(members);
    }
    Json(Value::Object(out))
}

type Answer = Result<Json<Value>, ApiError>;

fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/health", get(info::health))
        .route("/openapi.json", get(openapi))
        .route("/status", get(info::status))
        .route("/statistics", get(info::statistics))
        .route("/config", get(info::config).post(info::set_config))
        .route("/pools/utilization", get(info::utilization))
        .route("/anomalies", get(info::anomalies))
        .route("/leases", get(leases::list))
        .route("/leases/stats", get(leases::stats))
        .route("/leases/events", get(leases::events))
        .route("/leases/export", get(leases::export))
        .route("/leases/history", get(leases::history))
        .route("/leases/mac/{mac}", get(leases::by_mac))
        .route("/leases/{ip}", get(leases::by_ip).delete(leases::release))
        .route("/leases/{ip}/pin", post(reservations::pin))
        .route("/reservations", get(reservations::list).post(reservations::create))
        .route("/reservations/{key}", put(reservations::update).delete(reservations::remove))
        .route("/pool-boundary", get(reservations::get_boundary).post(reservations::set_boundary))
        .route("/diagnostics", post(diagnostics::run));
    Router::new()
        .nest("/api/dhcp", api)
        .route("/", get(|| async { asset("text/html; charset=utf-8", UI_INDEX) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", UI_APP) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", UI_STYLE) }))
        .route("/metrics", get(info::metrics))
        .fallback(|| async { ApiError::not_found("no such route (the API is under /api/dhcp)") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check))
        .with_state(state)
}

/// The web UI: plain HTML, CSS and JS over the API, in the binary.
const UI_INDEX: &str = include_str!("ui/index.html");
const UI_APP: &str = include_str!("ui/app.js");
const UI_STYLE: &str = include_str!("ui/style.css");

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
}

/// The OpenAPI 3 document of these routes (tests/api.rs checks that it matches them).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The running API: stops when dropped.
pub struct Api {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    /// Binds `listen` (errors come back here, before any thread starts)
    /// and serves on a thread of its own.
    pub fn start(listen: SocketAddr, state: ApiState) -> Result<Api, String> {
        let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the API runtime: {e}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let upkeep = state.metrics.clone();
        let state = Arc::new(state);
        let app = router(state.clone());
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Histogram samples wait in the recorder until upkeep folds them in.
                    if let Some(handle) = upkeep {
                        tokio::spawn(async move {
                            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                            loop {
                                every.tick().await;
                                handle.run_upkeep();
                            }
                        });
                    }
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return error!("api: {e}"),
                    };
                    let served = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = served.await {
                        error!("api stopped: {e}");
                    }
                })
            })
            .map_err(|e| e.to_string())?;
        info!(%addr, "API listening");
        Ok(Api { addr, state, stop: Some(stop), thread: Some(thread) })
    }

    /// The bound address (the port chosen when `listen` said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        // Event streams never end by themselves; the graceful stop waits for them.
        self.state.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

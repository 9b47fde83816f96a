//! Bearer-token checks: reads need the token when one is set, writes
//! always do (without a token file, the API is read-only).

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, Shared};

/// Whether `path` is the web UI's page or assets: served to anyone, since
/// the page itself asks for the token.
fn is_ui(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

pub async fn check(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if is_ui(request.uri().path()) && request.method() == Method::GET {
        return next.run(request).await;
    }
    let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let refused = |status, message: &str| ApiError(status, message.into()).into_response();
    match (&state.token, given) {
        (None, _) if write => refused(
            StatusCode::FORBIDDEN,
            "changes need a token: set api.token_file in the config and send Authorization: Bearer TOKEN",
        ),
        (None, _) => next.run(request).await,
        (Some(_), None) => refused(StatusCode::UNAUTHORIZED, "send Authorization: Bearer TOKEN (api.token_file)"),
        (Some(token), Some(given)) if bool::from(token.as_bytes().ct_eq(given.as_bytes())) => next.run(request).await,
        (Some(_), Some(_)) => refused(StatusCode::FORBIDDEN, "wrong token"),
    }
}

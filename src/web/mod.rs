//! The HTTP surface: the router every area contributes to, and the layers around it
//! (request ids, tracing, body limit, timeout, metrics).

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub mod admin;
pub mod api;
pub mod config;
pub mod error;
pub mod keys;
pub mod landing;
pub mod serve;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The full router with its layers.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    let timeout = state.config.server.request_timeout;
    Router::new()
        .route("/", get(landing::landing))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::restore::router())
        .merge(api::router(state.clone()))
        .merge(admin::router(&state))
        .merge(extra)
        // Enforced by the body extractors, so handlers see (and audit) an oversized body.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(refuse_unstorable_uri))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request| {
                        let id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        // The route's template (`/restore/{token}`), never the path itself:
                        // paths and query strings carry one-time tokens.
                        let route = request
                            .extensions()
                            .get::<MatchedPath>()
                            .map(|path| path.as_str().to_owned())
                            .unwrap_or_else(|| redact_path(request.uri().path()));
                        tracing::info_span!("http", method = %request.method(), route = %route, request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
        )
        .with_state(state)
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.db.is_ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database not ready\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.config.server.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes()).into();
        if !matches {
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the bearer token (server.metrics_token)\n",
            )
                .into_response();
        }
    }
    match state.queue.stats().await {
        Ok(stats) => state.metrics.set_queue_stats(&stats),
        Err(error) => tracing::warn!(%error, "cannot read queue depth for /metrics"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// An unrouted path as it may be logged: every segment that could be a token (longer than
/// 16 characters) replaced.
fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.len() > 16 {
                "{redacted}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A path or query that decodes to a NUL byte or to bytes that are not UTF-8 can name
/// nothing reseat stores (PostgreSQL refuses such text): 400 before any handler runs, on
/// every backend alike.
async fn refuse_unstorable_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let path_ok = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8()
        .is_ok_and(|path| !path.contains('\0'));
    let query_ok = uri.query().is_none_or(|query| {
        percent_encoding::percent_decode_str(&query.replace('+', " "))
            .decode_utf8()
            .is_ok_and(|query| !query.contains('\0'))
    });
    if path_ok && query_ok {
        return next.run(request).await;
    }
    let message = "the address contains a NUL byte or text that is not UTF-8";
    if uri.path().starts_with("/api/") {
        error::ApiError::BadRequest(message.into()).into_response()
    } else {
        (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
    }
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let response = next.run(request).await;
    state.metrics.http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

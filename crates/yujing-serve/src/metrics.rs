//! `/metrics`: a router that encodes a Prometheus registry in the text format, for its
//! own listen address (DESIGN §9, §10: no token).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// `GET /metrics` over `registry`.
pub fn metrics_router(registry: Registry) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { encode(&registry) }
        }),
    )
}

fn encode(registry: &Registry) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_string())], buf).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded\n").into_response()
        }
    }
}

//! The web page: `GET /` and its assets. A placeholder until the risk map and alert desk
//! page lands; it only has to be a [`Router`] that [`crate::api::app`] merges.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// The page.
const INDEX_HTML: &str = include_str!("../assets/index.html");

/// `GET /`: the page.
pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(INDEX_HTML) }))
}

//! The web page: `GET /` and its assets. A placeholder until the risk map and alert desk
//! page lands (it will embed `assets/`); it only has to be a [`Router`] that
//! [`crate::api::app`] merges.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// The page.
const INDEX_HTML: &str = "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>渝警 yujing</title></head>\n<body><h1>渝警 yujing</h1><p>The API is described at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p></body></html>\n";

/// `GET /`: the page.
pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(INDEX_HTML) }))
}

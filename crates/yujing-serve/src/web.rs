//! The web page: `GET /` and its assets under `/assets/`, embedded in the binary.
//!
//! The page is plain HTML, CSS and JavaScript modules (no framework, no build step, nothing
//! fetched from elsewhere): a risk map of the 38 区县 drawn from `chongqing.geojson`, the
//! district drill-down, the institution page and the alert desk, all reading the JSON API
//! with the bearer token the user signs in with. The files are in `assets/`; see its
//! README for what each holds and where the map data comes from.
//!
//! Every response carries a strong `ETag` (a hash of the file) and `Cache-Control:
//! no-cache`, so browsers revalidate and get `304 Not Modified` until the binary changes.
//! The page sends a `Content-Security-Policy` that allows only this origin.

use crate::problem::Problem;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// An embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../assets/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page uses; `index.html` is served at `/`, the others at `/assets/{name}`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("map.js", JS),
    asset!("chart.js", JS),
    asset!("desk.js", JS),
    asset!("views.js", JS),
    asset!("i18n.js", JS),
    asset!("chongqing.geojson", "application/geo+json"),
];

/// The ETag of each asset, in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let d = Sha256::digest(a.body);
            let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
        })
        .collect()
});

/// Only this origin; no inline script or style; the API is same-origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `GET /` (the page) and `GET /assets/{name}`.
pub fn router() -> Router {
    Router::new().route("/", get(index)).route("/index.html", get(index)).route("/assets/{name}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name && a.name != "index.html") {
        Some(i) => serve(i, &headers),
        None => Problem::not_found(format!("no asset {name:?}")).into_response(),
    }
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or(""));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { a.body.into_response() };
    let h = response.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    }
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if a.name == "index.html" {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(t) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        router().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        for a in ASSETS {
            let uri = if a.name == "index.html" { "/".to_string() } else { format!("/assets/{}", a.name) };
            let r = get(&uri, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], a.content_type, "{uri}");
            assert!(r.headers().contains_key(header::ETAG), "{uri}");
            assert_eq!(text(r).await.as_bytes(), a.body, "{uri}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_and_a_stale_one_the_file() {
        let etag = get("/assets/app.js", None).await.headers()[header::ETAG].to_str().unwrap().to_string();
        let r = get("/assets/app.js", Some(&etag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(text(r).await.is_empty());
        let r = get("/assets/app.js", Some("\"stale\"")).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_assets_are_404_problems() {
        for uri in ["/assets/nope.js", "/assets/index.html", "/assets/..%2Fsrc%2Fweb.rs"] {
            let r = get(uri, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], crate::problem::PROBLEM_JSON, "{uri}");
        }
    }

    #[tokio::test]
    async fn the_page_has_a_content_security_policy() {
        let r = get("/", None).await;
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }

    /// Every `/assets/…` the page names and every module a script imports is embedded:
    /// a file added to `assets/` but not to [`ASSETS`] would break the page.
    #[test]
    fn every_referenced_asset_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut referenced = Vec::new();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".html") || a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for (prefix, end) in [("/assets/", ['"', '\'', '`']), ("from './", ['\'', '\'', '\''])] {
                for (pos, _) in text.match_indices(prefix) {
                    let rest = &text[pos + prefix.len()..];
                    let name: String = rest.chars().take_while(|c| !end.contains(c)).collect();
                    referenced.push((a.name, name));
                }
            }
        }
        assert!(referenced.iter().any(|(_, n)| n == "app.js"), "{referenced:?}");
        for (from, name) in &referenced {
            assert!(names.contains(&name.as_str()), "{from} refers to {name}, which is not embedded");
        }
    }

    #[test]
    fn the_map_has_the_38_districts_by_code_with_their_names() {
        let a = ASSETS.iter().find(|a| a.name == "chongqing.geojson").unwrap();
        let geo: serde_json::Value = serde_json::from_slice(a.body).unwrap();
        let features = geo["features"].as_array().unwrap();
        let mut codes: Vec<(String, String)> = features
            .iter()
            .map(|f| {
                let p = &f["properties"];
                assert_eq!(f["geometry"]["type"], "MultiPolygon");
                assert!(!f["geometry"]["coordinates"].as_array().unwrap().is_empty());
                (p["code"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string())
            })
            .collect();
        codes.sort();
        let expected: Vec<(String, String)> =
            yujing_model::DISTRICTS.iter().map(|d| (d.code.to_string(), d.name_zh.to_string())).collect();
        assert_eq!(codes, expected);
        assert!(a.body.len() < 150 * 1024, "chongqing.geojson is {} bytes", a.body.len());
    }
}

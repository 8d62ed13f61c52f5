//! The fleet view's page: `GET /` and its script and style sheet, embedded in the binary from
//! `service/web/` (no CDN, no file read at run time: the page works offline and is the build's
//! own). Each with a strong ETag (`If-None-Match` answers 304), `nosniff` and a strict
//! Content-Security-Policy (nothing but this origin: no inline script or style). The page
//! revalidates on every load; the assets are named by their content hash (`?v=`) and cached
//! for good.

use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

/// One embedded file, ready to serve.
struct Asset {
    body: Bytes,
    mime: &'static str,
    etag: HeaderValue,
    cache: &'static str,
}

const SCRIPT: &[u8] = include_bytes!("../../web/app.js");
const STYLE: &[u8] = include_bytes!("../../web/app.css");
const PAGE: &str = include_str!("../../web/index.html");

const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn asset(body: Bytes, mime: &'static str, cache: &'static str) -> Asset {
    let etag = HeaderValue::from_str(&format!("\"{}\"", digest(&[&body])))
        .expect("a hex digest is a header value");
    Asset {
        body,
        mime,
        etag,
        cache,
    }
}

/// The page, whose `{{v}}` (in the assets' addresses) is their content hash.
static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    let version = digest(&[SCRIPT, STYLE]);
    asset(
        Bytes::from(PAGE.replace("{{v}}", &version)),
        "text/html; charset=utf-8",
        "no-cache",
    )
});
static APP_JS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        Bytes::from_static(SCRIPT),
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
});
static APP_CSS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        Bytes::from_static(STYLE),
        "text/css; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
});

/// `GET /`: the fleet view.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /assets/app.js`.
pub async fn script(headers: HeaderMap) -> Response {
    serve(&APP_JS, &headers)
}

/// `GET /assets/app.css`.
pub async fn style(headers: HeaderMap) -> Response {
    serve(&APP_CSS, &headers)
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == "*" || t.trim() == asset.etag)
        });
    let mut response = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(asset.body.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(asset.cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_by_their_content() {
        let page = String::from_utf8(INDEX.body.to_vec()).unwrap();
        let version = digest(&[SCRIPT, STYLE]);
        assert!(!page.contains("{{v}}"));
        assert!(
            page.contains(&format!("/assets/app.js?v={version}")),
            "{page}"
        );
        assert!(page.contains(&format!("/assets/app.css?v={version}")));
    }

    #[test]
    fn a_matching_etag_answers_not_modified() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, APP_JS.etag.clone());
        assert_eq!(serve(&APP_JS, &headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        let response = serve(&APP_JS, &headers);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], APP_JS.mime);
    }
}

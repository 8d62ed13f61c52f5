//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' `utoipa`
//! annotations and the request and response types, completed with what only the running
//! configuration knows (the batch limit).

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use serde_json::Value;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::config::HttpConfig;

/// The collected paths, with the document's title, description and security scheme.
pub fn finish(mut api: OpenApi, http: &HttpConfig) -> Value {
    api.info.title = "fleetscore".to_owned();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.info.description = Some(
        "Real-time ML scoring for airline fleets: predictions from explicit features or from \
         an aircraft's live state, the Open Inference Protocol (v2), fleet state, model \
         administration, health and metrics. Every error has a JSON body with `error` (a \
         message) and `code` (a stable class)."
            .to_owned(),
    );
    api.info.license = None;
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serializes");
    if let Some(Value::Object(rows)) =
        doc.pointer_mut("/components/schemas/RowsRequest/properties/rows")
    {
        rows.insert("maxItems".to_owned(), Value::from(http.max_batch_rows));
    }
    doc
}

/// Serves `doc`, serialized once.
pub fn router<S: Clone + Send + Sync + 'static>(doc: Value) -> Router<S> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(&doc).expect("JSON serializes"));
    Router::new().route(
        "/openapi.json",
        get(move || {
            let bytes = bytes.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], bytes) }
        }),
    )
}

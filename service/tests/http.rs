//! The HTTP API through `tower::ServiceExt::oneshot`: every endpoint and every error class, on
//! copies of the real fixture models (ONNX Runtime and tract) and real-shaped events written
//! into the live state as the streaming path would.

mod common;
mod http_support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fleet_features::{FeatureSet, FeatureSetId, TailState};
use fleetscore::prediction::{PREDICTION_SCHEMA, Prediction};
use http_support::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------- POST /score, explicit rows

#[tokio::test]
async fn rows_by_name_reproduce_the_golden_outputs_of_the_serving_model() {
    let service = Service::new(|_| {});
    let app = service.app();
    for (model, version) in [
        ("engine-rul", "2"),
        ("delay-risk", "1"),
        ("engine-rul-mlp", "1"),
    ] {
        let (rows, want) = golden_rows(model, version);
        let reply = post(&app, "/score", &json!({"model": model, "rows": rows})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_close(&reply.json["predictions"], &want);
        assert_eq!(reply.json["model"], model);
        assert_eq!(
            reply.json["model_version"], version,
            "the greatest version serves"
        );
        let manifest = common::read_json(
            &common::fixtures()
                .join(model)
                .join(version)
                .join("manifest.json"),
        );
        assert_eq!(reply.json["model_sha256"], manifest["sha256"]);
        let set = FeatureSet::by_name(manifest["feature_set"]["name"].as_str().unwrap()).unwrap();
        assert_eq!(reply.json["feature_set"], set.name());
        assert_eq!(reply.json["feature_set_version"], set.version());
        assert_eq!(
            reply.json["output"]["meaning"],
            manifest["output"]["meaning"]
        );
        assert!(reply.json.get("state").is_none(), "rows carry no state");
    }
}

/// With the shipped quantile models beside it, `engine-rul` answers an 80 % interval per row:
/// each bound the bound model's own answer (scored by name), fixed up around the prediction.
#[tokio::test]
async fn remaining_life_rows_get_an_interval_from_the_quantile_models() {
    let service = Service::new(|_| {});
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for name in ["engine-rul-p10", "engine-rul-p90"] {
        let to = service.dir.path().join(name).join("1");
        std::fs::create_dir_all(&to).unwrap();
        for file in ["model.onnx", "golden.json", "manifest.json"] {
            std::fs::copy(shipped.join(name).join("1").join(file), to.join(file)).unwrap();
        }
        common::backdate(&to); // settled: considered at the next scan
    }
    service.rescan();
    let app = service.app();
    let (rows, _) = golden_rows("engine-rul", "2");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": rows}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let bound = |model: &str| {
        let app = app.clone();
        let rows = rows.clone();
        let model = model.to_owned();
        async move {
            let reply = post(&app, "/score", &json!({"model": model, "rows": rows})).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            serde_json::from_value::<Vec<f32>>(reply.json["predictions"].clone()).unwrap()
        }
    };
    let (p10, p90) = (bound("engine-rul-p10").await, bound("engine-rul-p90").await);
    let points: Vec<f32> = serde_json::from_value(reply.json["predictions"].clone()).unwrap();
    let intervals = reply.json["intervals"].as_array().expect("intervals");
    assert_eq!(intervals.len(), points.len());
    for (i, interval) in intervals.iter().enumerate() {
        let (lower, upper) = (
            interval["lower"].as_f64().unwrap() as f32,
            interval["upper"].as_f64().unwrap() as f32,
        );
        assert_eq!(lower, p10[i].min(points[i]), "row {i}");
        assert_eq!(upper, p90[i].max(points[i]), "row {i}");
        assert!(lower <= points[i] && points[i] <= upper);
        assert_eq!(interval["level"].as_f64().unwrap() as f32, 0.8);
        assert_eq!(interval["lower_model"], "engine-rul-p10/1");
    }
    // A model without an interval answers none.
    let (rows, _) = golden_rows("delay-risk", "1");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "delay-risk", "rows": rows}),
    )
    .await;
    assert!(reply.json.get("intervals").is_none());
}

#[tokio::test]
async fn feature_mistakes_are_422s_that_name_the_features() {
    let service = Service::new(|_| {});
    let app = service.app();
    let (rows, _) = golden_rows("engine-rul", "2");
    let mut bad = rows[1].clone();
    let map = bad.as_object_mut().unwrap();
    map.remove("T24_mean");
    map.remove("cycle");
    let value = map.remove("T30_std").unwrap();
    map.insert("T30_stdev".to_owned(), value);

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": [rows[0], bad]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.code(), "feature_mismatch");
    assert_eq!(reply.json["row"], 1);
    assert_eq!(
        reply.json["missing"],
        json!(["T24_mean", "T30_std", "cycle"])
    );
    assert_eq!(reply.json["unknown"], json!(["T30_stdev"]));
    let message = reply.json["error"].as_str().unwrap();
    assert!(
        message.contains("T30_stdev") && message.contains("T24_mean"),
        "{message}"
    );

    let mut wrong_type = rows[0].clone();
    wrong_type["Nc_max"] = json!("9046.2");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": [wrong_type]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    assert_eq!(reply.json["field"], "Nc_max");
    assert_eq!(reply.json["row"], 0);

    let mut huge = rows[0].clone();
    huge["Nc_max"] = json!(1e39);
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": [huge]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_finite")
    );
    assert_eq!(reply.json["field"], "Nc_max");

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": [[1, 2, 3]]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
}

/// Rows are parsed while the body is read when `model` comes first, and kept raw until the
/// model is known when it comes after them: both orders give the same answers and errors.
#[tokio::test]
async fn rows_before_or_after_the_model_name_are_read_alike() {
    let service = Service::new(|c| c.http.max_batch_rows = 3);
    let app = service.app();
    let (rows, want) = golden_rows("engine-rul", "2");
    let row = |i: usize| rows[i].to_string();
    let mut missing = rows[1].clone();
    missing.as_object_mut().unwrap().remove("T24_mean");
    let mut wrong_type = rows[0].clone();
    wrong_type["Nc_max"] = json!("9046.2");
    let mut huge = rows[0].clone();
    huge["Nc_max"] = json!(1e39);
    let cases = [
        (format!("[{},{},{}]", row(0), row(1), row(2)), 200, ""),
        (format!("[{},{}]", row(0), missing), 422, "feature_mismatch"),
        (format!("[{}]", wrong_type), 422, "invalid_request"),
        (format!("[{}]", huge), 422, "not_finite"),
        (
            format!("[{},{}]", row(0), row(0).replace("{", "{\"cycle\": 1,")),
            422,
            "invalid_request",
        ),
        (
            format!("[{0},{0},{0},{0},[1]]", row(0)),
            413,
            "batch_too_large",
        ),
        ("[]".to_owned(), 422, "empty_batch"),
        ("[[1, 2]]".to_owned(), 422, "invalid_request"),
        ("null".to_owned(), 422, "invalid_request"),
        (format!("[{}", row(0)), 400, "malformed_json"),
        (
            format!("[{}]", row(0).replacen(',', ",,", 1)),
            400,
            "malformed_json",
        ),
    ];
    for (rows_json, status, code) in cases {
        let mut replies = Vec::new();
        for body in [
            format!(r#"{{"model": "engine-rul", "rows": {rows_json}}}"#),
            format!(r#"{{"rows": {rows_json}, "model": "engine-rul"}}"#),
        ] {
            let reply = post_raw(&app, body.clone()).await;
            assert_eq!(
                (reply.status.as_u16(), reply.code()),
                (status, code),
                "{}: {}",
                body.chars().take(120).collect::<String>(),
                reply.text
            );
            replies.push(reply);
        }
        let [first, second] = &replies[..] else {
            unreachable!()
        };
        for key in ["row", "field", "missing", "unknown", "limit"] {
            assert_eq!(first.json[key], second.json[key], "{key}: {}", first.text);
        }
        if status == 200 {
            assert_close(&first.json["predictions"], &want[..3]);
            assert_eq!(first.json["predictions"], second.json["predictions"]);
        }
    }

    let reply = post_raw(&app, b"{\"model\": \"engine-\xff\"}".to_vec()).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    assert!(reply.text.contains("UTF-8"), "{}", reply.text);

    let twice = r#"{"model": "engine-rul", "model": "engine-rul", "rows": []}"#;
    let reply = post_raw(&app, twice).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    assert!(reply.text.contains("duplicate field"), "{}", reply.text);
}

/// `POST /score` with `body` as it is (JSON content type).
async fn post_raw(app: &fleetscore::http::App, body: impl Into<Body>) -> Reply {
    let request = Request::post("/score")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    send(app, request).await
}

#[tokio::test]
async fn request_mistakes_get_their_own_status_and_code() {
    let service = Service::new(|c| {
        c.http.max_batch_rows = 4;
        c.http.max_body_bytes = 64 * 1024;
    });
    let app = service.app();
    let (rows, _) = golden_rows("engine-rul", "2");

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rull", "rows": [rows[0]]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );
    let serving: Vec<String> = serde_json::from_value(reply.json["models"].clone()).unwrap();
    assert!(serving.contains(&"engine-rul".to_owned()), "{serving:?}");
    assert!(
        !serving.contains(&"nan-model".to_owned()),
        "rejected models do not serve"
    );

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": vec![rows[0].clone(); 5]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
    );
    assert_eq!(reply.json["limit"], 4);

    let reply = post(&app, "/score", &json!({"model": "engine-rul", "rows": []})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "empty_batch")
    );

    for (body, field) in [
        (json!({"model": "engine-rul"}), "rows"),
        (
            json!({"model": "engine-rul", "rows": [rows[0]], "tail": "N14228"}),
            "rows",
        ),
        (
            json!({"model": "engine-rul", "rows": [rows[0]], "engine": 1}),
            "engine",
        ),
        (json!({"model": "engine-rul", "rowz": [rows[0]]}), "rowz"),
        (json!({"rows": [rows[0]]}), "model"),
        (json!({"model": 7, "rows": [rows[0]]}), ""),
    ] {
        let reply = post(&app, "/score", &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{body}"
        );
        if !field.is_empty() {
            assert_eq!(reply.json["field"], field, "{body}: {}", reply.text);
        }
    }

    let malformed = Request::post("/score")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"model": "engine-rul", "rows": [{"T24_mean": 1.0,}]}"#,
        ))
        .unwrap();
    let reply = send(&app, malformed).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    assert!(
        reply.json["error"].as_str().unwrap().contains("column"),
        "{}",
        reply.text
    );

    let form = Request::post("/score")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("model=engine-rul"))
        .unwrap();
    let reply = send(&app, form).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    let no_content_type = Request::post("/score")
        .body(Body::from(
            serde_json::to_vec(&json!({"model": "engine-rul", "rows": [rows[0]]})).unwrap(),
        ))
        .unwrap();
    assert_eq!(
        send(&app, no_content_type).await.status,
        StatusCode::OK,
        "JSON without a content type is accepted"
    );

    let big = json!({"model": "engine-rul", "rows": [rows[0]], "pad": "x".repeat(70 * 1024)});
    let reply = post(&app, "/score", &big).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    assert_eq!(reply.json["limit"], 64 * 1024);
}

#[tokio::test]
async fn a_non_finite_model_output_is_never_a_prediction() {
    let service = Service::new(|_| {});
    let app = service.app();
    let (rows, _) = golden_rows("engine-rul", "2");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "nan-on-real-rows", "rows": [rows[2]]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "non_finite_output")
    );
    assert_eq!(reply.json["row"], 0);
    assert!(
        !reply.text.contains("NaN") && !reply.text.contains("null,"),
        "{}",
        reply.text
    );
}

// ------------------------------------------------------------ POST /score, live tail state

#[tokio::test]
async fn a_tail_is_scored_from_its_live_state_with_its_freshness() {
    let service = Service::new(|_| {});
    let app = service.app();
    stream_telemetry(&service.ctx, "CMAPSS-7", 1..=30);
    let live = service.ctx.store.get("CMAPSS-7").unwrap();

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let want = in_process_score(&service.ctx, "engine-rul", &live.state);
    assert_eq!(
        f32s(&reply.json["predictions"]),
        [want],
        "bit-identical to the in-process path"
    );
    assert_eq!(reply.json["tail"], "CMAPSS-7");
    let state = &reply.json["state"];
    assert_eq!(state["known"], true);
    assert_eq!(state["events_applied"], 30);
    assert_eq!(state["last_event_time"], "2026-01-02T05:00:00Z");
    assert_eq!(
        state["source"],
        json!({"topic": "fleet.telemetry.v1", "partition": 3, "offset": 129})
    );
    assert_eq!(state["partition"], 3);
    assert!(state["last_applied_at"].is_string());

    // Another model on the same state, and an explicit engine position.
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul-mlp", "tail": "CMAPSS-7", "engine": 1}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let want = in_process_score(&service.ctx, "engine-rul-mlp", &live.state);
    assert_eq!(f32s(&reply.json["predictions"]), [want]);
}

#[tokio::test]
async fn a_hypothetical_event_scores_a_copy_and_never_changes_the_live_state() {
    let service = Service::new(|_| {});
    let app = service.app();
    stream_telemetry(&service.ctx, "CMAPSS-7", 1..=30);
    let before = service.ctx.store.get("CMAPSS-7").unwrap().state;

    // The MLP (tract) is continuous in its inputs: one more cycle must move its prediction.
    let event = telemetry("CMAPSS-7", 31);
    let body = json!({"model": "engine-rul-mlp", "tail": "CMAPSS-7", "event": event});
    let reply = post(&app, "/score", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut copy = before.clone();
    copy.apply(&decode(&event));
    let want = in_process_score(&service.ctx, "engine-rul-mlp", &copy);
    assert_eq!(f32s(&reply.json["predictions"]), [want]);
    assert_ne!(
        want,
        in_process_score(&service.ctx, "engine-rul-mlp", &before),
        "the event matters"
    );
    assert_eq!(
        reply.json["hypothetical"],
        json!({"event_id": "test:CMAPSS-7:c31", "outcome": "applied"})
    );
    assert_eq!(
        reply.json["state"]["events_applied"], 30,
        "freshness is the live state's"
    );
    assert_eq!(
        service.ctx.store.get("CMAPSS-7").unwrap().state,
        before,
        "live state untouched"
    );

    // The same event twice is still hypothetical: applied again to a fresh copy.
    let again = post(&app, "/score", &body).await;
    assert_eq!(again.json["predictions"], reply.json["predictions"]);

    let duplicate = telemetry("CMAPSS-7", 30);
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": duplicate}),
    )
    .await;
    assert_eq!(reply.json["hypothetical"]["outcome"], "duplicate");
    assert_eq!(
        f32s(&reply.json["predictions"]),
        [in_process_score(&service.ctx, "engine-rul", &before)]
    );

    let mut late = telemetry("CMAPSS-7", 12);
    late["event_id"] = json!("resent-12");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": late}),
    )
    .await;
    assert_eq!(reply.json["hypothetical"]["outcome"], "late");
    assert_eq!(
        reply.json["hypothetical"]["late_reason"],
        "cycle_not_after_last"
    );

    // An aircraft this instance has never seen: scored from an empty state plus the event.
    let first = telemetry("N14228", 1);
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "N14228", "event": first}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["state"]["known"], false);
    let mut fresh = TailState::new();
    fresh.apply(&decode(&first));
    assert_eq!(
        f32s(&reply.json["predictions"]),
        [in_process_score(&service.ctx, "engine-rul", &fresh)]
    );
    assert!(
        service.ctx.store.get("N14228").is_none(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn tail_mistakes_get_their_own_status_and_code() {
    let service = Service::new(|_| {});
    let app = service.app();
    stream_telemetry(&service.ctx, "CMAPSS-7", 1..=3);

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "N99999"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_tail")
    );

    let mut event = telemetry("CMAPSS-7", 4);
    event["sensors"]["T30"] = json!(1e9);
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": event}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event")
    );
    assert_eq!(reply.json["reason"], "out_of_range");
    assert_eq!(reply.json["field"], "event.sensors");

    let mut event = telemetry("CMAPSS-7", 4);
    event.as_object_mut().unwrap().remove("cycle");
    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": event}),
    )
    .await;
    assert_eq!(reply.json["reason"], "missing_field", "{}", reply.text);

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": "cycle 4"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event")
    );

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "event": telemetry("CMAPSS-8", 4)}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "tail_mismatch")
    );

    let reply = post(
        &app,
        "/score",
        &json!({"model": "delay-risk", "tail": "CMAPSS-7"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "no_history")
    );

    let reply = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "tail": "CMAPSS-7", "engine": 3}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "no_history"),
        "{}",
        reply.text
    );

    for (body, field) in [
        (json!({"model": "engine-rul", "tail": "cmapss 7"}), "tail"),
        (
            json!({"model": "engine-rul", "tail": "CMAPSS-7", "engine": 9}),
            "engine",
        ),
    ] {
        let reply = post(&app, "/score", &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        );
        assert_eq!(reply.json["field"], field);
    }
}

// ------------------------------------------------------------------ Open Inference Protocol

#[tokio::test]
async fn open_inference_protocol_metadata_and_infer() {
    let service = Service::new(|_| {});
    let app = service.app();
    assert_eq!(
        get(&app, "/v2/health/live").await.json,
        json!({"live": true})
    );
    assert_eq!(
        get(&app, "/v2/health/ready").await.json,
        json!({"ready": true})
    );
    let server = get(&app, "/v2").await;
    assert_eq!(server.json["name"], "fleetscore");

    let meta = get(&app, "/v2/models/engine-rul").await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.json["version"], "2", "the serving version");
    assert_eq!(
        meta.json["versions"],
        json!(["2", "1"]),
        "every valid version"
    );
    assert_eq!(meta.json["platform"], "onnxruntime_onnx");
    assert_eq!(
        meta.json["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 100]}])
    );
    assert_eq!(meta.json["outputs"][0]["name"], "variable");
    let names = FeatureSet::get(FeatureSetId::EngineHealth).names();
    assert_eq!(meta.json["parameters"]["features"], json!(names));
    assert_eq!(
        get(&app, "/v2/models/engine-rul-mlp").await.json["platform"],
        "tract_onnx"
    );
    assert_eq!(
        get(&app, "/v2/models/engine-rul/ready").await.json["ready"],
        true
    );
    let reply = get(&app, "/v2/models/nan-model/ready").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );

    let (flat, want) = golden_flat("engine-rul", "2");
    let rows = want.len();
    let nested: Vec<&[f32]> = flat.chunks(100).collect();
    for data in [json!(flat), json!(nested)] {
        let body = json!({"id": "req-1", "inputs": [{"name": "input", "shape": [rows, 100], "datatype": "FP32", "data": data}],
            "outputs": [{"name": "variable"}]});
        let reply = post(&app, "/v2/models/engine-rul/infer", &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json["model_name"], "engine-rul");
        assert_eq!(reply.json["model_version"], "2");
        assert_eq!(reply.json["id"], "req-1");
        let output = &reply.json["outputs"][0];
        assert_eq!(output["name"], "variable");
        assert_eq!(output["shape"], json!([rows, 1]));
        assert_eq!(output["datatype"], "FP32");
        assert_close(&output["data"], &want);
    }

    let (flat, want) = golden_flat("delay-risk", "1");
    let body = json!({"inputs": [{"name": "input", "shape": [want.len(), 12], "datatype": "FP64", "data": flat}]});
    let reply = post(&app, "/v2/models/delay-risk/infer", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_close(&reply.json["outputs"][0]["data"], &want);
}

/// Any valid version can be asked for by number, alone (no shadow), to compare versions on the
/// same inputs; unknown and rejected versions are told apart.
#[tokio::test]
async fn open_inference_protocol_versions() {
    let service = Service::new(|_| {});
    let app = service.app();
    for version in ["1", "2"] {
        let manifest = common::read_json(
            &common::fixtures()
                .join("engine-rul")
                .join(version)
                .join("manifest.json"),
        );
        let base = format!("/v2/models/engine-rul/versions/{version}");
        let meta = get(&app, &base).await;
        assert_eq!(meta.status, StatusCode::OK, "{}", meta.text);
        assert_eq!(meta.json["version"], version);
        assert_eq!(meta.json["parameters"]["model_sha256"], manifest["sha256"]);
        let ready = get(&app, &format!("{base}/ready")).await;
        assert_eq!(ready.json, json!({"name": "engine-rul", "ready": true}));

        let (flat, want) = golden_flat("engine-rul", version);
        let body = json!({"inputs": [{"name": "input", "shape": [want.len(), 100], "datatype": "FP32", "data": flat}]});
        let reply = post(&app, &format!("{base}/infer"), &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json["model_version"], version);
        assert_close(&reply.json["outputs"][0]["data"], &want);
    }
    let (flat, want) = golden_flat("engine-rul", "1");
    let body = json!({"inputs": [{"name": "input", "shape": [want.len(), 100], "datatype": "FP32", "data": flat}]});
    let unversioned = post(&app, "/v2/models/engine-rul/infer", &body).await;
    assert_eq!(
        unversioned.json["model_version"], "2",
        "unversioned calls use the serving version"
    );

    for (uri, status, code) in [
        ("/v2/models/engine-rul/versions/9", 404, "unknown_version"),
        (
            "/v2/models/engine-rul/versions/9/ready",
            404,
            "unknown_version",
        ),
        ("/v2/models/no-such-model/versions/1", 404, "unknown_model"),
        ("/v2/models/nan-model/versions/1", 409, "version_not_valid"),
        (
            "/v2/models/nan-model/versions/1/ready",
            409,
            "version_not_valid",
        ),
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{uri}: {}",
            reply.text
        );
        if status == 409 {
            assert!(
                reply.json["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{}",
                reply.text
            );
        }
    }
    let reply = post(&app, "/v2/models/nan-model/versions/1/infer", &body).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "version_not_valid")
    );
}

#[tokio::test]
async fn open_inference_protocol_errors() {
    let service = Service::new(|c| c.http.max_batch_rows = 4);
    let app = service.app();
    let (flat, _) = golden_flat("engine-rul", "2");
    let one = &flat[..100];
    let input = |name: &str, shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]});
    for (body, status, code, field) in [
        (
            input("x", json!([1, 100]), "FP32", json!(one)),
            422,
            "invalid_request",
            "inputs.name",
        ),
        (
            input("input", json!([1, 99]), "FP32", json!(one)),
            422,
            "invalid_request",
            "inputs.shape",
        ),
        (
            input("input", json!([2, 100]), "FP32", json!(one)),
            422,
            "invalid_request",
            "inputs.data",
        ),
        (
            input("input", json!([1, 100]), "BYTES", json!(one)),
            422,
            "invalid_request",
            "inputs.datatype",
        ),
        (
            input("input", json!([1, 100]), "FP32", json!(vec!["a"; 100])),
            422,
            "invalid_request",
            "inputs.data",
        ),
        (
            input("input", json!([5, 100]), "FP32", json!(vec![1.0; 500])),
            413,
            "batch_too_large",
            "",
        ),
        (
            input("input", json!([0, 100]), "FP32", json!([])),
            422,
            "empty_batch",
            "",
        ),
        (json!({"inputs": []}), 422, "invalid_request", "inputs"),
        (json!({"input": []}), 422, "invalid_request", "inputs"),
    ] {
        let reply = post(&app, "/v2/models/engine-rul/infer", &body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{body}: {}",
            reply.text
        );
        if !field.is_empty() {
            assert_eq!(reply.json["field"], field, "{}", reply.text);
        }
    }
    let body = json!({"inputs": [{"name": "input", "shape": [1, 100], "datatype": "FP32", "data": one}],
        "outputs": [{"name": "probabilities"}]});
    let reply = post(&app, "/v2/models/engine-rul/infer", &body).await;
    assert_eq!(reply.json["field"], "outputs.name");
    let reply = post(
        &app,
        "/v2/models/nope/infer",
        &input("input", json!([1, 100]), "FP32", json!(one)),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );
    let reply = get(&app, "/v2/models/nope").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );
}

// ----------------------------------------------------------------- fleet state and models

#[tokio::test]
async fn tails_show_state_features_and_latest_predictions() {
    let service = Service::new(|_| {});
    let app = service.app();
    stream_telemetry(&service.ctx, "CMAPSS-7", 1..=25);
    let prediction = Prediction {
        schema: PREDICTION_SCHEMA.into(),
        tail: "CMAPSS-7".to_owned(),
        source_event_id: "test:CMAPSS-7:c25".to_owned(),
        event_time: chrono::DateTime::parse_from_rfc3339("2026-01-02T01:00:00Z")
            .unwrap()
            .into(),
        model: "engine-rul".into(),
        model_version: "2".into(),
        model_sha256: "ab".repeat(32).into(),
        feature_set: "engine-health".into(),
        feature_set_version: FeatureSet::get(FeatureSetId::EngineHealth).version().into(),
        prediction: 87.5,
        interval: None,
        scored_at: chrono::Utc::now(),
    };
    service.ctx.store.with_entry("CMAPSS-7", |e| {
        e.set_latest(prediction.clone());
    });

    let reply = get(&app, "/tails/CMAPSS-7").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["tail"], "CMAPSS-7");
    assert_eq!(reply.json["state"]["events_applied"], 25);
    assert_eq!(reply.json["state"]["source"]["offset"], 124);
    let live = service.ctx.store.get("CMAPSS-7").unwrap().state;
    let mut want = Vec::new();
    FeatureSet::get(FeatureSetId::EngineHealth)
        .compute(&live, &mut want)
        .unwrap();
    let features = reply.json["features"].as_array().unwrap();
    let health = features
        .iter()
        .find(|f| f["feature_set"] == "engine-health")
        .unwrap();
    assert_eq!(health["values"]["cycle"], json!(25.0));
    assert_eq!(
        health["values"]["T24_mean"].as_f64().unwrap() as f32,
        want[0]
    );
    let delay = features
        .iter()
        .find(|f| f["feature_set"] == "delay-risk")
        .unwrap();
    assert!(
        delay["values"].is_null() && delay["unavailable"].is_string(),
        "{delay}"
    );
    assert_eq!(reply.json["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(reply.json["predictions"][0]["prediction"], json!(87.5));
    assert_eq!(
        reply.json["predictions"][0]["source_event_id"],
        "test:CMAPSS-7:c25"
    );

    let reply = get(&app, "/tails/N00000").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_tail")
    );
}

#[tokio::test]
async fn models_lists_every_version_with_its_state_and_reason() {
    let service = Service::new(|_| {});
    let app = service.app();
    let reply = get(&app, "/models").await;
    assert_eq!(reply.status, StatusCode::OK);
    let models = reply.json["models"].as_array().unwrap();
    let find = |name: &str, version: &str| {
        models
            .iter()
            .find(|m| m["name"] == name && m["version"] == version)
            .unwrap_or_else(|| panic!("{name}/{version} in {models:?}"))
    };
    assert_eq!(find("engine-rul", "2")["state"], "serving");
    assert_eq!(find("engine-rul", "1")["state"], "standby");
    assert_eq!(find("engine-rul-mlp", "1")["backend"], "tract");
    let rejected = find("nan-model", "1");
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["reason"], "non_finite_output");
    assert_eq!(
        reply.json["routes"]["engine-health"],
        json!([{"model": "engine-rul", "serving": "2"}])
    );
    assert_eq!(
        reply.json["routes"]["delay-risk"],
        json!([{"model": "delay-risk", "serving": "1"}])
    );
    assert_eq!(reply.json["pins"], json!({}));
}

// --------------------------------------------------------------------------------- admin

#[tokio::test]
async fn admin_calls_need_the_token_and_are_off_without_one() {
    let off = Service::new(|_| {});
    let reply = request(
        &off.app(),
        Method::POST,
        "/admin/models/engine-rul/rollback",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "admin_disabled")
    );

    let on = Service::new(|c| c.http.admin_token = Some(TOKEN.to_owned()));
    let app = on.app();
    for token in [None, Some("wrong"), Some("s3cret-admin-tokenX"), Some("")] {
        let reply = request(
            &app,
            Method::POST,
            "/admin/models/engine-rul/rollback",
            None,
            token,
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token:?}"
        );
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(
        on.ctx
            .registry
            .serving_by_name("engine-rul")
            .unwrap()
            .serving
            .version(),
        "2"
    );
}

async fn scored_version(app: &fleetscore::http::App) -> String {
    let (rows, _) = golden_rows("engine-rul", "2");
    let reply = post(
        app,
        "/score",
        &json!({"model": "engine-rul", "rows": [rows[0]]}),
    )
    .await;
    reply.json["model_version"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn pin_rollback_promote_and_unpin_change_what_scores_at_once() {
    let service = Service::new(|c| c.http.admin_token = Some(TOKEN.to_owned()));
    let app = service.app();
    let admin = |method: Method, uri: &'static str, body: Option<Value>| {
        let app = app.clone();
        async move { request(&app, method, uri, body.as_ref(), Some(TOKEN)).await }
    };
    assert_eq!(scored_version(&app).await, "2");

    let reply = admin(Method::POST, "/admin/models/engine-rul/rollback", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        (
            reply.json["serving"].as_str(),
            reply.json["pinned"].as_str()
        ),
        (Some("1"), Some("1"))
    );
    assert_eq!(scored_version(&app).await, "1");
    let reply = admin(Method::POST, "/admin/models/engine-rul/rollback", None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "conflict"),
        "nothing older than 1"
    );

    let reply = admin(
        Method::PUT,
        "/admin/models/engine-rul/pin",
        Some(json!({"version": "2"})),
    )
    .await;
    assert_eq!(reply.json["serving"], "2");
    assert_eq!(scored_version(&app).await, "2");

    for (body, status, code) in [
        (
            json!({"version": "7"}),
            StatusCode::NOT_FOUND,
            "unknown_version",
        ),
        (
            json!({"versions": "2"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ] {
        let reply = admin(Method::PUT, "/admin/models/engine-rul/pin", Some(body)).await;
        assert_eq!((reply.status, reply.code()), (status, code));
    }
    let reply = admin(
        Method::PUT,
        "/admin/models/nan-model/pin",
        Some(json!({"version": "1"})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "version_not_valid")
    );
    assert_eq!(reply.json["reason"], "non_finite_output");
    let reply = admin(
        Method::PUT,
        "/admin/models/nope/pin",
        Some(json!({"version": "1"})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );

    // A shadow version appears: promote it without naming it.
    let reply = admin(Method::POST, "/admin/models/engine-rul/promote", None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "conflict"),
        "no shadow yet"
    );
    let dir = common::publish(service.dir.path(), "engine-rul", "1", "engine-rul", "3");
    common::edit_manifest(&dir, |m| m["stage"] = json!("shadow"));
    service.rescan();
    let reply = admin(Method::DELETE, "/admin/models/engine-rul/pin", None).await;
    assert_eq!(
        (
            reply.json["serving"].as_str(),
            reply.json["shadow"].as_str()
        ),
        (Some("2"), Some("3"))
    );
    assert!(reply.json["pinned"].is_null());
    let reply = admin(Method::POST, "/admin/models/engine-rul/promote", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["serving"], "3");
    assert_eq!(scored_version(&app).await, "3");
    let reply = admin(
        Method::POST,
        "/admin/models/engine-rul/promote",
        Some(json!({"version": "1"})),
    )
    .await;
    assert_eq!(reply.json["serving"], "1");
    let listed = get(&app, "/models").await;
    assert_eq!(listed.json["pins"], json!({"engine-rul": "1"}));

    let reply = admin(Method::DELETE, "/admin/models/engine-rul/pin", None).await;
    assert_eq!(
        reply.json["serving"], "2",
        "back to the greatest serving-stage version"
    );
    assert_eq!(scored_version(&app).await, "2");
}

// ------------------------------------------------------------------- health and metrics

#[tokio::test]
async fn readiness_needs_a_model_for_every_feature_set_and_when_streaming_partitions() {
    let service = Service::with_models(&[("engine-rul", "2")], true, |_| {});
    let app = service.app();
    assert_eq!(get(&app, "/healthz").await.json, json!({"status": "ok"}));
    for uri in ["/readyz", "/v2/health/ready"] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.json["ready"], false);
        assert!(
            reply.json["reason"]
                .as_str()
                .unwrap()
                .contains("delay-risk"),
            "{}",
            reply.text
        );
    }
    common::publish(service.dir.path(), "delay-risk", "1", "delay-risk", "1");
    service.rescan();
    let reply = get(&app, "/readyz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply.json["reason"].as_str().unwrap().contains("partition"),
        "{}",
        reply.text
    );
    service.ctx.readiness.set_partitions_ready(true);
    assert_eq!(get(&app, "/readyz").await.json, json!({"ready": true}));
    assert_eq!(get(&app, "/v2/health/ready").await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_batches_and_show_model_versions() {
    let service = Service::new(|_| {});
    let app = service.app();
    let (rows, _) = golden_rows("engine-rul", "2");
    post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": rows}),
    )
    .await;
    post(&app, "/score", &json!({"model": "nope", "rows": rows})).await;
    let reply = get(&app, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.text;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Counters are process-wide (other tests run in this process too): at least ours.
    assert!(
        value(r#"fleetscore_http_requests_total{method="POST",route="/score",status="200"}"#)
            >= 1.0
    );
    assert!(
        value(r#"fleetscore_http_requests_total{method="POST",route="/score",status="404"}"#)
            >= 1.0
    );
    assert!(
        value(
            r#"fleetscore_http_request_duration_seconds_bucket{method="POST",route="/score",le="+Inf"}"#
        ) >= 2.0
    );
    assert!(value(r#"fleetscore_http_score_rows_bucket{model="engine-rul",le="8"}"#) >= 1.0);
    assert!(
        text.contains(
            r#"fleetscore_model_info{model="engine-rul",version="2",state="serving",backend="ort""#
        ),
        "{text}"
    );
    assert!(text.contains(r#"fleetscore_model_info{model="nan-model",version="1",state="rejected",backend="",sha256="",reason="non_finite_output"} 1"#), "{text}");
}

// -------------------------------------------------------------- routing, OpenAPI, limits

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let service = Service::new(|_| {});
    let app = service.app();
    let reply = get(&app, "/scores").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let reply = get(&app, "/score").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(reply.headers["allow"], "POST");
    assert_eq!(
        reply.json["error"], "method not allowed here; allowed: POST",
        "the body lists the allowed methods"
    );
    let reply = request(&app, Method::DELETE, "/models", None, None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let allowed = reply.json["error"].as_str().unwrap();
    assert!(allowed.contains("GET"), "{allowed}");
    assert!(!allowed.contains('?'), "{allowed}");
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let service = Service::new(|c| c.http.max_batch_rows = 77);
    let app = service.app();
    let reply = get(&app, "/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/score", "post"),
        ("/v2", "get"),
        ("/v2/health/live", "get"),
        ("/v2/health/ready", "get"),
        ("/v2/models/{name}", "get"),
        ("/v2/models/{name}/ready", "get"),
        ("/v2/models/{name}/infer", "post"),
        ("/tails/{tail}", "get"),
        ("/tails/{tail}/history", "get"),
        ("/fleet", "get"),
        ("/models", "get"),
        ("/models/{name}/drift", "get"),
        ("/admin/models/{name}/pin", "put"),
        ("/admin/models/{name}/pin", "delete"),
        ("/admin/models/{name}/promote", "post"),
        ("/admin/models/{name}/rollback", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["RowsRequest"]["properties"]["rows"]["maxItems"],
        77
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(
        doc["components"]["schemas"]["ErrorBody"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("code"))
    );
}

/// A request whose body arrives only when the test sends it, and which says when the handler
/// starts reading it (by then the request holds its concurrency permit).
struct Held {
    body: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reading: tokio::sync::oneshot::Receiver<()>,
    request: Request<Body>,
}

struct SignalOnRead {
    inner: tokio_stream::wrappers::ReceiverStream<Result<Vec<u8>, std::io::Error>>,
    reading: Option<tokio::sync::oneshot::Sender<()>>,
}

impl tokio_stream::Stream for SignalOnRead {
    type Item = Result<Vec<u8>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(reading) = self.reading.take() {
            let _ = reading.send(());
        }
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

fn held_request() -> Held {
    let (body, rx) = tokio::sync::mpsc::channel(1);
    let (signal, reading) = tokio::sync::oneshot::channel();
    let stream = SignalOnRead {
        inner: tokio_stream::wrappers::ReceiverStream::new(rx),
        reading: Some(signal),
    };
    let request = Request::post("/score")
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    Held {
        body,
        reading,
        request,
    }
}

#[tokio::test]
async fn over_the_concurrency_limit_requests_are_shed_and_probes_still_answer() {
    let service = Service::new(|c| c.http.concurrency_limit = 1);
    let app = service.app();
    let (rows, want) = golden_rows("engine-rul", "2");
    let held = held_request();
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, held.request).await }
    });
    tokio::time::timeout(Duration::from_secs(10), held.reading)
        .await
        .expect("the handler reads the held body")
        .unwrap();

    let shed = post(
        &app,
        "/score",
        &json!({"model": "engine-rul", "rows": [rows[0]]}),
    )
    .await;
    assert_eq!(
        shed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        shed.text
    );
    assert_eq!(shed.code(), "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
    assert_eq!(shed.json["limit"], 1);
    assert_eq!(
        get(&app, "/healthz").await.status,
        StatusCode::OK,
        "probes are never shed"
    );
    assert_eq!(get(&app, "/readyz").await.status, StatusCode::OK);

    let body = serde_json::to_vec(&json!({"model": "engine-rul", "rows": [rows[0]]})).unwrap();
    held.body.send(Ok(body)).await.unwrap();
    drop(held.body);
    let reply = first.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_close(&reply.json["predictions"], &want[..1]);
    // The permit is released when the scoring thread finishes the job, which may be a moment
    // after the reply went out: wait for it, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let after = post(
            &app,
            "/score",
            &json!({"model": "engine-rul", "rows": [rows[0]]}),
        )
        .await;
        if after.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            after.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            after.text
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the permit never came back"
        );
        tokio::task::yield_now().await;
    }
}

/// A client that does not deliver its body in time is told so (408), on API and admin routes
/// alike; the 503 `timeout` is for a service too slow to answer (see `http::limits`' tests).
#[tokio::test]
async fn a_stalled_upload_gets_a_408_request_timeout_not_a_503() {
    let service = Service::new(|c| {
        c.http.request_timeout_ms = 200;
        c.http.admin_token = Some(TOKEN.to_owned());
    });
    let app = service.app();
    let held = held_request();
    let started = Instant::now();
    let reply = send(&app, held.request).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["limit"], 200);
    assert_eq!(reply.headers["connection"], "close");
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(held.body);

    // Admin calls have no request timeout, but their bodies have the same deadline.
    let mut held = held_request();
    *held.request.method_mut() = Method::PUT;
    *held.request.uri_mut() = "/admin/models/engine-rul/pin".parse().unwrap();
    held.request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let reply = send(&app, held.request).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        "{}",
        reply.text
    );
    drop(held.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_batched_together_each_get_their_own_rows_values() {
    let service = Service::new(|_| {});
    let app = service.app();
    let (rul_rows, rul_want) = golden_rows("engine-rul", "2");
    let (mlp_rows, mlp_want) = golden_rows("engine-rul-mlp", "1");
    let mut tasks = Vec::new();
    for i in 0..96 {
        let app = app.clone();
        // Different models, and batches of 1 to 3 rows, interleaved.
        let (model, rows, want) = if i % 3 == 0 {
            ("engine-rul-mlp", &mlp_rows, &mlp_want)
        } else {
            ("engine-rul", &rul_rows, &rul_want)
        };
        let take = 1 + i % 3;
        let start = i % (rows.len() - take);
        let body = json!({"model": model, "rows": rows[start..start + take]});
        let want = want[start..start + take].to_vec();
        tasks.push(tokio::spawn(async move {
            let reply = post(&app, "/score", &body).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            assert_eq!(reply.json["model"], model);
            assert_close(&reply.json["predictions"], &want);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn tails_of_a_restoring_partition_answer_503_restoring_and_others_are_served() {
    let service = Service::new(|_| {});
    let app = service.app();
    stream_telemetry(&service.ctx, "CMAPSS-7", 1..=25); // partition 3
    stream_telemetry(&service.ctx, "CMAPSS-8", 1..=25);
    service
        .ctx
        .store
        .with_entry("CMAPSS-8", |e| e.partition = Some(4));

    service.ctx.store.set_restoring(&[3], true);
    for reply in [
        get(&app, "/tails/CMAPSS-7").await,
        post(
            &app,
            "/score",
            &json!({"model": "engine-rul", "tail": "CMAPSS-7"}),
        )
        .await,
        // A tail not held may belong to the restoring partition.
        get(&app, "/tails/N00000").await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "restoring"),
            "{}",
            reply.text
        );
        assert_eq!(reply.headers["retry-after"], "1");
    }
    let other = get(&app, "/tails/CMAPSS-8").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);

    service.ctx.store.set_restoring(&[3], false);
    assert_eq!(get(&app, "/tails/CMAPSS-7").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/tails/N00000").await.code(),
        "unknown_tail",
        "restored: an unknown tail is unknown again"
    );
}

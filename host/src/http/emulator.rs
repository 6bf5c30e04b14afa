//! Routes on the emulator as a whole: listing, state, start/stop/terminate,
//! pulses, the generated signal, graph and OpenAPI (injections: `inject`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitstream_sdk::{Value, ValueMap};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};

use super::blocks::blocking;
use super::error::{ApiError, ApiResult};
use super::request::{query_pairs, read_json_body};
use super::{docs, svg, AppState, MAX_PULSES_PER_REQUEST};
use crate::engine::Emulator;

pub(super) async fn index(State(emulator): State<AppState>) -> Json<JsonValue> {
    let emulator2 = emulator.clone();
    let blocks = tokio::task::spawn_blocking(move || docs::block_listing(&emulator2))
        .await
        .unwrap_or_default();
    Json(json!({
        "id": emulator.id(),
        "bitstream": {"id": emulator.config().id, "version": emulator.config().version},
        "current_state": emulator.run_state().as_str(),
        "pulses": emulator.pulse_count(),
        "signal": emulator.signal(),
        "first": emulator.config().first,
        "blocks": blocks,
        "endpoints": docs::ENDPOINTS.iter().map(|(m, p, what)| json!({"method": m, "path": p, "summary": what})).collect::<Vec<_>>(),
    }))
}

pub(super) async fn emulator_state(State(emulator): State<AppState>) -> Json<JsonValue> {
    Json(json!({ "current_state": emulator.run_state().as_str() }))
}

pub(super) fn accepted(emulator: &Emulator) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "current_state": emulator.run_state().as_str() })),
    )
        .into_response()
}

pub(super) async fn start(State(emulator): State<AppState>) -> ApiResult<Response> {
    emulator
        .start()
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    Ok(accepted(&emulator))
}

pub(super) async fn stop(State(emulator): State<AppState>) -> ApiResult<Response> {
    emulator
        .stop()
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    Ok(accepted(&emulator))
}

pub(super) async fn terminate(State(emulator): State<AppState>) -> Response {
    tracing::info!("terminating on request");
    // Answer first; the server stops once the response is on its way.
    let handle = emulator.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.terminate();
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "current_state": "TERMINATING" })),
    )
        .into_response()
}

pub(super) async fn pulse(
    State(emulator): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<JsonValue>> {
    let pairs = query_pairs(query.as_deref());
    let mut count = 1u64;
    for (key, value) in &pairs {
        match key.as_str() {
            "count" => {
                count = value.parse::<u64>().ok().filter(|c| (1..=MAX_PULSES_PER_REQUEST).contains(c)).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("query parameter \"count\" must be an integer from 1 to {MAX_PULSES_PER_REQUEST}, found \"{value}\""),
                    )
                })?
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter \"{other}\"; POST /pulse takes only \"count\""),
                ))
            }
        }
    }
    // Dropped when the client goes away before the answer (hyper drops
    // this handler): the batch is then cancelled after the pulse in flight.
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let engine = emulator.clone();
    let task = tokio::task::spawn_blocking(move || engine.run_pulses_cancellable(count, cancel));
    let run = task.await.expect("run_pulses does not panic")?;
    let seconds = run.elapsed.as_secs_f64();
    Ok(Json(json!({
        "pulses": run.pulses,
        "cancelled": run.cancelled,
        "elapsed_ms": seconds * 1e3,
        "pulses_per_second": if seconds > 0.0 { run.pulses as f64 / seconds } else { 0.0 },
        "total_pulses": emulator.pulse_count(),
    })))
}

pub(super) async fn get_signal(State(emulator): State<AppState>) -> Json<ValueMap> {
    Json(emulator.signal())
}

pub(super) async fn put_signal(
    State(emulator): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ValueMap>> {
    let body = read_json_body(&headers, body).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PUT /signal needs a JSON object body, e.g. {\"packet_rate\": 0}",
        )
    })?;
    let Value::Map(values) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the signal must be a JSON object, found {}",
                body.kind_name()
            ),
        ));
    };
    emulator
        .set_signal(values)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(emulator.signal()))
}

#[derive(Deserialize)]
pub(super) struct FormatQuery {
    pub(super) format: Option<String>,
}

pub(super) async fn graph(
    State(emulator): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<FormatQuery>,
) -> ApiResult<Response> {
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(docs::graph_json(&emulator)).into_response()),
        Some("dot") => Ok(text("text/vnd.graphviz", docs::graph_dot(&emulator))),
        Some("svg") => {
            let engine = emulator.clone();
            let svg = blocking(&emulator, move || graph_svg(&engine))
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the signal chain's blocks did not answer in time; try ?format=dot",
                    )
                })?
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok(text("image/svg+xml", svg))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format \"{other}\" is not one of json, dot, svg"),
        )),
    }
}

/// The signal chain as SVG, each block's state and status marked and its
/// node tagged `data-block`, `data-state`, `data-status` (blocking).
fn graph_svg(emulator: &Emulator) -> Result<String, svg::SvgError> {
    let marks: Vec<_> = (0..emulator.blocks().len())
        .map(|i| docs::block_mark(emulator, i))
        .collect();
    let dot = docs::graph_dot_marked(emulator, Some(&marks));
    // The first node declared is the signal generator.
    let mut tags = vec![String::new()];
    tags.extend(
        emulator
            .blocks()
            .iter()
            .zip(&marks)
            .map(|(block, (state, status))| {
                format!(
                    "data-block=\"{}\" data-state=\"{}\" data-status=\"{}\"",
                    svg::attr_escape(&block.id),
                    svg::attr_escape(state),
                    status.as_str()
                )
            }),
    );
    svg::render("the signal chain", &dot, &tags)
}

pub(super) async fn openapi(State(emulator): State<AppState>) -> Json<JsonValue> {
    Json(docs::openapi(&emulator))
}

pub(super) fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

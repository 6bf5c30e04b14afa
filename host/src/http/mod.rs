//! The HTTP API, as the original engine's clients use it, plus what a user
//! needs to find their way (`GET /`, `/graph`, `/<block>/diagram`,
//! `/openapi.json`).
//!
//! Every error is JSON `{"error": "...", ...}` with the right status; a
//! trailing slash is accepted on every path. Plugin calls run on tokio's
//! blocking pool with a timeout, so a route that never returns answers 504
//! and marks its block hung without stalling the server.

mod docs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{ManualEvent, ParamKind, ParamLocation, RouteDesc, RouteRequest, Severity};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bitstream_sdk::{Value, ValueMap};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::engine::block_buffer::BlockBuffer;
use crate::engine::{CallError, Emulator};
use bitstream_sdk::buffer::device::BufferError;

/// The largest request body accepted, in bytes; larger ones get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The largest `count` of one `POST /pulse`.
pub const MAX_PULSES_PER_REQUEST: u64 = 100_000_000;

type AppState = Arc<Emulator>;

/// A JSON error response.
struct ApiError {
    status: StatusCode,
    body: JsonValue,
    allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
            allow: None,
        }
    }

    fn with(mut self, key: &str, value: JsonValue) -> Self {
        self.body[key] = value;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<CallError> for ApiError {
    fn from(err: CallError) -> Self {
        let status = match &err {
            CallError::Plugin(e) => {
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            CallError::Hung { .. } | CallError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Terminated => StatusCode::CONFLICT,
        };
        ApiError::new(status, err.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router of one emulator, without the trailing-slash normalization
/// (see [`serve`]).
pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/state", get(emulator_state))
        .route("/start", post(start))
        .route("/stop", post(stop))
        .route("/terminate", post(terminate))
        .route("/pulse", post(pulse))
        .route("/signal", get(get_signal).put(put_signal))
        .route("/inject", post(inject))
        .route("/graph", get(graph))
        .route("/openapi.json", get(openapi))
        .route("/{block}/state", get(block_state))
        .route("/{block}/diagram", get(block_diagram))
        .route("/{block}/buffer", get(block_buffer))
        .route(
            "/{block}/buffer/{param}",
            get(get_buffer_param).put(put_buffer_param),
        )
        .route("/{block}/{route}", any(block_route))
        .route("/{block}/{route}/{param}", any(block_route_with_param))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(emulator)
}

/// Serves `emulator` on `listener` until it is terminated (`POST
/// /terminate` or [`Emulator::terminate`]).
pub async fn serve(
    emulator: Arc<Emulator>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(emulator.clone()));
    let shutdown = {
        let emulator = emulator.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || emulator.wait_terminated()).await;
        }
    };
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn not_found(State(emulator): State<AppState>, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such path: {}", uri.path()),
    )
    .with("blocks", json!(block_ids(&emulator)))
    .with(
        "endpoints",
        json!(docs::ENDPOINTS
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect::<Vec<_>>()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn block_ids(emulator: &Emulator) -> Vec<&str> {
    emulator.blocks().iter().map(|b| b.id.as_str()).collect()
}

fn find_block(emulator: &Emulator, id: &str) -> ApiResult<usize> {
    emulator.block_index(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no block \"{id}\" in this bitstream"),
        )
        .with("blocks", json!(block_ids(emulator)))
    })
}

/// Runs blocking engine work off the async threads, with the handler
/// timeout.
async fn blocking<T: Send + 'static>(
    emulator: &Emulator,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::time::error::Elapsed> {
    let limit = emulator.options().handler_timeout + Duration::from_millis(500);
    let task = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(limit, task).await {
        Ok(joined) => {
            Ok(joined.expect("engine calls never panic: plugin panics are caught in the plugin"))
        }
        Err(elapsed) => Err(elapsed),
    }
}

async fn index(State(emulator): State<AppState>) -> Json<JsonValue> {
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

async fn emulator_state(State(emulator): State<AppState>) -> Json<JsonValue> {
    Json(json!({ "current_state": emulator.run_state().as_str() }))
}

fn accepted(emulator: &Emulator) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "current_state": emulator.run_state().as_str() })),
    )
        .into_response()
}

async fn start(State(emulator): State<AppState>) -> ApiResult<Response> {
    emulator
        .start()
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    Ok(accepted(&emulator))
}

async fn stop(State(emulator): State<AppState>) -> ApiResult<Response> {
    emulator
        .stop()
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    Ok(accepted(&emulator))
}

async fn terminate(State(emulator): State<AppState>) -> Response {
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

async fn pulse(
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
    let engine = emulator.clone();
    let task = tokio::task::spawn_blocking(move || engine.run_pulses(count));
    let run = task.await.expect("run_pulses does not panic")?;
    let seconds = run.elapsed.as_secs_f64();
    Ok(Json(json!({
        "pulses": run.pulses,
        "elapsed_ms": seconds * 1e3,
        "pulses_per_second": if seconds > 0.0 { run.pulses as f64 / seconds } else { 0.0 },
        "total_pulses": emulator.pulse_count(),
    })))
}

async fn get_signal(State(emulator): State<AppState>) -> Json<ValueMap> {
    Json(emulator.signal())
}

async fn put_signal(
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
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(emulator.signal()))
}

#[derive(Deserialize)]
struct InjectRequest {
    injector_event_groups: Vec<InjectGroup>,
}

#[derive(Deserialize)]
struct InjectGroup {
    bitstream_emulator_id: String,
    ip_block_emulator_id: String,
    events: Vec<InjectEvent>,
}

#[derive(Deserialize)]
struct InjectEvent {
    severity: String,
    value: JsonValue,
    #[serde(default)]
    offset: f64,
}

async fn inject(
    State(emulator): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&headers, body).await?;
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    let request: InjectRequest = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "POST /inject: invalid body{place}: {}",
                describe_json_error(e.inner())
            ),
        )
    })?;
    // Check everything before scheduling anything.
    let mut scheduled = Vec::new();
    for (g, group) in request.injector_event_groups.iter().enumerate() {
        if group.bitstream_emulator_id != emulator.id() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "injector_event_groups[{g}]: bitstream_emulator_id \"{}\" is not this emulator (\"{}\")",
                    group.bitstream_emulator_id,
                    emulator.id()
                ),
            ));
        }
        let block = find_block(&emulator, &group.ip_block_emulator_id)
            .map_err(|e| e.with("group", json!(g)))?;
        for (e, event) in group.events.iter().enumerate() {
            let place = format!("injector_event_groups[{g}].events[{e}]");
            let severity = Severity::parse(&event.severity).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{place}: severity \"{}\" is not GENERAL, WARNING or FATAL_ERROR",
                        event.severity
                    ),
                )
            })?;
            // Too large for a Duration (or negative, NaN): refused here,
            // before anything is scheduled, instead of panicking.
            let delay = Duration::try_from_secs_f64(event.offset / 1e3)
                .ok()
                .filter(|_| event.offset >= 0.0)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{place}: offset must be a number of milliseconds >= 0, found {}",
                            event.offset
                        ),
                    )
                })?;
            let event = ManualEvent::injection(severity, Value::from(event.value.clone()));
            scheduled.push((block, event, delay));
        }
    }
    let count = scheduled.len();
    for (block, event, delay) in scheduled {
        emulator.inject(block, event, delay)?;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "scheduled": count }))).into_response())
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

async fn graph(
    State(emulator): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<FormatQuery>,
) -> ApiResult<Response> {
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(docs::graph_json(&emulator)).into_response()),
        Some("dot") => Ok(text("text/vnd.graphviz", docs::graph_dot(&emulator))),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format \"{other}\" is not one of json, dot"),
        )),
    }
}

async fn openapi(State(emulator): State<AppState>) -> Json<JsonValue> {
    Json(docs::openapi(&emulator))
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn block_state(
    State(emulator): State<AppState>,
    Path(block): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    let index = find_block(&emulator, &block)?;
    let engine = emulator.clone();
    let state = blocking(&emulator, move || engine.block_state(index))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("block \"{block}\" did not answer"),
            )
        })??;
    Ok(Json(json!({ "current_state": state })))
}

async fn block_diagram(
    State(emulator): State<AppState>,
    Path(block): Path<String>,
    axum::extract::Query(query): axum::extract::Query<FormatQuery>,
) -> ApiResult<Response> {
    let index = find_block(&emulator, &block)?;
    let machine = emulator.blocks()[index].machine();
    match query.format.as_deref() {
        None | Some("dot") => Ok(text("text/vnd.graphviz", machine.to_dot(&block))),
        Some("mermaid") => Ok(text("text/plain; charset=utf-8", machine.to_mermaid())),
        Some("json") => Ok(Json(
            json!({"dot": machine.to_dot(&block), "mermaid": machine.to_mermaid()}),
        )
        .into_response()),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format \"{other}\" is not one of dot, mermaid, json"),
        )),
    }
}

async fn block_route(
    State(emulator): State<AppState>,
    method: Method,
    Path((block, route)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    dispatch(emulator, method, block, route, None, query, headers, body).await
}

async fn block_route_with_param(
    State(emulator): State<AppState>,
    method: Method,
    Path((block, route, param)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    dispatch(
        emulator,
        method,
        block,
        route,
        Some(param),
        query,
        headers,
        body,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    emulator: AppState,
    method: Method,
    block: String,
    route: String,
    path_value: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let index = find_block(&emulator, &block)?;
    let routes = &emulator.blocks()[index].plugin.routes;
    let Some(route_index) = routes.iter().position(|r| r.name.as_str() == route) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("block \"{block}\" has no route \"{route}\""),
        )
        .with("routes", json!(docs::route_list(routes))));
    };
    let desc = &routes[route_index];
    if desc.method.as_str() != method.as_str() {
        let mut err = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "route \"{route}\" of block \"{block}\" takes {}, not {method}",
                desc.method
            ),
        );
        err.allow = Some(desc.method.to_string());
        return Err(err);
    }
    let request = build_request(desc, path_value, query.as_deref(), &headers, body).await?;

    let engine = emulator.clone();
    let result = blocking(&emulator, move || {
        engine.call_route(index, route_index as u32, &request)
    })
    .await;
    let response = match result {
        Ok(response) => response?,
        Err(_) => {
            let reason = format!(
                "route \"{route}\" did not return within {} s",
                emulator.options().handler_timeout.as_secs_f64()
            );
            emulator.mark_hung(index, reason.clone());
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("block \"{block}\": {reason}; the block is marked hung"),
            ));
        }
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(match response.body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    })
}

/// Checks and converts the URL, query and body against the route's
/// declared parameters.
async fn build_request(
    desc: &RouteDesc,
    path_value: Option<String>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<RouteRequest> {
    let route = desc.name.as_str();
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);

    let path_param = desc
        .params
        .iter()
        .find(|p| p.location == ParamLocation::Path);
    let path = match (path_param, path_value) {
        (None, Some(value)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("route \"{route}\" takes no path parameter, but got \"{value}\""),
            ))
        }
        (Some(param), Some(value)) => {
            parse_param(param.kind, &value)
                .map_err(|e| bad(format!("path parameter \"{}\": {e}", param.name)))?;
            Some(String::from(value))
        }
        (_, None) => None,
    };

    let pairs = query_pairs(query);
    let mut typed = ValueMap::new();
    for param in desc
        .params
        .iter()
        .filter(|p| p.location == ParamLocation::Query)
    {
        let name = param.name.as_str();
        let given = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let value = match (given, param.default.as_ref()) {
            (Some(text), _) => parse_param(param.kind, text).map_err(|e| {
                bad(format!(
                    "query parameter \"{name}\" of route \"{route}\": {e}"
                ))
            })?,
            (None, Some(default)) => default.clone(),
            (None, None) if param.required => {
                return Err(bad(format!(
                    "route \"{route}\" needs query parameter \"{name}\""
                )))
            }
            (None, None) => continue,
        };
        typed.insert(name, value);
    }

    let body_param = desc
        .params
        .iter()
        .find(|p| p.location == ParamLocation::Body);
    let body = match body_param {
        Some(param) => {
            let body = read_json_body(headers, body).await?;
            if body.is_none() && param.required {
                return Err(bad(format!("route \"{route}\" needs a JSON body")));
            }
            body
        }
        None => {
            // The original ignores bodies sent to routes that take none
            // (clients POST `{}` everywhere); still refuse huge ones.
            read_body(headers, body).await?;
            None
        }
    };
    Ok(RouteRequest {
        path,
        query: typed,
        body,
    })
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Parses a path or query value as `kind`.
fn parse_param(kind: ParamKind, text: &str) -> Result<Value, String> {
    match kind {
        ParamKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("expected a boolean (true/false), found \"{text}\"")),
        },
        ParamKind::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("expected an integer, found \"{text}\"")),
        ParamKind::Float => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("expected a number, found \"{text}\"")),
        },
        ParamKind::String => Ok(Value::from(text)),
        ParamKind::Json => {
            serde_json::from_str::<Value>(text).map_err(|e| format!("expected JSON: {e}"))
        }
    }
}

/// Reads the whole body, refusing more than [`BODY_LIMIT`] bytes with 413.
async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {BODY_LIMIT} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT) {
        drain(body).await;
        return Err(too_large());
    }
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            ));
        };
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > BODY_LIMIT {
                drain(body).await;
                return Err(too_large());
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(bytes))
}

/// Reads and discards what is left of a refused body (up to a few times the
/// limit), so that the client, still sending, receives the 413 instead of a
/// connection reset (closing a socket with unread data resets it).
async fn drain(mut body: Body) {
    const DRAIN_LIMIT: usize = 16 * BODY_LIMIT;
    let mut seen = 0;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, Bytes::len);
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// Reads an optional JSON body: `None` when empty.
async fn read_json_body(headers: &HeaderMap, body: Body) -> ApiResult<Option<Value>> {
    read_json_body_as::<Value>(headers, body).await
}

async fn read_json_body_as<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Option<T>> {
    let bytes = read_body(headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<T>(&bytes).map(Some).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON body: {}", describe_json_error(&e)),
        )
    })
}

fn describe_json_error(err: &serde_json::Error) -> String {
    format!("{err}")
}

// ---------------------------------------------------------------------------
// Device buffers

impl From<BufferError> for ApiError {
    fn from(err: BufferError) -> Self {
        let status = match &err {
            BufferError::UnknownParam { .. } => StatusCode::NOT_FOUND,
            BufferError::NotReadable { .. }
            | BufferError::NotWriteable { .. }
            | BufferError::BadValue { .. } => StatusCode::BAD_REQUEST,
            BufferError::Invalid { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let param = match &err {
            BufferError::UnknownParam { param, .. }
            | BufferError::NotReadable { param, .. }
            | BufferError::NotWriteable { param, .. }
            | BufferError::BadValue { param, .. } => Some(param.clone()),
            _ => None,
        };
        let error = ApiError::new(status, err.to_string());
        match param {
            Some(param) => error.with("param", json!(param)),
            None => error,
        }
    }
}

/// Which copy of a parameter a buffer route uses.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum BufferBlockQuery {
    /// The update block (`get`/`set`): the block's current values.
    #[default]
    Update,
    /// The write block (`write`): values requested of the device.
    Write,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BufferQuery {
    #[serde(default)]
    block: BufferBlockQuery,
}

/// Runs `work` on block `id`'s buffer off the async threads (the buffer's
/// lock may be held by another process for a moment).
async fn with_buffer<T: Send + 'static>(
    emulator: &AppState,
    id: &str,
    work: impl FnOnce(&BlockBuffer) -> Result<T, BufferError> + Send + 'static,
) -> ApiResult<T> {
    let index = find_block(emulator, id)?;
    let block = &emulator.blocks()[index];
    if block.buffer.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "block \"{id}\" has no device buffer: its plugin (type \"{}\") ships no catalog; \
                 put a {} beside its library",
                block.plugin.ip_block_type,
                crate::catalog::CATALOG_FILE
            ),
        ));
    }
    let engine = emulator.clone();
    let id = id.to_owned();
    let label = id.clone();
    blocking(emulator, move || {
        let buffer = engine.blocks()[index]
            .buffer
            .as_ref()
            .expect("checked above: the block has a buffer");
        work(buffer)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the buffer of block \"{label}\" stayed locked; another process holds it"),
        )
    })?
    .map_err(|e| ApiError::from(e).with("block", json!(id)))
}

/// `GET /<block>/buffer`: every parameter of the block's device buffer.
async fn block_buffer(
    State(emulator): State<AppState>,
    Path(block): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    let id = block.clone();
    let body = with_buffer(&emulator, &block, move |b| {
        let buffer = b.buffer();
        let _tx = buffer.transaction()?;
        Ok(json!({
            "block": id,
            "type": buffer.buffer_type().name(),
            "shared_memory": b.shm_name().map(|n| format!("/dev/shm/{n}")),
            "valid": true,
            "params": buffer.to_json()?,
            "written": buffer.written_to_json()?,
        }))
    })
    .await?;
    Ok(Json(body))
}

/// `GET /<block>/buffer/<param>[?block=write]`: one parameter.
async fn get_buffer_param(
    State(emulator): State<AppState>,
    Path((block, param)): Path<(String, String)>,
    query: Result<axum::extract::Query<BufferQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JsonValue>> {
    let which = buffer_query(query)?;
    let body = with_buffer(&emulator, &block, move |b| {
        let value = match which {
            BufferBlockQuery::Update => b.buffer().get(&param)?,
            BufferBlockQuery::Write => b.buffer().get_written(&param)?,
        };
        Ok(json!({"param": param, "value": value.to_json()}))
    })
    .await?;
    Ok(Json(body))
}

/// `PUT /<block>/buffer/<param>[?block=write]`: sets one parameter from
/// the JSON body (the value, or `{"value": ...}`), validated and clamped
/// like `set` (or `write`); answers the value stored and any clamp warning.
async fn put_buffer_param(
    State(emulator): State<AppState>,
    Path((block, param)): Path<(String, String)>,
    query: Result<axum::extract::Query<BufferQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<JsonValue>> {
    let which = buffer_query(query)?;
    let value = match read_json_body_as::<JsonValue>(&headers, body).await? {
        Some(JsonValue::Object(mut o)) if o.len() == 1 && o.contains_key("value") => {
            o.remove("value").unwrap_or(JsonValue::Null)
        }
        Some(v) => v,
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                "PUT /{block}/buffer/{param} needs a JSON body: the value, or {{\"value\": ...}}"
            ),
            )
            .with("param", json!(param)))
        }
    };
    let body = with_buffer(&emulator, &block, move |b| {
        let buffer = b.buffer();
        let _tx = buffer.transaction()?;
        let (warning, stored) = match which {
            BufferBlockQuery::Update => (buffer.set_json(&param, &value)?, buffer.get(&param)?),
            BufferBlockQuery::Write => (
                buffer.write_json(&param, &value)?,
                buffer.get_written(&param)?,
            ),
        };
        Ok(json!({
            "param": param,
            "value": stored.to_json(),
            "warning": warning.map(|w| w.to_string()),
        }))
    })
    .await?;
    Ok(Json(body))
}

fn buffer_query(
    query: Result<axum::extract::Query<BufferQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<BufferBlockQuery> {
    query.map(|q| q.0.block).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad query: {e}; the only parameter is block=update|write"),
        )
    })
}

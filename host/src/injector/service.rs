//! The injector's HTTP service: `POST /inject`, `GET /`, `GET
//! /openapi.json`, served with the emulators' connection rules.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value as JsonValue};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::deliver::{answer, deliver, overall_status, split, Remote};
use super::targets::Targets;
use crate::http::{
    method_not_allowed, off_workers, read_inject_request, serve_router, ApiError, ReadInjection,
    ServeOptions,
};

/// The default time one remote emulator may take to answer.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of remote calls in flight at once.
pub const DEFAULT_MAX_FORWARDS: usize = 32;

/// How the injector serves and forwards.
#[derive(Debug, Clone)]
pub struct InjectorOptions {
    /// Connections, timeouts and shutdown, as for an emulator.
    pub serve: ServeOptions,
    /// How long one remote emulator may take to answer its groups (waiting
    /// for a free slot among [`InjectorOptions::max_forwards`] included);
    /// later, its groups are reported 504.
    pub forward_timeout: Duration,
    /// Remote calls in flight at once, across all requests; further calls
    /// wait for a free slot.
    pub max_forwards: usize,
}

impl Default for InjectorOptions {
    fn default() -> Self {
        InjectorOptions {
            serve: ServeOptions::default(),
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            max_forwards: DEFAULT_MAX_FORWARDS,
        }
    }
}

/// Why the injector could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InjectorError {
    /// The HTTP client for remote emulators could not be built.
    #[error("cannot build the HTTP client for remote emulators: {0}")]
    Client(#[from] reqwest::Error),
}

struct Injector {
    targets: Targets,
    remote: Remote,
}

type InjectorState = Arc<Injector>;

/// The endpoints, for `GET /` and the 404 answer.
const ENDPOINTS: [(&str, &str, &str); 3] = [
    (
        "POST",
        "/inject",
        "Hand injector_event_groups to their emulators; one answer per group",
    ),
    ("GET", "/", "The known emulators"),
    ("GET", "/openapi.json", "OpenAPI document"),
];

/// The injector's router over `targets` (without the trailing-slash
/// normalization and body deadline, which [`serve`] adds).
pub fn router(targets: Targets, options: &InjectorOptions) -> Result<Router, InjectorError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(options.forward_timeout)
        .build()?;
    let injector = Injector {
        targets,
        remote: Remote {
            client,
            permits: Semaphore::new(options.max_forwards.max(1)),
            timeout: options.forward_timeout,
        },
    };
    Ok(Router::new()
        .route("/", get(index))
        .route("/inject", post(inject))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(injector)))
}

/// Serves the injector over `targets` on `listener` until `shutdown`
/// completes (then returns within about `options.serve.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    targets: Targets,
    options: InjectorOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), InjectorServeError> {
    let routes = router(targets, &options)?;
    serve_router(routes, listener, options.serve, shutdown).await?;
    Ok(())
}

/// Why [`serve`] ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum InjectorServeError {
    /// Setting up failed.
    #[error(transparent)]
    Setup(#[from] InjectorError),
    /// Serving failed.
    #[error("serving the injector: {0}")]
    Io(#[from] std::io::Error),
}

async fn index(State(injector): State<InjectorState>) -> Json<JsonValue> {
    Json(json!({
        "service": "injector",
        "emulators": injector
            .targets
            .iter()
            .map(|(id, target)| json!({"id": id, "target": target.describe()}))
            .collect::<Vec<_>>(),
        "endpoints": ENDPOINTS
            .iter()
            .map(|(m, p, what)| json!({"method": m, "path": p, "summary": what}))
            .collect::<Vec<_>>(),
    }))
}

async fn inject(State(injector): State<InjectorState>, headers: HeaderMap, body: Body) -> Response {
    let ReadInjection { request, bytes } = match read_inject_request(&headers, body).await {
        Ok(read) => read,
        Err(err) => return err.into_response(),
    };
    let state = injector.clone();
    let (batches, mut outcomes) = off_workers(bytes, move || split(request, &state.targets)).await;
    // On a task of its own: once a request is checked, every emulator is
    // handed its groups even if the client goes away meanwhile (a dropped
    // handler would otherwise stop some of them midway).
    let delivering = injector.clone();
    let delivery = tokio::spawn(async move {
        deliver(batches, &mut outcomes, &delivering.remote).await;
        outcomes
    });
    let outcomes = match delivery.await {
        Ok(outcomes) => outcomes,
        Err(err) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("handing the groups on failed: {err}; see the injector's log"),
            )
            .into_response()
        }
    };
    let body = answer(&outcomes);
    if let Some(error) = body["error"].as_str() {
        // One line per request, however many groups failed.
        tracing::warn!("POST /inject: {error}");
    }
    (overall_status(&outcomes), Json(body)).into_response()
}

async fn not_found(State(injector): State<InjectorState>, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such path on the injector: {}; emulators' own routes are served by each emulator",
            uri.path()
        ),
    )
    .with(
        "emulators",
        json!(injector.targets.ids().collect::<Vec<_>>()),
    )
    .with(
        "endpoints",
        json!(ENDPOINTS
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect::<Vec<_>>()),
    )
}

async fn openapi(State(injector): State<InjectorState>) -> Json<JsonValue> {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let report = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}}});
    let ids: Vec<&str> = injector.targets.ids().collect();
    Json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bitstream emulator injector",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Hands injector_event_groups to the emulators they name; one answer per group. \
                            202 when every group was scheduled; otherwise the failed groups' shared status, \
                            else 502 when an emulator failed, else 400; the body reports every group.",
        },
        "paths": {
            "/": {"get": {"summary": "The known emulators", "responses": {"200": {"description": "OK"}}}},
            "/inject": {"post": {
                "summary": "Hand injector_event_groups to their emulators",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Injection"}}}},
                "responses": {
                    "202": report("Every group scheduled"),
                    "400": report("A malformed body (an Error, nothing handed on), or groups refused for different reasons"),
                    "404": report("Groups for unknown emulators or blocks (the others were handed on)"),
                    "408": error("Body too slow"),
                    "413": error("Body over 1 MiB"),
                    "429": report("An emulator's injection queue is full"),
                    "502": report("An emulator could not be reached or failed"),
                    "504": report("An emulator did not answer in time"),
                },
            }},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Report": {"type": "object", "required": ["groups"], "properties": {
                "groups": {"type": "array", "items": {"type": "object", "properties": {
                    "group": {"type": "integer"},
                    "bitstream_emulator_id": {"type": "string"},
                    "ip_block_emulator_id": {"type": "string"},
                    "events": {"type": "integer"},
                    "scheduled": {"type": "integer"},
                    "status": {"type": "integer"},
                    "delivered": {"type": "boolean"},
                    "target": {"type": ["string", "null"]},
                    "error": {"type": "string"}}}},
                "scheduled": {"type": "integer"},
                "delivered_groups": {"type": "integer"},
                "failed_groups": {"type": "integer"},
                "error": {"type": "string"}}},
            "Injection": {"type": "object", "required": ["injector_event_groups"], "properties": {"injector_event_groups": {"type": "array", "items": {
                "type": "object", "required": ["bitstream_emulator_id", "ip_block_emulator_id", "events"], "properties": {
                    "bitstream_emulator_id": {"type": "string", "description": format!("one of the known emulators: {}", ids.join(", "))},
                    "ip_block_emulator_id": {"type": "string"},
                    "events": {"type": "array", "items": {"type": "object", "required": ["severity", "value"], "properties": {
                        "severity": {"enum": ["GENERAL", "WARNING", "FATAL_ERROR"]},
                        "value": {"type": "object"},
                        "offset": {"type": "number", "minimum": 0, "maximum": crate::engine::MAX_INJECTION_DELAY.as_millis() as u64, "description": "milliseconds after the request (at most 24 h)"}}}}}}}}},
        }},
    }))
}

//! Hot-swap over HTTP: `GET /plugins`, `POST /plugins/<type>/reload` and
//! `POST /plugins/<type>/rollback`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};

use super::error::{ApiError, ApiResult};
use super::request::read_json_body_explained;
use super::AppState;
use crate::engine::{Emulator, ReloadOptions, SwapError};

/// The optional body of a reload or rollback.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SwapBody {
    /// The library to load instead of the type's file (reload only).
    path: Option<PathBuf>,
    /// Start blocks whose state the new machine lacks in its initial state.
    #[serde(default)]
    reset: bool,
}

pub(super) async fn list(State(emulator): State<AppState>) -> Json<JsonValue> {
    Json(json!({
        "plugins": emulator.plugin_status(),
        "stuck_threads": emulator.stuck_threads(),
    }))
}

async fn body(what: &str, headers: &HeaderMap, body: Body) -> ApiResult<SwapBody> {
    let body = read_json_body_explained(headers, body, |e| {
        format!(
            "{what}: the body must be {{\"path\": \"/path/to/lib.so\", \"reset\": false}} \
             (both optional): {e}"
        )
    })
    .await?;
    Ok(body.unwrap_or_default())
}

pub(super) async fn reload(
    State(emulator): State<AppState>,
    Path(ip_block_type): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> ApiResult<Json<JsonValue>> {
    let what = format!("POST /plugins/{ip_block_type}/reload");
    let request = body(&what, &headers, raw).await?;
    let engine = emulator.clone();
    let ty = ip_block_type.clone();
    let result = tokio::task::spawn_blocking(move || {
        engine.reload(
            &ty,
            ReloadOptions {
                library: request.path,
                reset: request.reset,
                skip_unchanged: false,
            },
        )
    })
    .await
    .expect("a reload never panics: plugin panics are caught in the plugin");
    answer(&emulator, &ip_block_type, result)
}

pub(super) async fn rollback(
    State(emulator): State<AppState>,
    Path(ip_block_type): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> ApiResult<Json<JsonValue>> {
    let what = format!("POST /plugins/{ip_block_type}/rollback");
    let request = body(&what, &headers, raw).await?;
    if request.path.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}: a rollback takes no \"path\": it goes back to the version before the last swap"),
        ));
    }
    let engine = emulator.clone();
    let ty = ip_block_type.clone();
    let result = tokio::task::spawn_blocking(move || engine.rollback(&ty, request.reset))
        .await
        .expect("a rollback never panics: plugin panics are caught in the plugin");
    answer(&emulator, &ip_block_type, result)
}

fn answer(
    emulator: &Emulator,
    ip_block_type: &str,
    result: Result<crate::engine::SwapReport, SwapError>,
) -> ApiResult<Json<JsonValue>> {
    let serving = emulator
        .plugin_status()
        .into_iter()
        .find(|p| p.ip_block_type == ip_block_type);
    match result {
        Ok(report) => Ok(Json(json!({ "swapped": report, "serving": serving }))),
        Err(err) => {
            let status = match &err {
                SwapError::UnknownType { .. } => StatusCode::NOT_FOUND,
                SwapError::Read { .. } => StatusCode::BAD_REQUEST,
                SwapError::Incomplete { .. } | SwapError::Check { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                SwapError::Buffer { .. }
                | SwapError::Hung { .. }
                | SwapError::TooManyLibraries { .. }
                | SwapError::StateMissing { .. }
                | SwapError::Restore { .. }
                | SwapError::NoPrevious { .. }
                | SwapError::Unchanged { .. }
                | SwapError::Terminated => StatusCode::CONFLICT,
                SwapError::Busy { .. }
                | SwapError::DriverTimeout { .. }
                | SwapError::StepTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            Err(ApiError::new(status, err.to_string()).with("serving", json!(serving)))
        }
    }
}

//! Routes on a block's device buffer: `GET /<block>/buffer`,
//! `GET|PUT /<block>/buffer/<param>`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bitstream_buffer::device::BufferError;
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};

use super::blocks::{blocking, find_block};
use super::error::{ApiError, ApiResult};
use super::request::read_json_body_as;
use super::AppState;
use crate::engine::block_buffer::BlockBuffer;

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
pub(super) enum BufferBlockQuery {
    /// The update block (`get`/`set`): the block's current values.
    #[default]
    Update,
    /// The write block (`write`): values requested of the device.
    Write,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BufferQuery {
    #[serde(default)]
    block: BufferBlockQuery,
}

/// Runs `work` on block `id`'s buffer off the async threads (the buffer's
/// lock may be held by another process for a moment). A buffer that a
/// swap replaced meanwhile (found invalid) is followed: `work` runs again
/// on the block's new buffer, so no request fails across a swap.
pub(super) async fn with_buffer<T: Send + 'static>(
    emulator: &AppState,
    id: &str,
    work: impl Fn(&BlockBuffer) -> Result<T, BufferError> + Send + 'static,
) -> ApiResult<T> {
    let index = find_block(emulator, id)?;
    let block = &emulator.blocks()[index];
    let Some(buffer) = block.buffer() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "block \"{id}\" has no device buffer: its plugin (type \"{}\") ships no catalog; \
                 put a {} beside its library",
                block.plugin().ip_block_type,
                crate::catalog::CATALOG_FILE
            ),
        ));
    };
    let id = id.to_owned();
    let label = id.clone();
    let engine = emulator.clone();
    blocking(emulator, move || {
        let mut buffer = buffer;
        loop {
            match work(&buffer) {
                Err(err @ BufferError::Invalid { .. }) => match engine.blocks()[index].buffer() {
                    Some(now) if !std::sync::Arc::ptr_eq(&now, &buffer) => buffer = now,
                    _ => return Err(err),
                },
                other => return other,
            }
        }
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
pub(super) async fn block_buffer(
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
pub(super) async fn get_buffer_param(
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
pub(super) async fn put_buffer_param(
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

pub(super) fn buffer_query(
    query: Result<axum::extract::Query<BufferQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<BufferBlockQuery> {
    query.map(|q| q.0.block).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad query: {e}; the only parameter is block=update|write"),
        )
    })
}

//! Reading a request: bodies within the size limit, JSON, query strings and
//! typed route parameters.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use bitstream_sdk::Value;
use http_body_util::BodyExt;

use super::deadline::timed_out;
use super::error::{ApiError, ApiResult};
use super::BODY_LIMIT;
use crate::model::RouteRequest;
use crate::plugin::Plugin;
use crate::route::{self, Route};

/// Reads the body within [`BODY_LIMIT`] and builds the request of route
/// `route_index` of `plugin` with [`route::build_request`] (the
/// transport-independent rules: typed parameters, JSON body, schema
/// check). A body over [`PARSE_INLINE_UP_TO`] bytes is parsed and checked
/// on the blocking pool (see [`off_workers`]): a 1 MiB body takes the
/// async workers no time, so `GET /state` keeps answering meanwhile.
pub(super) async fn build_request(
    plugin: &Arc<Plugin>,
    route_index: usize,
    path_value: Option<String>,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<RouteRequest> {
    let bytes = read_body(headers, body).await?;
    let plugin = plugin.clone();
    let built = off_workers(bytes.len(), move || {
        let route: &Route = &plugin.routes[route_index];
        route::build_request(route, path_value.as_deref(), query.as_deref(), &bytes)
    })
    .await;
    built.map_err(|rejection| {
        let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, rejection.message)
    })
}

pub(super) use crate::route::query_pairs;

/// Reads the whole body, refusing more than [`BODY_LIMIT`] bytes with 413.
pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
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
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                return Err(match timed_out(&err) {
                    Some(late) => ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("{late}; send the body with its head"),
                    ),
                    None => ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    ),
                })
            }
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
pub(super) async fn drain(mut body: Body) {
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
pub(super) async fn read_json_body(headers: &HeaderMap, body: Body) -> ApiResult<Option<Value>> {
    read_json_body_as::<Value>(headers, body).await
}

pub(super) async fn read_json_body_as<T: serde::de::DeserializeOwned + Send + 'static>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Option<T>> {
    read_json_body_explained(headers, body, |e| {
        format!("malformed JSON body: {}", describe_json_error(e))
    })
    .await
}

/// [`read_json_body_as`] with the 400's message made by `explain` from the
/// parse error (to say what the route expects).
pub(super) async fn read_json_body_explained<T: serde::de::DeserializeOwned + Send + 'static>(
    headers: &HeaderMap,
    body: Body,
    explain: impl FnOnce(&serde_json::Error) -> String,
) -> ApiResult<Option<T>> {
    let bytes = read_body(headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_body(bytes, |bytes| serde_json::from_slice::<T>(bytes))
        .await
        .map(Some)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, explain(&e)))
}

/// Bodies up to this size are parsed on the async worker that read them;
/// larger ones on the blocking pool.
const PARSE_INLINE_UP_TO: usize = 16 * 1024;

/// Runs `parse` on `bytes` where it holds up no other request: a body of
/// more than [`PARSE_INLINE_UP_TO`] bytes is parsed (and its parsed value
/// later dropped by its owner) on tokio's blocking pool, never on the async
/// workers that serve every connection.
pub(super) async fn parse_body<T: Send + 'static>(
    bytes: Bytes,
    parse: impl FnOnce(&[u8]) -> T + Send + 'static,
) -> T {
    off_workers(bytes.len(), move || parse(&bytes)).await
}

/// Runs `work` on a body of `size` bytes: inline when small, else on the
/// blocking pool (see [`parse_body`]).
pub(crate) async fn off_workers<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if size <= PARSE_INLINE_UP_TO {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

pub(super) fn describe_json_error(err: &serde_json::Error) -> String {
    format!("{err}")
}

// ---------------------------------------------------------------------------
// Device buffers

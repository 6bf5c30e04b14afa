//! The JSON error every route answers with: `{"error": "...", ...}` and the
//! right status.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value as JsonValue};

use super::blocks::block_ids;
use super::{docs, AppState};
use crate::engine::{CallError, InjectError};

/// A JSON error response: `{"error": "...", ...}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: JsonValue,
    pub(super) allow: Option<String>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
            allow: None,
        }
    }

    /// Adds `key` to the JSON body.
    pub(crate) fn with(mut self, key: &str, value: JsonValue) -> Self {
        self.body[key] = value;
        self
    }

    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body (`error` and any other fields).
    pub(crate) fn body(&self) -> &JsonValue {
        &self.body
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
            CallError::NoSuchBlock { .. } | CallError::RouteGone { .. } => StatusCode::NOT_FOUND,
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<InjectError> for ApiError {
    fn from(err: InjectError) -> Self {
        let status = match err {
            InjectError::TooFarAhead { .. } => StatusCode::BAD_REQUEST,
            InjectError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            InjectError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            InjectError::Call(call) => return ApiError::from(call),
        };
        ApiError::new(status, format!("POST /inject: {err}"))
    }
}

/// A handler's result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn not_found(State(emulator): State<AppState>, uri: axum::http::Uri) -> ApiError {
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

/// The fallback for a known path with another method: 405.
pub(crate) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

//! `POST /inject`: the original's injector format (`injector_event_groups`),
//! read and checked whole before anything is scheduled.
//!
//! Shared by each emulator's own route (which takes groups for itself only)
//! and by the standalone injector ([`crate::injector`]), which reads and
//! checks a body with [`read_inject_request`] exactly as an emulator does,
//! then hands each emulator its groups: an in-process one through
//! [`schedule`], a remote one as the body of its own `POST /inject`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitstream_sdk::Value;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as JsonValue};

use super::blocks::find_block;
use super::error::{ApiError, ApiResult};
use super::request::{describe_json_error, off_workers, parse_body, read_body};
use super::AppState;
use crate::engine::{Emulator, Injection, MAX_INJECTION_DELAY};
use crate::model::{ManualEvent, Severity};

/// A `POST /inject` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct InjectRequest {
    /// The groups, in request order.
    pub(crate) injector_event_groups: Vec<InjectGroup>,
}

/// Events for one block of one emulator.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct InjectGroup {
    /// The emulator the group is for.
    pub(crate) bitstream_emulator_id: String,
    /// The block, in that emulator.
    pub(crate) ip_block_emulator_id: String,
    /// The events, each delivered `offset` ms after the request.
    pub(crate) events: Vec<InjectEvent>,
}

/// One injected event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct InjectEvent {
    severity: String,
    value: JsonValue,
    #[serde(default)]
    offset: f64,
}

/// A body read by [`read_inject_request`]: the request, and its size in
/// bytes (what its waiting injections are charged for).
pub(crate) struct ReadInjection {
    /// The request, every event checked.
    pub(crate) request: InjectRequest,
    /// The body's size.
    pub(crate) bytes: usize,
}

/// Reads a `POST /inject` body within the body limit and checks it whole:
/// the format (400 naming the place of the first problem), every event's
/// severity and offset (400 naming the group and event). Blocks and
/// emulator ids are left to whoever schedules the groups.
pub(crate) async fn read_inject_request(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<ReadInjection> {
    let bytes = read_body(headers, body).await?;
    let size = bytes.len();
    let parsed = parse_body(bytes, |bytes| {
        let mut json = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize::<_, InjectRequest>(&mut json)
    })
    .await;
    let request: InjectRequest = parsed.map_err(|e| {
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
    for (g, group) in request.injector_event_groups.iter().enumerate() {
        for (e, event) in group.events.iter().enumerate() {
            check_event(g, e, event)?;
        }
    }
    Ok(ReadInjection {
        request,
        bytes: size,
    })
}

/// An event's severity and delay, or a 400 naming event `e` of group `g`.
fn check_event(g: usize, e: usize, event: &InjectEvent) -> ApiResult<(Severity, Duration)> {
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
    // Negative, NaN or beyond the horizon: refused before anything is
    // scheduled.
    let max_ms = MAX_INJECTION_DELAY.as_millis();
    let delay = Duration::try_from_secs_f64(event.offset / 1e3)
        .ok()
        .filter(|d| event.offset >= 0.0 && *d <= MAX_INJECTION_DELAY)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{place}: offset must be a number of milliseconds from 0 to {max_ms} (24 h), found {}",
                    event.offset
                ),
            )
        })?;
    Ok((severity, delay))
}

/// Schedules `groups` (each with its index in the request, which errors
/// name) on `emulator`, all or none, in their order; `bytes` is what they
/// are charged for. Answers how many events were scheduled; an unknown
/// block is a 404 naming it, its group and the blocks there are; a full
/// queue 429 (see [`crate::engine::InjectError`]).
pub(crate) async fn schedule(
    emulator: &Emulator,
    groups: Vec<(usize, InjectGroup)>,
    bytes: usize,
) -> ApiResult<usize> {
    let mut scheduled = Vec::new();
    for (g, group) in groups {
        let block = find_block(emulator, &group.ip_block_emulator_id)
            .map_err(|e| e.with("group", json!(g)))?;
        for (e, event) in group.events.into_iter().enumerate() {
            let (severity, delay) = check_event(g, e, &event)?;
            scheduled.push((block, severity, event.value, delay));
        }
    }
    let count = scheduled.len();
    let injections = off_workers(bytes, move || {
        scheduled
            .into_iter()
            .map(|(block, severity, value, delay)| Injection {
                block,
                event: ManualEvent::injection(severity, Value::from(value)),
                delay,
            })
            .collect::<Vec<_>>()
    })
    .await;
    emulator.inject_all(injections, bytes)?;
    Ok(count)
}

/// An emulator's own `POST /inject`: every group must name this emulator.
pub(super) async fn inject(
    State(emulator): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ReadInjection { request, bytes } = read_inject_request(&headers, body).await?;
    let groups: Vec<(usize, InjectGroup)> = request
        .injector_event_groups
        .into_iter()
        .enumerate()
        .collect();
    for (g, group) in &groups {
        if group.bitstream_emulator_id != emulator.id() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "injector_event_groups[{g}]: bitstream_emulator_id \"{}\" is not this emulator (\"{}\"); \
                     groups for several emulators go to an injector (bitstream-emulator injector)",
                    group.bitstream_emulator_id,
                    emulator.id()
                ),
            ));
        }
    }
    let count = schedule(&emulator, groups, bytes).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "scheduled": count }))).into_response())
}

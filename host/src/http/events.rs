//! `GET /events`: the engine's event bus as Server-Sent Events.
//!
//! Query (each optional; values comma-separated or the parameter repeated):
//! `block` (block ids), `kind` (event kinds), `buffer` (this client's queue,
//! in events). The stream opens with a `subscribed` event; each event is
//! `event: <kind>`, `id: <seq>`, `data: <JSON>`; a `missed` event
//! (`{"missed": N}`) tells the client that N events its filter wanted were
//! dropped because it read too slowly. The stream ends when the emulator
//! terminates.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde_json::json;

use super::blocks::block_ids;
use super::error::{ApiError, ApiResult};
use super::request::query_pairs;
use super::AppState;
use crate::engine::events::{
    EventKind, Filter, Received, Subscription, DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY,
};
use crate::engine::Emulator;

/// The filter and queue size a query asks for.
fn parse_query(emulator: &Emulator, query: Option<&str>) -> ApiResult<(Filter, usize)> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let mut filter = Filter::default();
    let mut capacity = DEFAULT_CAPACITY;
    for (key, value) in query_pairs(query) {
        let items = value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match key.as_str() {
            "block" => {
                let blocks = filter.blocks.get_or_insert_with(Vec::new);
                for id in items {
                    let index = emulator.block_index(id).ok_or_else(|| {
                        bad(format!(
                            "query parameter \"block\": no block \"{id}\" in this bitstream"
                        ))
                        .with("blocks", json!(block_ids(emulator)))
                    })?;
                    blocks.push(index);
                }
            }
            "kind" => {
                let kinds = filter.kinds.get_or_insert_with(Vec::new);
                for name in items {
                    let kind = EventKind::parse(name).ok_or_else(|| {
                        bad(format!(
                            "query parameter \"kind\": \"{name}\" is not one of {}",
                            kind_names().join(", ")
                        ))
                    })?;
                    kinds.push(kind);
                }
            }
            "buffer" => {
                capacity = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (MIN_CAPACITY..=MAX_CAPACITY).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "query parameter \"buffer\" must be a number of events from {MIN_CAPACITY} to {MAX_CAPACITY}, found \"{value}\""
                        ))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter \"{other}\"; GET /events takes block, kind and buffer"
                )))
            }
        }
    }
    if filter.blocks.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad(
            "query parameter \"block\" is empty; give block ids, or leave it out for every block"
                .to_owned(),
        ));
    }
    if filter.kinds.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad(format!(
            "query parameter \"kind\" is empty; give some of {}, or leave it out for every kind",
            kind_names().join(", ")
        )));
    }
    Ok((filter, capacity))
}

fn kind_names() -> Vec<&'static str> {
    EventKind::ALL.iter().map(|k| k.as_str()).collect()
}

fn sse_event(received: Received) -> SseEvent {
    match received {
        Received::Event(event) => SseEvent::default()
            .event(event.kind.as_str())
            .id(event.seq.to_string())
            .json_data(&*event)
            .unwrap_or_else(|_| SseEvent::default().comment("an event could not be serialized")),
        Received::Missed(count) => SseEvent::default()
            .event("missed")
            .data(json!({ "missed": count }).to_string()),
    }
}

fn event_stream(
    subscription: Subscription,
    hello: SseEvent,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let first = stream::once(async move { Ok(hello) });
    let rest = stream::unfold(Arc::new(subscription), |subscription| async move {
        let received = subscription.next().await?;
        Some((Ok(sse_event(received)), subscription))
    });
    first.chain(rest)
}

pub(super) async fn events(
    State(emulator): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (filter, capacity) = parse_query(&emulator, query.as_deref())?;
    let subscription = emulator.events().subscribe(&filter, capacity);
    let hello = SseEvent::default().event("subscribed").data(
        json!({
            "emulator": emulator.id(),
            "buffer": capacity,
            "blocks": filter.blocks.as_ref().map(|b| b.iter().map(|&i| emulator.blocks()[i].id.as_str()).collect::<Vec<_>>()),
            "kinds": filter.kinds.as_ref().map(|k| k.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        })
        .to_string(),
    );
    Ok(Sse::new(event_stream(subscription, hello))
        .keep_alive(KeepAlive::default())
        .into_response())
}

//! The HTTP API, as the original engine's clients use it, plus what a user
//! needs to find their way (`GET /`, `/graph`, `/<block>/diagram`,
//! `/openapi.json`).
//!
//! Every error is JSON `{"error": "...", ...}` with the right status; a
//! trailing slash is accepted on every path. Plugin calls run on tokio's
//! blocking pool with a timeout, so a route that never returns answers 504
//! and marks its block hung without stalling the server.

mod blocks;
mod buffers;
mod deadline;
mod docs;
mod emulator;
mod error;
mod events;
mod plugins;
mod request;
mod serve;
pub mod svg;
mod ui;

use std::sync::Arc;

use axum::routing::{any, get, post};
use axum::Router;

use crate::engine::Emulator;
use blocks::{block_diagram, block_route, block_route_with_param, block_state};
use buffers::{block_buffer, get_buffer_param, put_buffer_param};
use emulator::{
    emulator_state, get_signal, graph, index, inject, openapi, pulse, put_signal, start, stop,
    terminate,
};
use error::{method_not_allowed, not_found};
pub use serve::{
    connection_limit, serve_router, serve_with, ServeOptions, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, RESERVED_DESCRIPTORS,
};

/// The largest request body accepted, in bytes; larger ones get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The largest `count` of one `POST /pulse`.
pub const MAX_PULSES_PER_REQUEST: u64 = 100_000_000;

type AppState = Arc<Emulator>;

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
        // One segment each, so they never shadow a block's routes (which
        // always have two or more); a block may be called "events" or "ui".
        .route("/events", get(events::events))
        .route("/ui", get(ui::page))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{ip_block_type}/reload", post(plugins::reload))
        .route("/plugins/{ip_block_type}/rollback", post(plugins::rollback))
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

/// Serves `emulator` on `listener` with the default [`ServeOptions`] until
/// it is terminated (`POST /terminate` or [`Emulator::terminate`]).
pub async fn serve(
    emulator: Arc<Emulator>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    serve_with(emulator, listener, ServeOptions::default()).await
}

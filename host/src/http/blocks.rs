//! Routes on one block: its state, its diagram and its plugin routes,
//! dispatched to the engine off the async threads.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value as JsonValue};

use super::emulator::{text, FormatQuery};
use super::error::{ApiError, ApiResult};
use super::request::build_request;
use super::{docs, svg, AppState};
use crate::engine::Emulator;

pub(super) fn block_ids(emulator: &Emulator) -> Vec<&str> {
    emulator.blocks().iter().map(|b| b.id.as_str()).collect()
}

pub(super) fn find_block(emulator: &Emulator, id: &str) -> ApiResult<usize> {
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
pub(super) async fn blocking<T: Send + 'static>(
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

pub(super) async fn block_state(
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

pub(super) async fn block_diagram(
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
        Some("svg") => {
            let engine = emulator.clone();
            let name = block.clone();
            let svg = blocking(&emulator, move || diagram_svg(&engine, index, &name))
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("block \"{block}\" did not answer in time; try ?format=dot"),
                    )
                })?
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok(text("image/svg+xml", svg))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format \"{other}\" is not one of dot, mermaid, json, svg"),
        )),
    }
}

/// Block `index`'s state machine as SVG, its current state filled and each
/// state's node tagged `data-state` (blocking: reads the state). A block
/// whose state cannot be read (hung) is drawn unmarked.
fn diagram_svg(emulator: &Emulator, index: usize, name: &str) -> Result<String, svg::SvgError> {
    let machine = emulator.blocks()[index].machine();
    let current = emulator
        .block_state(index)
        .ok()
        .and_then(|s| machine.state_id(&s));
    let dot = machine.to_dot_marked(name, current.map(|c| (c, docs::CURRENT_STATE_COLOUR)));
    // Declared in this order: the start dot, each state, then `any state`.
    let mut tags = vec![String::new()];
    tags.extend(machine.states().map(|(id, state)| {
        let mark = if Some(id) == current {
            " data-current=\"true\""
        } else {
            ""
        };
        format!("data-state=\"{}\"{mark}", svg::attr_escape(state))
    }));
    svg::render(&format!("block \"{name}\""), &dot, &tags)
}

pub(super) async fn block_route(
    State(emulator): State<AppState>,
    method: Method,
    Path((block, route)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    dispatch(emulator, method, block, route, None, query, headers, body).await
}

pub(super) async fn block_route_with_param(
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
pub(super) async fn dispatch(
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
    let plugin = emulator.blocks()[index].plugin();
    let routes = &plugin.routes;
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
    let request = build_request(&plugin, route_index, path_value, query, &headers, body).await?;

    let engine = emulator.clone();
    // The reply is turned into JSON text there too (and the request dropped
    // there): a big body costs the async workers nothing.
    let result = blocking(&emulator, move || {
        engine
            .call_route_as(index, &plugin, route_index as u32, &request)
            .map(|reply| {
                let body = reply.body.map(|body| serde_json::to_vec(&body));
                (reply.status, body)
            })
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
    let (status, body) = response;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(match body {
        Some(Ok(json)) => {
            (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Some(Err(err)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("block \"{block}\": its reply cannot be written as JSON: {err}"),
            ))
        }
        None => status.into_response(),
    })
}

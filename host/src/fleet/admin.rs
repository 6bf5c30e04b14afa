//! The fleet's index, served on the admin address: `GET /` lists every
//! emulator as JSON (id, address and URL, package, run state, pulse count,
//! blocks, faulted and hung blocks, links to its own API and page); `GET
//! /ui` is a page of the same, refreshed every second, linking to each
//! emulator's own `/ui` (`admin.html`, compiled in: no other URL). `GET /`
//! also counts the plugin libraries the process loaded and reused
//! (`libraries`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value as Json_};

use super::Fleet;
use crate::engine::{Emulator, RunState};

/// The page, compiled into the binary.
const PAGE: &str = include_str!("admin.html");

/// One emulator as the index shows it.
#[derive(Clone)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// Its package folder.
    pub package: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The emulator.
    pub emulator: Arc<Emulator>,
}

/// What the admin server serves.
pub type Index = Arc<Vec<Entry>>;

/// The index of a started fleet.
pub fn index_of(fleet: &Fleet) -> Index {
    Arc::new(
        fleet
            .members
            .iter()
            .map(|m| Entry {
                id: m.plan.id.clone(),
                package: m.plan.package.display().to_string(),
                addr: m.addr,
                emulator: m.emulator.clone(),
            })
            .collect(),
    )
}

/// The admin router.
pub fn router(index: Index) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/ui", get(page))
        .with_state(index)
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

/// The host a browser reached the admin server by (for links to emulators
/// bound to every interface), without its port.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next()?
    } else {
        host.split(':').next()?
    };
    (!name.is_empty()).then(|| name.to_owned())
}

/// The URL clients reach `addr` at.
pub fn url_of(addr: SocketAddr, request_host: Option<&str>) -> String {
    if addr.ip().is_unspecified() {
        let host = request_host.unwrap_or("127.0.0.1");
        format!("http://{host}:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// One emulator's entry of `GET /`.
fn describe(entry: &Entry, host: Option<&str>) -> Json_ {
    let emulator = &entry.emulator;
    let blocks = emulator.blocks();
    let faulted = blocks.iter().filter(|b| b.fault_reason().is_some()).count();
    let hung = blocks.iter().filter(|b| b.hung_reason().is_some()).count();
    let url = url_of(entry.addr, host);
    json!({
        "id": entry.id,
        "bind": entry.addr.to_string(),
        "url": url,
        "package": entry.package,
        "state": emulator.run_state().as_str(),
        "pulses": emulator.pulse_count(),
        "blocks": blocks.len(),
        "faulted": faulted,
        "hung": hung,
        "links": {
            "index": format!("{url}/"),
            "state": format!("{url}/state"),
            "ui": format!("{url}/ui"),
            "events": format!("{url}/events"),
            "openapi": format!("{url}/openapi.json"),
        },
    })
}

async fn list(State(index): State<Index>, headers: HeaderMap) -> Json<Json_> {
    let host = request_host(&headers);
    let emulators: Vec<Json_> = index.iter().map(|e| describe(e, host.as_deref())).collect();
    let count = |state: RunState| {
        index
            .iter()
            .filter(|e| e.emulator.run_state() == state)
            .count()
    };
    let libraries = crate::plugin::loader::shared::shared_loads();
    let sum = |key: &str| {
        emulators
            .iter()
            .filter_map(|e| e[key].as_u64())
            .sum::<u64>()
    };
    Json(json!({
        "emulators": emulators,
        "totals": {
            "emulators": index.len(),
            "running": count(RunState::Running),
            "stopped": count(RunState::Stopped),
            "terminated": count(RunState::Terminated),
            "faulted": sum("faulted"),
            "hung": sum("hung"),
        },
        "libraries": {
            "loaded": libraries.loads,
            "reused": libraries.reuses,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_emulators_on_every_interface_use_the_host_asked_for() {
        let any: SocketAddr = "0.0.0.0:5001".parse().unwrap();
        let one: SocketAddr = "127.0.0.2:5001".parse().unwrap();
        assert_eq!(
            url_of(any, Some("fleet.example")),
            "http://fleet.example:5001"
        );
        assert_eq!(url_of(any, None), "http://127.0.0.1:5001");
        assert_eq!(url_of(one, Some("fleet.example")), "http://127.0.0.2:5001");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "[::1]:5000".parse().unwrap());
        assert_eq!(request_host(&headers).as_deref(), Some("[::1]"));
        headers.insert(header::HOST, "pod-3:5000".parse().unwrap());
        assert_eq!(request_host(&headers).as_deref(), Some("pod-3"));
    }

    #[test]
    fn the_page_needs_no_other_url() {
        let urls: Vec<&str> = PAGE
            .match_indices("http")
            .map(|(i, _)| &PAGE[i..i + 12])
            .collect();
        assert!(urls.is_empty(), "{urls:?}");
        assert!(PAGE.contains("fetch(\"/\""));
    }
}

//! What the API says about itself: the index, the graph, OpenAPI.

use crate::model::{ParamDesc, ParamKind, ParamLocation};
use serde_json::{json, Map, Value as JsonValue};

use crate::engine::Emulator;

/// The emulator-level endpoints: method, path, what it does.
pub const ENDPOINTS: [(&str, &str, &str); 21] = [
    ("GET", "/", "This listing: blocks, types, states and routes"),
    (
        "GET",
        "/state",
        "The emulator's state: {\"current_state\": RUNNING | STOPPED | TERMINATED}",
    ),
    (
        "POST",
        "/start",
        "Start real-time pulses (202; 409 when running)",
    ),
    (
        "POST",
        "/stop",
        "Stop real-time pulses and cancel accelerated ones after the pulse in flight (202; 409 when neither runs)",
    ),
    (
        "POST",
        "/terminate",
        "End event processing, then the server (202)",
    ),
    (
        "POST",
        "/pulse?count=N",
        "Run N (1 to 100,000,000) pulses as fast as possible and answer when done or cancelled",
    ),
    (
        "GET",
        "/signal",
        "The values the signal generator sends every pulse",
    ),
    ("PUT", "/signal", "Replace them, e.g. {\"packet_rate\": 0}"),
    (
        "POST",
        "/inject",
        "Schedule INJECTION manual events (injector_event_groups)",
    ),
    ("GET", "/graph?format=json|dot|svg", "The signal chain (svg: states and status marked)"),
    (
        "GET",
        "/events?block=..&kind=..&buffer=N",
        "Server-Sent Events: state changes, faults, hangs, recoveries, injections, signal changes, plugin swaps, a summary every second",
    ),
    (
        "GET",
        "/ui",
        "A web page of the signal chain, live",
    ),
    (
        "GET",
        "/openapi.json",
        "OpenAPI 3.1 description of every route of every block",
    ),
    (
        "GET",
        "/<block>/state",
        "A block's state: {\"current_state\": ...}",
    ),
    (
        "GET",
        "/<block>/diagram?format=dot|mermaid|json|svg",
        "A block's state machine (svg: current state marked)",
    ),
    (
        "GET",
        "/<block>/buffer",
        "A block's device buffer: every parameter (blocks whose plugin ships a catalog)",
    ),
    (
        "GET|PUT",
        "/<block>/buffer/<param>?block=update|write",
        "One buffer parameter; PUT a JSON value, validated and clamped",
    ),
    (
        "GET",
        "/plugins",
        "Each type's plugin: library, SHA-256, versions, loaded at, swaps, last error",
    ),
    (
        "POST",
        "/plugins/<type>/reload",
        "Swap a type's plugin to its file again, or {\"path\": ...}; {\"reset\": true} starts blocks whose state is gone in the initial state",
    ),
    (
        "POST",
        "/plugins/<type>/rollback",
        "Swap a type back to the version before its last swap",
    ),
    ("ANY", "/<block>/<route>[/<param>]", "A block's own route"),
];

/// `[{"method", "path", "summary"}]` for a block's routes.
pub fn route_list(routes: &[crate::route::Route]) -> Vec<JsonValue> {
    routes
        .iter()
        .map(|r| {
            let path = match r.params.iter().find(|p| p.location == ParamLocation::Path) {
                Some(p) => format!("{}/<{}>", r.name, p.name),
                None => r.name.to_string(),
            };
            json!({"method": r.method.as_str(), "route": path, "summary": r.summary.as_str()})
        })
        .collect()
}

/// Every block with its type, state and routes (blocking: locks each block).
pub fn block_listing(emulator: &Emulator) -> Vec<JsonValue> {
    emulator
        .blocks()
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let config = &emulator.config().ip_blocks[i];
            let state = emulator.block_state(i).unwrap_or_else(|e| format!("<{e}>"));
            json!({
                "id": block.id,
                "display_name": config.display_name,
                "type": config.block_type,
                "current_state": state,
                "fault": emulator.block_fault(i),
                "hung": block.hung_reason(),
                "downstream_block_ids": config.downstream_block_ids,
                "routes": route_list(&block.plugin().routes),
            })
        })
        .collect()
}

/// The signal chain as JSON: nodes, edges, `first`, and the pulse order.
pub fn graph_json(emulator: &Emulator) -> JsonValue {
    let blocks = &emulator.config().ip_blocks;
    let chain = emulator.chain();
    let edges: Vec<JsonValue> = (0..blocks.len())
        .flat_map(|b| {
            chain
                .downstream(b)
                .iter()
                .map(move |&d| json!({"from": blocks[b].id, "to": blocks[d].id}))
        })
        .collect();
    json!({
        "nodes": blocks.iter().map(|b| json!({"id": b.id, "type": b.block_type, "display_name": b.display_name})).collect::<Vec<_>>(),
        "edges": edges,
        "first": emulator.config().first,
        "pulse_order": chain.order().iter().map(|&b| blocks[b].id.as_str()).collect::<Vec<_>>(),
    })
}

fn dot_quote(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// How a block is doing, for colouring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    /// Neither faulted nor hung.
    Normal,
    /// In its `FAULT` state (or, without one, a handler or route failed;
    /// `GET /` shows why).
    Fault,
    /// A handler did not return in time.
    Hung,
}

impl BlockStatus {
    /// The name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockStatus::Normal => "normal",
            BlockStatus::Fault => "fault",
            BlockStatus::Hung => "hung",
        }
    }

    /// Its fill colour in diagrams (the page uses the same).
    pub fn colour(self) -> &'static str {
        match self {
            BlockStatus::Normal => "#d9f2d9",
            BlockStatus::Fault => "#f4a6a6",
            BlockStatus::Hung => "#f6cf7a",
        }
    }
}

/// The fill colour of a block's current state in its diagram.
pub const CURRENT_STATE_COLOUR: &str = "#9fd3ff";

/// A block's state (or why it cannot be read) and status, for the marked
/// graph (blocking: locks the block).
pub fn block_mark(emulator: &Emulator, index: usize) -> (String, BlockStatus) {
    let block = &emulator.blocks()[index];
    let state = emulator
        .block_state(index)
        .unwrap_or_else(|_| "?".to_owned());
    // A block that left its FAULT state has recovered; a machine without
    // one stays faulted once a handler failed.
    let has_fault_state = block.machine().state_id("FAULT").is_some();
    let status = if block.hung_reason().is_some() {
        BlockStatus::Hung
    } else if state == "FAULT" || (!has_fault_state && emulator.block_fault(index).is_some()) {
        BlockStatus::Fault
    } else {
        BlockStatus::Normal
    };
    (state, status)
}

/// The signal chain as Graphviz DOT; the signal generator feeds `first`.
pub fn graph_dot(emulator: &Emulator) -> String {
    graph_dot_marked(emulator, None)
}

/// [`graph_dot`] with each block's state in its label and its node filled
/// by status (`marks[i]` for block `i`); `None` gives exactly `graph_dot`.
pub fn graph_dot_marked(emulator: &Emulator, marks: Option<&[(String, BlockStatus)]>) -> String {
    let blocks = &emulator.config().ip_blocks;
    let chain = emulator.chain();
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
        dot_quote(&emulator.config().id)
    );
    out.push_str("  \"__signal\" [label=\"signal generator\", shape=ellipse, style=dashed];\n");
    for (i, block) in blocks.iter().enumerate() {
        match marks.and_then(|m| m.get(i)) {
            None => {
                let label = format!("{}\n({})", block.id, block.block_type);
                out.push_str(&format!("  n{i} [label={}];\n", dot_quote(&label)));
            }
            Some((state, status)) => {
                let label = format!("{}\n({})\n{state}", block.id, block.block_type);
                out.push_str(&format!(
                    "  n{i} [label={}, style=filled, fillcolor=\"{}\"];\n",
                    dot_quote(&label),
                    status.colour()
                ));
            }
        }
        if chain.is_first(i) {
            out.push_str(&format!("  \"__signal\" -> n{i};\n"));
        }
    }
    for b in 0..blocks.len() {
        for &d in chain.downstream(b) {
            out.push_str(&format!("  n{b} -> n{d};\n"));
        }
    }
    out.push_str("}\n");
    out
}

fn schema_of(kind: ParamKind) -> JsonValue {
    match kind {
        ParamKind::Bool => json!({"type": "boolean"}),
        ParamKind::Int => json!({"type": "integer"}),
        ParamKind::Float => json!({"type": "number"}),
        ParamKind::String => json!({"type": "string"}),
        ParamKind::Json => json!({}),
    }
}

fn parameter(param: &ParamDesc, location: &str) -> JsonValue {
    let mut schema = schema_of(param.kind);
    if let Some(default) = param.default.as_ref() {
        schema["default"] = JsonValue::from(default.clone());
    }
    json!({
        "name": param.name.as_str(),
        "in": location,
        "required": location == "path" || param.required,
        "schema": schema,
    })
}

fn error_response(description: &str) -> JsonValue {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// An OpenAPI 3.1 document for the emulator and every route of every block.
pub fn openapi(emulator: &Emulator) -> JsonValue {
    let mut paths = Map::new();
    let state_schema =
        json!({"type": "object", "properties": {"current_state": {"type": "string"}}});
    let ok = |schema: JsonValue| json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}});
    paths.insert(
        "/state".into(),
        json!({"get": {"summary": "The emulator's state", "responses": ok(state_schema.clone())}}),
    );
    for (path, summary) in [
        ("/start", "Start real-time pulses"),
        (
            "/stop",
            "Stop real-time pulses and cancel batches of accelerated ones",
        ),
        ("/terminate", "Terminate"),
    ] {
        paths.insert(
            path.into(),
            json!({"post": {"summary": summary, "responses": {"202": {"description": "Accepted"}, "409": error_response("Not allowed now")}}}),
        );
    }
    paths.insert(
        "/pulse".into(),
        json!({"post": {"summary": "Run pulses as fast as possible; stop, terminate or the client going away cancel the batch",
            "parameters": [{"name": "count", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": super::MAX_PULSES_PER_REQUEST, "default": 1}}],
            "responses": {
                "200": {"description": "Pulses run", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "pulses": {"type": "integer"}, "cancelled": {"type": "boolean"}, "elapsed_ms": {"type": "number"},
                    "pulses_per_second": {"type": "number"}, "total_pulses": {"type": "integer"}}}}}},
                "400": error_response("Bad count"),
                "409": error_response("Terminated"),
                "503": error_response("A handler hung during the batch"),
            }}}),
    );
    paths.insert(
        "/signal".into(),
        json!({"get": {"summary": "The generated signal", "responses": ok(json!({"type": "object"}))},
               "put": {"summary": "Replace the generated signal",
                       "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"packet_rate": {"type": "number", "minimum": 0}}, "additionalProperties": false}}}},
                       "responses": {
                           "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                           "400": error_response("Not a valid signal"),
                           "408": error_response("Body too slow"),
                           "413": error_response("Body over 1 MiB"),
                       }}}),
    );
    paths.insert(
        "/inject".into(),
        json!({"post": {"summary": "Schedule injected manual events",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Injection"}}}},
            "responses": {
                "202": {"description": "Scheduled"},
                "400": error_response("Bad request (also an offset beyond 24 h)"),
                "404": error_response("Unknown block"),
                "408": error_response("Body too slow"),
                "413": error_response("Body over 1 MiB, or more injections than may ever wait"),
                "429": error_response("The injection queue is full now"),
            }}}),
    );

    let kinds: Vec<&str> = crate::engine::events::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let blocks: Vec<&str> = emulator.blocks().iter().map(|b| b.id.as_str()).collect();
    paths.insert(
        "/events".into(),
        json!({"get": {"summary": "Server-Sent Events: what happens, live (see README)",
            "parameters": [
                {"name": "block", "in": "query", "description": "Only these blocks' events (comma-separated)", "schema": {"type": "array", "items": {"enum": blocks}}, "style": "form", "explode": false},
                {"name": "kind", "in": "query", "description": "Only these kinds (comma-separated)", "schema": {"type": "array", "items": {"enum": kinds}}, "style": "form", "explode": false},
                {"name": "buffer", "in": "query", "description": "This client's queue, in events", "schema": {"type": "integer", "minimum": crate::engine::events::MIN_CAPACITY, "maximum": crate::engine::events::MAX_CAPACITY, "default": crate::engine::events::DEFAULT_CAPACITY}},
            ],
            "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {}}}, "400": error_response("Bad filter")}}}),
    );

    for block in emulator.blocks() {
        let id = &block.id;
        paths.insert(
            format!("/{id}/state"),
            json!({"get": {"summary": format!("State of {id}"), "tags": [id], "responses": ok(state_schema.clone())}}),
        );
        for route in &block.plugin().routes {
            let path_param = route
                .params
                .iter()
                .find(|p| p.location == ParamLocation::Path);
            let path = match path_param {
                Some(p) => format!("/{id}/{}/{{{}}}", route.name, p.name),
                None => format!("/{id}/{}", route.name),
            };
            let mut parameters: Vec<JsonValue> = route
                .params
                .iter()
                .filter(|p| p.location == ParamLocation::Query)
                .map(|p| parameter(p, "query"))
                .collect();
            if let Some(p) = path_param {
                parameters.insert(0, parameter(p, "path"));
            }
            let mut operation = json!({
                "summary": route.summary.as_str(),
                "tags": [id],
                "operationId": format!("{id}.{}", route.name),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "OK: a JSON body, or none (as in the original)"},
                    "202": {"description": "Accepted (delayed work)"},
                    "400": error_response("Bad request"),
                    "408": error_response("Body too slow"),
                    "409": error_response("Not allowed in the current state"),
                    "413": error_response("Body over 1 MiB"),
                    "500": error_response("Error inside the block"),
                    "503": error_response("Block busy or hung"),
                    "504": error_response("Route did not return in time"),
                },
            });
            if let Some(body) = route
                .params
                .iter()
                .find(|p| p.location == ParamLocation::Body)
            {
                let schema = body
                    .schema
                    .as_ref()
                    .map_or(json!({}), |s| JsonValue::from(s.clone()));
                operation["requestBody"] = json!({"required": body.required, "content": {"application/json": {"schema": schema}}});
            }
            let method = route.method.to_ascii_lowercase();
            paths.insert(path, json!({ method: operation }));
        }
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("bitstream emulator {}", emulator.id()),
            "version": emulator.config().version,
            "description": format!("Bitstream {} emulated by bitstream-emulator", emulator.config().id),
        },
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Injection": {"type": "object", "required": ["injector_event_groups"], "properties": {"injector_event_groups": {"type": "array", "items": {
                "type": "object", "required": ["bitstream_emulator_id", "ip_block_emulator_id", "events"], "properties": {
                    "bitstream_emulator_id": {"enum": [emulator.id()], "description": "this emulator's id"},
                    "ip_block_emulator_id": {"enum": emulator.blocks().iter().map(|b| b.id.as_str()).collect::<Vec<_>>()},
                    "events": {"type": "array", "items": {"type": "object", "required": ["severity", "value"], "properties": {
                        "severity": {"enum": ["GENERAL", "WARNING", "FATAL_ERROR"]},
                        "value": {"type": "object"},
                        "offset": {"type": "number", "minimum": 0, "maximum": crate::engine::MAX_INJECTION_DELAY.as_millis() as u64, "description": "milliseconds after the request (at most 24 h)"}}}}}}}}},
        }},
    })
}

//! What the API says about itself: the index, the graph, OpenAPI.

use crate::model::{ParamDesc, ParamKind, ParamLocation};
use serde_json::{json, Map, Value as JsonValue};

use crate::engine::Emulator;

/// The emulator-level endpoints: method, path, what it does.
pub const ENDPOINTS: [(&str, &str, &str); 16] = [
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
        "Stop real-time pulses after the pulse in flight (202; 409 when stopped)",
    ),
    (
        "POST",
        "/terminate",
        "End event processing, then the server (202)",
    ),
    (
        "POST",
        "/pulse?count=N",
        "Run N pulses as fast as possible and answer when done",
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
    ("GET", "/graph?format=json|dot", "The signal chain"),
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
        "/<block>/diagram?format=dot|mermaid|json",
        "A block's state machine",
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
                "routes": route_list(&block.plugin.routes),
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

/// The signal chain as Graphviz DOT; the signal generator feeds `first`.
pub fn graph_dot(emulator: &Emulator) -> String {
    let blocks = &emulator.config().ip_blocks;
    let chain = emulator.chain();
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
        dot_quote(&emulator.config().id)
    );
    out.push_str("  \"__signal\" [label=\"signal generator\", shape=ellipse, style=dashed];\n");
    for (i, block) in blocks.iter().enumerate() {
        let label = format!("{}\n({})", block.id, block.block_type);
        out.push_str(&format!("  n{i} [label={}];\n", dot_quote(&label)));
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
        ("/stop", "Stop real-time pulses"),
        ("/terminate", "Terminate"),
    ] {
        paths.insert(
            path.into(),
            json!({"post": {"summary": summary, "responses": {"202": {"description": "Accepted"}, "409": error_response("Not allowed now")}}}),
        );
    }
    paths.insert(
        "/pulse".into(),
        json!({"post": {"summary": "Run pulses as fast as possible",
            "parameters": [{"name": "count", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}}],
            "responses": ok(json!({"type": "object"}))}}),
    );
    paths.insert(
        "/signal".into(),
        json!({"get": {"summary": "The generated signal", "responses": ok(json!({"type": "object"}))},
               "put": {"summary": "Replace the generated signal",
                       "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"packet_rate": {"type": "number", "minimum": 0}}, "additionalProperties": false}}}},
                       "responses": ok(json!({"type": "object"}))}}),
    );
    paths.insert(
        "/inject".into(),
        json!({"post": {"summary": "Schedule injected manual events",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Injection"}}}},
            "responses": {"202": {"description": "Scheduled"}, "400": error_response("Bad request"), "404": error_response("Unknown block")}}}),
    );

    for block in emulator.blocks() {
        let id = &block.id;
        paths.insert(
            format!("/{id}/state"),
            json!({"get": {"summary": format!("State of {id}"), "tags": [id], "responses": ok(state_schema.clone())}}),
        );
        for route in &block.plugin.routes {
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
                    "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
                    "202": {"description": "Accepted (delayed work)"},
                    "400": error_response("Bad request"),
                    "409": error_response("Not allowed in the current state"),
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
                    "bitstream_emulator_id": {"type": "string"},
                    "ip_block_emulator_id": {"type": "string"},
                    "events": {"type": "array", "items": {"type": "object", "required": ["severity", "value"], "properties": {
                        "severity": {"enum": ["GENERAL", "WARNING", "FATAL_ERROR"]},
                        "value": {"type": "object"},
                        "offset": {"type": "number", "minimum": 0, "description": "milliseconds after the request"}}}}}}}}},
        }},
    })
}

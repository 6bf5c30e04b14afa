//! From a request line (`<route>[/<path value>][?<query>]`, a method and
//! body bytes) to the route to call and its parsed request.
//!
//! Interim: the HTTP server's parsing lives in its `http::request` module,
//! tied to axum; this mirrors it until the host has a transport-independent
//! route module, which this module then calls.

use bitstream_host::model::{ParamKind, ParamLocation, RouteDesc, RouteRequest};
use bitstream_sdk::{Value, ValueMap};

use crate::Response;

/// The route index and request for `method` `target` with `body`, or the
/// error response the HTTP API would send.
pub(crate) fn dispatch(
    block: &str,
    routes: &[RouteDesc],
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<(usize, RouteRequest), Response> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let path = path.trim_matches('/');
    let (name, path_value) = match path.split_once('/') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (path, None),
    };
    let Some(index) = routes.iter().position(|r| r.name == name) else {
        let known: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        return Err(Response::error_with(
            404,
            format!(
                "block \"{block}\" has no route \"{name}\" (routes: {})",
                known.join(", ")
            ),
        ));
    };
    let desc = &routes[index];
    if !desc.method.eq_ignore_ascii_case(method) {
        return Err(Response::error_with(
            405,
            format!(
                "route \"{name}\" of block \"{block}\" takes {}, not {method}",
                desc.method
            ),
        ));
    }
    build_request(desc, path_value, query, body).map(|request| (index, request))
}

fn build_request(
    desc: &RouteDesc,
    path_value: Option<String>,
    query: Option<&str>,
    body: &[u8],
) -> Result<RouteRequest, Response> {
    let route = desc.name.as_str();
    let bad = |message: String| Response::error_with(400, message);
    let param = |location| desc.params.iter().find(|p| p.location == location);

    let path = match (param(ParamLocation::Path), path_value) {
        (None, Some(value)) => {
            return Err(Response::error_with(
                404,
                format!("route \"{route}\" takes no path parameter, but got \"{value}\""),
            ))
        }
        (Some(param), Some(value)) => {
            parse_param(param.kind, &value)
                .map_err(|e| bad(format!("path parameter \"{}\": {e}", param.name)))?;
            Some(value)
        }
        (_, None) => None,
    };

    let pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    let mut typed = ValueMap::new();
    for param in desc
        .params
        .iter()
        .filter(|p| p.location == ParamLocation::Query)
    {
        let name = param.name.as_str();
        let given = pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
        let value = match (given, param.default.as_ref()) {
            (Some(text), _) => parse_param(param.kind, text).map_err(|e| {
                bad(format!(
                    "query parameter \"{name}\" of route \"{route}\": {e}"
                ))
            })?,
            (None, Some(default)) => default.clone(),
            (None, None) if param.required => {
                return Err(bad(format!(
                    "route \"{route}\" needs query parameter \"{name}\""
                )))
            }
            (None, None) => continue,
        };
        typed.insert(name, value);
    }

    let body = match param(ParamLocation::Body) {
        Some(param) => {
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(
                    serde_json::from_slice::<Value>(body)
                        .map_err(|e| bad(format!("malformed JSON body: {e}")))?,
                )
            };
            if parsed.is_none() && param.required {
                return Err(bad(format!("route \"{route}\" needs a JSON body")));
            }
            parsed
        }
        None => None,
    };
    Ok(RouteRequest {
        path,
        query: typed,
        body,
    })
}

fn parse_param(kind: ParamKind, text: &str) -> Result<Value, String> {
    match kind {
        ParamKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("expected a boolean (true/false), found \"{text}\"")),
        },
        ParamKind::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("expected an integer, found \"{text}\"")),
        ParamKind::Float => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("expected a number, found \"{text}\"")),
        },
        ParamKind::String => Ok(Value::from(text)),
        ParamKind::Json => {
            serde_json::from_str::<Value>(text).map_err(|e| format!("expected JSON: {e}"))
        }
    }
}

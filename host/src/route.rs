//! Route requests, independent of any transport: a route's declaration with
//! its compiled body schema ([`Route`]), and the one function that turns a
//! call's path value, query string and body bytes into the
//! [`RouteRequest`] a plugin receives, or refuses it ([`build_request`]).
//!
//! The HTTP server (and anything else that serves routes in-process, such
//! as a test harness) reads the body within its size limit and hands the
//! bytes here; everything after that (path and query parameters parsed
//! and typed, defaults filled in, the JSON body parsed and checked against
//! the JSON Schema the route declares) happens in this module, so every
//! way of calling a route sees the same rules and the same messages.
//!
//! JSON Schema (draft 2020-12) lives only here: a plugin declares a schema
//! (`Route::body_with_schema` in the SDK), the host compiles it once when
//! the plugin is loaded ([`Route::compile`], run by the plugin checks) and
//! checks every body against it. Plugins do not link a validator; the
//! SDK's `JsonSchema::validate` asks the host through [`check_value`].
//!
//! ```
//! use bitstream_host::model::{ParamDesc, ParamKind, ParamLocation, RouteDesc};
//! use bitstream_host::route::{build_request, Route};
//!
//! let desc = RouteDesc {
//!     name: "configure".into(),
//!     method: "POST".into(),
//!     summary: String::new(),
//!     params: vec![ParamDesc {
//!         name: "body".into(),
//!         location: ParamLocation::Body,
//!         kind: ParamKind::Json,
//!         required: true,
//!         default: None,
//!         schema: Some(serde_json::json!({
//!             "type": "object",
//!             "properties": {"gain": {"type": "number", "maximum": 6}},
//!         }).into()),
//!     }],
//! };
//! let route = Route::compile(desc).unwrap();
//! let ok = build_request(&route, None, None, br#"{"gain": 3}"#).unwrap();
//! assert!(ok.body.is_some());
//! let err = build_request(&route, None, None, br#"{"gain": 9}"#).unwrap_err();
//! assert_eq!(err.status, 400);
//! assert_eq!(err.message, "invalid body: /gain: 9 is greater than the maximum of 6");
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bitstream_sdk::{Value, ValueMap};

use crate::model::{ParamKind, ParamLocation, RouteDesc, RouteRequest};

/// A route call refused before the plugin sees it: the HTTP status to
/// answer (400 for a bad parameter or body, 404 for a path value on a
/// route that takes none) and a message naming the route and parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RouteRejection {
    /// The HTTP status to answer.
    pub status: u16,
    /// What is wrong, naming the route and the parameter.
    pub message: String,
}

impl RouteRejection {
    fn bad(message: String) -> Self {
        RouteRejection {
            status: 400,
            message,
        }
    }
}

/// A route's declared body schema is not valid JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route \"{route}\": the body schema is not valid JSON Schema (draft 2020-12): {reason}; fix the schema given to Route::body_with_schema")]
pub struct InvalidSchema {
    /// The route's name.
    pub route: String,
    /// Why the schema does not compile.
    pub reason: String,
}

/// A compiled JSON Schema (draft 2020-12).
pub struct BodySchema {
    validator: jsonschema::Validator,
}

impl BodySchema {
    /// Compiles `schema`; the error says why it is not valid JSON Schema.
    pub fn compile(schema: &serde_json::Value) -> Result<BodySchema, String> {
        jsonschema::draft202012::new(schema)
            .map(|validator| BodySchema { validator })
            .map_err(|e| e.to_string())
    }

    /// Checks `instance`; the error lists every violation with its JSON
    /// pointer: `invalid body: /gain: 9 is greater than the maximum of 6;
    /// /pol: "x" is not one of ...`.
    pub fn check(&self, instance: &serde_json::Value) -> Result<(), String> {
        let mut problems: Vec<String> = Vec::new();
        let mut more = 0usize;
        for e in self.validator.iter_errors(instance) {
            if problems.len() == MAX_LISTED_PROBLEMS {
                more += 1;
                continue;
            }
            let at = e.instance_path().to_string();
            let text = if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            };
            problems.push(shorten(text));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mut message = format!("invalid body: {}", problems.join("; "));
        if more > 0 {
            message.push_str(&format!(" (and {more} more)"));
        }
        Err(message)
    }
}

/// The most violations [`BodySchema::check`] lists (the rest are counted),
/// so that a huge body never makes a huge answer.
const MAX_LISTED_PROBLEMS: usize = 20;

/// The longest violation message [`BodySchema::check`] lists, in
/// characters (a message quoting a huge value is cut, with `…`).
const MAX_PROBLEM_CHARS: usize = 300;

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_PROBLEM_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySchema").finish_non_exhaustive()
    }
}

/// A route as the host serves it: its declaration and, when it declares
/// one, its body schema compiled once. It dereferences to its
/// [`RouteDesc`].
#[derive(Debug, Clone)]
pub struct Route {
    desc: RouteDesc,
    body_schema: Option<Arc<BodySchema>>,
    /// The plugin checks the body itself (the schema sets
    /// `bitstream_sdk::schema::CHECKED_IN_HANDLER`): the host compiles the
    /// schema but does not refuse bodies with it.
    checked_in_handler: bool,
}

impl Route {
    /// Compiles the route's body schema, if it declares one.
    pub fn compile(desc: RouteDesc) -> Result<Route, InvalidSchema> {
        let schema = desc
            .params
            .iter()
            .find(|p| p.location == ParamLocation::Body)
            .and_then(|p| p.schema.as_ref());
        let body_schema = match schema {
            None => None,
            Some(schema) => {
                let json = serde_json::Value::from(schema.clone());
                let compiled = BodySchema::compile(&json).map_err(|reason| InvalidSchema {
                    route: desc.name.clone(),
                    reason,
                })?;
                Some(Arc::new(compiled))
            }
        };
        let checked_in_handler = schema.is_some_and(|s| {
            s.get(bitstream_sdk::schema::CHECKED_IN_HANDLER) == Some(&Value::Bool(true))
        });
        Ok(Route {
            desc,
            body_schema,
            checked_in_handler,
        })
    }

    /// Compiles every route of a table; the errors name each route whose
    /// schema is not valid.
    pub fn compile_all(descs: Vec<RouteDesc>) -> Result<Vec<Route>, Vec<InvalidSchema>> {
        let mut routes = Vec::with_capacity(descs.len());
        let mut errors = Vec::new();
        for desc in descs {
            match Route::compile(desc) {
                Ok(route) => routes.push(route),
                Err(err) => errors.push(err),
            }
        }
        if errors.is_empty() {
            Ok(routes)
        } else {
            Err(errors)
        }
    }

    /// The route's declaration.
    pub fn desc(&self) -> &RouteDesc {
        &self.desc
    }

    /// The compiled body schema, when the route declares one.
    pub fn body_schema(&self) -> Option<&BodySchema> {
        self.body_schema.as_deref()
    }
}

impl std::ops::Deref for Route {
    type Target = RouteDesc;

    fn deref(&self) -> &RouteDesc {
        &self.desc
    }
}

/// Builds the request a route's handler receives, or refuses the call.
///
/// - `path`: the URL segment after the route name (`/<block>/<route>/<path>`),
///   if the call has one. A route without a path parameter refuses it with
///   404; a value that does not parse as the parameter's kind is a 400.
/// - `query`: the raw query string (`a=1&b=x`, without `?`), if any. Each
///   declared query parameter is parsed and typed (the last occurrence
///   wins); a missing one takes its default, or is a 400 when required.
///   Undeclared keys are ignored.
/// - `body`: the body bytes, already read within the transport's size
///   limit. Empty or all-whitespace means no body (a 400 when the route
///   requires one). A route without a body parameter ignores its body
///   (clients POST `{}` everywhere). Otherwise the body must be JSON, and
///   when the route declares a schema (and does not leave the check to its
///   handler), satisfy it: the 400 then lists
///   every violation with its JSON pointer
///   (`invalid body: /gain: 9 is greater than the maximum of 6`).
///
/// Headers play no part: the body is read as JSON whatever its declared
/// content type (clients send `{}` with and without one), and its size
/// limit is the transport's business.
pub fn build_request(
    route: &Route,
    path: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<RouteRequest, RouteRejection> {
    let desc = &route.desc;
    let name = desc.name.as_str();

    let path_param = desc
        .params
        .iter()
        .find(|p| p.location == ParamLocation::Path);
    let path = match (path_param, path) {
        (None, Some(value)) => {
            return Err(RouteRejection {
                status: 404,
                message: format!("route \"{name}\" takes no path parameter, but got \"{value}\""),
            })
        }
        (Some(param), Some(value)) => {
            parse_param(param.kind, value).map_err(|e| {
                RouteRejection::bad(format!("path parameter \"{}\": {e}", param.name))
            })?;
            Some(value.to_owned())
        }
        (_, None) => None,
    };

    let pairs = query_pairs(query);
    let mut typed = ValueMap::new();
    for param in desc
        .params
        .iter()
        .filter(|p| p.location == ParamLocation::Query)
    {
        let key = param.name.as_str();
        let given = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let value = match (given, param.default.as_ref()) {
            (Some(text), _) => parse_param(param.kind, text).map_err(|e| {
                RouteRejection::bad(format!(
                    "query parameter \"{key}\" of route \"{name}\": {e}"
                ))
            })?,
            (None, Some(default)) => default.clone(),
            (None, None) if param.required => {
                return Err(RouteRejection::bad(format!(
                    "route \"{name}\" needs query parameter \"{key}\""
                )))
            }
            (None, None) => continue,
        };
        typed.insert(key, value);
    }

    let body_param = desc
        .params
        .iter()
        .find(|p| p.location == ParamLocation::Body);
    let body = match body_param {
        None => None,
        Some(param) => {
            if body.iter().all(u8::is_ascii_whitespace) {
                if param.required {
                    return Err(RouteRejection::bad(format!(
                        "route \"{name}\" needs a JSON body"
                    )));
                }
                None
            } else {
                let json = serde_json::from_slice::<serde_json::Value>(body)
                    .map_err(|e| RouteRejection::bad(format!("malformed JSON body: {e}")))?;
                if let Some(schema) = route.body_schema().filter(|_| !route.checked_in_handler) {
                    schema.check(&json).map_err(RouteRejection::bad)?;
                }
                Some(Value::from(json))
            }
        }
    };
    Ok(RouteRequest {
        path,
        query: typed,
        body,
    })
}

/// The key-value pairs of a query string, decoded, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Parses a path or query value as `kind`.
pub fn parse_param(kind: ParamKind, text: &str) -> Result<Value, String> {
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

/// How many schemas [`check_value`] keeps compiled; past that the cache
/// starts over (plugins check against a handful of constant schemas).
const SCHEMA_CACHE_LIMIT: usize = 256;

/// Checks `value` against `schema` for plugin code (the SDK's
/// `JsonSchema::validate` calls it through its subcontroller): the same
/// validator and messages as [`build_request`]. Compiled schemas are kept,
/// keyed by their JSON text, up to a bound.
///
/// An invalid schema is an error saying so (`invalid JSON Schema: ...`).
pub fn check_value(schema: &Value, value: &Value) -> Result<(), String> {
    static CACHE: Mutex<Option<HashMap<String, Arc<BodySchema>>>> = Mutex::new(None);
    let schema_json = serde_json::Value::from(schema.clone());
    let key = schema_json.to_string();
    let cached = {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.as_ref().and_then(|c| c.get(&key).cloned())
    };
    let compiled = match cached {
        Some(compiled) => compiled,
        None => {
            let compiled = Arc::new(
                BodySchema::compile(&schema_json)
                    .map_err(|e| format!("invalid JSON Schema: {e}"))?,
            );
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            let map = cache.get_or_insert_with(HashMap::new);
            if map.len() >= SCHEMA_CACHE_LIMIT {
                map.clear();
            }
            map.insert(key, Arc::clone(&compiled));
            compiled
        }
    };
    compiled.check(&serde_json::Value::from(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamDesc;
    use serde_json::json;

    #[test]
    fn a_huge_body_gets_a_bounded_list_of_violations() {
        let schema = BodySchema::compile(&json!({
            "type": "object",
            "additionalProperties": {"type": "integer"}
        }))
        .unwrap();
        let long = "x".repeat(10_000);
        let body: serde_json::Map<String, serde_json::Value> =
            (0..1000).map(|i| (format!("k{i}"), json!(long))).collect();
        let err = schema.check(&serde_json::Value::Object(body)).unwrap_err();
        assert!(
            err.ends_with(" (and 980 more)"),
            "{}",
            &err[err.len() - 40..]
        );
        assert!(
            err.len() < 20 * (MAX_PROBLEM_CHARS * 4 + 4) + 100,
            "{}",
            err.len()
        );
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("short".into()), "short");
        let cut = shorten("é".repeat(MAX_PROBLEM_CHARS + 5));
        assert_eq!(cut.chars().count(), MAX_PROBLEM_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    fn route(params: Vec<ParamDesc>) -> Route {
        Route::compile(RouteDesc {
            name: "configure".into(),
            method: "POST".into(),
            summary: String::new(),
            params,
        })
        .unwrap()
    }

    fn body(required: bool, schema: Option<serde_json::Value>) -> ParamDesc {
        ParamDesc {
            name: "body".into(),
            location: ParamLocation::Body,
            kind: ParamKind::Json,
            required,
            default: None,
            schema: schema.map(Value::from),
        }
    }

    fn query(name: &str, kind: ParamKind, required: bool, default: Option<Value>) -> ParamDesc {
        ParamDesc {
            name: name.into(),
            location: ParamLocation::Query,
            kind,
            required,
            default,
            schema: None,
        }
    }

    #[test]
    fn every_violation_is_listed_with_its_pointer() {
        let r = route(vec![body(
            true,
            Some(json!({
                "type": "object",
                "properties": {"vid": {"type": "integer", "minimum": 0}, "pol": {"enum": ["h", "v"]}},
                "required": ["vid", "pol"]
            })),
        )]);
        let err = build_request(&r, None, None, br#"{"vid": -1, "pol": "x"}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("invalid body: "), "{err}");
        assert!(
            err.message
                .contains("/vid: -1 is less than the minimum of 0"),
            "{err}"
        );
        assert!(err.message.contains("/pol: "), "{err}");
        let err = build_request(&r, None, None, b"{}").unwrap_err();
        assert!(
            err.message.contains("\"vid\" is a required property"),
            "{err}"
        );
        let ok = build_request(&r, None, None, br#"{"vid": 3, "pol": "h"}"#).unwrap();
        assert_eq!(ok.body, Some(Value::from(json!({"vid": 3, "pol": "h"}))));
    }

    #[test]
    fn an_invalid_schema_names_the_route() {
        let err = Route::compile(RouteDesc {
            name: "configure".into(),
            method: "POST".into(),
            summary: String::new(),
            params: vec![body(true, Some(json!({"type": 5})))],
        })
        .unwrap_err();
        assert_eq!(err.route, "configure");
        let text = err.to_string();
        assert!(
            text.starts_with("route \"configure\": the body schema is not valid JSON Schema"),
            "{text}"
        );
    }

    #[test]
    fn bodies_missing_malformed_or_ignored() {
        let required = route(vec![body(true, None)]);
        let err = build_request(&required, None, None, b"  \n").unwrap_err();
        assert_eq!(err.message, "route \"configure\" needs a JSON body");
        let err = build_request(&required, None, None, b"{nope").unwrap_err();
        assert!(err.message.starts_with("malformed JSON body: "), "{err}");
        let optional = route(vec![body(false, Some(json!({"type": "object"})))]);
        assert_eq!(
            build_request(&optional, None, None, b"").unwrap().body,
            None
        );
        let none = route(vec![]);
        assert_eq!(
            build_request(&none, None, None, b"{not json").unwrap().body,
            None
        );
    }

    #[test]
    fn query_and_path_parameters_are_typed() {
        let r = route(vec![
            query("n", ParamKind::Int, true, None),
            query("f", ParamKind::Bool, false, Some(Value::Bool(true))),
        ]);
        let req = build_request(&r, None, Some("n=1&n=7"), b"").unwrap();
        assert_eq!(req.query.get("n"), Some(&Value::Int(7)));
        assert_eq!(req.query.get("f"), Some(&Value::Bool(true)));
        let err = build_request(&r, None, Some("n=x"), b"").unwrap_err();
        assert_eq!(
            err.message,
            "query parameter \"n\" of route \"configure\": expected an integer, found \"x\""
        );
        let err = build_request(&r, None, None, b"").unwrap_err();
        assert_eq!(
            err.message,
            "route \"configure\" needs query parameter \"n\""
        );
        let err = build_request(&r, Some("3"), Some("n=1"), b"").unwrap_err();
        assert_eq!(err.status, 404);
    }

    #[test]
    fn check_value_uses_the_same_validator() {
        let schema = Value::from(json!({"type": "object", "properties": {"x": {"maximum": 1}}}));
        let err = check_value(&schema, &Value::from(json!({"x": 2}))).unwrap_err();
        assert_eq!(err, "invalid body: /x: 2 is greater than the maximum of 1");
        assert!(check_value(&schema, &Value::from(json!({"x": 1}))).is_ok());
        let err = check_value(&Value::from(json!({"type": 5})), &Value::Null).unwrap_err();
        assert!(err.starts_with("invalid JSON Schema: "), "{err}");
    }
}

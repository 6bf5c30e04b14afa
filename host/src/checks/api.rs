//! Checks of an api route table.
//!
//! A block's routes are served at `/<block>/<name>`, keyed by name as in the
//! original engine, so a route name is a URL segment and must be unique
//! whatever the method. Routes are named in messages as
//! `route "configure" (POST)`.

use std::collections::HashMap;

use crate::model::{ParamDesc, ParamKind, ParamLocation, RouteDesc};
use bitstream_sdk::{Method, Value};

use crate::report::Problem;

/// Route names the host serves itself under every block.
pub const RESERVED_ROUTE_NAMES: [&str; 3] = ["state", "diagram", "buffer"];

/// Checks a block's route table.
///
/// Errors: an empty name; a name that is not a valid URL segment (only
/// ASCII letters, digits, `_`, `-`, `.` and `~`; not `.` or `..`); two
/// routes with the same name (even with different methods); a name the host
/// reserves ([`RESERVED_ROUTE_NAMES`]); a method that is not one of
/// [`Method::NAMES`]; more than one path or body parameter; two parameters
/// with the same name; a path or query parameter with an empty name; a body
/// that is not of kind `Json`; a path or query parameter of kind `Json`; a
/// default whose type does not fit the parameter's kind (an integer default
/// fits a `Float`).
///
/// Warnings: a required parameter with a default (it is never used); a
/// body on a `GET` route.
pub fn check_routes(routes: &[RouteDesc]) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Name -> index of the first route with it.
    let mut first_by_name: HashMap<&str, usize> = HashMap::new();

    for (i, route) in routes.iter().enumerate() {
        let name = route.name.as_str();
        let id = describe_route(i, route);

        if name.is_empty() {
            problems.push(Problem::error(format!(
                "{id} has an empty name; give it a name, which is its URL segment (/<block>/<name>)"
            )));
        } else if name == "." || name == ".." {
            problems.push(Problem::error(format!(
                "{id}: \"{name}\" is not a valid URL segment (it navigates the path); use only ASCII letters, digits, '_', '-', '.' and '~'"
            )));
        } else if let Some(bad) = invalid_chars(name) {
            problems.push(Problem::error(format!(
                "{id}: the name is not a valid URL segment: {bad} not allowed; use only ASCII letters, digits, '_', '-', '.' and '~'"
            )));
        }

        if !name.is_empty() {
            match first_by_name.get(name) {
                Some(&first) => {
                    let other = routes
                        .get(first)
                        .map(|r| describe_route(first, r))
                        .unwrap_or_default();
                    problems.push(Problem::error(format!(
                        "{id} has the same name as {other}: routes are served at /<block>/<name> whatever their method, so names must be unique; rename one of them"
                    )));
                }
                None => {
                    first_by_name.insert(name, i);
                }
            }
        }

        if RESERVED_ROUTE_NAMES.contains(&name) {
            problems.push(Problem::error(format!(
                "{id}: the name \"{name}\" is reserved: the host serves /<block>/{name} for every block; rename the route"
            )));
        }

        let method = route.method.as_str();
        if !Method::NAMES.contains(&method) {
            let upper = method.to_ascii_uppercase();
            if Method::NAMES.contains(&upper.as_str()) {
                problems.push(Problem::error(format!(
                    "{id}: method \"{method}\" must be upper case: write \"{upper}\""
                )));
            } else {
                problems.push(Problem::error(format!(
                    "{id}: method \"{method}\" is not supported; use one of {}",
                    Method::NAMES.join(", ")
                )));
            }
        }

        check_params(&id, route, &mut problems);
    }
    problems
}

/// The per-parameter rules of one route.
fn check_params(id: &str, route: &RouteDesc, problems: &mut Vec<Problem>) {
    let params: &[ParamDesc] = &route.params;

    for (location, what) in [
        (ParamLocation::Path, "path parameters"),
        (ParamLocation::Body, "body parameters"),
    ] {
        let names: Vec<String> = params
            .iter()
            .filter(|p| p.location == location)
            .map(|p| format!("\"{}\"", p.name))
            .collect();
        if names.len() > 1 {
            let hint = match location {
                ParamLocation::Path => "/<block>/<route>/<value>",
                _ => "one JSON request body",
            };
            problems.push(Problem::error(format!(
                "{id} has {} {what} ({}); a route takes at most one ({hint}): keep one and remove the others",
                names.len(),
                names.join(", ")
            )));
        }
    }

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in params {
        *counts.entry(p.name.as_str()).or_insert(0) += 1;
    }
    let mut reported: Vec<&str> = Vec::new();

    for (k, p) in params.iter().enumerate() {
        let name = p.name.as_str();
        let what = location_name(p.location);

        if name.is_empty() {
            if p.location != ParamLocation::Body {
                problems.push(Problem::error(format!(
                    "{id}: {what} #{} has an empty name; give it a name",
                    k + 1
                )));
            }
        } else if counts.get(name).copied().unwrap_or(0) > 1 && !reported.contains(&name) {
            reported.push(name);
            problems.push(Problem::error(format!(
                "{id} declares parameter \"{name}\" {} times; give each parameter a distinct name",
                counts.get(name).copied().unwrap_or(0)
            )));
        }

        match (p.location, p.kind) {
            (ParamLocation::Body, ParamKind::Json) => {}
            (ParamLocation::Body, kind) => problems.push(Problem::error(format!(
                "{id}: body parameter \"{name}\" has kind {kind:?}; a body must be of kind Json (constrain it with a JSON Schema instead)"
            ))),
            (_, ParamKind::Json) => problems.push(Problem::error(format!(
                "{id}: {what} \"{name}\" has kind Json; {what}s must be of kind Bool, Int, Float or String (use a body for JSON)"
            ))),
            _ => {}
        }

        if let Some(default) = p.default.as_ref() {
            if !default_fits(p.kind, default) {
                problems.push(Problem::error(format!(
                    "{id}: {what} \"{name}\" has kind {:?} but its default {default} is {}; give it a default of kind {:?}",
                    p.kind,
                    article_kind(default),
                    p.kind
                )));
            }
            if p.required {
                problems.push(Problem::warning(format!(
                    "{id}: {what} \"{name}\" is required and has a default, which is never used; make it optional or remove the default"
                )));
            }
        }

        if p.location == ParamLocation::Body && route.method.as_str() == "GET" {
            problems.push(Problem::warning(format!(
                "{id} takes a body, but clients and proxies may drop the body of a GET; use POST or query parameters"
            )));
        }
    }
}

/// `route "configure" (POST)`, or `route #3 (POST)` when the name is empty.
fn describe_route(index: usize, route: &RouteDesc) -> String {
    let method = if route.method.is_empty() {
        "no method"
    } else {
        route.method.as_str()
    };
    if route.name.is_empty() {
        format!("route #{} ({method})", index + 1)
    } else {
        format!("route \"{}\" ({method})", route.name)
    }
}

/// The characters of `name` that may not appear in a route name, described
/// for a message (`'/' is`, `' ', '?' are`), or `None` when all are allowed.
fn invalid_chars(name: &str) -> Option<String> {
    let mut bad: Vec<char> = Vec::new();
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~');
        if !ok && !bad.contains(&c) {
            bad.push(c);
        }
    }
    match bad.len() {
        0 => None,
        1 => Some(format!("{:?} is", bad[0])),
        _ => Some(format!(
            "{} are",
            bad.iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether a default value fits a parameter kind.
fn default_fits(kind: ParamKind, default: &Value) -> bool {
    matches!(
        (kind, default),
        (ParamKind::Json, _)
            | (ParamKind::Bool, Value::Bool(_))
            | (ParamKind::Int, Value::Int(_))
            | (ParamKind::Float, Value::Int(_) | Value::Float(_))
            | (ParamKind::String, Value::Str(_))
    )
}

/// `an integer`, `a string`, ...
fn article_kind(value: &Value) -> String {
    let kind = value.kind_name();
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}

/// `path parameter`, `query parameter`, `body parameter`.
fn location_name(location: ParamLocation) -> &'static str {
    match location {
        ParamLocation::Path => "path parameter",
        ParamLocation::Query => "query parameter",
        ParamLocation::Body => "body parameter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Severity;
    use bitstream_sdk::{Api, Response, Route};

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Block;

    /// The routes common to the nine real blocks.
    fn real_routes() -> Vec<RouteDesc> {
        Api::<Block>::new()
            .route(Route::post("configure", |_: &mut Block, _, _| Ok(Response::ok())).body())
            .route(Route::post("deconfigure", |_: &mut Block, _, _| Ok(Response::ok())).body())
            .route(Route::post("recover", |_: &mut Block, _, _| {
                Ok(Response::ok())
            }))
            .route(Route::post("start", |_: &mut Block, _, _| Ok(Response::ok())).body())
            .route(Route::post("stop", |_: &mut Block, _, _| Ok(Response::ok())).body())
            .route(
                Route::get("status", |_: &mut Block, _, _| Ok(Response::ok())).query(
                    "clear",
                    bitstream_sdk::ParamKind::Bool,
                    false,
                ),
            )
            .describe()
            .into_iter()
            .map(Into::into)
            .collect()
    }

    fn route(name: &str, method: &str, params: Vec<ParamDesc>) -> RouteDesc {
        RouteDesc {
            name: String::from(name),
            method: String::from(method),
            summary: String::new(),
            params,
        }
    }

    fn param(name: &str, location: ParamLocation, kind: ParamKind) -> ParamDesc {
        ParamDesc {
            name: String::from(name),
            location,
            kind,
            required: false,
            default: None,
            schema: None,
        }
    }

    fn with_default(mut p: ParamDesc, default: impl Into<Value>) -> ParamDesc {
        p.default = Some(default.into());
        p
    }

    #[track_caller]
    fn assert_one(routes: &[RouteDesc], severity: Severity, fragment: &str) {
        let problems = check_routes(routes);
        let matching: Vec<&Problem> = problems.iter().filter(|p| p.severity == severity).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected one {severity:?}, got {problems:#?}"
        );
        assert!(
            matching[0].message.contains(fragment),
            "{:?} does not contain {fragment:?}",
            matching[0].message
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
    }

    #[test]
    fn real_routes_have_no_problems() {
        assert_eq!(check_routes(&real_routes()), []);
        assert_eq!(check_routes(&[]), []);
    }

    #[test]
    fn empty_name() {
        assert_one(
            &[route("", "POST", vec![])],
            Severity::Error,
            "route #1 (POST) has an empty name; give it a name, which is its URL segment",
        );
    }

    #[test]
    fn invalid_segment() {
        assert_one(
            &[route("set/gain", "POST", vec![])],
            Severity::Error,
            "route \"set/gain\" (POST): the name is not a valid URL segment: '/' is not allowed; use only ASCII letters, digits, '_', '-', '.' and '~'",
        );
        assert_one(
            &[route("a b?", "GET", vec![])],
            Severity::Error,
            "' ', '?' are not allowed",
        );
        assert_one(
            &[route("é", "GET", vec![])],
            Severity::Error,
            "'é' is not allowed",
        );
        assert_eq!(check_routes(&[route("A-z_0.9~", "GET", vec![])]), []);
    }

    #[test]
    fn dot_segments() {
        assert_one(
            &[route("..", "GET", vec![])],
            Severity::Error,
            "route \"..\" (GET): \"..\" is not a valid URL segment (it navigates the path)",
        );
        assert_one(
            &[route(".", "GET", vec![])],
            Severity::Error,
            "\".\" is not a valid URL segment",
        );
    }

    #[test]
    fn duplicate_name_even_with_another_method() {
        assert_one(
            &[route("status", "GET", vec![]), route("status", "POST", vec![])],
            Severity::Error,
            "route \"status\" (POST) has the same name as route \"status\" (GET): routes are served at /<block>/<name> whatever their method, so names must be unique; rename one of them",
        );
    }

    #[test]
    fn reserved_names() {
        for name in RESERVED_ROUTE_NAMES {
            assert_one(
                &[route(name, "GET", vec![])],
                Severity::Error,
                &format!("route \"{name}\" (GET): the name \"{name}\" is reserved: the host serves /<block>/{name} for every block; rename the route"),
            );
        }
    }

    #[test]
    fn unknown_method() {
        assert_one(
            &[route("x", "FETCH", vec![])],
            Severity::Error,
            "route \"x\" (FETCH): method \"FETCH\" is not supported; use one of GET, POST, PUT, PATCH, DELETE",
        );
        assert_one(
            &[route("x", "post", vec![])],
            Severity::Error,
            "method \"post\" must be upper case: write \"POST\"",
        );
        assert_one(
            &[route("x", "", vec![])],
            Severity::Error,
            "route \"x\" (no method): method \"\"",
        );
    }

    #[test]
    fn two_path_params() {
        assert_one(
            &[route(
                "gain",
                "GET",
                vec![
                    param("pol", ParamLocation::Path, ParamKind::Int),
                    param("channel", ParamLocation::Path, ParamKind::Int),
                ],
            )],
            Severity::Error,
            "route \"gain\" (GET) has 2 path parameters (\"pol\", \"channel\"); a route takes at most one (/<block>/<route>/<value>)",
        );
    }

    #[test]
    fn two_bodies() {
        assert_one(
            &[route(
                "configure",
                "POST",
                vec![
                    param("a", ParamLocation::Body, ParamKind::Json),
                    param("b", ParamLocation::Body, ParamKind::Json),
                ],
            )],
            Severity::Error,
            "route \"configure\" (POST) has 2 body parameters (\"a\", \"b\"); a route takes at most one (one JSON request body)",
        );
    }

    #[test]
    fn duplicate_param_names() {
        assert_one(
            &[route(
                "status",
                "GET",
                vec![
                    param("clear", ParamLocation::Query, ParamKind::Bool),
                    param("clear", ParamLocation::Query, ParamKind::Bool),
                ],
            )],
            Severity::Error,
            "route \"status\" (GET) declares parameter \"clear\" 2 times; give each parameter a distinct name",
        );
    }

    #[test]
    fn empty_param_name() {
        assert_one(
            &[route(
                "status",
                "GET",
                vec![param("", ParamLocation::Query, ParamKind::Bool)],
            )],
            Severity::Error,
            "route \"status\" (GET): query parameter #1 has an empty name",
        );
    }

    #[test]
    fn body_not_json() {
        assert_one(
            &[route("configure", "POST", vec![param("body", ParamLocation::Body, ParamKind::Int)])],
            Severity::Error,
            "route \"configure\" (POST): body parameter \"body\" has kind Int; a body must be of kind Json",
        );
    }

    #[test]
    fn query_or_path_json() {
        assert_one(
            &[route("status", "GET", vec![param("filter", ParamLocation::Query, ParamKind::Json)])],
            Severity::Error,
            "route \"status\" (GET): query parameter \"filter\" has kind Json; query parameters must be of kind Bool, Int, Float or String",
        );
        assert_one(
            &[route(
                "gain",
                "GET",
                vec![param("id", ParamLocation::Path, ParamKind::Json)],
            )],
            Severity::Error,
            "route \"gain\" (GET): path parameter \"id\" has kind Json; path parameters must be",
        );
    }

    #[test]
    fn default_kind_mismatch() {
        assert_one(
            &[route(
                "status",
                "GET",
                vec![with_default(param("clear", ParamLocation::Query, ParamKind::Bool), 0)],
            )],
            Severity::Error,
            "route \"status\" (GET): query parameter \"clear\" has kind Bool but its default 0 is an integer; give it a default of kind Bool",
        );
        assert_one(
            &[route(
                "status",
                "GET",
                vec![with_default(
                    param("n", ParamLocation::Query, ParamKind::Int),
                    1.5,
                )],
            )],
            Severity::Error,
            "has kind Int but its default 1.5 is a float",
        );
        assert_one(
            &[route(
                "status",
                "GET",
                vec![with_default(
                    param("s", ParamLocation::Query, ParamKind::String),
                    true,
                )],
            )],
            Severity::Error,
            "has kind String but its default true is a bool",
        );
    }

    #[test]
    fn matching_defaults_are_fine() {
        let routes = [route(
            "status",
            "GET",
            vec![
                with_default(param("a", ParamLocation::Query, ParamKind::Float), 3),
                with_default(param("b", ParamLocation::Query, ParamKind::Float), 0.5),
                with_default(param("c", ParamLocation::Query, ParamKind::Int), 2),
                with_default(param("d", ParamLocation::Query, ParamKind::Bool), false),
                with_default(param("e", ParamLocation::Query, ParamKind::String), "x"),
            ],
        )];
        assert_eq!(check_routes(&routes), []);
    }

    #[test]
    fn required_with_default_warns() {
        let mut p = with_default(param("clear", ParamLocation::Query, ParamKind::Bool), false);
        p.required = true;
        assert_one(
            &[route("status", "GET", vec![p])],
            Severity::Warning,
            "route \"status\" (GET): query parameter \"clear\" is required and has a default, which is never used",
        );
    }

    #[test]
    fn body_on_get_warns() {
        assert_one(
            &[route("status", "GET", vec![param("body", ParamLocation::Body, ParamKind::Json)])],
            Severity::Warning,
            "route \"status\" (GET) takes a body, but clients and proxies may drop the body of a GET",
        );
    }
}

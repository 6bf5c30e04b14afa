//! From a request line (`<route>[/<path value>][?<query>]`, a method and
//! body bytes) to the route to call and its request: the route is looked
//! up by name and method as the HTTP server does (404, 405), then
//! `bitstream_host::route::build_request` (the host's one implementation)
//! parses and types the path value and the query, and parses the body and
//! checks it against the route's compiled JSON Schema.

use bitstream_host::model::RouteRequest;
use bitstream_host::route::{build_request, Route};

use crate::Response;

/// The route index and request for `method` `target` with `body`, or the
/// error response the HTTP API would send.
pub(crate) fn dispatch(
    block: &str,
    routes: &[Route],
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
        Some((name, value)) => (name, Some(value)),
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
    let route = &routes[index];
    if !route.method.eq_ignore_ascii_case(method) {
        return Err(Response::error_with(
            405,
            format!(
                "route \"{name}\" of block \"{block}\" takes {}, not {method}",
                route.method
            ),
        ));
    }
    build_request(route, path_value, query, body)
        .map(|request| (index, request))
        .map_err(|rejection| Response::error_with(rejection.status, rejection.message))
}

//! The api component: HTTP routes served at `/<block_id>/<route>`.
//!
//! The host parses the URL, the query string and the JSON body, checks them
//! against the route's declared parameters (answering 400 itself when they
//! do not fit), and calls the handler with typed values.
//!
//! ```
//! use bitstream_sdk::{Api, ParamKind, Request, Response, Route};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Shifter { shift_frequency: f64 }
//!
//! #[derive(serde::Deserialize)]
//! struct Configure { shift_frequency: f64 }
//!
//! let api = Api::<Shifter>::new()
//!     .route(Route::post("configure", |block: &mut Shifter, _ctx, req: Request| {
//!         let body: Configure = req.json()?;
//!         block.shift_frequency = body.shift_frequency;
//!         Ok(Response::ok())
//!     }).body())
//!     .route(Route::get("status", |block: &mut Shifter, _ctx, _req| {
//!         Ok(Response::json(&*block))
//!     }).query("clear", ParamKind::Bool, false));
//! assert_eq!(api.describe()[1].name.as_str(), "status");
//! ```

use abi_stable::std_types::{ROption, RString};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::ffi::{ParamDesc, ParamKind, ParamLocation, RouteDesc};
use crate::ffi::{RouteRequest, RouteResponse};
use crate::subcontroller::Subcontroller;
use crate::value::{Value, ValueMap};
use crate::Error;

/// A route handler: the block, its subcontroller and the request in; a
/// response or an error (which becomes its HTTP status) out.
pub type Handler<B> =
    Box<dyn Fn(&mut B, &Subcontroller<'_, B>, Request) -> Result<Response, Error> + Send + Sync>;

/// HTTP methods a route may use.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// Every supported method, as the upper-case names used on the wire.
    pub const NAMES: [&'static str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The routes of one block type.
pub struct Api<B> {
    routes: Vec<Route<B>>,
}

impl<B> Default for Api<B> {
    fn default() -> Self {
        Api { routes: Vec::new() }
    }
}

impl<B> Api<B> {
    /// An api with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route.
    pub fn route(mut self, route: Route<B>) -> Self {
        self.routes.push(route);
        self
    }

    /// The routes as data, in the order they were added.
    pub fn describe(&self) -> Vec<RouteDesc> {
        self.routes.iter().map(|r| r.desc.clone()).collect()
    }

    pub(crate) fn into_parts(self) -> (Vec<RouteDesc>, Vec<Handler<B>>) {
        self.routes.into_iter().map(|r| (r.desc, r.handler)).unzip()
    }
}

/// One route: a method, a name (its URL segment), parameters and a handler.
pub struct Route<B> {
    desc: RouteDesc,
    handler: Handler<B>,
}

impl<B> Route<B> {
    /// A route with any method.
    pub fn new(
        method: Method,
        name: impl Into<String>,
        handler: impl Fn(&mut B, &Subcontroller<'_, B>, Request) -> Result<Response, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Route {
            desc: RouteDesc {
                name: RString::from(name.into()),
                method: RString::from(method.as_str()),
                summary: RString::new(),
                params: Default::default(),
            },
            handler: Box::new(handler),
        }
    }

    /// A `GET` route.
    pub fn get(
        name: impl Into<String>,
        handler: impl Fn(&mut B, &Subcontroller<'_, B>, Request) -> Result<Response, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self::new(Method::Get, name, handler)
    }

    /// A `POST` route. Other methods: [`Route::new`].
    pub fn post(
        name: impl Into<String>,
        handler: impl Fn(&mut B, &Subcontroller<'_, B>, Request) -> Result<Response, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self::new(Method::Post, name, handler)
    }

    /// One sentence shown in listings and OpenAPI.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.desc.summary = RString::from(summary.into());
        self
    }

    /// Declares the path parameter: `/<block>/<route>/<value>`. Requests
    /// without it still reach the handler, with [`Request::path_param`]
    /// `None`.
    pub fn path_param(self, name: impl Into<String>, kind: ParamKind) -> Self {
        self.param(name, ParamLocation::Path, kind, false, None)
    }

    /// Declares an optional query parameter with a default.
    pub fn query(
        self,
        name: impl Into<String>,
        kind: ParamKind,
        default: impl Into<Value>,
    ) -> Self {
        self.param(
            name,
            ParamLocation::Query,
            kind,
            false,
            Some(default.into()),
        )
    }

    /// Declares a query parameter that must be given.
    pub fn required_query(self, name: impl Into<String>, kind: ParamKind) -> Self {
        self.param(name, ParamLocation::Query, kind, true, None)
    }

    /// Declares an optional JSON body.
    pub fn body(self) -> Self {
        self.param("body", ParamLocation::Body, ParamKind::Json, false, None)
    }

    /// Declares a JSON body that must be given and must satisfy `schema`
    /// (a JSON Schema, draft 2020-12, published in the OpenAPI
    /// description). Since SDK 1.2 the host checks it: it compiles the
    /// schema once when it loads the plugin (an invalid schema fails
    /// `validate-bitstream` and `run`, naming the route), and answers 400
    /// to a body that breaks it, listing every violation with its JSON
    /// pointer, without calling the handler. The handler reads the body
    /// with [`Request::json`].
    ///
    /// ```
    /// use bitstream_sdk::prelude::*;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Block { gain: f64 }
    /// #[derive(serde::Deserialize)]
    /// struct Configure { gain: f64 }
    ///
    /// let route = Route::post("configure", |block: &mut Block, _ctx, req: Request| {
    ///     let body: Configure = req.json()?; // already checked by the host
    ///     block.gain = body.gain;
    ///     Ok(Response::ok())
    /// })
    /// .body_with_schema(serde_json::json!({
    ///     "type": "object",
    ///     "properties": {"gain": {"type": "number", "minimum": 0, "maximum": 6}},
    ///     "required": ["gain"],
    /// }));
    /// # let _ = route;
    /// ```
    pub fn body_with_schema(mut self, schema: serde_json::Value) -> Self {
        self = self.param("body", ParamLocation::Body, ParamKind::Json, true, None);
        if let Some(last) = self.desc.params.last_mut() {
            last.schema = ROption::RSome(Value::from(schema));
        }
        self
    }

    /// Like [`body_with_schema`](Route::body_with_schema), but the host
    /// does not refuse a body that breaks the schema: the handler checks
    /// it itself, at the moment it chooses, with
    /// [`JsonSchema::validate`](crate::JsonSchema::validate) (which asks
    /// the host's validator). For handlers whose answer to a bad body
    /// depends on the block (for example: fire a trigger first, then refuse
    /// the body and fire another). The schema is published as given, with
    /// the key [`CHECKED_IN_HANDLER`](crate::schema::CHECKED_IN_HANDLER)
    /// set to `true`; the host still compiles it when it loads the plugin.
    /// Since SDK 1.2.
    ///
    /// ```
    /// use bitstream_sdk::prelude::*;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Block;
    /// let route = Route::post("configure", |_b: &mut Block, _ctx, _req: Request| Ok(Response::ok()))
    ///     .body_with_schema_checked_in_handler(serde_json::json!({"type": "object"}));
    /// # let _ = route;
    /// ```
    pub fn body_with_schema_checked_in_handler(self, mut schema: serde_json::Value) -> Self {
        if let Some(map) = schema.as_object_mut() {
            map.insert(
                crate::schema::CHECKED_IN_HANDLER.to_owned(),
                serde_json::Value::Bool(true),
            );
        }
        self.body_with_schema(schema)
    }

    fn param(
        mut self,
        name: impl Into<String>,
        location: ParamLocation,
        kind: ParamKind,
        required: bool,
        default: Option<Value>,
    ) -> Self {
        self.desc.params.push(ParamDesc {
            name: RString::from(name.into()),
            location,
            kind,
            required,
            default: default.into(),
            schema: ROption::RNone,
        });
        self
    }
}

/// A parsed route call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    path: Option<String>,
    query: ValueMap,
    body: Option<Value>,
}

impl Request {
    /// A request, as the host builds it. Useful in unit tests of handlers.
    pub fn new(path: Option<String>, query: ValueMap, body: Option<Value>) -> Self {
        Request { path, query, body }
    }

    /// The path parameter, when given.
    pub fn path_param(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// A query parameter (declared ones always have a value: the given one
    /// or the default).
    pub fn query(&self, name: &str) -> Option<&Value> {
        self.query.get(name)
    }

    /// All query parameters.
    pub fn query_params(&self) -> &ValueMap {
        &self.query
    }

    /// The JSON body, if one was sent.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The body as a typed value; a missing body or one that does not fit
    /// `T` is a 400 error naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match &self.body {
            Some(body) => Ok(body.deserialize_into()?),
            None => Err(Error::bad_request("this route needs a JSON body")),
        }
    }
}

impl From<RouteRequest> for Request {
    fn from(req: RouteRequest) -> Self {
        Request {
            path: req.path.into_option().map(RString::into_string),
            query: req.query,
            body: req.body.into_option(),
        }
    }
}

/// What a route answers: a status and an optional JSON body.
///
/// ```
/// use bitstream_sdk::Response;
///
/// assert_eq!(Response::ok().status(), 200);
/// assert_eq!(Response::accepted().status(), 202);
/// let r = Response::json(&serde_json::json!({"current_state": "LINK"}));
/// assert_eq!(r.body().unwrap().get("current_state").unwrap().as_str(), Some("LINK"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    status: u16,
    body: Option<Value>,
}

impl Response {
    /// 200 with no body.
    pub fn ok() -> Self {
        Self::with_status(200)
    }

    /// 202 Accepted: work was scheduled with `delay_action`.
    pub fn accepted() -> Self {
        Self::with_status(202)
    }

    /// Any status, no body.
    pub fn with_status(status: u16) -> Self {
        Response { status, body: None }
    }

    /// 200 with `body` serialized to JSON. A type that cannot be serialized
    /// gives a 500 that says why.
    pub fn json<T: Serialize + ?Sized>(body: &T) -> Self {
        match Value::from_serialize(body) {
            Ok(value) => Response::ok().with_body(value),
            Err(err) => Response::with_status(500).with_body(Value::from(format!(
                "response body could not be serialized: {err}"
            ))),
        }
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Value>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }
}

impl From<Response> for RouteResponse {
    fn from(r: Response) -> Self {
        RouteResponse {
            status: r.status,
            body: r.body.into(),
        }
    }
}

//! What a route answered, as a client of the HTTP API would see it.

use serde_json::Value as Json;

/// A route's answer: the HTTP status and the JSON body (errors are
/// `{"error": "..."}`, as the HTTP API sends them).
///
/// ```
/// use bitstream_testkit::example::Lamp;
/// use bitstream_testkit::Harness;
/// use serde_json::json;
///
/// let mut h = Harness::<Lamp>::new();
/// let r = h.get("status");
/// assert_eq!(r.status(), 200);
/// assert_eq!(r.json()["state"], "OFF");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    status: u16,
    body: Option<Json>,
}

impl Response {
    /// A response with `status` and `body`.
    ///
    /// ```
    /// let r = bitstream_testkit::Response::new(404, Some(serde_json::json!({"error": "no"})));
    /// assert_eq!(r.error(), Some("no"));
    /// ```
    pub fn new(status: u16, body: Option<Json>) -> Self {
        Response { status, body }
    }

    /// An error response: `{"error": message}`.
    ///
    /// ```
    /// let r = bitstream_testkit::Response::error_with(400, "bad");
    /// assert_eq!((r.status(), r.error()), (400, Some("bad")));
    /// ```
    pub fn error_with(status: u16, message: impl Into<String>) -> Self {
        Response::new(status, Some(serde_json::json!({ "error": message.into() })))
    }

    /// The HTTP status.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.post("nothing", serde_json::json!({})).status(), 404);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The JSON body, `null` when there is none.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.get("status").json()["brightness"], 0);
    /// assert!(h.post("refresh", serde_json::json!({})).json().is_null());
    /// ```
    pub fn json(&self) -> Json {
        self.body.clone().unwrap_or(Json::Null)
    }

    /// The JSON body, if there is one.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert!(h.get("status").body().is_some());
    /// ```
    pub fn body(&self) -> Option<&Json> {
        self.body.as_ref()
    }

    /// The message of an error response (`{"error": "..."}`), if it is one.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// let r = h.post("dim/500", serde_json::json!({}));
    /// assert_eq!(r.error(), Some("level 500 is above max_brightness 100"));
    /// ```
    pub fn error(&self) -> Option<&str> {
        self.body.as_ref()?.get("error")?.as_str()
    }

    /// Whether the status is 2xx.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert!(h.get("status").is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

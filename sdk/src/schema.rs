//! JSON Schema (draft 2020-12) checks of request bodies.
//!
//! Build a [`JsonSchema`] once, when the api is built, and check bodies in
//! the handler. A failure is a 400 [`Error`] whose message lists every
//! violation with where it is, for example
//! `/expected_dish_band: 9 is greater than the maximum of 6`.
//!
//! ```
//! use bitstream_sdk::schema::JsonSchema;
//! use bitstream_sdk::Value;
//!
//! let schema = JsonSchema::new(serde_json::json!({
//!     "type": "object",
//!     "properties": {"shift_frequency": {"type": "number", "minimum": -1e8, "maximum": 1e8}},
//!     "required": ["shift_frequency"],
//! })).unwrap();
//! let good: Value = serde_json::from_str(r#"{"shift_frequency": 0.0}"#).unwrap();
//! assert!(schema.validate(&good).is_ok());
//! let bad: Value = serde_json::from_str(r#"{"shift_frequency": 2e8}"#).unwrap();
//! let err = schema.validate(&bad).unwrap_err();
//! assert_eq!(err.status(), 400);
//! assert!(err.message().contains("/shift_frequency"), "{err}");
//! ```

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::api::Request;
use crate::value::Value;
use crate::Error;

/// Why a JSON Schema could not be compiled.
///
/// It reads as the message it carries (it dereferences to `str` and
/// converts into `String`), so code written when
/// [`JsonSchema::new`] returned `Result<_, String>` still compiles.
///
/// ```
/// use bitstream_sdk::schema::JsonSchema;
///
/// let err = JsonSchema::new(serde_json::json!({"type": 5})).err().unwrap();
/// assert!(err.starts_with("invalid JSON Schema: "), "{err}");
/// let message: String = err.into();
/// assert!(message.contains("5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    message: String,
}

impl std::ops::Deref for SchemaError {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl From<SchemaError> for String {
    fn from(err: SchemaError) -> String {
        err.message
    }
}

/// A compiled JSON Schema. Cheap to clone.
#[derive(Clone)]
pub struct JsonSchema {
    validator: Arc<jsonschema::Validator>,
    source: Arc<serde_json::Value>,
}

impl JsonSchema {
    /// Compiles `schema` (draft 2020-12); an invalid schema is an error
    /// that says why.
    pub fn new(schema: serde_json::Value) -> Result<Self, SchemaError> {
        let validator = jsonschema::draft202012::new(&schema).map_err(|e| SchemaError {
            message: format!("invalid JSON Schema: {e}"),
        })?;
        Ok(JsonSchema {
            validator: Arc::new(validator),
            source: Arc::new(schema),
        })
    }

    /// The schema as given (publish it with
    /// [`Route::body_with_schema`](crate::Route::body_with_schema)).
    pub fn source(&self) -> &serde_json::Value {
        &self.source
    }

    /// Checks `value`; the violations are listed in the 400 error (the
    /// first 20, each cut to 300 characters, so that a huge body never
    /// makes a huge answer).
    pub fn validate(&self, value: &Value) -> Result<(), Error> {
        let instance = serde_json::Value::from(value.clone());
        let mut problems: Vec<String> = Vec::new();
        let mut more = 0usize;
        for e in self.validator.iter_errors(&instance) {
            if problems.len() == MAX_LISTED_PROBLEMS {
                more += 1;
                continue;
            }
            let at = e.instance_path.to_string();
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
        Err(Error::bad_request(message))
    }
}

/// Violations listed in one error by [`JsonSchema::validate`].
const MAX_LISTED_PROBLEMS: usize = 20;

/// The longest violation message [`JsonSchema::validate`] lists, in
/// characters (a message quoting a huge value is cut, with `…`).
const MAX_PROBLEM_CHARS: usize = 300;

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_PROBLEM_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.source).finish()
    }
}

impl Request {
    /// The body, checked against `schema`, then as a typed value. A missing
    /// body is checked as `{}` (clients send `{}` for "no settings").
    ///
    /// ```
    /// use bitstream_sdk::schema::JsonSchema;
    /// use bitstream_sdk::{Request, Value, ValueMap};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Configure { vid: u32 }
    ///
    /// let schema = JsonSchema::new(serde_json::json!({
    ///     "type": "object", "properties": {"vid": {"type": "number"}}, "required": ["vid"]
    /// })).unwrap();
    /// let body: Value = serde_json::from_str(r#"{"vid": 1}"#).unwrap();
    /// let req = Request::new(None, ValueMap::new(), Some(body));
    /// assert_eq!(req.json_checked::<Configure>(&schema).unwrap().vid, 1);
    /// let empty = Request::new(None, ValueMap::new(), None);
    /// assert!(empty.json_checked::<Configure>(&schema).unwrap_err().message().contains("\"vid\" is a required property"));
    /// ```
    pub fn json_checked<T: DeserializeOwned>(&self, schema: &JsonSchema) -> Result<T, Error> {
        let empty = Value::Map(Default::default());
        let body = self.body().unwrap_or(&empty);
        schema.validate(body)?;
        Ok(body.deserialize_into()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_body_makes_a_short_error() {
        let schema = JsonSchema::new(serde_json::json!({
            "type": "object",
            "required": ["x"],
            "not": {"required": ["k0"]},
            "additionalProperties": {"type": "string"},
        }))
        .unwrap();
        let body: Value = (0..100_000).map(|i| (format!("k{i}"), i)).collect();
        let err = schema.validate(&body).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"x\" is a required property"),
            "{message}"
        );
        assert!(message.contains("more)"), "{message}");
        assert!(message.len() < 10_000, "{} bytes", message.len());
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("short".into()), "short");
        let long = "é".repeat(MAX_PROBLEM_CHARS + 5);
        let cut = shorten(long);
        assert_eq!(cut.chars().count(), MAX_PROBLEM_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}

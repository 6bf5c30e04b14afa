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

    /// Checks `value`; every violation is listed in the 400 error.
    pub fn validate(&self, value: &Value) -> Result<(), Error> {
        let instance = serde_json::Value::from(value.clone());
        let problems: Vec<String> = self
            .validator
            .iter_errors(&instance)
            .map(|e| {
                let at = e.instance_path.to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "invalid body: {}",
                problems.join("; ")
            )))
        }
    }
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

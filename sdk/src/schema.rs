//! JSON Schema (draft 2020-12) for request bodies, checked by the host.
//!
//! **Since SDK 1.2 the host checks bodies.** Declare the schema on the
//! route with [`Route::body_with_schema`](crate::Route::body_with_schema):
//! the host compiles it once when it loads the plugin (an invalid schema
//! fails `validate-bitstream` and `run`, naming the route) and answers 400
//! to a body that breaks it, listing every violation with its JSON pointer
//! (`invalid body: /gain: 9 is greater than the maximum of 6`), before the
//! handler runs. The handler then just reads the body
//! ([`Request::json`](crate::Request::json)). Plugins no longer link a
//! validator.
//!
//! [`JsonSchema`] and the deprecated
//! [`Request::json_checked`](crate::Request::json_checked) are kept so that
//! SDK 1.1 code compiles, and they still reject bad bodies: inside a call
//! from the host, [`JsonSchema::validate`] hands the schema and the value
//! to the host's validator (the same one, the same messages). Use
//! `validate` for values the host does not check (an event's payload), or
//! when a handler must check a body at a moment of its choosing (for
//! example after firing a trigger), and then publish the schema with
//! [`Route::body_with_schema_checked_in_handler`](crate::Route::body_with_schema_checked_in_handler)
//! so that the host does not refuse the body first.
//!
//! Outside a call from the host (a plugin's own unit tests), there is no
//! host to ask: `validate` then answers a 500 error saying so, unless the
//! SDK's `local-schema-check` feature is on (enable it in
//! `[dev-dependencies]`), which links the `jsonschema` crate into that
//! build only and checks locally with the same rules.
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
//! let bad: Value = serde_json::from_str(r#"{"shift_frequency": 2e8}"#).unwrap();
//! let err = schema.validate(&bad).unwrap_err();
//! if cfg!(feature = "local-schema-check") {
//!     assert_eq!(err.status(), 400);
//!     assert!(err.message().contains("/shift_frequency"), "{err}");
//! } else {
//!     // No host call is running in this example.
//!     assert_eq!(err.status(), 500);
//!     assert!(err.message().contains("local-schema-check"), "{err}");
//! }
//! ```

use serde::de::DeserializeOwned;

/// The key, set to `true` in a route's published body schema, that tells
/// the host the handler checks the body itself
/// ([`Route::body_with_schema_checked_in_handler`](crate::Route::body_with_schema_checked_in_handler)).
/// JSON Schema ignores unknown keywords, so the schema means the same.
///
/// ```
/// assert_eq!(bitstream_sdk::schema::CHECKED_IN_HANDLER, "x-bitstream-checked-in-handler");
/// ```
pub const CHECKED_IN_HANDLER: &str = "x-bitstream-checked-in-handler";

use crate::api::Request;
use crate::value::Value;
use crate::Error;

/// Why a JSON Schema was refused.
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

/// A JSON Schema (draft 2020-12) kept by a plugin. Cheap to clone.
///
/// [`JsonSchema::new`] makes a structural check of the schema (its
/// `type`, `required`, `properties`, `items`, `enum` and numeric bounds
/// have the right shape); the full check is the host's, when the route
/// declaring it is loaded, or when [`validate`](JsonSchema::validate)
/// first uses it.
///
/// ```
/// use bitstream_sdk::schema::JsonSchema;
///
/// let schema = JsonSchema::new(serde_json::json!({"type": "object"})).unwrap();
/// assert_eq!(schema.source()["type"], "object");
/// ```
#[derive(Clone)]
pub struct JsonSchema {
    source: std::sync::Arc<serde_json::Value>,
    value: std::sync::Arc<Value>,
    #[cfg(feature = "local-schema-check")]
    local: std::sync::Arc<jsonschema::Validator>,
}

impl JsonSchema {
    /// Keeps `schema` after a structural check; a malformed schema is an
    /// error that says why (`invalid JSON Schema: ...`).
    ///
    /// ```
    /// use bitstream_sdk::schema::JsonSchema;
    ///
    /// assert!(JsonSchema::new(serde_json::json!({"required": "vid"})).is_err());
    /// assert!(JsonSchema::new(serde_json::json!({"required": ["vid"]})).is_ok());
    /// ```
    pub fn new(schema: serde_json::Value) -> Result<Self, SchemaError> {
        structure::check(&schema, "").map_err(|message| SchemaError {
            message: format!("invalid JSON Schema: {message}"),
        })?;
        #[cfg(feature = "local-schema-check")]
        let local = jsonschema::draft202012::new(&schema).map_err(|e| SchemaError {
            message: format!("invalid JSON Schema: {e}"),
        })?;
        Ok(JsonSchema {
            value: std::sync::Arc::new(Value::from(schema.clone())),
            source: std::sync::Arc::new(schema),
            #[cfg(feature = "local-schema-check")]
            local: std::sync::Arc::new(local),
        })
    }

    /// The schema as given (publish it with
    /// [`Route::body_with_schema`](crate::Route::body_with_schema)).
    ///
    /// ```
    /// use bitstream_sdk::schema::JsonSchema;
    ///
    /// let json = serde_json::json!({"type": "integer"});
    /// assert_eq!(JsonSchema::new(json.clone()).unwrap().source(), &json);
    /// ```
    pub fn source(&self) -> &serde_json::Value {
        &self.source
    }

    /// Checks `value` with the host's validator (inside a call from the
    /// host); every violation is listed in the 400 error, with its JSON
    /// pointer. Outside a host call it answers a 500 error, unless the
    /// `local-schema-check` feature is on (see the [module](self) docs).
    ///
    /// Prefer declaring the schema with
    /// [`Route::body_with_schema`](crate::Route::body_with_schema): the
    /// host then checks bodies before the handler runs.
    ///
    /// ```
    /// use bitstream_sdk::schema::JsonSchema;
    /// use bitstream_sdk::Value;
    ///
    /// let schema = JsonSchema::new(serde_json::json!({"type": "object"})).unwrap();
    /// let result = schema.validate(&Value::Map(Default::default()));
    /// assert_eq!(result.is_ok(), cfg!(feature = "local-schema-check"));
    /// ```
    pub fn validate(&self, value: &Value) -> Result<(), Error> {
        match crate::call::current_block().and_then(|block| block.check_json(&self.value, value)) {
            Some(Ok(())) => Ok(()),
            Some(Err(message)) => Err(Error::bad_request(message)),
            None => self.validate_without_host(value),
        }
    }

    #[cfg(feature = "local-schema-check")]
    fn validate_without_host(&self, value: &Value) -> Result<(), Error> {
        let instance = serde_json::Value::from(value.clone());
        let problems: Vec<String> = self
            .local
            .iter_errors(&instance)
            .map(|e| {
                let at = e.instance_path().to_string();
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

    #[cfg(not(feature = "local-schema-check"))]
    fn validate_without_host(&self, _value: &Value) -> Result<(), Error> {
        Err(Error::with_status(
            500,
            "JsonSchema::validate was called outside a call from the host, so there is no \
             validator to check the body with: declare the schema with Route::body_with_schema \
             (the host checks it), test through the host, or enable the SDK feature \
             `local-schema-check` in [dev-dependencies] for unit tests",
        ))
    }
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.source).finish()
    }
}

impl Request {
    /// The body, checked against `schema` (see [`JsonSchema::validate`]),
    /// then as a typed value. A missing body is checked as `{}` (clients
    /// send `{}` for "no settings").
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
    /// # #[allow(deprecated)]
    /// let checked = req.json_checked::<Configure>(&schema);
    /// if cfg!(feature = "local-schema-check") {
    ///     assert_eq!(checked.unwrap().vid, 1);
    /// } else {
    ///     assert_eq!(checked.unwrap_err().status(), 500); // no host here
    /// }
    /// ```
    #[deprecated(
        since = "1.2.0",
        note = "the host now checks bodies against the schema declared with Route::body_with_schema; \
                read the body with Request::json"
    )]
    pub fn json_checked<T: DeserializeOwned>(&self, schema: &JsonSchema) -> Result<T, Error> {
        let empty = Value::Map(Default::default());
        let body = self.body().unwrap_or(&empty);
        schema.validate(body)?;
        Ok(body.deserialize_into()?)
    }
}

/// The structural check of [`JsonSchema::new`]: the shape of the keywords
/// a body schema commonly uses. It does not replace the host's check.
mod structure {
    use serde_json::Value;

    const TYPES: [&str; 7] = [
        "null", "boolean", "object", "array", "number", "string", "integer",
    ];

    pub(super) fn check(schema: &Value, at: &str) -> Result<(), String> {
        let map = match schema {
            Value::Bool(_) => return Ok(()),
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "{}: a schema is an object or a boolean, found {other}",
                    here(at)
                ))
            }
        };
        for (key, value) in map {
            let path = format!("{at}/{key}");
            let wrong_shape = match key.as_str() {
                "type" => {
                    let is_type = |t: &Value| t.as_str().is_some_and(|s| TYPES.contains(&s));
                    let ok =
                        is_type(value) || value.as_array().is_some_and(|l| l.iter().all(is_type));
                    (!ok).then(|| {
                        format!(
                            "is not a type name or a list of them ({})",
                            TYPES.join(", ")
                        )
                    })
                }
                "required" => (!value
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string)))
                .then(|| "is not a list of property names".to_owned()),
                "enum" => (!value.is_array()).then(|| "is not a list".to_owned()),
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf" => {
                    (!value.is_number()).then(|| "is not a number".to_owned())
                }
                "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
                | "maxProperties" => value
                    .as_u64()
                    .is_none()
                    .then(|| "is not a non-negative integer".to_owned()),
                "properties" | "patternProperties" | "$defs" | "dependentSchemas" => {
                    match value.as_object() {
                        None => Some("is not an object of schemas".to_owned()),
                        Some(props) => {
                            for (name, sub) in props {
                                check(sub, &format!("{path}/{name}"))?;
                            }
                            None
                        }
                    }
                }
                "items"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames" => {
                    check(value, &path)?;
                    None
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => match value.as_array() {
                    None => Some("is not a list of schemas".to_owned()),
                    Some(list) => {
                        for (i, sub) in list.iter().enumerate() {
                            check(sub, &format!("{path}/{i}"))?;
                        }
                        None
                    }
                },
                _ => None,
            };
            if let Some(what) = wrong_shape {
                return Err(format!("{path}: {value} {what}"));
            }
        }
        Ok(())
    }

    fn here(at: &str) -> &str {
        if at.is_empty() {
            "the schema"
        } else {
            at
        }
    }

    #[cfg(test)]
    mod tests {
        use super::check;
        use serde_json::json;

        #[test]
        fn malformed_keywords_are_refused_with_where() {
            assert!(check(
                &json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}}),
                ""
            )
            .is_ok());
            assert!(check(&json!(true), "").is_ok());
            let err = check(&json!({"properties": {"a": {"type": "int"}}}), "").unwrap_err();
            assert!(
                err.starts_with("/properties/a/type: \"int\" is not a type name"),
                "{err}"
            );
            let err = check(&json!({"anyOf": [{"maximum": "6"}]}), "").unwrap_err();
            assert_eq!(err, "/anyOf/0/maximum: \"6\" is not a number");
            let err = check(&json!(5), "").unwrap_err();
            assert_eq!(
                err,
                "the schema: a schema is an object or a boolean, found 5"
            );
        }
    }
}

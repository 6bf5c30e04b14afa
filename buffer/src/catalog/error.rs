//! Why a catalog cannot be read.

use super::model::MAX_SMART_PARAMS;
use super::scalar::MAX_PARAM_SIZE;

/// An error reading a catalog. Every variant names the offending type (and
/// parameter where there is one).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// The text is not valid JSON or does not have the catalog's shape.
    #[error("invalid catalog JSON at line {line}, column {column} (at `{path}`): {message}")]
    Json {
        /// Path of the offending value (`type.params[2].name`), `.` for the root.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A parameter's scalar type is unknown.
    #[error("type `{type_name}`, parameter `{param}`: unknown scalar type `{scalar}` in `{ty}`")]
    UnknownScalar {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
        /// The unknown scalar name.
        scalar: String,
    },
    /// A parameter's vector suffix is malformed.
    #[error("type `{type_name}`, parameter `{param}`: bad vector syntax in `{ty}`: {reason}")]
    BadVectorSyntax {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter has a pointer type.
    #[error("type `{type_name}`, parameter `{param}`: pointer type `{ty}` is not allowed")]
    PointerType {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
    },
    /// A parameter is larger than [`MAX_PARAM_SIZE`].
    #[error(
        "type `{type_name}`, parameter `{param}`: `{ty}` is larger than {MAX_PARAM_SIZE} bytes"
    )]
    ParamTooLarge {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
    },
    /// A Smart Device has more than [`MAX_SMART_PARAMS`] parameters.
    #[error(
        "type `{type_name}`: a Smart Device may have at most {MAX_SMART_PARAMS} parameters, found {count}"
    )]
    TooManyParams {
        /// Device type name.
        type_name: String,
        /// Number of parameters.
        count: usize,
    },
    /// A Smart Device parameter has an id of 16 or more.
    #[error(
        "type `{type_name}`, parameter `{param}`: id {id} is out of range for a Smart Device (0..{MAX_SMART_PARAMS})"
    )]
    ParamIdOutOfRange {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The id.
        id: u8,
    },
    /// Two parameters of a type share a name.
    #[error("type `{type_name}`: duplicate parameter name `{param}`")]
    DuplicateParamName {
        /// Device type name.
        type_name: String,
        /// The repeated name.
        param: String,
    },
    /// Two parameters of a type share an id.
    #[error("type `{type_name}`: parameters `{first}` and `{second}` have the same id {id}")]
    DuplicateParamId {
        /// Device type name.
        type_name: String,
        /// The repeated id.
        id: u8,
        /// The earlier parameter.
        first: String,
        /// The later parameter.
        second: String,
    },
    /// A parameter's `lower` bound is above its `upper` bound.
    #[error(
        "type `{type_name}`, parameter `{param}`: lower bound {lower} is above upper bound {upper}"
    )]
    InvalidBounds {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The lower bound.
        lower: f64,
        /// The upper bound.
        upper: f64,
    },
    /// Two types share a device_id.
    #[error("types `{first}` and `{second}` have the same device_id {device_id}")]
    DuplicateDeviceId {
        /// The repeated device id.
        device_id: u16,
        /// The earlier type.
        first: String,
        /// The later type.
        second: String,
    },
    /// A type name appears twice in the catalog.
    #[error("duplicate type name `{type_name}`")]
    DuplicateTypeName {
        /// The repeated name.
        type_name: String,
    },
}

//! The catalog model: [`Catalog`]s of [`DeviceType`]s, each a list of
//! [`Param`]s, and the questions asked of them (a parameter by name or id,
//! the values a Smart Device message carries).

use super::scalar::ParamType;

/// Maximum number of parameters of a Smart Device (one bit each in a `u16`).
pub const MAX_SMART_PARAMS: usize = 16;

/// Default `sub_interval`, in seconds.
pub const DEFAULT_SUB_INTERVAL: f64 = 0.04;
/// Default `write_interval`, in seconds.
pub const DEFAULT_WRITE_INTERVAL: f64 = 0.04;
/// Default `heartbeat_interval`, in seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL: f64 = 1.0;

/// One parameter of a device type.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Parameter name (unique within its type).
    pub name: String,
    /// Parameter type.
    pub ty: ParamType,
    /// Parameter id (default: index in the type's list; the bit in Smart Device bitmaps).
    pub id: u8,
    /// Lower bound for float/double values (default `-inf`).
    pub lower: f64,
    /// Upper bound for float/double values (default `+inf`).
    pub upper: f64,
    /// Whether the parameter is in the update block (default `true`).
    pub readable: bool,
    /// Whether the parameter is in the write block (default `false`).
    pub writeable: bool,
    /// Whether the parameter is subscribed by default (default `true`).
    pub subscribed: bool,
}

/// A buffer type of a catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceType {
    /// Kebab-case type name (the catalog key).
    pub name: String,
    /// Smart Device id; `None` for a plain buffer.
    pub device_id: Option<u16>,
    /// Subscription interval in seconds (default 0.04).
    pub sub_interval: f64,
    /// Write interval in seconds (default 0.04).
    pub write_interval: f64,
    /// Heartbeat interval in seconds (default 1.0).
    pub heartbeat_interval: f64,
    /// Parameters, in catalog order.
    pub params: Vec<Param>,
}

/// Why the values of a `DEV_WRITE`/`DEV_DATA` do not fit a type
/// ([`DeviceType::split_values`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The bitmap names an id the type lacks.
    #[error("type `{type_name}` has no parameter id {id}")]
    NoSuchId {
        /// The type.
        type_name: String,
        /// The id.
        id: u8,
    },
    /// The parameter is not in the block the message carries.
    #[error("parameter `{param}` (id {id}) is not {needs}")]
    NotInBlock {
        /// The parameter.
        param: String,
        /// Its id.
        id: u8,
        /// `readable` (DEV_DATA) or `writeable` (DEV_WRITE).
        needs: &'static str,
    },
    /// The values are not as long as the bitmap's parameters.
    #[error("bitmap 0x{bitmap:04X} needs {needed} value bytes, the message has {found}")]
    Length {
        /// The bitmap.
        bitmap: u16,
        /// Bytes its parameters take.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
}

/// A parsed, validated catalog: device types in catalog order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Catalog {
    pub(super) types: Vec<DeviceType>,
}

impl DeviceType {
    /// Whether this is a Smart Device (has a `device_id`).
    pub fn is_smart(&self) -> bool {
        self.device_id.is_some()
    }

    /// Its parameters' names for messages: `"a, b, c"`, or `"no parameters"`.
    ///
    /// ```
    /// use bitstream_buffer::catalog::Catalog;
    ///
    /// let catalog = Catalog::from_json(
    ///     r#"{"m": {"params": [{"name": "pos", "type": "double"}, {"name": "n", "type": "int8"}]},
    ///         "e": {"params": []}}"#,
    /// )
    /// .unwrap();
    /// assert_eq!(catalog.get("m").unwrap().param_list(), "pos, n");
    /// assert_eq!(catalog.get("e").unwrap().param_list(), "no parameters");
    /// ```
    pub fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "no parameters".to_owned();
        }
        self.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter with id `id`.
    pub fn param_by_id(&self, id: u8) -> Option<&Param> {
        self.params.iter().find(|p| p.id == id)
    }

    /// Where each value of a `DEV_WRITE` (`writes`: parameters of the write
    /// block) or `DEV_DATA` (of the update block) payload lies: each set
    /// bit's parameter, in ascending id order, takes its size in bytes.
    /// Checks the ids, the block and the total length `values_len`.
    pub fn split_values(
        &self,
        writes: bool,
        bitmap: u16,
        values_len: usize,
    ) -> Result<Vec<(&Param, std::ops::Range<usize>)>, SplitError> {
        let mut plan = Vec::new();
        let mut at = 0;
        for id in crate::message::bitmap_ids(bitmap) {
            let p = self.param_by_id(id).ok_or_else(|| SplitError::NoSuchId {
                type_name: self.name.clone(),
                id,
            })?;
            let (carried, needs) = if writes {
                (p.writeable, "writeable")
            } else {
                (p.readable, "readable")
            };
            if !carried {
                return Err(SplitError::NotInBlock {
                    param: p.name.clone(),
                    id,
                    needs,
                });
            }
            plan.push((p, at..at + p.ty.size()));
            at += p.ty.size();
        }
        if at != values_len {
            return Err(SplitError::Length {
                bitmap,
                needed: at,
                found: values_len,
            });
        }
        Ok(plan)
    }
}

impl Catalog {
    /// The type called `name`.
    pub fn get(&self, name: &str) -> Option<&DeviceType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The Smart Device type with `device_id`.
    pub fn by_device_id(&self, device_id: u16) -> Option<&DeviceType> {
        self.types.iter().find(|t| t.device_id == Some(device_id))
    }

    /// All types, in catalog order.
    pub fn types(&self) -> &[DeviceType] {
        &self.types
    }

    /// Type names, in catalog order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(|t| t.name.as_str())
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the catalog has no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

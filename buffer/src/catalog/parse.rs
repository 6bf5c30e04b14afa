//! Reading a catalog: the JSON shapes, the defaults and every check, each
//! failure a [`CatalogError`] naming the type and parameter.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::CatalogError;
use super::model::{
    Catalog, DeviceType, Param, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_SUB_INTERVAL,
    DEFAULT_WRITE_INTERVAL, MAX_SMART_PARAMS,
};
use super::scalar::{ParamType, ParamTypeError};

fn default_sub() -> f64 {
    DEFAULT_SUB_INTERVAL
}
fn default_write() -> f64 {
    DEFAULT_WRITE_INTERVAL
}
fn default_heartbeat() -> f64 {
    DEFAULT_HEARTBEAT_INTERVAL
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    #[serde(default)]
    device_id: Option<u16>,
    #[serde(default = "default_sub")]
    sub_interval: f64,
    #[serde(default = "default_write")]
    write_interval: f64,
    #[serde(default = "default_heartbeat")]
    heartbeat_interval: f64,
    #[serde(default)]
    params: Vec<RawParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    id: Option<u8>,
    #[serde(default)]
    lower: Option<f64>,
    #[serde(default)]
    upper: Option<f64>,
    #[serde(default)]
    readable: Option<bool>,
    #[serde(default)]
    writeable: Option<bool>,
    #[serde(default)]
    subscribed: Option<bool>,
}

/// The top-level object as an ordered list of entries, so duplicate keys are seen.
struct RawCatalog(Vec<(String, RawType)>);

impl<'de> Deserialize<'de> for RawCatalog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCatalog;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping type names to type specs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawCatalog, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    let t = m.next_value::<RawType>()?;
                    v.push((k, t));
                }
                Ok(RawCatalog(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> CatalogError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // serde_json's Display appends " at line L column C"; strip it, we print our own.
    let full = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    CatalogError::Json {
        path,
        line: inner.line(),
        column: inner.column(),
        message,
    }
}

impl DeviceType {
    fn from_raw(name: String, raw: RawType) -> Result<DeviceType, CatalogError> {
        let smart = raw.device_id.is_some();
        if smart && raw.params.len() > MAX_SMART_PARAMS {
            return Err(CatalogError::TooManyParams {
                type_name: name,
                count: raw.params.len(),
            });
        }
        let mut params: Vec<Param> = Vec::with_capacity(raw.params.len());
        let mut ids: HashMap<u8, usize> = HashMap::new();
        for (index, rp) in raw.params.into_iter().enumerate() {
            let tn = || name.clone();
            if params.iter().any(|p| p.name == rp.name) {
                return Err(CatalogError::DuplicateParamName {
                    type_name: tn(),
                    param: rp.name,
                });
            }
            let ty = rp.ty.parse::<ParamType>().map_err(|e| match e {
                ParamTypeError::UnknownScalar(scalar) => CatalogError::UnknownScalar {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                    scalar,
                },
                ParamTypeError::BadVectorSyntax(reason) => CatalogError::BadVectorSyntax {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                    reason,
                },
                ParamTypeError::Pointer => CatalogError::PointerType {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                },
                ParamTypeError::TooLarge => CatalogError::ParamTooLarge {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                },
            })?;
            // Default id is the index. Past index 255 (only possible on a plain
            // buffer) it saturates to 255, which then collides with another id
            // and is reported as a duplicate id: give such params explicit ids.
            let id = match rp.id {
                Some(id) => id,
                None => u8::try_from(index).unwrap_or(u8::MAX),
            };
            if smart && usize::from(id) >= MAX_SMART_PARAMS {
                return Err(CatalogError::ParamIdOutOfRange {
                    type_name: tn(),
                    param: rp.name,
                    id,
                });
            }
            if let Some(&first) = ids.get(&id) {
                return Err(CatalogError::DuplicateParamId {
                    type_name: tn(),
                    id,
                    first: params[first].name.clone(),
                    second: rp.name,
                });
            }
            let lower = rp.lower.unwrap_or(f64::NEG_INFINITY);
            let upper = rp.upper.unwrap_or(f64::INFINITY);
            if lower > upper {
                return Err(CatalogError::InvalidBounds {
                    type_name: tn(),
                    param: rp.name,
                    lower,
                    upper,
                });
            }
            ids.insert(id, params.len());
            params.push(Param {
                name: rp.name,
                ty,
                id,
                lower,
                upper,
                readable: rp.readable.unwrap_or(true),
                writeable: rp.writeable.unwrap_or(false),
                subscribed: rp.subscribed.unwrap_or(true),
            });
        }
        Ok(DeviceType {
            name,
            device_id: raw.device_id,
            sub_interval: raw.sub_interval,
            write_interval: raw.write_interval,
            heartbeat_interval: raw.heartbeat_interval,
            params,
        })
    }
}

impl Catalog {
    /// Parses and validates a catalog from JSON text.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawCatalog = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(|e| CatalogError::Json {
            path: ".".to_owned(),
            line: e.line(),
            column: e.column(),
            message: "trailing characters".to_owned(),
        })?;
        let mut types: Vec<DeviceType> = Vec::with_capacity(raw.0.len());
        for (name, rt) in raw.0 {
            if types.iter().any(|t| t.name == name) {
                return Err(CatalogError::DuplicateTypeName { type_name: name });
            }
            let t = DeviceType::from_raw(name, rt)?;
            if let Some(id) = t.device_id {
                if let Some(first) = types.iter().find(|o| o.device_id == Some(id)) {
                    return Err(CatalogError::DuplicateDeviceId {
                        device_id: id,
                        first: first.name.clone(),
                        second: t.name,
                    });
                }
            }
            types.push(t);
        }
        Ok(Catalog { types })
    }
}

impl FromStr for Catalog {
    type Err = CatalogError;

    /// Same as [`Catalog::from_json`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Catalog::from_json(s)
    }
}

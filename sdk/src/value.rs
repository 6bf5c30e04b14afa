//! The structured, FFI-safe value carried by events, trigger arguments and
//! route requests.
//!
//! [`Value`] crosses the plugin boundary as data: nothing is turned into JSON
//! text and parsed again on the way through the signal chain. JSON exists at
//! the HTTP boundary only; [`Value`] converts to and from [`serde_json::Value`]
//! and implements `Serialize`/`Deserialize` for that purpose.

use std::fmt;

use abi_stable::std_types::{RString, RVec, Tuple2};
use abi_stable::StableAbi;
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A structured value: null, bool, integer, float, string, list or map.
///
/// ```
/// use bitstream_sdk::Value;
///
/// let event: Value = [("packet_rate", Value::from(100))].into_iter().collect();
/// assert_eq!(event.get("packet_rate").and_then(Value::as_f64), Some(100.0));
/// assert_eq!(event.to_string(), r#"{"packet_rate":100}"#);
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(RString),
    /// An ordered list.
    List(RVec<Value>),
    /// A map with string keys that keeps insertion order.
    Map(ValueMap),
}

/// A map from string keys to [`Value`]s that keeps insertion order.
///
/// Maps in events and trigger arguments are small, so lookups are a linear
/// scan, which is faster than hashing at these sizes and keeps the layout
/// simple across the FFI boundary.
///
/// ```
/// use bitstream_sdk::{Value, ValueMap};
///
/// let mut args = ValueMap::new();
/// args.insert("badness", 0.75);
/// assert_eq!(args.get("badness"), Some(&Value::Float(0.75)));
/// assert_eq!(args.insert("badness", 0.25), Some(Value::Float(0.75)));
/// assert_eq!(args.len(), 1);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct ValueMap {
    entries: RVec<Tuple2<RString, Value>>,
}

impl ValueMap {
    /// An empty map.
    pub const fn new() -> Self {
        ValueMap {
            entries: RVec::new(),
        }
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|entry| entry.0.as_str() == key)
            .map(|entry| &entry.1)
    }

    /// A mutable reference to the value under `key`, if any.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|entry| entry.0.as_str() == key)
            .map(|entry| &mut entry.1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaces. A new key goes
    /// to the end; a replaced key keeps its position.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push(Tuple2(RString::from(key), value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|e| e.0.as_str() == key)?;
        Some(self.entries.remove(index).1)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|e| (e.0.as_str(), &e.1))
    }

    /// The keys in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.0.as_str())
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for ValueMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = ValueMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::Map(iter.into_iter().collect())
    }
}

/// Trigger arguments with no entries: `ctx.trigger("START", ())`.
impl From<()> for ValueMap {
    fn from(_: ()) -> Self {
        ValueMap::new()
    }
}

/// Trigger arguments from pairs: `ctx.trigger("X", [("packet_rate", 5)])`.
impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for ValueMap {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl Value {
    /// A short name of this value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is an integer (floats are not truncated).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items.as_slice()),
            _ => None,
        }
    }

    /// The map, if this is a map.
    pub fn as_map(&self) -> Option<&ValueMap> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The value under `key` when this is a map; `None` otherwise.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|map| map.get(key))
    }

    /// Converts any `Serialize` type into a `Value`.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Status { rx_loopback: bool }
    /// let value = bitstream_sdk::Value::from_serialize(&Status { rx_loopback: true }).unwrap();
    /// assert_eq!(value.get("rx_loopback"), Some(&bitstream_sdk::Value::Bool(true)));
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Value, serde_json::Error> {
        serde_json::to_value(value).map(Value::from)
    }

    /// Converts this value into any `Deserialize` type. The error names the
    /// path of the offending field (for example `gains[3].pol`).
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Configure { shift_frequency: f64 }
    /// let body: bitstream_sdk::Value = [("shift_frequency", 1.5)].into_iter().collect();
    /// let parsed: Configure = body.deserialize_into().unwrap();
    /// assert_eq!(parsed.shift_frequency, 1.5);
    /// ```
    pub fn deserialize_into<T: DeserializeOwned>(&self) -> Result<T, DeserializeError> {
        let json = serde_json::Value::from(self.clone());
        serde_path_to_error::deserialize(json).map_err(|err| DeserializeError {
            path: err.path().to_string(),
            message: err.inner().to_string(),
        })
    }
}

/// Why a [`Value`] could not be turned into a typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct DeserializeError {
    /// Where in the value the problem is (`.` for the top level).
    pub path: String,
    /// What serde reported.
    pub message: String,
}

impl fmt::Display for DeserializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DeserializeError {}

impl fmt::Display for Value {
    /// Compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

macro_rules! value_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
value_from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    /// Integers above `i64::MAX` become floats.
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(RString::from(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(RString::from(v))
    }
}

impl From<ValueMap> for Value {
    fn from(v: ValueMap) -> Self {
        Value::Map(v)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(u)) => Value::from(u),
                _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::from(s),
            serde_json::Value::Array(items) => {
                Value::List(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Map(map.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl From<Value> for serde_json::Value {
    /// Non-finite floats, which JSON cannot hold, become `null`.
    fn from(value: Value) -> Self {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::from(i),
            Value::Float(f) => serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.into_string()),
            Value::List(items) => {
                serde_json::Value::Array(items.into_iter().map(serde_json::Value::from).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.entries
                    .into_iter()
                    .map(|entry| (entry.0.into_string(), serde_json::Value::from(entry.1)))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::List(items) => serializer.collect_seq(items.iter()),
            Value::Map(map) => map.serialize(serializer),
        }
    }
}

impl Serialize for ValueMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for ValueMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Map(map) => Ok(map),
            other => Err(serde::de::Error::custom(format!(
                "expected a map, found {}",
                other.kind_name()
            ))),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = RVec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = ValueMap::new();
        while let Some((k, v)) = access.next_entry::<String, Value>()? {
            map.insert(k, v);
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_order_and_kinds() {
        let text = r#"{"z":1,"a":[true,null,2.5,"s"],"m":{"k":-3}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(value.to_string(), text);
        assert_eq!(value.get("z"), Some(&Value::Int(1)));
        let back: serde_json::Value = value.clone().into();
        assert_eq!(Value::from(back), value);
    }

    #[test]
    fn big_unsigned_integers_become_floats() {
        assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
        assert_eq!(Value::from(3_960_000_000u64), Value::Int(3_960_000_000));
    }

    #[test]
    fn deserialize_into_names_the_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            gains: Vec<Gain>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Gain {
            pol: u8,
        }
        let value: Value = serde_json::from_str(r#"{"gains":[{"pol":0},{"pol":"x"}]}"#).unwrap();
        let err = value.deserialize_into::<Body>().unwrap_err();
        assert_eq!(err.path, "gains[1].pol");
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn map_remove_and_replace() {
        let mut map: ValueMap = [("a", 1), ("b", 2)].into();
        assert_eq!(map.remove("a"), Some(Value::Int(1)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(map.remove("a"), None);
    }
}

//! The structured, FFI-safe value carried by events, trigger arguments and
//! route requests.
//!
//! [`Value`] crosses the plugin boundary as data: nothing is turned into JSON
//! text and parsed again on the way through the signal chain. JSON exists at
//! the HTTP boundary only; [`Value`] converts to and from [`serde_json::Value`]
//! and implements `Serialize`/`Deserialize` for that purpose.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use abi_stable::std_types::{RString, RVec, Tuple2};
use abi_stable::StableAbi;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
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
    ///
    /// Each call scans the map (the map holds no index, to keep its layout
    /// simple across the FFI boundary): to build a map of many keys, use
    /// `collect` or [`Extend::extend`], which take time linear in the
    /// number of entries.
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

/// A repeated key keeps its first position and takes the later value, as
/// with [`ValueMap::insert`]. Linear in the number of pairs.
impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for ValueMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = MapBuilder::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            map.insert(k.into(), v.into());
        }
        map.finish()
    }
}

/// Builds a [`ValueMap`] in time linear in the number of entries, with the
/// semantics of [`ValueMap::insert`]: a repeated key keeps its first
/// position and takes the new value. Small maps are scanned, as `insert`
/// does; once a map has [`MapBuilder::INDEX_FROM`] entries, a hash index of
/// its keys finds repeats instead. The map's layout is untouched: the index
/// lives only while building.
struct MapBuilder {
    entries: RVec<Tuple2<RString, Value>>,
    /// Key -> position in `entries`; empty until `entries` has
    /// `INDEX_FROM` entries.
    index: HashMap<RString, usize>,
}

impl MapBuilder {
    /// The size from which a hash index beats a scan.
    const INDEX_FROM: usize = 16;

    fn with_capacity(capacity: usize) -> Self {
        MapBuilder {
            // Bounded: a size hint is not a promise.
            entries: RVec::with_capacity(capacity.min(4096)),
            index: HashMap::new(),
        }
    }

    /// A builder holding `map`'s entries (each key once, as every
    /// `ValueMap` holds them), indexed when there are enough.
    fn from_map(map: ValueMap) -> Self {
        let mut builder = MapBuilder {
            entries: map.entries,
            index: HashMap::new(),
        };
        if builder.entries.len() >= Self::INDEX_FROM {
            builder.index.reserve(builder.entries.len());
            for (i, entry) in builder.entries.iter().enumerate() {
                builder.index.insert(entry.0.clone(), i);
            }
        }
        builder
    }

    /// Sets `key` to `value`: the entry's position, and the value it
    /// replaced, if the key was there already.
    fn insert(&mut self, key: String, value: Value) -> (usize, Option<Value>) {
        let found = if self.index.is_empty() {
            self.entries.iter().position(|e| e.0.as_str() == key)
        } else {
            self.index.get(key.as_str()).copied()
        };
        if let Some(position) = found {
            let old = std::mem::replace(&mut self.entries[position].1, value);
            return (position, Some(old));
        }
        let position = self.entries.len();
        let key = RString::from(key);
        match position + 1 {
            n if n < Self::INDEX_FROM => {}
            n if n == Self::INDEX_FROM => {
                self.index.reserve(Self::INDEX_FROM * 2);
                for (i, entry) in self.entries.iter().enumerate() {
                    self.index.insert(entry.0.clone(), i);
                }
                self.index.insert(key.clone(), position);
            }
            _ => {
                self.index.insert(key.clone(), position);
            }
        }
        self.entries.push(Tuple2(key, value));
        (position, None)
    }

    /// The key at `position`.
    fn key(&self, position: usize) -> &str {
        self.entries[position].0.as_str()
    }

    fn finish(self) -> ValueMap {
        ValueMap {
            entries: self.entries,
        }
    }
}

/// Adds pairs as [`ValueMap::insert`] would, one after the other, in time
/// linear in the size of the map and the number of pairs.
///
/// ```
/// use bitstream_sdk::{Value, ValueMap};
///
/// let mut map: ValueMap = [("a", 1), ("b", 2)].into();
/// map.extend([("c", 3), ("a", 4)]);
/// assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
/// assert_eq!(map.get("a"), Some(&Value::Int(4)));
/// ```
impl<K: Into<String>, V: Into<Value>> Extend<(K, V)> for ValueMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mut map = MapBuilder::from_map(std::mem::take(self));
        for (k, v) in iter {
            map.insert(k.into(), v.into());
        }
        *self = map.finish();
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

    /// Parses JSON text, as `serde_json::from_str::<Value>` does (same
    /// value, same errors), and also lists every key that appears more than
    /// once in one object. The map keeps such a key at its first position
    /// with its last value; a repeat inside a value that a later repeat of
    /// its own key replaced is not listed (that value is gone).
    ///
    /// One [`RepeatedKey`] per repeat: a key given three times in one
    /// object is listed twice. Each object's repeats are in text order, and
    /// come before those inside its values.
    ///
    /// ```
    /// use bitstream_sdk::value::{PathSegment, RepeatedKey};
    /// use bitstream_sdk::Value;
    ///
    /// let text = r#"{"a": 1, "b": [{"c": 2, "c": 3}], "a": 4}"#;
    /// let (value, repeats) = Value::from_json_with_repeats(text).unwrap();
    /// assert_eq!(value.to_string(), r#"{"a":4,"b":[{"c":3}]}"#);
    /// assert_eq!(
    ///     repeats,
    ///     [
    ///         RepeatedKey { path: vec![], key: "a".into() },
    ///         RepeatedKey {
    ///             path: vec![PathSegment::Key("b".into()), PathSegment::Index(0)],
    ///             key: "c".into(),
    ///         },
    ///     ]
    /// );
    /// ```
    pub fn from_json_with_repeats(
        text: &str,
    ) -> Result<(Value, Vec<RepeatedKey>), serde_json::Error> {
        // What `serde_json::from_str` does, with a seed.
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = ValueSeed::<Vec<RepeatedKey>>::new().deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(parsed)
    }
}

/// One step of a path into a [`Value`]: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// The value under this key of a map.
    Key(String),
    /// The item at this index of a list.
    Index(usize),
}

/// A key repeated in one object of JSON text, as listed by
/// [`Value::from_json_with_repeats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedKey {
    /// Where the object is, from the top level (empty: the top level is the
    /// object).
    pub path: Vec<PathSegment>,
    /// The key given again.
    pub key: String,
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
        ValueSeed::<()>::new()
            .deserialize(deserializer)
            .map(|(value, ())| value)
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

/// What the JSON visitor records besides the value: nothing (`()`, for
/// `Deserialize`) or the repeated keys (`Vec<RepeatedKey>`, for
/// [`Value::from_json_with_repeats`]).
trait Repeats: Default {
    /// `key` appeared again in the object being read.
    fn repeated(&mut self, key: &str);
    /// Takes in `inner`, the repeats found inside the value at `at`.
    fn nest(&mut self, at: impl FnOnce() -> PathSegment, inner: Self);
}

impl Repeats for () {
    fn repeated(&mut self, _: &str) {}
    fn nest(&mut self, _: impl FnOnce() -> PathSegment, (): ()) {}
}

impl Repeats for Vec<RepeatedKey> {
    fn repeated(&mut self, key: &str) {
        self.push(RepeatedKey {
            path: Vec::new(),
            key: key.to_owned(),
        });
    }

    fn nest(&mut self, at: impl FnOnce() -> PathSegment, inner: Self) {
        if inner.is_empty() {
            return;
        }
        let at = at();
        self.extend(inner.into_iter().map(|mut repeat| {
            repeat.path.insert(0, at.clone());
            repeat
        }));
    }
}

/// The one JSON visitor: reads any value into a [`Value`], and what `R`
/// records about repeated keys.
struct ValueSeed<R>(PhantomData<fn() -> R>);

impl<R> ValueSeed<R> {
    fn new() -> Self {
        ValueSeed(PhantomData)
    }
}

impl<'de, R: Repeats> DeserializeSeed<'de> for ValueSeed<R> {
    type Value = (Value, R);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(Value, R), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: Repeats> Visitor<'de> for ValueSeed<R> {
    type Value = (Value, R);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(Value, R), E> {
        Ok((Value::Null, R::default()))
    }
    fn visit_none<E>(self) -> Result<(Value, R), E> {
        Ok((Value::Null, R::default()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(Value, R), D::Error> {
        self.deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<(Value, R), E> {
        Ok((Value::Bool(v), R::default()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<(Value, R), E> {
        Ok((Value::Int(v), R::default()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<(Value, R), E> {
        Ok((Value::from(v), R::default()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<(Value, R), E> {
        Ok((Value::Float(v), R::default()))
    }
    fn visit_str<E>(self, v: &str) -> Result<(Value, R), E> {
        Ok((Value::from(v), R::default()))
    }
    fn visit_string<E>(self, v: String) -> Result<(Value, R), E> {
        Ok((Value::from(v), R::default()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(Value, R), A::Error> {
        let mut items = RVec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        let mut repeats = R::default();
        while let Some((item, inner)) = seq.next_element_seed(ValueSeed::<R>::new())? {
            repeats.nest(|| PathSegment::Index(items.len()), inner);
            items.push(item);
        }
        Ok((Value::List(items), repeats))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(Value, R), A::Error> {
        let mut map = MapBuilder::with_capacity(access.size_hint().unwrap_or(0));
        let mut repeats = R::default();
        // The repeats inside each entry's value, by position; a replaced
        // value's go with it.
        let mut inside: Vec<R> = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            let (value, inner) = access.next_value_seed(ValueSeed::<R>::new())?;
            match map.insert(key, value) {
                (_, None) => inside.push(inner),
                (position, Some(_)) => {
                    repeats.repeated(map.key(position));
                    inside[position] = inner;
                }
            }
        }
        let map = map.finish();
        for (key, inner) in map.keys().zip(inside) {
            repeats.nest(|| PathSegment::Key(key.to_owned()), inner);
        }
        Ok((Value::Map(map), repeats))
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
    fn extend_inserts_each_pair_in_linear_time() {
        // Below and above the size from which the builder indexes its keys.
        for start in [0, 3, MapBuilder::INDEX_FROM - 1, MapBuilder::INDEX_FROM, 40] {
            let mut map: ValueMap = (0..start).map(|i| (format!("k{i}"), i)).collect();
            let mut expected = map.clone();
            let added: Vec<(String, Value)> = (0..start + 30)
                .map(|i| (format!("k{}", i * 2), Value::from("new")))
                .collect();
            for (k, v) in added.clone() {
                expected.insert(k, v);
            }
            map.extend(added);
            assert_eq!(map, expected, "{start}");
        }
        // 200,000 keys, then 200,000 more (half of them repeats): quick
        // because linear (quadratic would be 4e10 comparisons).
        let mut map: ValueMap = (0..200_000).map(|i| (i.to_string(), i)).collect();
        map.extend((100_000..300_000).map(|i| (i.to_string(), -i)));
        assert_eq!(map.len(), 300_000);
        assert_eq!(map.get("150000"), Some(&Value::Int(-150_000)));
        assert_eq!(map.keys().nth(100_000), Some("100000"));
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
    fn repeated_keys_keep_their_first_position_and_last_value() {
        // Below and above the size from which the builder indexes its keys.
        for n in [3, MapBuilder::INDEX_FROM - 1, MapBuilder::INDEX_FROM, 40] {
            let mut text = String::from("{");
            for i in 0..n {
                text.push_str(&format!("\"k{i}\":{i},"));
            }
            text.push_str("\"k0\":\"last\",\"k1\":null}");
            let value: Value = serde_json::from_str(&text).unwrap();
            let map = value.as_map().unwrap();
            assert_eq!(map.len(), n, "{n}");
            let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            assert_eq!(map.keys().collect::<Vec<_>>(), keys, "{n}");
            assert_eq!(map.get("k0"), Some(&Value::from("last")), "{n}");
            assert_eq!(map.get("k1"), Some(&Value::Null), "{n}");
            assert_eq!(map.get("k2"), Some(&Value::Int(2)), "{n}");

            // `collect` and `insert` agree.
            let pairs: Vec<(String, Value)> = map
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .chain([("k1".to_owned(), Value::Int(-1))])
                .collect();
            let mut inserted = ValueMap::new();
            for (k, v) in pairs.clone() {
                inserted.insert(k, v);
            }
            assert_eq!(pairs.into_iter().collect::<ValueMap>(), inserted, "{n}");
        }
    }

    #[test]
    fn a_map_of_100k_keys_is_built_in_linear_time() {
        const N: usize = 100_000;
        let mut text = String::with_capacity(N * 16);
        text.push('{');
        for i in 0..N {
            text.push_str(&format!("\"key{i}\":{i},"));
        }
        // Repeats of the first and the last key.
        text.push_str(&format!("\"key0\":-1,\"key{}\":-2}}", N - 1));

        // A scan per key would take minutes here (5e9 key comparisons); the
        // index takes a fraction of a second, even unoptimised.
        let started = std::time::Instant::now();
        let (value, repeats) = Value::from_json_with_repeats(&text).unwrap();
        let map = value.as_map().unwrap();
        let collected: ValueMap = map.iter().map(|(k, v)| (k, v.clone())).collect();
        let elapsed = started.elapsed();

        assert_eq!(map.len(), N);
        assert_eq!(map.keys().next(), Some("key0"));
        assert_eq!(map.keys().last(), Some(format!("key{}", N - 1).as_str()));
        assert_eq!(map.get("key0"), Some(&Value::Int(-1)));
        assert_eq!(map.get("key500"), Some(&Value::Int(500)));
        assert_eq!(map.get(&format!("key{}", N - 1)), Some(&Value::Int(-2)));
        let repeated: Vec<&str> = repeats.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(repeated, ["key0", &format!("key{}", N - 1)]);
        assert_eq!(&collected, map);
        assert!(elapsed.as_secs() < 10, "{elapsed:?}");
    }

    #[test]
    fn repeats_are_listed_with_their_path() {
        let text =
            r#"{"a": 1, "b": [0, {"c": 2, "c": 3, "c": 4}], "a": 5, "d": {"e": {"f": 1, "f": 2}}}"#;
        let (value, repeats) = Value::from_json_with_repeats(text).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        let key = |k: &str| PathSegment::Key(k.to_owned());
        let repeat = |path: Vec<PathSegment>, k: &str| RepeatedKey {
            path,
            key: k.to_owned(),
        };
        assert_eq!(
            repeats,
            [
                repeat(vec![], "a"),
                repeat(vec![key("b"), PathSegment::Index(1)], "c"),
                repeat(vec![key("b"), PathSegment::Index(1)], "c"),
                repeat(vec![key("d"), key("e")], "f"),
            ]
        );

        // Repeats inside a replaced value are gone with it; those inside
        // the value that replaced it are listed.
        let text = r#"{"x": {"y": 1, "y": 2}, "x": [{"z": 1, "z": 2}]}"#;
        let (value, repeats) = Value::from_json_with_repeats(text).unwrap();
        assert_eq!(value.to_string(), r#"{"x":[{"z":2}]}"#);
        assert_eq!(
            repeats,
            [
                repeat(vec![], "x"),
                repeat(vec![key("x"), PathSegment::Index(0)], "z"),
            ]
        );

        // The same errors as serde_json::from_str.
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "1 2",
            "1e400",
            &"[".repeat(1000),
        ] {
            let expected = serde_json::from_str::<Value>(bad).unwrap_err().to_string();
            let found = Value::from_json_with_repeats(bad).unwrap_err().to_string();
            assert_eq!(found, expected, "{bad}");
        }
    }

    #[test]
    fn map_remove_and_replace() {
        let mut map: ValueMap = [("a", 1), ("b", 2)].into();
        assert_eq!(map.remove("a"), Some(Value::Int(1)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(map.remove("a"), None);
    }
}

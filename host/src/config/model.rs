//! The checked configuration: [`BitstreamConfig`] and its blocks, and the
//! values a `signal` section may hold.

use bitstream_sdk::ValueMap;
use serde::Serialize;

/// The config's file name. It lives at `<package>/emulators/config.json`,
/// next to the `emulators/<ip_block_type>/emulator` plugin folders.
pub const CONFIG_FILE: &str = "config.json";

/// The `type` of the pseudo-block that legacy configs (up to 0.0.14) used to
/// stand for the signal generator. It needs no emulator.
pub const LEGACY_DISH_TYPE: &str = "dish";

/// A checked bitstream configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BitstreamConfig {
    /// The bitstream's id, for example `vcc_processing`.
    pub id: String,
    /// The config's (semantic) version, for example `0.0.16`.
    pub version: String,
    /// The IP blocks, in file order (without a legacy dish pseudo-block).
    pub ip_blocks: Vec<BlockConfig>,
    /// The ids of the blocks that receive the generated signal. Never empty.
    /// For a legacy config, the dish's downstream blocks.
    pub first: Vec<String>,
    /// For a legacy config (`"first": "<id>"` naming a block of type
    /// `"dish"`): the dish pseudo-block's id. It is not in `ip_blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_dish: Option<String>,
    /// The optional `signal` section: the values the signal generator sends
    /// to the `first` blocks every pulse (see [`SIGNAL_KEYS`]). `None` when
    /// the config has none (the engine's default is used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<ValueMap>,
}

/// One IP block of a [`BitstreamConfig`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockConfig {
    /// Unique within the bitstream; used in URLs.
    pub id: String,
    /// A human-readable name, when given.
    pub display_name: Option<String>,
    /// The IP block emulator type (JSON key `type`): the plugin at
    /// `emulators/<type>/emulator`.
    #[serde(rename = "type")]
    pub block_type: String,
    /// The blocks this block's output goes to: the signal chain's edges.
    /// Without duplicates, in file order.
    pub downstream_block_ids: Vec<String>,
    /// Values assigned onto the freshly constructed ip_block, in file order.
    pub constants: ValueMap,
}

impl BitstreamConfig {
    /// The block with this id.
    pub fn block(&self, id: &str) -> Option<&BlockConfig> {
        self.ip_blocks.iter().find(|b| b.id == id)
    }

    /// The distinct block types, in order of first appearance.
    pub fn block_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for block in &self.ip_blocks {
            if !types.contains(&block.block_type.as_str()) {
                types.push(&block.block_type);
            }
        }
        types
    }

    /// The blocks of type `ty`, in file order.
    pub fn blocks_of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a BlockConfig> {
        self.ip_blocks.iter().filter(move |b| b.block_type == ty)
    }

    /// Every edge of the signal chain as `(upstream id, downstream id)`, in
    /// file order.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ip_blocks.iter().flat_map(|b| {
            b.downstream_block_ids
                .iter()
                .map(move |d| (b.id.as_str(), d.as_str()))
        })
    }

    /// The ids of the blocks that list `id` downstream, in file order.
    pub fn upstream_block_ids(&self, id: &str) -> Vec<&str> {
        self.ip_blocks
            .iter()
            .filter(|b| b.downstream_block_ids.iter().any(|d| d == id))
            .map(|b| b.id.as_str())
            .collect()
    }
}

/// The keys a `signal` section (and `PUT /signal`) may hold, with what
/// each means:
/// - `packet_rate`: packets per second the generated signal carries, a
///   number `>= 0` (0 models a lost link).
pub const SIGNAL_KEYS: [&str; 1] = ["packet_rate"];

/// Why [`check_signal`] refused a set of signal values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// `packet_rate` is not a finite number `>= 0`.
    #[error("signal value \"packet_rate\" must be a number >= 0, found {found}")]
    BadPacketRate {
        /// The value given, as compact JSON.
        found: String,
    },
    /// A key that is not one of [`SIGNAL_KEYS`].
    #[error("unknown signal value \"{key}\"; known: {}", SIGNAL_KEYS.join(", "))]
    UnknownKey {
        /// The key given.
        key: String,
    },
}

/// Checks the values of a `signal` section or a `PUT /signal` body: only
/// [`SIGNAL_KEYS`], each with a value of the right type.
pub fn check_signal(values: &ValueMap) -> Result<(), SignalError> {
    for (key, value) in values.iter() {
        match key {
            "packet_rate" => match value.as_f64() {
                Some(rate) if rate >= 0.0 && rate.is_finite() => {}
                _ => {
                    return Err(SignalError::BadPacketRate {
                        found: value.to_string(),
                    })
                }
            },
            other => {
                return Err(SignalError::UnknownKey {
                    key: other.to_owned(),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitstream_sdk::Value;

    #[test]
    fn signal_values_are_checked() {
        assert_eq!(check_signal(&[("packet_rate", 0.0)].into()), Ok(()));
        assert_eq!(check_signal(&ValueMap::new()), Ok(()));
        let err = check_signal(&[("packet_rate", -1)].into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signal value \"packet_rate\" must be a number >= 0, found -1"
        );
        let err = check_signal(&[("packet_rate", Value::from("x"))].into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signal value \"packet_rate\" must be a number >= 0, found \"x\""
        );
        let err = check_signal(&[("rate", 1)].into()).unwrap_err();
        assert_eq!(
            err,
            SignalError::UnknownKey {
                key: "rate".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown signal value \"rate\"; known: packet_rate"
        );
    }
}

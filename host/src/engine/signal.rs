//! Signal-update lists as the engine passes them along the chain.
//!
//! A list is a concatenation of shared, immutable parts: passing a list
//! downstream, or concatenating the lists of 26 upstream blocks, copies
//! pointers, not values. Values are copied only when a plugin that
//! overrides its signal-update handler needs an owned list.

use std::sync::Arc;

use bitstream_sdk::Value;

/// A signal-update list: cheap to clone and to concatenate.
#[derive(Clone, Default)]
pub struct SignalList {
    parts: Arc<[Arc<[Value]>]>,
}

impl SignalList {
    /// A list of these values.
    pub fn from_values(values: Vec<Value>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        SignalList {
            parts: Arc::from([Arc::<[Value]>::from(values)]),
        }
    }

    /// The lists one after the other, sharing their parts.
    pub fn concat<'a>(lists: impl IntoIterator<Item = &'a SignalList>) -> Self {
        // A plain loop of slice extends: it compiles to the same tight
        // clone loop whatever LLVM decides to inline around it.
        let mut parts: Vec<Arc<[Value]>> = Vec::new();
        for list in lists {
            parts.extend_from_slice(&list.parts);
        }
        SignalList {
            parts: Arc::from(parts),
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &Value> {
        self.parts.iter().flat_map(|part| part.iter())
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|part| part.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy for a plugin call.
    pub fn to_vec(&self) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter().cloned());
        out
    }
}

impl std::fmt::Debug for SignalList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_shares_parts_and_keeps_order() {
        let a = SignalList::from_values(vec![Value::Int(1), Value::Int(2)]);
        let b = SignalList::from_values(vec![Value::Int(3)]);
        let both = SignalList::concat([&a, &SignalList::default(), &b]);
        assert_eq!(
            both.iter().cloned().collect::<Vec<_>>(),
            [Value::Int(1), Value::Int(2), Value::Int(3)]
        );
        assert_eq!(both.len(), 3);
        assert!(
            Arc::ptr_eq(&both.parts[0], &a.parts[0]),
            "no value was copied"
        );
        assert_eq!(both.to_vec().len(), 3);
        assert!(SignalList::from_values(vec![]).is_empty());
    }
}

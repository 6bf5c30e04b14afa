//! [`BufferStore`]: the buffers of one catalog, keyed by (type name, uid)
//! or by a Smart Device's UID alone, shared or process-local.
//!
//! Shared buffers are named `<prefix><type>-<uid in decimal>` (the prefix
//! defaults to `rt-`, as in PiE). The store remembers which buffers it
//! created and can unlink them all; buffers it merely attached to are left.
//!
//! ```
//! use bitstream_buffer::catalog::Catalog;
//! use bitstream_buffer::store::{BufferStore, StoreOptions};
//!
//! let catalog = Catalog::from_json(
//!     r#"{"switch": {"device_id": 3, "params": [{"name": "on", "type": "bool"}]}}"#,
//! )
//! .unwrap();
//! let store = BufferStore::new(catalog, StoreOptions::local());
//! let uid: u128 = (3 << 72) | 42;
//! let device = store.device(uid).unwrap();
//! device.set("on", true).unwrap();
//! assert!(std::sync::Arc::ptr_eq(&device, &store.device(uid).unwrap()));
//! assert_eq!(device.uid().unwrap().random, 42);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::catalog::Catalog;
use super::device::{Buffer, BufferError, BufferType, DeviceBuffer, DeviceUid};
use super::segment::{Segment, SegmentError};

/// How a [`BufferStore`] makes buffers.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Make buffers in POSIX shared memory (else on the heap).
    pub shared: bool,
    /// Prefix of shared-memory names.
    pub prefix: String,
}

impl StoreOptions {
    /// Process-local buffers.
    pub fn local() -> StoreOptions {
        StoreOptions {
            shared: false,
            prefix: "rt-".to_owned(),
        }
    }

    /// Shared-memory buffers named `<prefix><type>-<uid>`.
    pub fn shared(prefix: &str) -> StoreOptions {
        StoreOptions {
            shared: true,
            prefix: prefix.to_owned(),
        }
    }
}

/// A buffer the store holds: plain or Smart Device.
#[derive(Debug, Clone)]
pub enum StoredBuffer {
    /// A plain buffer type.
    Plain(Arc<Buffer>),
    /// A Smart Device type.
    Device(Arc<DeviceBuffer>),
}

impl StoredBuffer {
    /// The buffer, whatever its kind.
    pub fn buffer(&self) -> &Buffer {
        match self {
            StoredBuffer::Plain(b) => b,
            StoredBuffer::Device(d) => d,
        }
    }
}

/// Buffers of one catalog, keyed by (type name, uid).
pub struct BufferStore {
    catalog: Catalog,
    options: StoreOptions,
    types: Mutex<HashMap<String, Arc<BufferType>>>,
    buffers: Mutex<HashMap<(String, u128), StoredBuffer>>,
    created: Mutex<Vec<String>>,
}

impl BufferStore {
    /// A store over `catalog`.
    pub fn new(catalog: Catalog, options: StoreOptions) -> BufferStore {
        BufferStore {
            catalog,
            options,
            types: Mutex::default(),
            buffers: Mutex::default(),
            created: Mutex::default(),
        }
    }

    /// The store's catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The shared-memory name of (type, uid).
    pub fn shm_name(&self, type_name: &str, uid: u128) -> String {
        format!("{}{type_name}-{uid}", self.options.prefix)
    }

    /// The prepared type `type_name` (cached).
    pub fn buffer_type(&self, type_name: &str) -> Result<Arc<BufferType>, BufferError> {
        let mut types = self.types.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = types.get(type_name) {
            return Ok(t.clone());
        }
        let t = Arc::new(BufferType::from_catalog(&self.catalog, type_name)?);
        types.insert(type_name.to_owned(), t.clone());
        Ok(t)
    }

    /// The buffer of (type, uid): held, else attached if it exists in
    /// shared memory, else created.
    pub fn get(&self, type_name: &str, uid: u128) -> Result<StoredBuffer, BufferError> {
        let key = (type_name.to_owned(), uid);
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = buffers.get(&key) {
            return Ok(b.clone());
        }
        let ty = self.buffer_type(type_name)?;
        let buffer = if self.options.shared {
            let name = self.shm_name(type_name, uid);
            match Buffer::attach_shared(&name, &ty) {
                Ok(b) => b,
                Err(BufferError::Segment(SegmentError::NotFound { .. })) => {
                    let b = Buffer::create_shared(&name, &ty)?;
                    self.created
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(name);
                    b
                }
                Err(e) => return Err(e),
            }
        } else {
            Buffer::new_local(&ty)?
        };
        let stored = if ty.device_type().is_smart() {
            let device = DeviceBuffer::try_from(buffer)?;
            if device.is_owner() {
                device.set_uid(DeviceUid::from_u128(uid))?;
            }
            StoredBuffer::Device(Arc::new(device))
        } else {
            StoredBuffer::Plain(Arc::new(buffer))
        };
        buffers.insert(key, stored.clone());
        Ok(stored)
    }

    /// The Smart Device buffer of `uid`; its device_id names the type.
    pub fn device(&self, uid: u128) -> Result<Arc<DeviceBuffer>, BufferError> {
        let device_id = DeviceUid::from_u128(uid).device_id;
        let ty = self
            .catalog
            .by_device_id(device_id)
            .ok_or_else(|| BufferError::UnknownType {
                type_name: format!("(device_id {device_id})"),
                known: self
                    .catalog
                    .types()
                    .iter()
                    .filter_map(|t| t.device_id.map(|id| format!("{} = {id}", t.name)))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let name = ty.name.clone();
        match self.get(&name, uid)? {
            StoredBuffer::Device(d) => Ok(d),
            StoredBuffer::Plain(_) => unreachable!("a type found by device_id is a Smart Device"),
        }
    }

    /// Every held buffer's key.
    pub fn keys(&self) -> Vec<(String, u128)> {
        let buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<_> = buffers.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Forgets (type, uid); the buffer closes when its last handle drops.
    pub fn remove(&self, type_name: &str, uid: u128) -> Option<StoredBuffer> {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(type_name.to_owned(), uid))
    }

    /// Unlinks every shared buffer this store created and forgets all
    /// buffers. Returns how many names were unlinked.
    pub fn unlink_all(&self) -> Result<usize, BufferError> {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let names =
            std::mem::take(&mut *self.created.lock().unwrap_or_else(PoisonError::into_inner));
        let mut count = 0;
        for name in names {
            match Segment::unlink(&name) {
                Ok(()) => count += 1,
                Err(SegmentError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(count)
    }
}

impl Drop for BufferStore {
    fn drop(&mut self) {
        if let Err(e) = self.unlink_all() {
            log::warn!("buffer store: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ParamValue;

    const CATALOG: &str = r#"{
        "switch": {"device_id": 3, "params": [{"name": "on", "type": "bool"}]},
        "plain": {"params": [{"name": "level", "type": "int32"}]}
    }"#;

    fn prefix(tag: &str) -> String {
        format!("bsestore-{tag}-{}-", std::process::id())
    }

    #[test]
    fn shared_store_creates_attaches_and_unlinks_what_it_created() {
        let catalog = Catalog::from_json(CATALOG).unwrap();
        let prefix = prefix("shared");
        let owner = BufferStore::new(catalog.clone(), StoreOptions::shared(&prefix));
        let uid: u128 = (3 << 72) | (21 << 64) | 7;
        let device = owner.device(uid).unwrap();
        device.set("on", true).unwrap();
        let plain = owner.get("plain", 5).unwrap();
        plain.buffer().set("level", -4).unwrap();
        let names = Segment::list_shared(&prefix).unwrap();
        assert_eq!(
            names,
            vec![format!("{prefix}plain-5"), format!("{prefix}switch-{uid}")]
        );
        assert_eq!(owner.keys().len(), 2);

        // A second store (another process would do the same) attaches.
        let other = BufferStore::new(catalog, StoreOptions::shared(&prefix));
        let seen = other.device(uid).unwrap();
        assert!(!seen.is_owner());
        assert_eq!(seen.get("on").unwrap(), ParamValue::Bool(true));
        assert_eq!(seen.uid().unwrap().to_u128(), uid);
        assert_eq!(
            other
                .get("plain", 5)
                .unwrap()
                .buffer()
                .get("level")
                .unwrap(),
            ParamValue::Int(-4)
        );
        assert_eq!(other.unlink_all().unwrap(), 0, "it created nothing");
        assert_eq!(Segment::list_shared(&prefix).unwrap().len(), 2);

        assert_eq!(owner.unlink_all().unwrap(), 2);
        assert!(Segment::list_shared(&prefix).unwrap().is_empty());
        assert!(owner.keys().is_empty());
    }

    #[test]
    fn unknown_types_and_device_ids_are_errors() {
        let store = BufferStore::new(Catalog::from_json(CATALOG).unwrap(), StoreOptions::local());
        let e = store.get("nope", 1).unwrap_err().to_string();
        assert!(
            e.contains("no buffer type `nope`") && e.contains("switch"),
            "{e}"
        );
        let e = store.device(9 << 72).unwrap_err().to_string();
        assert!(e.contains("device_id 9") && e.contains("switch = 3"), "{e}");
        // A plain type's uid is any number, kept apart per uid.
        store
            .get("plain", 1)
            .unwrap()
            .buffer()
            .set("level", 1)
            .unwrap();
        let other = store.get("plain", 2).unwrap();
        assert_eq!(other.buffer().get("level").unwrap(), ParamValue::Int(0));
    }

    #[test]
    fn dropping_the_store_unlinks() {
        let prefix = prefix("drop");
        {
            let store = BufferStore::new(
                Catalog::from_json(CATALOG).unwrap(),
                StoreOptions::shared(&prefix),
            );
            store.get("plain", 1).unwrap();
            assert_eq!(Segment::list_shared(&prefix).unwrap().len(), 1);
        }
        assert!(Segment::list_shared(&prefix).unwrap().is_empty());
    }
}

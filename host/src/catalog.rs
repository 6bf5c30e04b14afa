//! Which device-buffer catalog a plugin ships, and the buffer type of its
//! blocks.
//!
//! A plugin ships a catalog as `catalog.json` beside its library in
//! `emulators/<type>/emulator/`, or declares one through the SDK
//! (`export_plugin! { …, catalog: … }`); the file wins when both exist.
//! The block's buffer type is the catalog's type named like the ip_block
//! type (`wideband_power_meter` or `wideband-power-meter`), or the
//! catalog's only type. The catalog format itself is documented in the
//! `bitstream-buffer` crate (module `catalog`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::BufferType;

/// The catalog file a plugin folder may hold.
pub const CATALOG_FILE: &str = "catalog.json";

/// Why a plugin's catalog cannot be used. Each names the file (or the
/// plugin's declaration) and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog file exists but cannot be read.
    #[error("{}: cannot read the catalog: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The catalog is not valid, or its type has no valid layout.
    #[error("{source_name}: {message}")]
    Invalid {
        /// Where the catalog came from.
        source_name: String,
        /// What is wrong, from the catalog reader.
        message: String,
    },
    /// No type of the catalog matches the ip_block type.
    #[error(
        "{source_name}: no buffer type for ip_block type \"{ip_block_type}\": name one of its types \
         \"{ip_block_type}\" or \"{kebab}\", or keep a single type (it has: {types})"
    )]
    NoType {
        /// Where the catalog came from.
        source_name: String,
        /// The ip_block type.
        ip_block_type: String,
        /// Its kebab-case spelling.
        kebab: String,
        /// The catalog's types, comma-separated.
        types: String,
    },
}

/// Where a plugin's catalog came from, and the buffer type of its blocks.
#[derive(Debug, Clone)]
pub struct PluginCatalog {
    /// `emulators/<type>/emulator/catalog.json`, or `None` when declared
    /// through the SDK.
    pub file: Option<PathBuf>,
    /// The buffer type of every block of the plugin's type.
    pub buffer_type: Arc<BufferType>,
}

impl PluginCatalog {
    /// Where the catalog came from, for messages.
    pub fn source(&self) -> String {
        catalog_source(self.file.as_deref())
    }
}

/// A catalog's file, or where a catalog without one was declared.
fn catalog_source(file: Option<&Path>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => "the catalog declared in the plugin (export_plugin! catalog:)".to_owned(),
    }
}

/// The catalog of a plugin, if it ships one: `catalog.json` in its folder,
/// else `declared` (what the plugin declares through the SDK). Errors name the file (or the
/// plugin) and say what to fix.
pub fn plugin_catalog(
    declared: Option<String>,
    folder: &Path,
    ip_block_type: &str,
) -> Result<Option<PluginCatalog>, CatalogError> {
    let file = folder.join(CATALOG_FILE);
    let (text, file) = if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|error| CatalogError::Read {
            file: file.clone(),
            error,
        })?;
        (text, Some(file))
    } else {
        match declared {
            Some(text) => (text, None),
            None => return Ok(None),
        }
    };
    catalog_from_text(&text, file, ip_block_type).map(Some)
}

/// The catalog `text` (from `file`, or declared in the plugin when `None`)
/// and the buffer type it gives blocks of `ip_block_type`, by the rule of
/// [`plugin_catalog`]: the type named `ip_block_type`, else its kebab-case
/// form, else the catalog's only type.
pub fn catalog_from_text(
    text: &str,
    file: Option<PathBuf>,
    ip_block_type: &str,
) -> Result<PluginCatalog, CatalogError> {
    let source_name = || catalog_source(file.as_deref());
    let invalid = |e: &dyn std::fmt::Display| CatalogError::Invalid {
        source_name: source_name(),
        message: e.to_string(),
    };
    let catalog = Catalog::from_json(text).map_err(|e| invalid(&e))?;
    let kebab = ip_block_type.replace('_', "-");
    let type_name = if catalog.get(ip_block_type).is_some() {
        ip_block_type.to_owned()
    } else if catalog.get(&kebab).is_some() {
        kebab
    } else if catalog.len() == 1 {
        catalog.types()[0].name.clone()
    } else {
        return Err(CatalogError::NoType {
            source_name: source_name(),
            ip_block_type: ip_block_type.to_owned(),
            kebab,
            types: catalog.names().collect::<Vec<_>>().join(", "),
        });
    };
    let buffer_type = BufferType::from_catalog(&catalog, &type_name).map_err(|e| invalid(&e))?;
    Ok(PluginCatalog {
        file,
        buffer_type: Arc::new(buffer_type),
    })
}

//! Works out what the user pointed at: a package, its `emulators/` folder,
//! or one `emulators/<type>/emulator` folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bitstream_host::config::CONFIG_FILE;
use bitstream_host::plugin::loader::{self, PluginFolder};

/// What to check.
#[derive(Debug)]
pub struct Target {
    /// The plugin folders to check, after `-i` filtering.
    pub plugins: Vec<PluginFolder>,
    /// Every plugin type found (for config checks and messages).
    pub available_types: Vec<String>,
    /// `emulators/config.json`, when checking a package or emulators folder
    /// that has one.
    pub config: Option<PathBuf>,
}

/// Resolves `dir` and applies the `-i` filter. Errors here are usage errors
/// (exit code 2).
pub fn resolve(dir: &Path, only: &[String]) -> Result<Target> {
    if !dir.exists() {
        bail!("{}: no such directory", dir.display());
    }
    if !dir.is_dir() {
        bail!("{}: not a directory; give a bitstream package, its emulators/ folder, or an emulators/<type>/emulator folder", dir.display());
    }
    let (plugins, config) = if dir.join("emulators").is_dir() {
        let emulators = dir.join("emulators");
        (find(&emulators)?, existing(emulators.join(CONFIG_FILE)))
    } else if dir.file_name().is_some_and(|n| n == "emulator") {
        let ip_block_type = dir
            .canonicalize()
            .with_context(|| format!("{}: cannot resolve the path", dir.display()))?
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = PluginFolder {
            ip_block_type,
            folder: dir.to_path_buf(),
        };
        (vec![folder], None)
    } else {
        let plugins = find(dir)?;
        let config = existing(dir.join(CONFIG_FILE));
        if plugins.is_empty() && config.is_none() {
            bail!(
                "{}: not a bitstream package: expected {0}/emulators/, or an emulators folder holding \
                 <ip_block_type>/emulator/ folders and config.json, or one emulators/<type>/emulator folder",
                dir.display()
            );
        }
        (plugins, config)
    };
    let available_types: Vec<String> = plugins.iter().map(|p| p.ip_block_type.clone()).collect();

    let unknown: Vec<&String> = only
        .iter()
        .filter(|t| !available_types.contains(t))
        .collect();
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let available = if available_types.is_empty() {
            "none".to_owned()
        } else {
            available_types.join(", ")
        };
        bail!(
            "{}: no ip_block type {list} (-i); available: {available}",
            dir.display()
        );
    }
    let plugins = plugins
        .into_iter()
        .filter(|p| only.is_empty() || only.contains(&p.ip_block_type))
        .collect();
    Ok(Target {
        plugins,
        available_types,
        config,
    })
}

fn find(emulators: &Path) -> Result<Vec<PluginFolder>> {
    loader::find_plugin_folders(emulators).map_err(Into::into)
}

fn existing(path: PathBuf) -> Option<PathBuf> {
    path.exists().then_some(path)
}

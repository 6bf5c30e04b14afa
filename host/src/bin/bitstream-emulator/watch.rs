//! `run --watch`: reloads a type when its library file changes.
//!
//! Each type's emulator folder (or, for `--plugin <type>=<path>`, the
//! folder of that file) is watched with inotify through `notify`, and the
//! events go through `notify-debouncer-mini`: a file is reloaded only once
//! it has had no event for the debounce window. `cargo` and `cp` write a
//! library in several steps; while the writes go on the file is not
//! touched, and a file that is still incomplete after a pause longer than
//! the window is refused by the swap's whole-ELF check (its section
//! headers, written last, must be in the file), so a half-written file is
//! never loaded. A file whose SHA-256 equals the serving version's (as
//! staged: the bytes read once) is not swapped again.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use bitstream_host::engine::{Emulator, ReloadOptions};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebouncedEventKind, Debouncer};

/// What is watched for one type.
struct Watched {
    ip_block_type: String,
    folder: PathBuf,
    /// Only this file (`--plugin`); otherwise any library in `folder`.
    file: Option<PathBuf>,
}

impl Watched {
    fn matches(&self, path: &std::path::Path) -> bool {
        match &self.file {
            Some(file) => path == file,
            None => {
                path.parent() == Some(self.folder.as_path())
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(std::env::consts::DLL_SUFFIX))
            }
        }
    }
}

/// Starts watching every type of `emulator`; the watch lasts as long as the
/// returned debouncer.
pub fn start(emulator: Arc<Emulator>, window: Duration) -> Result<Debouncer<RecommendedWatcher>> {
    let mut watched = Vec::new();
    for plugin in emulator.plugins() {
        let source = emulator
            .plugin_source(&plugin.ip_block_type)
            .expect("every serving type has a source");
        let canonical = |p: &PathBuf| p.canonicalize().unwrap_or_else(|_| p.clone());
        let file = source.library.as_ref().map(canonical);
        let folder = match &file {
            Some(file) => file.parent().map(PathBuf::from).unwrap_or_default(),
            None => canonical(&source.folder),
        };
        watched.push(Watched {
            ip_block_type: plugin.ip_block_type.clone(),
            folder,
            file,
        });
    }
    let (changed, types) = mpsc::channel::<BTreeSet<String>>();
    let rules = Arc::new(watched);
    let matcher = rules.clone();
    let mut debouncer = new_debouncer(
        window,
        move |events: notify_debouncer_mini::DebounceEventResult| {
            let Ok(events) = events else {
                return;
            };
            let hit: BTreeSet<String> = events
                .iter()
                // `AnyContinuous`: still being written; wait for the quiet one.
                .filter(|e| e.kind == DebouncedEventKind::Any)
                .flat_map(|e| {
                    matcher
                        .iter()
                        .filter(|w| w.matches(&e.path))
                        .map(|w| w.ip_block_type.clone())
                })
                .collect();
            if !hit.is_empty() {
                let _ = changed.send(hit);
            }
        },
    )
    .context("starting the file watcher")?;
    let mut folders: Vec<&PathBuf> = rules.iter().map(|w| &w.folder).collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        debouncer
            .watcher()
            .watch(folder, RecursiveMode::NonRecursive)
            .with_context(|| format!("{}: cannot watch this folder", folder.display()))?;
        tracing::info!(
            "watching {} (debounce window {} ms)",
            folder.display(),
            window.as_millis()
        );
    }
    thread::Builder::new()
        .name("plugin-watch".to_owned())
        .spawn(move || {
            for batch in types {
                for ip_block_type in batch {
                    reload_if_changed(&emulator, &ip_block_type);
                }
            }
        })
        .context("spawning the watch thread")?;
    Ok(debouncer)
}

fn reload_if_changed(emulator: &Emulator, ip_block_type: &str) {
    let Some(source) = emulator.plugin_source(ip_block_type) else {
        return;
    };
    let path = match &source.library {
        Some(file) => file.clone(),
        None => match bitstream_host::plugin::loader::find_library(&source.folder) {
            Ok(path) => path,
            Err(err) => {
                tracing::warn!(ip_block_type, "not reloaded: {err}");
                return;
            }
        },
    };
    if !path.exists() {
        return; // removed: the next write brings it back
    }
    // Success and failure are logged by the swap itself.
    let options = ReloadOptions {
        skip_unchanged: true,
        ..ReloadOptions::default()
    };
    let _ = emulator.reload(ip_block_type, options);
}

//! `run --dry-run`: load and check a package exactly as `run` would, print
//! what would be served, and exit without listening. Deployment checks
//! (the Kubernetes manifests' test) use it to prove a container's arguments
//! parse and its package loads.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use bitstream_host::engine::block_buffer::BufferMode;
use bitstream_host::engine::{Emulator, EngineOptions};
use serde_json::json;

/// Loads `package` with `options` (its plugins checked, its blocks created,
/// no pulse run, device buffers kept in process memory so nothing is left
/// in /dev/shm), then prints `{"id", "package", "bind"}` as one JSON line.
pub fn run(package: &Path, bind: SocketAddr, options: EngineOptions) -> Result<()> {
    let options = EngineOptions {
        pulse_period: None,
        start_running: false,
        buffers: BufferMode::Local,
        ..options
    };
    let emulator = Emulator::load(package, options)
        .with_context(|| format!("cannot start the emulator of {}", package.display()))?;
    let out = json!({
        "id": emulator.id(),
        "package": package,
        "bind": bind.to_string(),
    });
    emulator.terminate();
    println!("{out}");
    Ok(())
}

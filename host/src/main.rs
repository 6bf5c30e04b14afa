//! `bitstream-emulator`: the engine's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bitstream_host::checks::plugin::{check_plugin, BlockConstants, PluginCheck};
use bitstream_host::config::{self, BitstreamConfig, CONFIG_FILE};
use bitstream_host::loader;
use bitstream_host::plugin::Plugin;
use bitstream_sdk::ffi::ParamLocation;
use clap::{Parser, Subcommand};
use serde_json::{json, Value as Json};

/// The bitstream emulator engine.
#[derive(Parser, Debug)]
#[command(name = "bitstream-emulator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load a bitstream package as the engine does at startup (config,
    /// plugins, one instance per block with its constants) and print what
    /// it holds as JSON: plugins, state machines, routes and blocks.
    Inspect {
        /// The bitstream package (the folder holding emulators/).
        package: PathBuf,
        /// Also print each state machine as Graphviz DOT.
        #[arg(long)]
        dot: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect { package, dot } => inspect(package, *dot),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bitstream-emulator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the package; every problem that would stop the engine is an error.
fn load_package(package: &Path) -> Result<(BitstreamConfig, Vec<Plugin>)> {
    let emulators = package.join("emulators");
    if !emulators.is_dir() {
        bail!(
            "{}: no emulators/ folder; give the bitstream package folder",
            package.display()
        );
    }
    let folders = loader::find_plugin_folders(&emulators)?;
    let types: Vec<String> = folders.iter().map(|f| f.ip_block_type.clone()).collect();
    let config = config::load_config(&emulators.join(CONFIG_FILE), Some(&types))?;

    let mut plugins = Vec::new();
    for ip_block_type in config.block_types() {
        let folder = folders
            .iter()
            .find(|f| f.ip_block_type == ip_block_type)
            .context("the config check guarantees an emulator folder per type")?;
        let blocks: Vec<BlockConstants> = config
            .blocks_of_type(ip_block_type)
            .map(|b| BlockConstants {
                block_id: b.id.clone(),
                constants: b.constants.clone(),
            })
            .collect();
        let input = PluginCheck {
            ip_block_type,
            folder: &folder.folder,
            blocks: Some(&blocks),
        };
        let (plugin, report) = check_plugin(input, &mut |_| {});
        let Some(plugin) = plugin else {
            let problems: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.failed())
                .flat_map(|c| {
                    c.problems
                        .iter()
                        .map(|p| format!("  [{}] {}", c.name, p.message))
                })
                .collect();
            bail!(
                "plugin \"{ip_block_type}\" is not valid:\n{}",
                problems.join("\n")
            );
        };
        plugins.push(plugin);
    }
    Ok((config, plugins))
}

fn inspect(package: &Path, dot: bool) -> Result<()> {
    let (config, plugins) = load_package(package)?;
    let plugin_of = |ty: &str| plugins.iter().find(|p| p.ip_block_type == ty);

    let mut blocks = Vec::new();
    for block in &config.ip_blocks {
        let plugin = plugin_of(&block.block_type).context("every type was loaded")?;
        let mut instance = plugin
            .components
            .create_block()
            .with_context(|| format!("block \"{}\": constructing its ip_block", block.id))?;
        instance
            .apply_constants(&block.constants)
            .with_context(|| format!("block \"{}\": applying its constants", block.id))?;
        let data = instance
            .snapshot()
            .with_context(|| format!("block \"{}\": reading its ip_block", block.id))?;
        blocks.push(json!({
            "id": block.id,
            "type": block.block_type,
            "display_name": block.display_name,
            "state": plugin.machine.state_name(plugin.machine.initial()),
            "downstream_block_ids": block.downstream_block_ids,
            "ip_block": Json::from(data),
        }));
    }

    let plugins_json: Vec<Json> = plugins
        .iter()
        .map(|p| {
            let routes: Vec<Json> = p
                .routes
                .iter()
                .map(|r| {
                    let path_param = r.params.iter().find(|q| q.location == ParamLocation::Path);
                    let url = match path_param {
                        Some(param) => format!("/<block>/{}/<{}>", r.name, param.name),
                        None => format!("/<block>/{}", r.name),
                    };
                    json!({"method": r.method.as_str(), "route": url, "summary": r.summary.as_str()})
                })
                .collect();
            let mut entry = json!({
                "ip_block_type": p.ip_block_type,
                "library": p.library.path,
                "plugin": p.library.module.plugin_name().as_str(),
                "version": p.library.module.plugin_version().as_str(),
                "sdk_version": p.library.sdk_version.to_string(),
                "states": p.machine.states().map(|(_, name)| name).collect::<Vec<_>>(),
                "initial_state": p.machine.state_name(p.machine.initial()),
                "routes": routes,
                "overrides": {
                    "pulse": p.overrides.pulse,
                    "signal_update": p.overrides.signal_update,
                    "manual_event": p.overrides.manual_event,
                },
            });
            if dot {
                entry["dot"] = Json::from(p.machine.to_dot(&p.ip_block_type));
            }
            entry
        })
        .collect();

    let out = json!({
        "id": config.id,
        "version": config.version,
        "first": config.first,
        "plugins": plugins_json,
        "blocks": blocks,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

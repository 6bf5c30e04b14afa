//! `bitstream-emulator`: the engine's command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bitstream_buffer::catalog::{Catalog, DeviceType};
use bitstream_host::engine::block_buffer::{BufferMode, SHM_PREFIX};
use bitstream_host::engine::{Emulator, EngineOptions};
use bitstream_host::http::ServeOptions;
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value as Json};

mod dry_run;
mod fleet;
mod injector;
mod limits;
mod logging;
mod new;
mod serve_args;
mod signals;
mod swap;
mod tools;
mod watch;

use logging::LogLevel;
use serve_args::ServeArgs;

/// The bitstream emulator engine.
#[derive(Parser, Debug)]
#[command(name = "bitstream-emulator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a bitstream package and serve its HTTP API.
    Run {
        /// The bitstream package (the folder holding emulators/).
        package: PathBuf,
        /// Address to listen on (use 0.0.0.0:5001 in a container).
        #[arg(long, default_value = "127.0.0.1:5001")]
        bind: SocketAddr,
        /// The emulator id injections must name (default: the config's id).
        #[arg(long)]
        id: Option<String>,
        /// Milliseconds between real-time pulses; 0 for accelerated pulses
        /// only (POST /pulse).
        #[arg(long, default_value_t = 1000)]
        pulse_period_ms: u64,
        /// Milliseconds a handler or route may run before it counts as hung.
        #[arg(long, default_value_t = 10_000)]
        handler_timeout_ms: u64,
        /// Run this many pulses as fast as possible before serving.
        #[arg(long, default_value_t = 0)]
        pulses: u64,
        /// Start with real-time pulses stopped (POST /start starts them).
        #[arg(long)]
        stopped: bool,
        /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case;
        /// also TRACE); RUST_LOG overrides it.
        #[arg(long, default_value = "INFO", value_parser = clap::builder::ValueParser::new(str::parse::<LogLevel>))]
        log_level: LogLevel,
        #[command(flatten)]
        serve: ServeArgs,
        /// Keep block device buffers in process memory instead of
        /// /dev/shm/bitstream-<id>-<block> (other processes cannot see them).
        #[arg(long)]
        local_buffers: bool,
        /// Serve a type from this library instead of the one in its
        /// emulators/<type>/emulator/ folder, e.g. probe=target/debug/libprobe.so
        /// (repeatable; watched too with --watch).
        #[arg(long = "plugin", value_name = "TYPE=PATH", value_parser = swap::parse_plugin_file)]
        plugins: Vec<(String, PathBuf)>,
        /// Watch every type's library and swap it in when it changes (after
        /// the debounce window and the isolated check).
        #[arg(long)]
        watch: bool,
        /// Milliseconds a changed file must stay quiet before it is reloaded.
        #[arg(long, default_value_t = 200)]
        watch_debounce_ms: u64,
        /// Milliseconds the isolated check of a new library (a child
        /// process) may take before it is killed and the swap refused.
        #[arg(long, default_value_t = 10_000)]
        check_timeout_ms: u64,
        /// Load and check the package, print {"id", "package", "bind"} as
        /// JSON and exit without listening (checks a deployment's arguments).
        #[arg(long)]
        dry_run: bool,
        /// Libraries a swap may load in this process, all types together
        /// (they are never unloaded: each stays resident); beyond, a reload
        /// of a new build is refused (restart the emulator). Files loaded
        /// before are reused and do not count again.
        #[arg(long, default_value_t = 256)]
        max_swap_libraries: usize,
    },
    /// Serve the injector: POST /inject takes injector_event_groups for
    /// several emulators and hands each emulator its groups.
    Injector(injector::InjectorArgs),
    /// Run many emulators in one process, each with its own id, package and
    /// address: from a manifest (TOML), or --count copies of --package.
    Fleet(fleet::FleetArgs),
    /// Swap a type's plugin in a running emulator: load its file again (or
    /// --path), check it in a child process, carry every block's state over.
    Reload {
        /// The emulator's URL, e.g. http://127.0.0.1:5001
        url: String,
        /// The ip_block type.
        #[arg(value_name = "TYPE")]
        ip_block_type: String,
        /// Load this library instead of the type's file.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Start blocks whose state the new machine lacks in its initial state.
        #[arg(long)]
        reset: bool,
        /// Go back to the version before the last swap instead.
        #[arg(long, conflicts_with = "path")]
        rollback: bool,
    },
    /// (Internal) check one library in this process and print the report as
    /// JSON lines: the isolated check of a swap.
    #[command(name = "check-plugin", hide = true)]
    CheckPlugin {
        ip_block_type: String,
        folder: PathBuf,
        library: PathBuf,
    },
    /// Measure accelerated pulses per second through a package's signal chain.
    Bench {
        /// The bitstream package.
        package: PathBuf,
        /// Pulses per measurement.
        #[arg(long, default_value_t = 200_000)]
        pulses: u64,
        /// Measurements (the median is reported).
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// Load a package as `run` does and print what it holds as JSON:
    /// plugins, state machines, routes and blocks with their constants.
    Inspect {
        /// The bitstream package.
        package: PathBuf,
        /// Also print each state machine as Graphviz DOT.
        #[arg(long)]
        dot: bool,
    },
    /// Device buffers: the C layout of a catalog's types, and the shared
    /// buffers in /dev/shm (list, dump, get and set parameters).
    Buffer {
        #[command(subcommand)]
        command: BufferCommand,
    },
    /// Smart Device messages: decode COBS hex to JSON, encode JSON to hex.
    Message {
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Write a standalone IP block crate (the four components as a small
    /// working example, tests with bitstream-testkit) that is also a
    /// bitstream package (emulators/config.json), with a README for the
    /// edit, build, validate, run loop.
    New {
        /// The IP block type: a snake_case identifier (names the crate, its
        /// library, the emulators/<type> folder and the block).
        ip_block_type: String,
        /// The crate's folder (created; must be empty unless --force).
        #[arg(long)]
        path: PathBuf,
        /// Depend on the SDK at this folder (the `sdk` folder of the
        /// emulator's repository) instead of a version from crates.io.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
        /// Depend on the test kit at this folder (default with --sdk-path:
        /// `testkit` beside the SDK folder; else a version).
        #[arg(long)]
        testkit_path: Option<PathBuf>,
        /// Write into a non-empty folder, overwriting the generated files
        /// (other files are kept).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BufferCommand {
    /// Print the C layout (offsets, sizes, C types) of every type of a
    /// catalog, or of one, as JSON.
    Layout {
        /// The catalog (JSON).
        catalog: PathBuf,
        /// Only this type.
        #[arg(value_name = "TYPE")]
        type_name: Option<String>,
    },
    /// List the shared buffers in /dev/shm: name, type, size, valid flag,
    /// creator pid.
    Ls {
        /// Only names starting with this ('' for every shared memory object).
        #[arg(long, default_value = SHM_PREFIX)]
        prefix: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a shared buffer as JSON: its parameters, pending writes and,
    /// for Smart Devices, its control block (with the pending bitmaps, left
    /// as they are) and message counts.
    Dump {
        /// The shared memory name (as `buffer ls` lists it).
        name: String,
        /// Check the buffer against this catalog (its type must match the
        /// creator's exactly).
        #[arg(long)]
        catalog: Option<PathBuf>,
        #[command(flatten)]
        wait: LockWait,
    },
    /// Print one parameter of a shared buffer as JSON.
    Get {
        /// The shared memory name.
        name: String,
        /// The parameter.
        param: String,
        /// Read the write block (the pending write) instead.
        #[arg(long)]
        written: bool,
        #[command(flatten)]
        wait: LockWait,
    },
    /// Set one parameter of a shared buffer; prints the value now stored.
    Set {
        /// The shared memory name.
        name: String,
        /// The parameter.
        param: String,
        /// The value as JSON: 1.5, true, '"text"', '[1, 2]'.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Request a write to the device (the write block) instead.
        #[arg(long)]
        write: bool,
        #[command(flatten)]
        wait: LockWait,
    },
}

/// How long `buffer dump|get|set` wait for a buffer's lock.
#[derive(clap::Args, Debug)]
struct LockWait {
    /// Wait at most this long (milliseconds) for the buffer's lock; when
    /// another process holds it longer, fail naming that process.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    wait_ms: u64,
}

impl LockWait {
    fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.wait_ms)
    }
}

#[derive(Subcommand, Debug)]
enum MessageCommand {
    /// Decode a COBS-encoded message (hex, spaces optional, trailing 00
    /// optional; '-' reads standard input) and print it as JSON.
    Decode {
        /// The hex bytes.
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
        #[command(flatten)]
        catalog: MessageCatalog,
    },
    /// Encode a message given as JSON ('-' reads standard input) and print
    /// its COBS encoding in hex.
    Encode {
        /// The message, e.g. '{"type": "SUB_REQ", "params": 30, "interval_ms": 40}'.
        json: String,
        #[command(flatten)]
        catalog: MessageCatalog,
        /// Append the 00 delimiter, as sent on the wire.
        #[arg(long)]
        delimited: bool,
    },
}

/// The catalog type that names a message's parameters and values.
#[derive(Args, Debug)]
struct MessageCatalog {
    /// Name parameters and DEV_WRITE/DEV_DATA values with this catalog.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// The catalog's type (default: its only type, or only Smart Device).
    #[arg(long = "type", value_name = "TYPE", requires = "catalog")]
    type_name: Option<String>,
}

impl MessageCatalog {
    /// The catalog, when one is given.
    fn load(&self) -> Result<Option<Catalog>> {
        self.catalog.as_deref().map(tools::load_catalog).transpose()
    }

    /// The type in `loaded` (from [`MessageCatalog::load`]).
    fn resolve<'c>(&self, loaded: &'c Option<Catalog>) -> Result<Option<&'c DeviceType>> {
        match (loaded, &self.catalog) {
            (Some(c), Some(path)) => Ok(Some(tools::resolve_type(
                c,
                path,
                self.type_name.as_deref(),
            )?)),
            _ => Ok(None),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            package,
            bind,
            id,
            pulse_period_ms,
            handler_timeout_ms,
            pulses,
            stopped,
            log_level,
            serve,
            local_buffers,
            plugins,
            watch,
            watch_debounce_ms,
            check_timeout_ms,
            dry_run,
            max_swap_libraries,
        } => {
            let options = EngineOptions {
                id: id.unwrap_or_default(),
                pulse_period: (pulse_period_ms > 0).then(|| Duration::from_millis(pulse_period_ms)),
                handler_timeout: Duration::from_millis(handler_timeout_ms.max(1)),
                start_running: !stopped,
                buffers: if local_buffers {
                    BufferMode::Local
                } else {
                    BufferMode::Shared
                },
                plugin_files: plugins,
                runtime: None,
            };
            let swaps = RunSwaps {
                watch: watch.then(|| Duration::from_millis(watch_debounce_ms)),
                check_timeout: Duration::from_millis(check_timeout_ms.max(1)),
                max_libraries: max_swap_libraries,
            };
            logging::init(log_level).and_then(|()| {
                if dry_run {
                    dry_run::run(&package, bind, options)
                } else {
                    run(&package, bind, options, serve.options(), pulses, swaps)
                }
            })
        }
        Command::Injector(args) => injector::run(args),
        Command::Fleet(args) => fleet::run(args),
        Command::Reload {
            url,
            ip_block_type,
            path,
            reset,
            rollback,
        } => swap::reload(&url, &ip_block_type, path.as_deref(), reset, rollback),
        Command::CheckPlugin {
            ip_block_type,
            folder,
            library,
        } => swap::run_child(&ip_block_type, &folder, &library),
        Command::Bench {
            package,
            pulses,
            runs,
        } => logging::init(LogLevel::Warning).and_then(|()| bench(&package, pulses, runs)),
        Command::Inspect { package, dot } => {
            logging::init(LogLevel::Warning).and_then(|()| inspect(&package, dot))
        }
        Command::Buffer { command } => buffer(command),
        Command::Message { command } => message(command),
        Command::New {
            ip_block_type,
            path,
            sdk_path,
            testkit_path,
            force,
        } => new::run(&new::NewOptions {
            ip_block_type,
            path,
            sdk_path,
            testkit_path,
            force,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bitstream-emulator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(package: &Path, options: EngineOptions) -> Result<Emulator> {
    Emulator::load(package, options)
        .with_context(|| format!("cannot start the emulator of {}", package.display()))
}

/// What `run` does for hot-swap.
struct RunSwaps {
    /// Watch the libraries, with this debounce window.
    watch: Option<Duration>,
    /// The isolated check's time limit.
    check_timeout: Duration,
    /// Libraries swaps may load.
    max_libraries: usize,
}

fn run(
    package: &Path,
    bind: SocketAddr,
    options: EngineOptions,
    serve: ServeOptions,
    pulses: u64,
    swaps: RunSwaps,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        // Load first: a broken package fails before anything listens.
        let emulator = Arc::new(tokio::task::block_in_place(|| load(package, options))?);
        emulator.set_isolated_check(Arc::new(swap::ChildCheck::new(swaps.check_timeout)?));
        emulator.set_swap_library_limit(swaps.max_libraries);
        let _watch = match swaps.watch {
            Some(window) => {
                Some(watch::start(emulator.clone(), window).inspect_err(|_| emulator.terminate())?)
            }
            None => None,
        };
        let listener = match tokio::net::TcpListener::bind(bind).await {
            Ok(listener) => listener,
            Err(err) => {
                emulator.terminate();
                return Err(err).with_context(|| format!("cannot listen on {bind}"));
            }
        };
        if pulses > 0 {
            let run = tokio::task::block_in_place(|| emulator.run_pulses(pulses))
                .inspect_err(|_| emulator.terminate())?;
            tracing::info!(
                "ran {} accelerated pulses in {:.3} s ({:.0} pulses/s)",
                run.pulses,
                run.elapsed.as_secs_f64(),
                run.pulses as f64 / run.elapsed.as_secs_f64().max(1e-9)
            );
        }
        tracing::info!(
            id = emulator.id(),
            blocks = emulator.blocks().len(),
            "serving {} on http://{}",
            package.display(),
            listener.local_addr()?
        );
        let ctrl_c = emulator.clone();
        tokio::spawn(async move {
            // End cleanly, so block buffers leave /dev/shm.
            signals::terminated("terminating").await;
            ctrl_c.terminate();
        });
        bitstream_host::http::serve_with(emulator, listener, serve)
            .await
            .context("serving HTTP")
    });
    // The server has answered every request. A route that never returned
    // still occupies a blocking thread, which dropping the runtime would
    // wait for forever: give the rest a moment, then exit regardless (the
    // whole shutdown stays within 2 s).
    runtime.shutdown_timeout(Duration::from_millis(500));
    served
}

fn bench(package: &Path, pulses: u64, runs: usize) -> Result<()> {
    let options = EngineOptions {
        id: String::new(),
        pulse_period: None,
        handler_timeout: Duration::from_secs(60),
        start_running: false,
        buffers: BufferMode::Local,
        plugin_files: Vec::new(),
        runtime: None,
    };
    let emulator = load(package, options)?;
    emulator.run_pulses(pulses.min(10_000))?; // warm-up
    let mut rates: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            emulator
                .run_pulses(pulses)
                .map(|r| r.pulses as f64 / r.elapsed.as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let out = json!({
        "package": package,
        "blocks": emulator.blocks().len(),
        "pulses_per_run": pulses,
        "runs": rates.len(),
        "median_pulses_per_second": median.round(),
        "min_pulses_per_second": rates[0].round(),
        "max_pulses_per_second": rates[rates.len() - 1].round(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    emulator.terminate();
    Ok(())
}

fn inspect(package: &Path, dot: bool) -> Result<()> {
    let options = EngineOptions {
        id: String::new(),
        pulse_period: None,
        start_running: false,
        ..EngineOptions::default()
    };
    let emulator = load(package, options)?;
    let blocks: Vec<Json> = emulator
        .blocks()
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let config = &emulator.config().ip_blocks[i];
            Ok(json!({
                "id": block.id,
                "type": config.block_type,
                "display_name": config.display_name,
                "state": emulator.block_state(i)?,
                "downstream_block_ids": config.downstream_block_ids,
                "ip_block": Json::from(emulator.block_snapshot(i)?),
            }))
        })
        .collect::<Result<_>>()?;
    let plugins: Vec<Json> = emulator
        .plugins()
        .iter()
        .map(|p| {
            let mut entry = json!({
                "ip_block_type": p.ip_block_type,
                "library": p.library.path,
                "plugin": p.library.plugin_name(),
                "version": p.library.plugin_version(),
                "sdk_version": p.library.sdk_version.to_string(),
                "states": p.machine.states().map(|(_, name)| name).collect::<Vec<_>>(),
                "initial_state": p.machine.state_name(p.machine.initial()),
                "routes": p.routes.iter().map(|r| json!({"method": r.method.as_str(), "name": r.name.as_str(), "summary": r.summary.as_str()})).collect::<Vec<_>>(),
                "overrides": {
                    "pulse": p.overrides.pulse,
                    "signal_update": p.overrides.signal_update,
                    "manual_event": p.overrides.manual_event,
                },
            });
            entry["buffer"] = p.catalog.as_ref().map_or(Json::Null, |c| {
                json!({
                    "type": c.buffer_type.name(),
                    "catalog": c.source(),
                    "size": c.buffer_type.layout().size,
                })
            });
            if dot {
                entry["dot"] = Json::from(p.machine.to_dot(&p.ip_block_type));
            }
            entry
        })
        .collect();
    let out = json!({
        "id": emulator.config().id,
        "version": emulator.config().version,
        "first": emulator.config().first,
        "pulse_order": emulator.chain().order().iter().map(|&b| emulator.blocks()[b].id.as_str()).collect::<Vec<_>>(),
        "plugins": plugins,
        "blocks": blocks,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    emulator.terminate();
    Ok(())
}

fn print_json(value: &Json) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn warn(warning: impl std::fmt::Display) {
    eprintln!("bitstream-emulator: warning: {warning}");
}

/// `text`, or standard input when it is `-`.
fn arg_or_stdin(text: String) -> Result<String> {
    if text != "-" {
        return Ok(text);
    }
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .context("reading standard input")?;
    Ok(input)
}

fn buffer(command: BufferCommand) -> Result<()> {
    match command {
        BufferCommand::Layout { catalog, type_name } => {
            let c = tools::load_catalog(&catalog)?;
            let only = type_name
                .as_deref()
                .map(|t| tools::catalog_type(&c, &catalog, t))
                .transpose()?;
            print_json(&tools::layout::catalog_layout(&c, only))
        }
        BufferCommand::Ls { prefix, json } => {
            let entries = tools::shm::list(&prefix)?;
            if json {
                print_json(&Json::from(entries))
            } else {
                print!("{}", tools::shm::list_text(&entries));
                Ok(())
            }
        }
        BufferCommand::Dump {
            name,
            catalog,
            wait,
        } => {
            let c = catalog.as_deref().map(tools::load_catalog).transpose()?;
            let with = c.as_ref().zip(catalog.as_deref());
            print_json(&tools::shm::dump(&name, with, wait.duration())?)
        }
        BufferCommand::Get {
            name,
            param,
            written,
            wait,
        } => print_json(&tools::shm::get(&name, &param, written, wait.duration())?),
        BufferCommand::Set {
            name,
            param,
            value,
            write,
            wait,
        } => {
            let value = tools::shm::parse_value(&value, &param)?;
            let outcome = tools::shm::set(&name, &param, &value, write, wait.duration())?;
            if let Some(w) = outcome.warning {
                warn(format!("buffer `{name}`: {w}"));
            }
            print_json(&outcome.value)
        }
    }
}

fn message(command: MessageCommand) -> Result<()> {
    match command {
        MessageCommand::Decode { hex, catalog } => {
            let hex = arg_or_stdin(hex.join(" "))?;
            let loaded = catalog.load()?;
            print_json(&tools::message::decode_hex(
                &hex,
                catalog.resolve(&loaded)?,
            )?)
        }
        MessageCommand::Encode {
            json,
            catalog,
            delimited,
        } => {
            let json = arg_or_stdin(json)?;
            let loaded = catalog.load()?;
            let ty = catalog.resolve(&loaded)?;
            let encoded = tools::message::encode_text(&json, ty)?;
            for w in &encoded.warnings {
                warn(w);
            }
            println!("{}", encoded.to_hex(delimited)?);
            Ok(())
        }
    }
}

//! The checks of one plugin folder.
//!
//! A plugin folder goes through [`PLUGIN_CHECKS`] in order; a check that
//! cannot run because an earlier one failed is reported as skipped. When
//! everything passes, the checked [`Plugin`] is returned ready to use, so
//! the engine never loads a plugin twice.

use std::path::Path;
use std::sync::Arc;

use bitstream_sdk::ValueMap;
use serde::{Deserialize, Serialize};

use crate::fsm::{check_machine, Machine};
use crate::plugin::loader::{self, LoadError, LoadedLibrary};
use crate::plugin::{Components, Plugin};
use crate::report::{CheckOutcome, PluginReport, Problem};
use crate::route::Route;

use super::api;

/// The checks run on each plugin, in order.
pub const PLUGIN_CHECKS: [&str; 9] = [
    "layout",
    "load",
    "abi",
    "components",
    "ip_block",
    "state_machine",
    "api",
    "buffer",
    "constants",
];

/// The constants a config gives one block, to be tried on its plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockConstants {
    /// The block's id in the config.
    pub block_id: String,
    /// Its `constants`.
    pub constants: ValueMap,
}

/// What to check: one `emulators/<type>/emulator` folder.
#[derive(Debug, Clone, Copy)]
pub struct PluginCheck<'a> {
    /// The type (folder name).
    pub ip_block_type: &'a str,
    /// The emulator folder.
    pub folder: &'a Path,
    /// The blocks of this type in the config, when there is a config; the
    /// `constants` check is skipped without one.
    pub blocks: Option<&'a [BlockConstants]>,
}

/// Runs every plugin check. `progress` sees the report after each check
/// (the validator's child process streams it, so that a crash in the middle
/// still tells which check was running).
pub fn check_plugin(
    input: PluginCheck<'_>,
    progress: &mut dyn FnMut(&PluginReport),
) -> (Option<Plugin>, PluginReport) {
    check_plugin_library(input, None, progress)
}

/// [`check_plugin`] on a given library file instead of the one library in
/// the folder (`--plugin <type>=<path>`, and a swap's staged copy); a
/// `catalog.json` is still looked up in `input.folder`.
pub fn check_plugin_library(
    input: PluginCheck<'_>,
    library: Option<&Path>,
    progress: &mut dyn FnMut(&PluginReport),
) -> (Option<Plugin>, PluginReport) {
    check_with(input, library, loader::load_library, progress)
}

/// [`check_plugin_library`], loading the library through the process-wide
/// cache ([`loader::shared::load_library_shared`]): a library this process
/// has loaded before (same file, same content) is not loaded again. For
/// emulators that share libraries (a fleet).
pub fn check_plugin_shared(
    input: PluginCheck<'_>,
    library: Option<&Path>,
    progress: &mut dyn FnMut(&PluginReport),
) -> (Option<Plugin>, PluginReport) {
    check_with(
        input,
        library,
        loader::shared::load_library_shared,
        progress,
    )
}

fn check_with(
    input: PluginCheck<'_>,
    library: Option<&Path>,
    load: fn(&Path) -> Result<LoadedLibrary, LoadError>,
    progress: &mut dyn FnMut(&PluginReport),
) -> (Option<Plugin>, PluginReport) {
    let mut run = Run {
        report: PluginReport::new(input.ip_block_type, input.folder),
        progress,
        load,
    };
    let plugin = run.all(input, library);
    if plugin.is_none() {
        run.skip_remaining();
    }
    (plugin, run.report)
}

struct Run<'p> {
    report: PluginReport,
    progress: &'p mut dyn FnMut(&PluginReport),
    /// How the library is loaded (private or shared).
    load: fn(&Path) -> Result<LoadedLibrary, LoadError>,
}

impl Run<'_> {
    fn record(&mut self, outcome: CheckOutcome) -> bool {
        let passed = !outcome.failed();
        self.report.checks.push(outcome);
        (self.progress)(&self.report);
        passed
    }

    fn pass_or_fail(&mut self, name: &str, problems: Vec<Problem>) -> bool {
        self.record(CheckOutcome::from_problems(name, problems))
    }

    fn skip_remaining(&mut self) {
        let failed = self
            .report
            .checks
            .iter()
            .find(|c| c.failed())
            .map_or("an earlier check", |c| c.name.as_str())
            .to_owned();
        for name in PLUGIN_CHECKS.iter().skip(self.report.checks.len()) {
            self.report.checks.push(CheckOutcome::skipped(
                *name,
                format!("not run: the `{failed}` check failed"),
            ));
        }
        (self.progress)(&self.report);
    }

    /// Runs the checks in order; `None` as soon as one fails.
    fn all(&mut self, input: PluginCheck<'_>, library: Option<&Path>) -> Option<Plugin> {
        // layout
        let found = match library {
            Some(path) => Ok(path.to_path_buf()),
            None => loader::find_library(input.folder),
        };
        let library_path = match found {
            Ok(path) => path,
            Err(err) => {
                self.pass_or_fail("layout", vec![Problem::error(err.to_string())]);
                return None;
            }
        };
        self.report.library = Some(library_path.clone());
        self.pass_or_fail("layout", vec![]);

        // load, abi
        let library = self.load(&library_path)?;

        // components
        let components = match Components::from_library(&library) {
            Ok(components) => components,
            Err(missing) => {
                let problems = missing
                    .into_iter()
                    .map(|name| {
                        Problem::error(format!(
                            "{}: missing component `{name}`: export all four components with bitstream_sdk::export_plugin!",
                            library_path.display()
                        ))
                    })
                    .collect();
                self.pass_or_fail("components", problems);
                return None;
            }
        };
        self.pass_or_fail("components", vec![]);

        let type_name = input.ip_block_type;
        // ip_block
        let problems = check_ip_block(&components)
            .into_iter()
            .map(|message| Problem::error(format!("ip_block of type \"{type_name}\": {message}")))
            .collect();
        if !self.pass_or_fail("ip_block", problems) {
            return None;
        }

        // state_machine
        let machine = match components.describe_machine() {
            Err(err) => Err(vec![Problem::error(format!(
                "state machine of type \"{type_name}\" cannot be described: {err}"
            ))]),
            Ok(desc) => {
                let warnings: Vec<Problem> = check_machine(&desc)
                    .into_iter()
                    .filter(|p| p.severity == crate::report::Severity::Warning)
                    .collect();
                Machine::new(desc).map(|m| (m, warnings))
            }
        };
        let machine = match machine {
            Ok((machine, warnings)) => {
                self.pass_or_fail(
                    "state_machine",
                    prefix_all(type_name, "state machine", warnings),
                );
                Arc::new(machine)
            }
            Err(problems) => {
                self.pass_or_fail(
                    "state_machine",
                    prefix_all(type_name, "state machine", problems),
                );
                return None;
            }
        };

        // api
        let routes = match components.describe_routes() {
            Err(err) => {
                let problem = format!("api of type \"{type_name}\" cannot be described: {err}");
                self.pass_or_fail("api", vec![Problem::error(problem)]);
                return None;
            }
            Ok(routes) => routes,
        };
        let mut problems = api::check_routes(&routes);
        let routes = match Route::compile_all(routes) {
            Ok(routes) => Some(routes),
            Err(invalid) => {
                problems.extend(invalid.iter().map(|e| Problem::error(e.to_string())));
                None
            }
        };
        let passed = self.pass_or_fail("api", prefix_all(type_name, "api", problems));
        let routes = routes.filter(|_| passed)?;

        // buffer
        let declared = components.declared_catalog();
        let catalog = match crate::catalog::plugin_catalog(declared, input.folder, type_name) {
            Ok(catalog) => {
                self.pass_or_fail("buffer", vec![]);
                catalog
            }
            Err(err) => {
                self.pass_or_fail("buffer", vec![Problem::error(err.to_string())]);
                return None;
            }
        };

        // constants
        match input.blocks {
            None => {
                self.record(CheckOutcome::skipped(
                    "constants",
                    "not run: no usable emulators/config.json to take constants from",
                ));
            }
            Some(blocks) => {
                let problems = check_constants(&components, type_name, blocks);
                if !self.pass_or_fail("constants", problems) {
                    return None;
                }
            }
        }

        let overrides = components.overrides();
        Some(Plugin {
            ip_block_type: type_name.to_owned(),
            library,
            components,
            machine,
            routes,
            overrides,
            catalog,
        })
    }

    fn load(&mut self, path: &Path) -> Option<LoadedLibrary> {
        match (self.load)(path) {
            Ok(library) => {
                self.report.sdk_version = Some(library.sdk_version.to_string());
                self.report.plugin_name = Some(library.plugin_name().to_owned());
                self.report.plugin_version = Some(library.plugin_version().to_owned());
                let warnings = build_warnings(path, library.build.as_ref());
                self.pass_or_fail("load", warnings);
                self.pass_or_fail("abi", vec![]);
                Some(library)
            }
            Err(err) => {
                self.report.sdk_version = err.plugin_sdk_version().map(str::to_owned);
                let loaded = matches!(
                    err,
                    LoadError::NotAPlugin { .. }
                        | LoadError::AbiStable { .. }
                        | LoadError::SdkVersion { .. }
                        | LoadError::Layout { .. }
                        | LoadError::RootModule { .. }
                );
                if loaded {
                    self.pass_or_fail("load", vec![]);
                }
                let mut problem = Problem::error(err.to_string());
                if let Some(detail) = err.detail() {
                    problem = problem.with_detail(detail);
                }
                self.pass_or_fail(if loaded { "abi" } else { "load" }, vec![problem]);
                None
            }
        }
    }
}

/// What an unoptimized build costs, measured on the real VCC plugins
/// (`docs/plugin-builds.md` has the commands).
pub const UNOPTIMIZED_COST: &str = "a debug build of a real VCC plugin is 26 times the size \
     (21.5 MB against 0.82 MB) and the real VCC package runs half the pulses per second \
     (54,000 against 102,000)";

/// A warning when the plugin's build record says it was not optimized.
fn build_warnings(path: &Path, build: Option<&loader::PluginBuild>) -> Vec<Problem> {
    match build {
        Some(build) if build.unoptimized() => vec![Problem::warning(format!(
            "{}: built without optimization (cargo profile `{}`, opt-level {}): {UNOPTIMIZED_COST}; \
             build it with `cargo build --release` before packaging",
            path.display(),
            build.profile,
            build.opt_level
        ))],
        _ => vec![],
    }
}

fn prefix_all(type_name: &str, what: &str, problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|p| Problem {
            message: format!("{what} of type \"{type_name}\": {}", p.message),
            ..p
        })
        .collect()
}

/// Constructs an ip_block and serializes it.
fn check_ip_block(components: &Components) -> Vec<String> {
    let mut block = match components.create_block() {
        Ok(block) => block,
        Err(err) => return vec![format!("cannot be constructed with Default: {err}")],
    };
    match block.snapshot() {
        Ok(bitstream_sdk::Value::Map(_)) => vec![],
        Ok(other) => vec![format!(
            "serializes to a {} instead of a map of fields, so config constants cannot be assigned to it",
            other.kind_name()
        )],
        Err(err) => vec![format!("cannot be serialized: {err}")],
    }
}

/// Applies each block's constants to a fresh instance.
fn check_constants(
    components: &Components,
    type_name: &str,
    blocks: &[BlockConstants],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for block in blocks {
        let result = components
            .create_block()
            .and_then(|mut instance| instance.apply_constants(&block.constants));
        if let Err(err) = result {
            problems.push(Problem::error(format!(
                "block \"{}\" (type \"{type_name}\"): its constants in config.json are not accepted: {}",
                block.block_id, err.message
            )));
        }
    }
    problems
}

//! `validate-bitstream`: checks a bitstream package's plugins and config.
//!
//! Exit codes: 0 when everything is valid (warnings allowed), 1 when
//! anything is invalid, 2 for usage errors or a missing directory.

#![forbid(unsafe_code)]

mod isolate;
mod output;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use bitstream_host::checks::plugin::BlockConstants;
use bitstream_host::config::{self, BitstreamConfig};
use clap::{Parser, ValueEnum};

/// Checks the IP block emulator plugins of a bitstream package, each in its
/// own process, and its emulators/config.json.
#[derive(Parser, Debug)]
#[command(name = "validate-bitstream", version, about)]
struct Cli {
    /// A bitstream package, its emulators/ folder, or one
    /// emulators/<ip_block_type>/emulator folder.
    dir: PathBuf,

    /// Check only this ip_block type (repeatable).
    #[arg(short = 'i', long = "ip-block", value_name = "IP_BLOCK_TYPE")]
    ip_blocks: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Seconds a plugin may take to be checked before it counts as hung.
    #[arg(long, default_value_t = 10.0, value_parser = parse_timeout)]
    timeout: f64,

    /// Plugins checked at the same time (default: the number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,

    /// Text output: print each problem's long form too (abi_stable's full
    /// layout report of an ABI mismatch; JSON always has it as `detail`).
    #[arg(long, short = 'v')]
    verbose: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(secs),
        _ => Err(format!("\"{text}\" is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == isolate::CHILD_FLAG) {
        return run_child(&args[2..]);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("validate-bitstream: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run_child(args: &[std::ffi::OsString]) -> ExitCode {
    let [ip_block_type, folder] = args else {
        eprintln!(
            "validate-bitstream: {} takes <type> <folder>",
            isolate::CHILD_FLAG
        );
        return ExitCode::from(2);
    };
    match isolate::run_child(&ip_block_type.to_string_lossy(), Path::new(folder)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "validate-bitstream (checking {}): {err:#}",
                ip_block_type.to_string_lossy()
            );
            ExitCode::from(2)
        }
    }
}

/// Runs the checks and prints the report; `Ok(valid)`, or a usage error.
fn run(cli: &Cli) -> Result<bool> {
    let target = target::resolve(&cli.dir, &cli.ip_blocks)?;

    let (config, config_report) = match &target.config {
        Some(path) => {
            let (config, report) = config::check_config(path, Some(&target.available_types));
            (config, Some(report))
        }
        None => (None, None),
    };
    let blocks_of = |ip_block_type: &str| blocks_of_type(config.as_ref(), ip_block_type);
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, Into::into));
    let plugins = isolate::check_all(
        &target.plugins,
        &blocks_of,
        Duration::from_secs_f64(cli.timeout),
        jobs,
    );

    let report = output::ValidationReport::new(cli.dir.clone(), plugins, config_report);
    let text = match cli.format {
        Format::Text => output::text(&report, cli.verbose),
        Format::Json => output::json(&report)?,
        Format::Junit => output::junit(&report)?,
    };
    print!("{text}");
    Ok(report.valid)
}

/// The blocks whose constants a plugin's `constants` check tries: `None`
/// (check skipped) without a usable config, whose own checks say why.
fn blocks_of_type(
    config: Option<&BitstreamConfig>,
    ip_block_type: &str,
) -> Option<Vec<BlockConstants>> {
    let config = config?;
    Some(
        config
            .blocks_of_type(ip_block_type)
            .map(|b| BlockConstants {
                block_id: b.id.clone(),
                constants: b.constants.clone(),
            })
            .collect(),
    )
}

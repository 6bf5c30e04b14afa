//! Checks each plugin in a child process (the validator re-executes
//! itself), so that a plugin that aborts, crashes or hangs while loading
//! fails its own checks and the others are still checked.
//!
//! Protocol: the parent starts `validate-bitstream --child-check-plugin
//! <type> <folder>` and writes the config's blocks of that type as JSON
//! (or `null` without a config) to its stdin. After each check the child
//! prints the whole report so far as one JSON line; the parent keeps the
//! last one. If the child dies or times out, the check after the last one
//! reported is the one that was running.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use bitstream_host::checks::plugin::{self as checks, BlockConstants, PluginCheck, PLUGIN_CHECKS};
use bitstream_host::plugin::loader::PluginFolder;
use bitstream_host::report::{CheckOutcome, PluginReport, Problem};
use wait_timeout::ChildExt;

/// The hidden first argument that makes the validator a checking child.
pub const CHILD_FLAG: &str = "--child-check-plugin";

/// How many bytes of a crashed child's stderr are kept in its report.
const STDERR_TAIL: usize = 2000;

/// The child's side: checks one plugin in this process, printing progress.
pub fn run_child(ip_block_type: &str, folder: &Path) -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the blocks from stdin")?;
    let blocks: Option<Vec<BlockConstants>> =
        serde_json::from_str(&input).context("parsing the blocks from stdin")?;
    let stdout = std::io::stdout();
    let mut progress = |report: &PluginReport| {
        let mut out = stdout.lock();
        // A parent that went away is not this process's problem to report.
        let _ = serde_json::to_writer(&mut out, report);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let input = PluginCheck {
        ip_block_type,
        folder,
        blocks: blocks.as_deref(),
    };
    checks::check_plugin(input, &mut progress);
    Ok(())
}

/// The parent's side: checks every plugin, `jobs` at a time, each in its own
/// child with `timeout`. Reports come back in the order of `plugins`.
pub fn check_all(
    plugins: &[PluginFolder],
    blocks_of: &(dyn Fn(&str) -> Option<Vec<BlockConstants>> + Sync),
    timeout: Duration,
    jobs: usize,
) -> Vec<PluginReport> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<PluginReport>>> = Mutex::new(vec![None; plugins.len()]);
    thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, plugins.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(plugin) = plugins.get(index) else {
                    break;
                };
                let blocks = blocks_of(&plugin.ip_block_type);
                let report = check_in_child(plugin, blocks.as_deref(), timeout);
                results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(report);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(plugins)
        .map(|(report, plugin)| {
            report.unwrap_or_else(|| {
                crashed(
                    plugin,
                    None,
                    "the checking thread stopped before reporting (a bug in the validator)",
                )
            })
        })
        .collect()
}

fn check_in_child(
    plugin: &PluginFolder,
    blocks: Option<&[BlockConstants]>,
    timeout: Duration,
) -> PluginReport {
    match spawn(plugin, blocks) {
        Ok(child) => supervise(plugin, child, timeout),
        Err(err) => crashed(
            plugin,
            None,
            &format!("could not start the checking process: {err:#}"),
        ),
    }
}

fn spawn(plugin: &PluginFolder, blocks: Option<&[BlockConstants]>) -> Result<Child> {
    let exe = std::env::current_exe().context("locating validate-bitstream itself")?;
    let mut child = Command::new(exe)
        .arg(CHILD_FLAG)
        .arg(&plugin.ip_block_type)
        .arg(&plugin.folder)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning validate-bitstream")?;
    let input = serde_json::to_vec(&blocks).context("encoding the blocks")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies before reading its input is reported by supervise.
        let _ = stdin.write_all(&input);
    }
    Ok(child)
}

fn supervise(plugin: &PluginFolder, mut child: Child, timeout: Duration) -> PluginReport {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (last_report, stderr_text, status) = thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut last = None;
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(report) = serde_json::from_str::<PluginReport>(&line) {
                        last = Some(report);
                    }
                }
            }
            last
        });
        let errors = scope.spawn(move || {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut text);
            }
            text
        });
        let status = match child.wait_timeout(timeout) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "did not finish within {} s (the plugin hangs here); the checking process was killed",
                    timeout.as_secs_f64()
                ))
            }
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("could not wait for the checking process: {err}"))
            }
        };
        (
            reader.join().unwrap_or(None),
            errors.join().unwrap_or_default(),
            status,
        )
    });

    let finished = last_report
        .as_ref()
        .is_some_and(|r| r.checks.len() == PLUGIN_CHECKS.len());
    match (status, last_report) {
        (Ok(status), Some(report)) if status.success() && finished => report,
        (Ok(status), partial) => crashed(plugin, partial, &describe_exit(status, &stderr_text)),
        (Err(why), partial) => crashed(plugin, partial, &why),
    }
}

fn describe_exit(status: ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let what = if let Some(signal) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {signal}"));
        let hint = match name.as_str() {
            "SIGABRT" => " (the plugin aborted the process)",
            "SIGSEGV" | "SIGBUS" => " (the plugin crashed on a bad memory access)",
            _ => "",
        };
        format!("the checking process was killed by {name}{hint} during this check")
    } else if status.success() {
        "the checking process exited before finishing its checks".to_owned()
    } else {
        format!(
            "the checking process exited with status {} during this check",
            status.code().unwrap_or(-1)
        )
    };
    let tail = stderr.trim();
    if tail.is_empty() {
        what
    } else {
        let start = tail.len().saturating_sub(STDERR_TAIL);
        let start = (start..tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(0);
        format!("{what}; its stderr: {}", &tail[start..])
    }
}

/// The report of a child that stopped early: what it finished, the check it
/// was running marked failed with `why`, and the rest skipped.
fn crashed(plugin: &PluginFolder, partial: Option<PluginReport>, why: &str) -> PluginReport {
    let mut report = partial
        .unwrap_or_else(|| PluginReport::new(plugin.ip_block_type.clone(), plugin.folder.clone()));
    let running = report.checks.len().min(PLUGIN_CHECKS.len() - 1);
    report.checks.truncate(running);
    let name = PLUGIN_CHECKS[running];
    let subject = report
        .library
        .as_deref()
        .unwrap_or(plugin.folder.as_path())
        .display()
        .to_string();
    report.checks.push(CheckOutcome::from_problems(
        name,
        vec![Problem::error(format!("{subject}: {why}"))],
    ));
    for later in &PLUGIN_CHECKS[running + 1..] {
        report.checks.push(CheckOutcome::skipped(
            *later,
            format!("not run: the `{name}` check failed"),
        ));
    }
    report
}

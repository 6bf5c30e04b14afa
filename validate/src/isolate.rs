//! Checks each plugin in a child process (the validator re-executes
//! itself), so that a plugin that aborts, crashes or hangs while loading
//! fails its own checks and the others are still checked.
//!
//! Protocol: the parent starts `validate-bitstream --child-check-plugin
//! <type> <folder>` in a process group of its own, with a Unix socket as
//! its stdin, and sends one JSON line: a fresh random token and the
//! config's blocks of that type (or `null` without a config). The child
//! keeps its own copy of the socket, points its stdin at `/dev/null`, and
//! after each check sends `{"token": ..., "report": ...}` on that socket;
//! after the last check it sends `{"token": ..., "done": true}`. Plugin
//! code runs in the child, but what it prints (stdout goes to `/dev/null`,
//! stderr is kept for error messages) is never read as a report, and a
//! line on the socket without the token is ignored: a library that prints
//! a made-up report and exits 0 fails its checks. (Code that searched the
//! child's memory for the token could still forge one: the validator
//! guards against plugins that crash, hang, fork or lie on stdout, not
//! against a deliberately hostile one.)
//!
//! Only a child that sent `done` and exited 0 passes; one that exits or
//! dies before has failed the check after the last one it reported. At
//! the timeout, and also when the child has exited, its whole process
//! group is killed (anything the plugin started with it), and nothing is
//! read from the child's pipes after that: a grandchild that keeps them
//! open cannot hold the validator up. The child also asks the kernel to
//! kill it if the validator dies.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bitstream_host::checks::plugin::{self as checks, BlockConstants, PluginCheck, PLUGIN_CHECKS};
use bitstream_host::plugin::loader::PluginFolder;
use bitstream_host::report::{CheckOutcome, PluginReport, Problem};
use serde::{Deserialize, Serialize};
use wait_timeout::ChildExt;

/// The hidden first argument that makes the validator a checking child.
pub const CHILD_FLAG: &str = "--child-check-plugin";

/// How many bytes of a crashed child's stderr are kept in its report.
const STDERR_TAIL: usize = 2000;

/// How often the parent's readers look whether they should stop.
const READ_POLL: Duration = Duration::from_millis(100);

/// What the parent sends the child.
#[derive(Serialize, Deserialize)]
struct ChildInput {
    token: String,
    blocks: Option<Vec<BlockConstants>>,
}

/// One message of the child to the parent.
#[derive(Serialize, Deserialize)]
struct ChildMessage {
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    report: Option<PluginReport>,
    #[serde(default)]
    done: bool,
}

/// The child's side: checks one plugin in this process, sending progress
/// to the parent over the socket it got as stdin.
pub fn run_child(ip_block_type: &str, folder: &Path) -> Result<()> {
    // If the validator dies, this process (which may be stuck in plugin
    // code) dies with it.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let channel: OwnedFd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("taking the report channel (stdin)")?;
    let mut channel = UnixStream::from(channel);
    let mut line = String::new();
    BufReader::new(&mut channel)
        .read_line(&mut line)
        .context("reading the input from the report channel")?;
    if line.is_empty() {
        bail!("the validator sent no input: this process is only started by validate-bitstream");
    }
    let input: ChildInput =
        serde_json::from_str(&line).context("parsing the input from the validator")?;
    // Plugin code gets /dev/null as stdin, not the channel.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
    }
    let token = input.token;
    let mut send = |report: Option<&PluginReport>, done: bool| {
        let message = serde_json::json!({"token": token, "report": report, "done": done});
        let mut bytes = message.to_string().into_bytes();
        bytes.push(b'\n');
        // A parent that went away is not this process's problem to report.
        let _ = channel.write_all(&bytes);
    };
    let check = PluginCheck {
        ip_block_type,
        folder,
        blocks: input.blocks.as_deref(),
    };
    checks::check_plugin(check, &mut |report: &PluginReport| {
        send(Some(report), false)
    });
    send(None, true);
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
        Ok(spawned) => supervise(plugin, spawned, timeout),
        Err(err) => crashed(
            plugin,
            None,
            &format!("could not start the checking process: {err:#}"),
        ),
    }
}

/// A started child, its report channel, its stderr and its token.
struct Spawned {
    child: Child,
    channel: UnixStream,
    stderr: UnixStream,
    token: String,
}

/// A fresh random token (128 bits from the kernel), as hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the report token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn spawn(plugin: &PluginFolder, blocks: Option<&[BlockConstants]>) -> Result<Spawned> {
    let exe = std::env::current_exe().context("locating validate-bitstream itself")?;
    let token = new_token()?;
    let (channel, child_channel) = UnixStream::pair().context("making the report channel")?;
    let (stderr, child_stderr) = UnixStream::pair().context("making the stderr channel")?;
    let child = Command::new(exe)
        .arg(CHILD_FLAG)
        .arg(&plugin.ip_block_type)
        .arg(&plugin.folder)
        .stdin(Stdio::from(OwnedFd::from(child_channel)))
        .stdout(Stdio::null())
        .stderr(Stdio::from(OwnedFd::from(child_stderr)))
        // Its own process group, so that whatever plugin code starts can
        // be killed with it.
        .process_group(0)
        .spawn()
        .context("spawning validate-bitstream")?;
    // (The `Command` and with it the child's ends are dropped here.)
    let input = ChildInput {
        token: token.clone(),
        blocks: blocks.map(<[BlockConstants]>::to_vec),
    };
    let mut line = serde_json::to_vec(&input).context("encoding the blocks")?;
    line.push(b'\n');
    // A child that dies before reading its input is reported by supervise.
    let _ = (&channel).write_all(&line);
    Ok(Spawned {
        child,
        channel,
        stderr,
        token,
    })
}

/// Kills the child's whole process group (the child and whatever it
/// started that did not leave the group).
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Reads lines from `stream` until end of file or until `stop` is set;
/// calls `line` with each complete one.
fn read_lines_until(stream: &UnixStream, stop: &AtomicBool, mut line: impl FnMut(&[u8])) {
    if stream.set_read_timeout(Some(READ_POLL)).is_err() {
        return;
    }
    let mut pending = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut reader = stream;
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    line(&pending[..end]);
                    pending.drain(..=end);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::Acquire) {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        line(&pending);
    }
}

fn supervise(plugin: &PluginFolder, spawned: Spawned, timeout: Duration) -> PluginReport {
    let Spawned {
        mut child,
        channel,
        stderr,
        token,
    } = spawned;
    let stop = AtomicBool::new(false);
    let (progress, stderr_text, status) = thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut last = None;
            let mut done = false;
            read_lines_until(&channel, &stop, |line| {
                let Ok(message) = serde_json::from_slice::<ChildMessage>(line) else {
                    return;
                };
                if message.token != token {
                    return;
                }
                if let Some(report) = message.report {
                    last = Some(report);
                }
                done |= message.done;
            });
            (last, done)
        });
        let errors = scope.spawn(|| {
            let mut text = Vec::new();
            read_lines_until(&stderr, &stop, |line| {
                text.extend_from_slice(line);
                text.push(b'\n');
                // Only the tail is kept.
                if text.len() > 4 * STDERR_TAIL {
                    text.drain(..text.len() - 2 * STDERR_TAIL);
                }
            });
            String::from_utf8_lossy(&text).into_owned()
        });
        let status = match child.wait_timeout(timeout) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(format!(
                "did not finish within {} s (the plugin hangs here); the checking process and \
                 everything it started were killed",
                timeout.as_secs_f64()
            )),
            Err(err) => Err(format!("could not wait for the checking process: {err}")),
        };
        // Whatever the child left running goes with it; then its pipes
        // are read only as far as they already are.
        kill_group(&child);
        let _ = child.wait();
        stop.store(true, Ordering::Release);
        (
            reader.join().unwrap_or((None, false)),
            errors.join().unwrap_or_default(),
            status,
        )
    });

    let (last_report, done) = progress;
    let finished = done
        && last_report
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
        "the checking process exited with status 0 without reporting the end of its checks \
         (plugin code ended the process, e.g. with exit() or _exit(); what it printed is not \
         taken as a report)"
            .to_owned()
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

//! The command line's side of hot-swap: the isolated check (this binary,
//! re-executed as `bitstream-emulator check-plugin ...`), the `reload`
//! client and `--plugin <type>=<path>` parsing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bitstream_host::checks::plugin::{
    check_plugin_library, BlockConstants, PluginCheck, PLUGIN_CHECKS,
};
use bitstream_host::engine::{CheckRequest, IsolatedCheck};
use bitstream_host::report::PluginReport;
use serde_json::{json, Value as Json};
use wait_timeout::ChildExt;

/// The hidden subcommand the isolated check runs.
pub const CHILD_COMMAND: &str = "check-plugin";

/// How many bytes of a crashed child's stderr its problem keeps.
const STDERR_TAIL: usize = 2000;

/// Parses `--plugin <type>=<path>`.
pub fn parse_plugin_file(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((ty, path)) if !ty.is_empty() && !path.is_empty() => {
            Ok((ty.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "\"{arg}\" is not <ip_block_type>=<path/to/lib.so>, e.g. probe=target/debug/libprobe.so"
        )),
    }
}

/// The child's side: checks `library` as the plugin of `ip_block_type`,
/// printing the report after each check as one JSON line.
pub fn run_child(ip_block_type: &str, folder: &Path, library: &Path) -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the blocks from stdin")?;
    let blocks: Vec<BlockConstants> =
        serde_json::from_str(&input).context("parsing the blocks from stdin")?;
    let stdout = std::io::stdout();
    let mut progress = |report: &PluginReport| {
        let mut out = stdout.lock();
        let _ = serde_json::to_writer(&mut out, report);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let input = PluginCheck {
        ip_block_type,
        folder,
        blocks: Some(&blocks),
    };
    check_plugin_library(input, Some(library), &mut progress);
    Ok(())
}

/// Checks new libraries in a child process of this binary.
pub struct ChildCheck {
    exe: PathBuf,
    timeout: Duration,
}

impl ChildCheck {
    /// A check that re-executes this binary, killed after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        Ok(ChildCheck {
            exe: std::env::current_exe().context("locating bitstream-emulator itself")?,
            timeout,
        })
    }
}

impl IsolatedCheck for ChildCheck {
    fn check(&self, request: &CheckRequest) -> Result<(), Vec<String>> {
        let spawned = Command::new(&self.exe)
            .arg(CHILD_COMMAND)
            .arg(&request.ip_block_type)
            .arg(&request.folder)
            .arg(&request.library)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Err(vec![format!(
                    "[load] cannot start the checking process: {e}"
                )])
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = serde_json::to_writer(&mut stdin, &request.blocks);
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reader = thread::spawn(move || {
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
        let errors = thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut text);
            }
            text
        });
        let status = match child.wait_timeout(self.timeout) {
            Ok(Some(status)) => Ok(status),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "did not finish within {} s (the plugin hangs here); the checking process was killed",
                    self.timeout.as_secs_f64()
                ))
            }
        };
        let last: Option<PluginReport> = reader.join().unwrap_or(None);
        let stderr = errors.join().unwrap_or_default();
        let running = last
            .as_ref()
            .map_or(0, |r| r.checks.len())
            .min(PLUGIN_CHECKS.len() - 1);
        let mut problems: Vec<String> = last
            .iter()
            .flat_map(|r| r.checks.iter())
            .filter(|c| c.failed())
            .flat_map(|c| {
                c.problems
                    .iter()
                    .map(move |p| format!("[{}] {}", c.name, p.message))
            })
            .collect();
        let finished = last
            .as_ref()
            .is_some_and(|r| r.checks.len() == PLUGIN_CHECKS.len());
        match status {
            Ok(status) if status.success() && finished => {}
            Ok(status) => problems.push(format!(
                "[{}] the checking process {} during this check{}",
                PLUGIN_CHECKS[running],
                describe_status(status),
                stderr_tail(&stderr)
            )),
            Err(why) => problems.push(format!("[{}] {why}", PLUGIN_CHECKS[running])),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {signal}"));
            let hint = match name.as_str() {
                "SIGABRT" => " (the plugin aborted the process)",
                "SIGSEGV" | "SIGBUS" => " (the plugin crashed on a bad memory access)",
                _ => "",
            };
            format!("was killed by {name}{hint}")
        }
        None => format!("exited with status {}", status.code().unwrap_or(-1)),
    }
}

fn stderr_tail(stderr: &str) -> String {
    let tail = stderr.trim();
    if tail.is_empty() {
        return String::new();
    }
    let start = tail.len().saturating_sub(STDERR_TAIL);
    let start = (start..tail.len())
        .find(|&i| tail.is_char_boundary(i))
        .unwrap_or(0);
    format!("; its stderr: {}", &tail[start..])
}

/// `bitstream-emulator reload <url> <type>`: asks a running emulator to
/// reload (or roll back) a type and prints its answer.
pub fn reload(
    url: &str,
    ip_block_type: &str,
    path: Option<&Path>,
    reset: bool,
    rollback: bool,
) -> Result<()> {
    let base = url.trim_end_matches('/');
    let action = if rollback { "rollback" } else { "reload" };
    let endpoint = format!("{base}/plugins/{ip_block_type}/{action}");
    let mut body = json!({ "reset": reset });
    if let Some(path) = path {
        let absolute = std::path::absolute(path)
            .with_context(|| format!("{}: cannot make the path absolute", path.display()))?;
        body["path"] = json!(absolute);
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(&endpoint)
        .json(&body)
        .send()
        .with_context(|| format!("POST {endpoint}: is the emulator running there?"))?;
    let status = response.status();
    let answer: Json = response
        .json()
        .with_context(|| format!("POST {endpoint}: the answer is not JSON"))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if !status.is_success() {
        bail!("{action} of \"{ip_block_type}\" failed ({status}); the old version still serves");
    }
    Ok(())
}

//! Helpers for the end-to-end tests: build a bitstream package in a
//! tempdir from the fixture plugins, run the real `bitstream-emulator`
//! binary on it, and talk HTTP to it on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use tempfile::TempDir;

pub mod sse;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_bitstream-emulator");

/// How long anything that should be quick may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `target/<profile>`: the test binary lives in `target/<profile>/deps`.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps")
        .to_path_buf()
}

/// The fixture library `libfixture_<name>.so` in the build dir.
pub fn fixture(name: &str) -> PathBuf {
    let path = build_dir().join(format!("libfixture_{name}.so"));
    assert!(
        path.is_file(),
        "{} is missing: the fixture plugins are built by `cargo build --workspace` \
         (ci/test.sh runs it before the tests)",
        path.display()
    );
    path
}

/// The config of an `a -> b` chain of two `probe` blocks, each named after
/// itself (constant `name`), with emulator id `id`.
pub fn probe_pair_config(id: &str) -> String {
    serde_json::json!({
        "id": id,
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a"}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    })
    .to_string()
}

/// A package: `emulators/<type>/emulator/libfixture_<fixture>.so` for each
/// `(type, fixture)`, plus `emulators/config.json` holding `config`.
pub fn package(types: &[(&str, &str)], config: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bitstream-http-test-")
        .tempdir()
        .expect("creating a tempdir");
    let emulators = dir.path().join("emulators");
    for (ip_block_type, fixture_name) in types {
        let folder = emulators.join(ip_block_type).join("emulator");
        std::fs::create_dir_all(&folder).expect("creating the emulator folder");
        let library = fixture(fixture_name);
        std::fs::copy(&library, folder.join(library.file_name().unwrap()))
            .expect("copying the fixture library");
    }
    std::fs::create_dir_all(&emulators).expect("creating emulators/");
    std::fs::write(emulators.join("config.json"), config).expect("writing config.json");
    dir
}

/// A package whose only type is `probe`.
pub fn probe_package(config: &Value) -> TempDir {
    package(&[("probe", "probe")], &config.to_string())
}

/// Polls `check` every 10 ms until it answers `Some`, or panics after
/// `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads `stderr` line by line into `buffer` on a thread; each line is also
/// sent on the returned channel (until its receiver is dropped).
fn collect_stderr(
    stderr: impl Read + Send + 'static,
    buffer: Arc<Mutex<String>>,
) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw).into_owned();
                    buffer.lock().unwrap().push_str(&line);
                    let _ = lines.send(line);
                }
            }
        }
    });
    received
}

fn command(package: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("run")
        .arg(package)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// One HTTP answer, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.text, self.status))
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" string in {}", self.text))
            .to_owned()
    }

    /// Panics unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

/// A running `bitstream-emulator run` child; killed when dropped.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
    client: Client,
    _package: TempDir,
}

impl Emulator {
    /// Runs `package` with `--bind 127.0.0.1:0` and `args`, and waits for
    /// its `serving ... on http://127.0.0.1:<port>` line.
    pub fn start_package(package: TempDir, args: &[&str]) -> Emulator {
        let mut all_args = vec!["--bind", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let command = command(package.path(), &all_args);
        Self::spawn(command, package, None)
    }

    /// [`start_package`](Self::start_package) with environment variables
    /// set for the child.
    pub fn start_package_with_env(
        package: TempDir,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Emulator {
        let mut all_args = vec!["--bind", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let mut command = command(package.path(), &all_args);
        command.envs(env.iter().copied());
        Self::spawn(command, package, None)
    }

    /// Runs `package` on a free port with `args` (which may hide the
    /// `serving` line, as `--log-level ERROR` does) and waits until it
    /// answers `GET /state`.
    pub fn start_package_on_free_port(package: TempDir, args: &[&str]) -> Emulator {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let mut all_args = vec!["--bind", bind.as_str()];
        all_args.extend_from_slice(args);
        let command = command(package.path(), &all_args);
        Self::spawn(command, package, Some(port))
    }

    /// [`start_package`](Self::start_package) with the open-file limit
    /// (soft and hard) set to `nofile` for the child (`ulimit -n`).
    pub fn start_package_with_nofile(package: TempDir, args: &[&str], nofile: u64) -> Emulator {
        let mut all_args = vec!["--bind", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let inner = command(package.path(), &all_args);
        let mut limited = Command::new("sh");
        limited
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Self::spawn(limited, package, None)
    }

    /// Spawns `command` (a `run` of `package` on port 0, or on `port`) and
    /// waits for its `serving` line (or for `port` to answer).
    fn spawn(mut command: Command, package: TempDir, port: Option<u16>) -> Emulator {
        let mut child = command.spawn().expect("spawning bitstream-emulator");
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = collect_stderr(child.stderr.take().unwrap(), stderr.clone());
        let deadline = Instant::now() + PATIENCE;
        let port = loop {
            if let Some(port) = port {
                let answered = Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(1))
                    .build()
                    .ok()
                    .and_then(|c| c.get(format!("http://127.0.0.1:{port}/state")).send().ok());
                if answered.is_some() {
                    break port;
                }
                if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "bitstream-emulator did not answer on port {port} (exit: {status:?}); stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = serving_port(&line) {
                        break port;
                    }
                }
                Err(err) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "bitstream-emulator did not report serving ({err:?}; exit: {status:?}); stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        let client = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the HTTP client");
        Emulator {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            stderr,
            client,
            _package: package,
        }
    }

    /// Runs `bitstream-emulator <args>`, a command other than `run` that
    /// logs a `serving ... on http://127.0.0.1:<port>` line (such as
    /// `injector --bind 127.0.0.1:0 ...`), and waits for that line.
    pub fn start_command(args: &[&str]) -> Emulator {
        let placeholder = tempfile::Builder::new()
            .prefix("bitstream-command-test-")
            .tempdir()
            .expect("creating a tempdir");
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Self::spawn(command, placeholder, None)
    }

    /// Runs a `probe`-only package of `config` with `args`.
    pub fn start(config: &Value, args: &[&str]) -> Emulator {
        Self::start_package(probe_package(config), args)
    }

    /// Runs a `probe`-only package with real-time pulses stopped.
    pub fn stopped(config: &Value) -> Emulator {
        Self::start(config, &["--stopped", "--pulse-period-ms", "1000"])
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Reply {
            status,
            headers,
            text,
        }
    }

    /// `POST path` giving up after `timeout` (an `Err` naming the problem).
    pub fn try_post(&self, path: &str, timeout: Duration) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .timeout(timeout)
            .send()
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .map_err(|e| format!("POST {path}: reading the body: {e}"))?;
        Ok(Reply {
            status,
            headers,
            text,
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None)
    }

    pub fn post(&self, path: &str) -> Reply {
        self.request(Method::POST, path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(body.to_string().into_bytes()))
    }

    pub fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.request(Method::POST, path, Some(body.into()))
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::PUT, path, Some(body.to_string().into_bytes()))
    }

    /// `GET /<block>/status`: the probe block as JSON.
    #[track_caller]
    pub fn status(&self, block: &str) -> Value {
        self.get(&format!("/{block}/status")).expect(200).json()
    }

    /// The probe block's `log`.
    #[track_caller]
    pub fn log(&self, block: &str) -> Vec<String> {
        lines(&self.status(block)["log"])
    }

    /// The probe block's pulse count.
    #[track_caller]
    pub fn pulses(&self, block: &str) -> u64 {
        self.status(block)["pulses"].as_u64().expect("pulses")
    }

    /// Empties the probe block's `log`.
    #[track_caller]
    pub fn clear_log(&self, block: &str) {
        self.get(&format!("/{block}/status?clear=true")).expect(200);
    }

    /// `GET /<block>/state`'s `current_state`.
    #[track_caller]
    pub fn block_state(&self, block: &str) -> String {
        let reply = self.get(&format!("/{block}/state")).expect(200);
        reply.json()["current_state"]
            .as_str()
            .expect("current_state")
            .to_owned()
    }

    /// Runs `count` accelerated pulses (`POST /pulse?count=N`).
    #[track_caller]
    pub fn pulse(&self, count: u64) -> Value {
        let reply = self.post(&format!("/pulse?count={count}")).expect(200);
        let body = reply.json();
        assert_eq!(body["pulses"], count, "{body}");
        body
    }

    /// Waits until block `block` is in `state`.
    pub fn wait_state(&self, block: &str, state: &str) {
        let mut last = String::new();
        let reached = wait_for_quiet(PATIENCE, || {
            last = self.block_state(block);
            (last == state).then_some(())
        });
        assert!(
            reached.is_some(),
            "block {block} never reached {state} (last: {last})"
        );
    }
}

/// Like [`wait_for`] but answers `None` on a timeout.
pub fn wait_for_quiet<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON list of strings as a `Vec`.
pub fn lines(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|l| l.as_str().expect("a string").to_owned())
        .collect()
}

/// The port of a `serving <package> on http://127.0.0.1:<port>` log line.
fn serving_port(line: &str) -> Option<u16> {
    if !line.contains("serving ") {
        return None;
    }
    let (_, rest) = line.split_once("on http://127.0.0.1:")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How a run that should fail at startup ended.
pub struct Failure {
    pub status: ExitStatus,
    pub stderr: String,
    pub elapsed: Duration,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// Runs `package` on `127.0.0.1:<port>` expecting it to exit by itself.
pub fn run_to_exit(package: &TempDir, port: u16, args: &[&str]) -> Failure {
    let bind = format!("127.0.0.1:{port}");
    let mut all_args = vec!["--bind", bind.as_str()];
    all_args.extend_from_slice(args);
    let started = Instant::now();
    let mut child = command(package.path(), &all_args)
        .spawn()
        .expect("spawning bitstream-emulator");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bitstream-emulator did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stderr = reader.join().expect("the stderr reader");
    Failure {
        status,
        stderr,
        elapsed,
    }
}

/// The workspace root (the folder holding `host/`, `plugins/`, `fixtures/`).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf()
}

/// The library `lib<ip_block_type>.so` of a workspace plugin crate
/// (`plugins/<ip_block_type>/`) in the build dir.
pub fn plugin_library(ip_block_type: &str) -> PathBuf {
    let path = build_dir().join(format!("lib{ip_block_type}.so"));
    assert!(
        path.is_file(),
        "{} is missing: the plugins under plugins/ are built by `cargo build --workspace` \
         (ci/test.sh runs it before the tests)",
        path.display()
    );
    path
}

/// The distinct `type`s of a config's `ip_blocks`, in config order.
pub fn config_types(config: &Value) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for block in config["ip_blocks"].as_array().expect("ip_blocks") {
        let ip_block_type = block["type"].as_str().expect("a block type");
        if !types.iter().any(|t| t == ip_block_type) {
            types.push(ip_block_type.to_owned());
        }
    }
    types
}

/// A package holding `config` (JSON text, written as is) and, for every type
/// it uses, `emulators/<type>/emulator/lib<type>.so` copied from the build
/// dir: what `ci/vcc-package.sh` places, assembled from this build.
pub fn plugin_package(config: &str) -> TempDir {
    let parsed: Value = serde_json::from_str(config).expect("the config is JSON");
    let dir = tempfile::Builder::new()
        .prefix("bitstream-plugin-test-")
        .tempdir()
        .expect("creating a tempdir");
    let emulators = dir.path().join("emulators");
    for ip_block_type in config_types(&parsed) {
        let folder = emulators.join(&ip_block_type).join("emulator");
        std::fs::create_dir_all(&folder).expect("creating the emulator folder");
        let library = plugin_library(&ip_block_type);
        std::fs::copy(&library, folder.join(library.file_name().unwrap()))
            .expect("copying the plugin library");
    }
    std::fs::create_dir_all(&emulators).expect("creating emulators/");
    std::fs::write(emulators.join("config.json"), config).expect("writing config.json");
    dir
}

//! `GET /ui` in a real browser: headless Chromium from Debian's package
//! (`/usr/bin/chromium`, or `$CHROMIUM`), driven over the DevTools protocol
//! (JSON over a WebSocket), against the real VCC package (the committed
//! `fixtures/vcc_processing` config with the nine real plugins) served by
//! the real binary on loopback.
//!
//! Ignored by a plain `cargo test` (it needs Chromium); `ci/test.sh` runs it
//! with `--ignored`, and `.ci/run` installs Chromium when it is missing.
//! It keeps a screenshot and the timings it measured in `target/ui-test/`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{build_dir, package, plugin_package, wait_for, workspace_dir, Emulator, PATIENCE};
use tungstenite::{Message, WebSocket};

/// Chromium, killed (with its profile removed) when dropped.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.is_file(),
        "{} is missing: install Debian's chromium package (`apt-get install -y chromium`; .ci/run does) or set CHROMIUM",
        path.display()
    );
    path
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("bitstream-ui-chromium-")
            .tempdir()
            .expect("a profile dir");
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1400,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        // "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>"
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut seen = String::new();
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.parse().ok());
                break;
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            panic!("chromium did not open its DevTools port; it said:\n{seen}");
        };
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// A DevTools session on the browser's first page.
    fn page(&self) -> Page {
        let url = format!("http://127.0.0.1:{}/json/list", self.port);
        let targets: Value = wait_for("chromium's page target", PATIENCE, || {
            let list: Value = reqwest::blocking::get(&url).ok()?.json().ok()?;
            list.as_array()?
                .iter()
                .any(|t| t["type"] == "page")
                .then_some(list)
        });
        let ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("the page's webSocketDebuggerUrl")
            .to_owned();
        let (socket, _) = tungstenite::connect(ws.as_str()).expect("connecting to the page");
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        }
        let mut page = Page { socket, next: 0 };
        page.call("Page.enable", json!({}));
        page.call("Runtime.enable", json!({}));
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Page {
    socket: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Page {
    /// Sends one DevTools command and waits for its answer (events in
    /// between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let reply = self
                .socket
                .read()
                .unwrap_or_else(|e| panic!("waiting for the answer to {method}: {e}"));
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and answers
    /// its value; a thrown exception fails the test.
    fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|exception| panic!("{expression}\nthrew: {exception}"))
    }

    /// [`eval`](Self::eval), with a thrown exception as the error.
    fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Polls `expression` until it is truthy. While the page is still
    /// loading (no `document.body` yet), a thrown exception counts as not
    /// yet.
    fn wait(&mut self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self
                .try_eval(expression)
                .unwrap_or_else(|e| json!({"threw": e}));
            if value.get("threw").is_some() && Instant::now() >= deadline {
                panic!("{expression}\nstill throws: {value}");
            }
            let value = if value.get("threw").is_some() {
                Value::Null
            } else {
                value
            };
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return value;
            }
            if Instant::now() >= deadline {
                let shown = self.eval(
                    "JSON.stringify({events: document.getElementById('events').textContent, \
                      stream: document.getElementById('stream').textContent, \
                      states: Array.from(document.querySelectorAll('#blocks tbody tr'), r => r.dataset.blockRow + '=' + r.dataset.state).slice(0, 5)})",
                );
                panic!("the page never showed {what} ({expression}); it shows {shown}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where the test keeps its artifacts: `target/ui-test/`.
fn artifacts() -> PathBuf {
    let dir = build_dir()
        .parent()
        .expect("target/<profile> is inside target/")
        .join("ui-test");
    std::fs::create_dir_all(&dir).expect("creating target/ui-test");
    dir
}

fn vcc_config() -> String {
    let path = workspace_dir().join("fixtures/vcc_processing/emulators/config.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "needs Chromium (/usr/bin/chromium); ci/test.sh runs it with --ignored"]
fn the_page_shows_the_real_vcc_chain_live_and_sends_routes() {
    let emu = Emulator::start_package(
        plugin_package(&vcc_config()),
        &["--stopped", "--pulse-period-ms", "1000"],
    );
    let blocks: Vec<String> = emu.get("/").expect(200).json()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(blocks.len(), 36, "the real VCC package has 36 blocks");

    let browser = Browser::launch();
    let mut page = browser.page();
    page.call("Page.navigate", json!({"url": format!("{}/ui", emu.base)}));

    // The chain is drawn with every block, and the table lists them.
    page.wait("the drawn chain", "document.body.dataset.chain === 'drawn'");
    let drawn: Vec<String> = serde_json::from_value(page.eval(
        "Array.from(document.querySelectorAll('#chain g.node[data-block]'), n => n.dataset.block)",
    ))
    .unwrap();
    assert_eq!(drawn, blocks, "one node per block, in config order");
    assert_eq!(
        page.eval("document.querySelectorAll('#blocks tbody tr').length"),
        36
    );
    assert_eq!(
        page.eval("document.getElementById('block-count').textContent"),
        "36"
    );
    let load_ms = page.eval("window.uiTimings.chainDrawnMs").as_f64().unwrap();
    page.wait(
        "the event stream",
        "document.body.dataset.events === 'subscribed'",
    );
    page.wait(
        "the route descriptions",
        "document.body.dataset.ready === 'true'",
    );

    // A POST from the test (not the page) changes a block's state; the page
    // shows it without a reload.
    let row = "document.querySelector('tr[data-block-row=\"ethernet_200g\"]')";
    let node = "document.querySelector('#chain g.node[data-block=\"ethernet_200g\"]')";
    assert_eq!(page.eval(&format!("{row}.dataset.state")), "RESET");
    page.eval(&format!(
        "window.noReload = 1; window.seenAt = null; \
         const t = setInterval(() => {{ if ({row}.dataset.state === 'NO_LINK' && {node}.dataset.state === 'NO_LINK') \
             {{ clearInterval(t); window.seenAt = performance.now(); }} }}, 2); \
         window.postedAt = performance.now(); true"
    ));
    emu.post_json("/ethernet_200g/recover/", &json!({}))
        .expect(200);
    emu.post_json("/ethernet_200g/start/", &json!({}))
        .expect(200);
    assert_eq!(emu.block_state("ethernet_200g"), "NO_LINK");
    let seen_ms = page
        .wait("ethernet_200g in NO_LINK", "window.seenAt")
        .as_f64()
        .unwrap();
    let update_ms = seen_ms - page.eval("window.postedAt").as_f64().unwrap();
    assert_eq!(page.eval("window.noReload"), 1, "the page was not reloaded");
    assert_eq!(
        page.eval(&format!("{row}.querySelector('.state').textContent")),
        "NO_LINK"
    );
    // A pulse (the signal's packet rate) takes it on to LINK, on the
    // engine's driver thread this time.
    emu.pulse(1);
    page.wait(
        "ethernet_200g in LINK after a pulse",
        &format!("{row}.dataset.state === 'LINK' && {node}.dataset.state === 'LINK'"),
    );
    assert_eq!(page.eval("window.noReload"), 1, "the page was not reloaded");
    let label = page.eval(&format!(
        "Array.from({node}.nextElementSibling.querySelectorAll('tspan'), t => t.textContent)"
    ));
    assert_eq!(label, json!(["ethernet_200g", "(ftile_ethernet)", "LINK"]));
    assert_eq!(page.eval(&format!("{node}.dataset.status")), "normal");

    // A block's detail: its diagram with the current state, no device
    // buffer (the VCC plugins ship no catalog), its last events, its routes
    // as forms; a configure sent from its form shows the reply.
    page.eval("document.querySelector('tr[data-block-row=\"ethernet_200g\"]').click(); true");
    page.wait(
        "the diagram with LINK marked",
        "document.querySelector('#diagram g.node[data-current][data-state=\"LINK\"]') !== null",
    );
    page.wait(
        "the buffer panel",
        "document.getElementById('buffer').dataset.live === 'false'",
    );
    assert!(page
        .eval("document.getElementById('buffer').textContent")
        .as_str()
        .unwrap()
        .contains("no device buffer"));
    let events = page.eval("document.getElementById('block-events').textContent");
    assert!(
        events.as_str().unwrap().contains("NO_LINK → LINK"),
        "{events}"
    );

    let form =
        "document.querySelector('form[data-route=\"POST /wideband_frequency_shifter/configure\"]')";
    page.eval("document.querySelector('#chain g.node[data-block=\"wideband_frequency_shifter\"]').dispatchEvent(new MouseEvent('click')); true");
    page.wait("the configure form", &format!("{form} !== null"));
    assert_eq!(
        page.eval(&format!("{form}.querySelector('textarea').value")),
        r#"{"shift_frequency":0}"#,
        "the body is prefilled from the route's schema"
    );
    page.eval(&format!(
        "{form}.querySelector('textarea').value = '{{\"shift_frequency\": 1000}}'; \
         {form}.querySelector('button[type=submit]').click(); true"
    ));
    let reply = page.wait(
        "the configure reply",
        &format!("{form}.querySelector('.reply').dataset.status && {form}.querySelector('.reply').textContent"),
    );
    assert!(
        reply
            .as_str()
            .unwrap()
            .starts_with("POST /wideband_frequency_shifter/configure → 200"),
        "{reply}"
    );
    assert_eq!(
        emu.get("/wideband_frequency_shifter/status")
            .expect(200)
            .json()["shift_frequency"],
        1000.0
    );
    page.eval(&format!(
        "{form}.querySelector('.reply').removeAttribute('data-status'); \
         {form}.querySelector('textarea').value = '{{\"shift_frequency\": \"fast\"}}'; \
         {form}.querySelector('button[type=submit]').click(); true"
    ));
    let reply = page.wait(
        "the refused configure's reply",
        &format!("{form}.querySelector('.reply').dataset.status && {form}.querySelector('.reply').textContent"),
    );
    assert!(reply.as_str().unwrap().contains("→ 400"), "{reply}");

    // The controls: pulses, and a manual event injected from the page
    // reaches the block (the stream shows it).
    let before = emu.get("/").expect(200).json()["pulses"].as_u64().unwrap();
    page.eval(
        "document.getElementById('pulse-count').value = '5'; \
         document.getElementById('pulse').click(); true",
    );
    let reply = page.wait(
        "the pulse reply",
        "document.getElementById('control-reply').dataset.status && document.getElementById('control-reply').textContent",
    );
    assert!(
        reply
            .as_str()
            .unwrap()
            .starts_with("POST /pulse?count=5 → 200"),
        "{reply}"
    );
    assert_eq!(emu.get("/").expect(200).json()["pulses"], before + 5);
    page.eval(
        "document.getElementById('inject-block').value = 'packet_validation'; \
         document.getElementById('inject-severity').value = 'WARNING'; \
         document.querySelector('#inject button[type=submit]').click(); true",
    );
    let reply = page.wait(
        "the inject reply",
        "document.getElementById('inject-reply').dataset.status && document.getElementById('inject-reply').textContent",
    );
    assert!(
        reply.as_str().unwrap().starts_with("POST /inject → 202"),
        "{reply}"
    );
    page.wait(
        "the injection in the event log",
        "Array.from(document.querySelectorAll('#events li[data-kind=\"injection\"]'), l => l.textContent)\
           .some(t => t.includes('packet_validation INJECTION WARNING'))",
    );

    // The screenshot and the timings are kept.
    // The whole page, not just the window.
    let size = page.call("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
    let shot = page.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true,
               "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}),
    );
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = artifacts();
    std::fs::write(dir.join("ui.png"), &png).unwrap();
    let timings = json!({
        "chain_drawn_ms_after_navigation": load_ms,
        "state_change_shown_ms_after_post": update_ms,
    });
    std::fs::write(dir.join("timings.json"), format!("{timings:#}\n")).unwrap();
    eprintln!(
        "ui timings: {timings}; screenshot {}",
        dir.join("ui.png").display()
    );
}

/// Standard base64 (what DevTools sends screenshots in).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[test]
#[ignore = "needs Chromium (/usr/bin/chromium); ci/test.sh runs it with --ignored"]
fn the_page_shows_device_buffer_values_live() {
    let config = json!({
        "id": "ui_buffers",
        "version": "0.0.1",
        "first": ["reg"],
        "ip_blocks": [{"id": "reg", "type": "registers", "constants": {}}],
    });
    let emu = Emulator::start_package(
        package(&[("registers", "registers")], &config.to_string()),
        &["--stopped", "--pulse-period-ms", "1000", "--local-buffers"],
    );
    let browser = Browser::launch();
    let mut page = browser.page();
    page.call("Page.navigate", json!({"url": format!("{}/ui", emu.base)}));
    page.wait("the drawn chain", "document.body.dataset.chain === 'drawn'");
    page.eval("document.querySelector('tr[data-block-row=\"reg\"]').click(); true");
    let count = "document.querySelector('#buffer tr[data-param=\"count\"] td:last-child')";
    page.wait(
        "count 0",
        &format!("{count} && {count}.textContent === '0'"),
    );
    // Changed by someone else (here a route of the block, through its
    // buffer): the page shows the new value without being asked.
    assert_eq!(emu.post("/reg/bump").expect(200).json()["count"], 1);
    page.wait(
        "count 1",
        &format!("{count} && {count}.textContent === '1'"),
    );
}

/// A `fleet` child, killed when dropped.
struct FleetChild {
    child: Child,
    /// `http://127.0.0.1:<port>` of its admin index.
    admin: String,
}

impl Drop for FleetChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fleet <args> --admin 127.0.0.1:0` and waits until every emulator
/// serves (its INFO lines: the log level must let them through). A fleet
/// that exits early ends the wait.
fn start_fleet(args: &[&str]) -> FleetChild {
    let mut child = Command::new(support::BINARY)
        .arg("fleet")
        .args(args)
        .args(["--admin", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the fleet");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut admin = None;
    let mut seen = String::new();
    for line in stderr.by_ref() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("admin index on http://").nth(1) {
            admin = Some(format!("http://{}", rest.trim().trim_end_matches("/ui")));
        }
        if line.contains("emulators of") && line.contains("serving, started in") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || stderr.for_each(drop));
    let Some(admin) = admin else {
        let _ = child.kill();
        panic!("the fleet never served; it said:\n{seen}");
    };
    FleetChild { child, admin }
}

#[test]
#[ignore = "needs Chromium (/usr/bin/chromium); ci/test.sh runs it with --ignored"]
fn the_fleet_index_lists_the_emulators_with_their_states_live() {
    let package = plugin_package(&vcc_config());
    let fleet = start_fleet(&[
        "--package",
        package.path().to_str().unwrap(),
        "--count",
        "3",
        "--base-port",
        "0",
        "--stopped",
    ]);
    let index: Value = reqwest::blocking::get(format!("{}/", fleet.admin))
        .and_then(|r| r.json())
        .expect("GET / of the admin index");
    let urls: Vec<String> = index["emulators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 3, "{index}");

    let browser = Browser::launch();
    let mut page = browser.page();
    page.call(
        "Page.navigate",
        json!({"url": format!("{}/ui", fleet.admin)}),
    );
    page.wait("the fleet index", "document.body.dataset.loaded === 'yes'");
    let rows = page.eval(
        "Array.from(document.querySelectorAll('#emulators tbody tr'), r => r.dataset.emulator + '=' + r.dataset.state)",
    );
    assert_eq!(
        rows,
        json!([
            "fhs-vcc-emulator-1=STOPPED",
            "fhs-vcc-emulator-2=STOPPED",
            "fhs-vcc-emulator-3=STOPPED"
        ])
    );
    let links = page.eval(
        "Array.from(document.querySelectorAll('#emulators tbody tr td:first-child a'), a => a.href)",
    );
    let expected: Vec<String> = urls.iter().map(|u| format!("{u}/ui")).collect();
    assert_eq!(
        links,
        json!(expected),
        "each row links to its emulator's own page"
    );

    // Started by someone else: the index shows it without a reload.
    page.eval("window.noReload = 1; true");
    let started = reqwest::blocking::Client::new()
        .post(format!("{}/start", urls[1]))
        .send()
        .expect("POST /start");
    assert!(started.status().is_success(), "{:?}", started.status());
    page.wait(
        "emulator 2 running",
        "document.querySelector('tr[data-emulator=\"fhs-vcc-emulator-2\"]').dataset.state === 'RUNNING'",
    );
    assert_eq!(page.eval("window.noReload"), 1, "the page was not reloaded");
    assert_eq!(
        page.eval(
            "document.querySelector('tr[data-emulator=\"fhs-vcc-emulator-1\"]').dataset.state"
        ),
        "STOPPED"
    );

    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::write(artifacts().join("fleet-index.png"), &png).unwrap();

    // Its link leads to the emulator's own page, with the real chain.
    page.eval("document.querySelector('tr[data-emulator=\"fhs-vcc-emulator-3\"] td:first-child a').click(); true");
    page.wait(
        "emulator 3's chain",
        "document.body.dataset.chain === 'drawn'",
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#blocks tbody tr').length"),
        36
    );
    assert_eq!(page.eval("location.href"), json!(format!("{}/ui", urls[2])));
}

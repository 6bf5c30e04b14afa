//! What a fleet will start, from a manifest or from the shortcut "N copies
//! of one package", and the checks that need nothing loaded: every id is
//! usable and unique, every address parses and is used once (an emulator's
//! port, the admin's, the injector's), every package folder exists.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::manifest::{self, Manifest};
use super::{Problem, Problems};
use crate::engine::block_buffer::BufferMode;
use crate::engine::EngineOptions;
use crate::model::LogLevel;

/// The longest emulator id (it names `/dev/shm/bitstream-<id>-<block>`).
pub const MAX_ID_LEN: usize = 100;

/// Default milliseconds between real-time pulses.
pub const DEFAULT_PULSE_PERIOD_MS: u64 = 1000;
/// Default handler timeout in milliseconds.
pub const DEFAULT_HANDLER_TIMEOUT_MS: u64 = 10_000;

/// What the command line sets for the whole fleet; each replaces the
/// manifest's `[defaults]` or service address (an emulator's own value
/// still wins over `pulse_period_ms`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--pulse-period-ms`.
    pub pulse_period_ms: Option<u64>,
    /// `--admin`.
    pub admin: Option<String>,
    /// `--injector`.
    pub injector: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--stopped`: every emulator starts with real-time pulses stopped
    /// (an emulator's own `stopped` still wins).
    pub stopped: Option<bool>,
    /// `--local-buffers`: device buffers in process memory (an emulator's
    /// own `local_buffers` still wins).
    pub local_buffers: Option<bool>,
}

/// The shortcut: `count` emulators of one package, ids `<id_prefix>1` to
/// `<id_prefix><count>`, ports from `base_port` up (every one on a free
/// port when `base_port` is 0).
#[derive(Debug, Clone)]
pub struct Replicas {
    /// The package every emulator runs.
    pub package: PathBuf,
    /// How many.
    pub count: usize,
    /// The ids' prefix.
    pub id_prefix: String,
    /// The first port.
    pub base_port: u16,
    /// The address every emulator binds (`0.0.0.0` in a container).
    pub bind_host: String,
}

/// One emulator to start.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorPlan {
    /// Its id.
    pub id: String,
    /// Its package folder (resolved against the manifest's folder).
    pub package: PathBuf,
    /// Its HTTP address.
    pub bind: SocketAddr,
    /// The manifest line of its `[[emulator]]`.
    pub line: Option<usize>,
    /// Time between real-time pulses (`None`: accelerated only).
    pub pulse_period: Option<Duration>,
    /// The handler timeout.
    pub handler_timeout: Duration,
    /// Start with real-time pulses stopped.
    pub stopped: bool,
    /// Device buffers in process memory.
    pub local_buffers: bool,
}

impl EmulatorPlan {
    /// The engine options it starts with.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            id: self.id.clone(),
            pulse_period: self.pulse_period,
            handler_timeout: self.handler_timeout,
            start_running: !self.stopped,
            buffers: if self.local_buffers {
                BufferMode::Local
            } else {
                BufferMode::Shared
            },
            plugin_files: Vec::new(),
            runtime: None,
        }
    }

    /// `emulator "<id>"`, for messages.
    pub fn name(&self) -> String {
        format!("emulator \"{}\"", self.id)
    }
}

/// A fleet to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where it was described (the manifest's path, or "the command line").
    pub source: String,
    /// The emulators, in manifest (or id) order.
    pub emulators: Vec<EmulatorPlan>,
    /// The admin index's address.
    pub admin: Option<SocketAddr>,
    /// The injector's address.
    pub injector: Option<SocketAddr>,
    /// The log level asked for (`None`: the binary's default).
    pub log_level: Option<String>,
    /// A client's time to send a request head.
    pub header_timeout: Duration,
    /// A client's time to send a body after its head.
    pub body_timeout: Duration,
}

/// An emulator whose address may not have parsed yet.
struct Draft {
    plan: EmulatorPlan,
    bind: Option<SocketAddr>,
}

fn parse_bind(
    text: &str,
    what: &str,
    line: Option<usize>,
    problems: &mut Vec<Problem>,
) -> Option<SocketAddr> {
    match text.trim().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(Problem::at(
                line,
                format!(
                    "{what}: bind \"{text}\" is not an address; give an IP address and a port, \
                     such as 127.0.0.1:5001 (0.0.0.0:5001 in a container)"
                ),
            ));
            None
        }
    }
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value.max(1))
}

impl Plan {
    /// The plan of the manifest at `path` (read here).
    pub fn from_manifest_file(path: &Path, overrides: &Overrides) -> Result<Plan, Problems> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| Problems {
            origin: source.clone(),
            problems: vec![Problem::at(
                None,
                format!(
                    "cannot read the manifest: {err}; give the path of a fleet manifest (TOML)"
                ),
            )],
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        Self::from_manifest(&text, &source, folder, overrides)
    }

    /// The plan of manifest `text` (from `source`, whose relative package
    /// paths are relative to `folder`).
    pub fn from_manifest(
        text: &str,
        source: &str,
        folder: &Path,
        overrides: &Overrides,
    ) -> Result<Plan, Problems> {
        let fail = |problems| Problems {
            origin: source.to_owned(),
            problems,
        };
        let manifest: Manifest = manifest::parse(text).map_err(fail)?;
        let defaults = &manifest.defaults;
        let mut problems = Vec::new();
        let drafts: Vec<Draft> = manifest
            .emulators
            .iter()
            .map(|spanned| {
                let entry = spanned.get_ref();
                let line = Some(manifest::line_of(text, spanned.span().start));
                let what = format!("emulator \"{}\"", entry.id);
                let bind = parse_bind(&entry.bind, &what, line, &mut problems);
                let period = entry
                    .pulse_period_ms
                    .or(overrides.pulse_period_ms)
                    .or(defaults.pulse_period_ms)
                    .unwrap_or(DEFAULT_PULSE_PERIOD_MS);
                let plan = EmulatorPlan {
                    id: entry.id.clone(),
                    package: folder.join(&entry.package),
                    bind: bind.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                    line,
                    pulse_period: (period > 0).then(|| Duration::from_millis(period)),
                    handler_timeout: ms(entry
                        .handler_timeout_ms
                        .or(defaults.handler_timeout_ms)
                        .unwrap_or(DEFAULT_HANDLER_TIMEOUT_MS)),
                    stopped: entry
                        .stopped
                        .or(overrides.stopped)
                        .or(defaults.stopped)
                        .unwrap_or(false),
                    local_buffers: entry
                        .local_buffers
                        .or(overrides.local_buffers)
                        .or(defaults.local_buffers)
                        .unwrap_or(false),
                };
                Draft { plan, bind }
            })
            .collect();
        if drafts.is_empty() {
            problems.push(Problem::at(
                None,
                "no emulator: add one [[emulator]] table (id, package, bind) per emulator",
            ));
        }
        let admin_text = overrides.admin.clone().or(manifest.admin.map(|s| s.bind));
        let injector_text = overrides
            .injector
            .clone()
            .or(manifest.injector.map(|s| s.bind));
        let log_level = overrides.log_level.clone().or(defaults.log_level.clone());
        let plan = Plan {
            source: source.to_owned(),
            emulators: Vec::new(),
            admin: None,
            injector: None,
            log_level,
            header_timeout: ms(defaults.header_timeout_ms.unwrap_or(10_000)),
            body_timeout: ms(defaults.body_timeout_ms.unwrap_or(10_000)),
        };
        plan.finish(drafts, admin_text, injector_text, problems)
    }

    /// The plan of the shortcut (`--package --count --id-prefix
    /// --base-port --bind-host`).
    pub fn replicas(replicas: &Replicas, overrides: &Overrides) -> Result<Plan, Problems> {
        let mut problems = Vec::new();
        let host = match replicas.bind_host.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                problems.push(Problem::at(
                    None,
                    format!(
                        "--bind-host \"{}\" is not an IP address; give one such as 127.0.0.1 or 0.0.0.0",
                        replicas.bind_host
                    ),
                ));
                None
            }
        };
        if replicas.count == 0 {
            problems.push(Problem::at(
                None,
                "--count 0: give the number of emulators (1 or more)",
            ));
        }
        let last = u64::from(replicas.base_port) + replicas.count.saturating_sub(1) as u64;
        if replicas.base_port != 0 && last > u64::from(u16::MAX) {
            problems.push(Problem::at(
                None,
                format!(
                    "--base-port {} with --count {} needs ports up to {last}, past 65535; lower one of them",
                    replicas.base_port, replicas.count
                ),
            ));
        }
        if !replicas.package.join("emulators").is_dir() {
            let what = if replicas.package.exists() {
                "has no emulators/ folder; give the bitstream package folder"
            } else {
                "does not exist; give the folder holding emulators/"
            };
            problems.push(Problem::at(
                None,
                format!("--package {} {what}", replicas.package.display()),
            ));
        }
        let period = overrides.pulse_period_ms.unwrap_or(DEFAULT_PULSE_PERIOD_MS);
        let drafts = if problems.is_empty() {
            (1..=replicas.count)
                .map(|n| {
                    let port = match replicas.base_port {
                        0 => 0,
                        base => base + (n - 1) as u16,
                    };
                    let bind = host.map(|ip| SocketAddr::new(ip, port));
                    Draft {
                        plan: EmulatorPlan {
                            id: format!("{}{n}", replicas.id_prefix),
                            package: replicas.package.clone(),
                            bind: bind.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                            line: None,
                            pulse_period: (period > 0).then(|| Duration::from_millis(period)),
                            handler_timeout: ms(DEFAULT_HANDLER_TIMEOUT_MS),
                            stopped: overrides.stopped.unwrap_or(false),
                            local_buffers: overrides.local_buffers.unwrap_or(false),
                        },
                        bind,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let plan = Plan {
            source: "the command line".to_owned(),
            emulators: Vec::new(),
            admin: None,
            injector: None,
            log_level: overrides.log_level.clone(),
            header_timeout: ms(10_000),
            body_timeout: ms(10_000),
        };
        plan.finish(
            drafts,
            overrides.admin.clone(),
            overrides.injector.clone(),
            problems,
        )
    }

    /// Checks the drafts and the services, and answers the plan or every
    /// problem.
    fn finish(
        mut self,
        drafts: Vec<Draft>,
        admin: Option<String>,
        injector: Option<String>,
        mut problems: Vec<Problem>,
    ) -> Result<Plan, Problems> {
        self.admin = admin.and_then(|a| parse_bind(&a, "[admin] (--admin)", None, &mut problems));
        self.injector =
            injector.and_then(|a| parse_bind(&a, "[injector] (--injector)", None, &mut problems));
        if let Some(Err(err)) = self.log_level.as_deref().map(str::parse::<LogLevel>) {
            problems.push(Problem::at(None, format!("log_level (--log-level): {err}")));
        }
        problems.extend(check_ids(&drafts));
        problems.extend(check_packages(&drafts));
        problems.extend(check_addresses(&drafts, self.admin, self.injector));
        if !problems.is_empty() {
            return Err(Problems {
                origin: self.source,
                problems,
            });
        }
        self.emulators = drafts.into_iter().map(|d| d.plan).collect();
        Ok(self)
    }

    /// The plan as `fleet --dry-run` prints it:
    /// `{"emulators": [{"id", "package", "bind"}], "admin", "injector"}`.
    pub fn to_json(&self) -> Json {
        json!({
            "emulators": self.emulators.iter().map(|e| json!({
                "id": e.id,
                "package": e.package.display().to_string(),
                "bind": e.bind.to_string(),
            })).collect::<Vec<_>>(),
            "admin": self.admin.map(|a| a.to_string()),
            "injector": self.injector.map(|a| a.to_string()),
        })
    }
}

/// Whether an id can name an emulator (and its `/dev/shm` buffers).
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("has an empty id; give every emulator an id".to_owned());
    }
    if id.len() > MAX_ID_LEN {
        return Some(format!(
            "has an id of {} characters; at most {MAX_ID_LEN}",
            id.len()
        ));
    }
    let bad: Vec<char> = id
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "has characters an id may not hold ({}); use letters, digits, '-', '_' and '.'",
            bad.iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

fn check_ids(drafts: &[Draft]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, draft) in drafts.iter().enumerate() {
        let plan = &draft.plan;
        if let Some(problem) = id_problem(&plan.id) {
            problems.push(Problem::at(plan.line, format!("{} {problem}", plan.name())));
        }
        if let Some(first) = drafts[..i].iter().find(|d| d.plan.id == plan.id) {
            problems.push(Problem::at(
                plan.line,
                format!(
                    "{} is a duplicate id (first used{}); every emulator needs its own id",
                    plan.name(),
                    first
                        .plan
                        .line
                        .map(|l| format!(" on line {l}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    problems
}

fn check_packages(drafts: &[Draft]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for draft in drafts {
        let plan = &draft.plan;
        // One problem per package, not per emulator of it.
        if drafts
            .iter()
            .take_while(|d| !std::ptr::eq(*d, draft))
            .any(|d| d.plan.package == plan.package)
        {
            continue;
        }
        let users = users_of(drafts, &plan.package);
        let package = plan.package.display();
        if !plan.package.exists() {
            problems.push(Problem::at(
                plan.line,
                format!(
                    "{users}: package {package} does not exist; give the folder holding emulators/"
                ),
            ));
        } else if !plan.package.join("emulators").is_dir() {
            problems.push(Problem::at(
                plan.line,
                format!("{users}: package {package} has no emulators/ folder; give the bitstream package folder"),
            ));
        }
    }
    problems
}

/// "emulator "a"" or "emulators "a" (line 3), "b" (line 7) and 5 more":
/// the emulators running `package`.
pub fn users_of_plans(plans: &[&EmulatorPlan]) -> String {
    const SHOWN: usize = 4;
    let named: Vec<String> = plans
        .iter()
        .take(SHOWN)
        .map(|p| match p.line {
            Some(line) => format!("\"{}\" (line {line})", p.id),
            None => format!("\"{}\"", p.id),
        })
        .collect();
    let more = plans.len().saturating_sub(SHOWN);
    let noun = if plans.len() == 1 {
        "emulator"
    } else {
        "emulators"
    };
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{noun} {}{tail}", named.join(", "))
}

fn users_of(drafts: &[Draft], package: &Path) -> String {
    let plans: Vec<&EmulatorPlan> = drafts
        .iter()
        .map(|d| &d.plan)
        .filter(|p| p.package == package)
        .collect();
    users_of_plans(&plans)
}

/// Whether two listeners could not both bind.
pub fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_addresses(
    drafts: &[Draft],
    admin: Option<SocketAddr>,
    injector: Option<SocketAddr>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut taken: Vec<(SocketAddr, String, Option<usize>)> = Vec::new();
    let services = [("[admin]", admin), ("[injector]", injector)];
    let entries = drafts
        .iter()
        .filter_map(|d| d.bind.map(|b| (b, d.plan.name(), d.plan.line)))
        .chain(
            services
                .into_iter()
                .filter_map(|(name, addr)| addr.map(|a| (a, name.to_owned(), None))),
        );
    for (addr, name, line) in entries {
        if let Some((other, other_name, other_line)) =
            taken.iter().find(|(t, _, _)| clash(*t, addr))
        {
            let at = other_line
                .map(|l| format!(" on line {l}"))
                .unwrap_or_default();
            let same = if *other == addr {
                "the same address".to_owned()
            } else {
                format!("port {} of {other}", other.port())
            };
            problems.push(Problem::at(
                line,
                format!(
                    "{name}: bind {addr} uses {same}, already taken by {other_name}{at}; give each its own port"
                ),
            ));
        }
        taken.push((addr, name, line));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("emulators")).unwrap();
        dir
    }

    #[test]
    fn the_shortcut_counts_ids_and_ports_up() {
        let pkg = package();
        let plan = Plan::replicas(
            &Replicas {
                package: pkg.path().to_path_buf(),
                count: 3,
                id_prefix: "fhs-vcc-emulator-".into(),
                base_port: 5001,
                bind_host: "0.0.0.0".into(),
            },
            &Overrides {
                admin: Some("127.0.0.1:5000".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let json = plan.to_json();
        assert_eq!(json["emulators"][2]["id"], "fhs-vcc-emulator-3");
        assert_eq!(json["emulators"][2]["bind"], "0.0.0.0:5003");
        assert_eq!(json["admin"], "127.0.0.1:5000");
        assert_eq!(json["injector"], Json::Null);
    }

    #[test]
    fn the_shortcut_reports_every_bad_flag() {
        let err = Plan::replicas(
            &Replicas {
                package: "/nonexistent".into(),
                count: 10,
                id_prefix: "x/".into(),
                base_port: 65530,
                bind_host: "somewhere".into(),
            },
            &Overrides {
                admin: Some("nowhere".into()),
                injector: Some("0.0.0.0:65531".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--bind-host \"somewhere\""), "{text}");
        assert!(text.contains("past 65535"), "{text}");
        assert!(
            text.contains("[admin] (--admin): bind \"nowhere\""),
            "{text}"
        );
        assert!(
            text.contains("--package /nonexistent does not exist"),
            "{text}"
        );
        assert_eq!(err.problems.len(), 4, "{text}");
    }

    #[test]
    fn duplicates_clashes_and_missing_packages_are_all_reported_with_lines() {
        let pkg = package();
        let text = format!(
            "[admin]\nbind = \"0.0.0.0:6001\"\n\
             [[emulator]]\nid = \"a\"\npackage = \"{p}\"\nbind = \"127.0.0.1:6001\"\n\
             [[emulator]]\nid = \"a\"\npackage = \"{p}\"\nbind = \"127.0.0.1:6002\"\n\
             [[emulator]]\nid = \"c d\"\npackage = \"missing\"\nbind = \"127.0.0.1:6002\"\n\
             [[emulator]]\nid = \"e\"\npackage = \"{p}\"\nbind = \"localhost:6003\"\n",
            p = pkg.path().display()
        );
        let err = Plan::from_manifest(
            &text,
            "fleet.toml",
            Path::new("/base"),
            &Overrides::default(),
        )
        .unwrap_err();
        let shown: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        let has = |needle: &str| shown.iter().any(|p| p.contains(needle));
        assert!(
            has("line 15: emulator \"e\": bind \"localhost:6003\" is not an address"),
            "{shown:#?}"
        );
        assert!(
            has("line 7: emulator \"a\" is a duplicate id (first used on line 3)"),
            "{shown:#?}"
        );
        assert!(
            has("line 11: emulator \"c d\" has characters an id may not hold (' ')"),
            "{shown:#?}"
        );
        assert!(
            has("line 11: emulator \"c d\" (line 11): package /base/missing does not exist"),
            "{shown:#?}"
        );
        assert!(has("line 11: emulator \"c d\": bind 127.0.0.1:6002 uses the same address, already taken by emulator \"a\" on line 7"), "{shown:#?}");
        assert!(has("[admin]: bind 0.0.0.0:6001 uses port 6001 of 127.0.0.1:6001, already taken by emulator \"a\" on line 3"), "{shown:#?}");
        assert_eq!(shown.len(), 6, "{shown:#?}");
    }

    #[test]
    fn defaults_and_overrides_reach_each_emulator() {
        let pkg = package();
        let text = format!(
            "[defaults]\npulse_period_ms = 50\nstopped = true\n\
             [[emulator]]\nid = \"a\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
             [[emulator]]\nid = \"b\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\npulse_period_ms = 0\nstopped = false\n",
            p = pkg.path().display()
        );
        let overrides = Overrides {
            pulse_period_ms: Some(70),
            ..Overrides::default()
        };
        let plan = Plan::from_manifest(&text, "f.toml", Path::new("."), &overrides).unwrap();
        assert_eq!(
            plan.emulators[0].pulse_period,
            Some(Duration::from_millis(70))
        );
        assert!(plan.emulators[0].stopped);
        assert_eq!(plan.emulators[1].pulse_period, None);
        assert!(!plan.emulators[1].stopped);
        assert_eq!(plan.emulators[1].line, Some(8));
    }
}

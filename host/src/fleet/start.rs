//! Starting a fleet: every distinct package loaded once, every listener
//! bound, every emulator started — or, at the first problem anywhere, all
//! problems found reported and nothing left running (no listener bound, no
//! emulator, so no `/dev/shm` buffer).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::plan::{users_of_plans, EmulatorPlan, Plan};
use super::{Problem, Problems};
use crate::engine::{Emulator, EngineOptions, Libraries, Package, Runtime};

/// One running emulator of a fleet.
pub struct Member {
    /// What it was started from.
    pub plan: EmulatorPlan,
    /// The address it listens on (the real port when the plan said 0).
    pub addr: SocketAddr,
    /// The emulator.
    pub emulator: Arc<Emulator>,
}

/// A started fleet: its emulators and their bound listeners (to be served).
pub struct Fleet {
    /// The emulators, in plan order.
    pub members: Vec<Member>,
    /// Each member's listener, in the same order.
    pub listeners: Vec<TcpListener>,
    /// The admin index's listener.
    pub admin: Option<TcpListener>,
    /// How many distinct packages were loaded.
    pub packages: usize,
    /// The engine threads every member runs on: one worker per core, one
    /// timer thread and one watchdog, however many members.
    pub runtime: Runtime,
}

/// The distinct packages of a plan, each loaded once (its libraries through
/// the process-wide cache), keyed by the folder as the plan names it; or a
/// problem per package that cannot be loaded, naming its emulators.
pub fn load_packages(plan: &Plan) -> Result<HashMap<PathBuf, Package>, Vec<Problem>> {
    // By the plan's path, and by the real path (folders naming one package
    // by different paths share it); `None`: tried and failed.
    let mut tried: HashMap<PathBuf, Option<Package>> = HashMap::new();
    let mut by_real_path: HashMap<PathBuf, Option<Package>> = HashMap::new();
    let mut problems = Vec::new();
    for emulator in &plan.emulators {
        if tried.contains_key(&emulator.package) {
            continue;
        }
        let real = std::fs::canonicalize(&emulator.package).unwrap_or(emulator.package.clone());
        if let Some(package) = by_real_path.get(&real) {
            tried.insert(emulator.package.clone(), package.clone());
            continue;
        }
        let loaded = match Package::load(&emulator.package, &[], Libraries::Shared) {
            Ok(package) => Some(package),
            Err(err) => {
                let users: Vec<&EmulatorPlan> = plan
                    .emulators
                    .iter()
                    .filter(|e| e.package == emulator.package)
                    .collect();
                problems.push(Problem::at(
                    emulator.line,
                    format!(
                        "{}: package {} cannot be started: {err}",
                        users_of_plans(&users),
                        emulator.package.display()
                    ),
                ));
                None
            }
        };
        by_real_path.insert(real, loaded.clone());
        tried.insert(emulator.package.clone(), loaded);
    }
    if problems.is_empty() {
        Ok(tried
            .into_iter()
            .filter_map(|(path, package)| Some((path, package?)))
            .collect())
    } else {
        Err(problems)
    }
}

/// Whether `addr` is free to bind, checked without listening (for a dry
/// run): `None` when free, else why not.
pub fn probe_address(addr: SocketAddr) -> Option<std::io::Error> {
    if addr.port() == 0 {
        return None;
    }
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    let bound = socket.and_then(|s| {
        s.set_reuseaddr(true)?;
        s.bind(addr)
    });
    bound.err()
}

fn listen_problem(
    what: &str,
    line: Option<usize>,
    addr: SocketAddr,
    err: &std::io::Error,
) -> Problem {
    Problem::at(
        line,
        format!("{what}: cannot listen on {addr}: {err}; stop what uses it or choose another port"),
    )
}

/// Checks every address of `plan` without listening: each problem names
/// the emulator (or service) and its line.
pub fn probe_addresses(plan: &Plan) -> Vec<Problem> {
    let mut problems = Vec::new();
    for emulator in &plan.emulators {
        if let Some(err) = probe_address(emulator.bind) {
            problems.push(listen_problem(
                &emulator.name(),
                emulator.line,
                emulator.bind,
                &err,
            ));
        }
    }
    for (what, addr) in [("[admin]", plan.admin), ("[injector]", plan.injector)] {
        if let Some(err) = addr.and_then(probe_address) {
            problems.push(listen_problem(what, None, addr.expect("checked"), &err));
        }
    }
    problems
}

/// Everything `fleet --dry-run` checks: every package loaded (and checked)
/// and every address free, with nothing started or left listening.
pub fn dry_run(plan: &Plan) -> Result<(), Problems> {
    let mut problems = load_packages(plan).err().unwrap_or_default();
    problems.extend(probe_addresses(plan));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems {
            origin: plan.source.clone(),
            problems,
        })
    }
}

impl Fleet {
    /// Starts every emulator of `plan` (see the module documentation).
    /// The injector's address is only checked to be free here.
    pub fn start(plan: &Plan) -> Result<Fleet, Problems> {
        let fail = |problems| Problems {
            origin: plan.source.clone(),
            problems,
        };
        let packages = load_packages(plan);
        let mut problems = packages.as_ref().err().cloned().unwrap_or_default();
        let mut listeners = Vec::with_capacity(plan.emulators.len());
        for emulator in &plan.emulators {
            match TcpListener::bind(emulator.bind) {
                Ok(listener) => listeners.push(listener),
                Err(err) => problems.push(listen_problem(
                    &emulator.name(),
                    emulator.line,
                    emulator.bind,
                    &err,
                )),
            }
        }
        let admin = match plan.admin.map(TcpListener::bind) {
            None => None,
            Some(Ok(listener)) => Some(listener),
            Some(Err(err)) => {
                problems.push(listen_problem(
                    "[admin]",
                    None,
                    plan.admin.expect("some"),
                    &err,
                ));
                None
            }
        };
        if let Some(err) = plan.injector.and_then(probe_address) {
            problems.push(listen_problem(
                "[injector]",
                None,
                plan.injector.expect("some"),
                &err,
            ));
        }
        let packages = match packages {
            Ok(packages) if problems.is_empty() => packages,
            _ => return Err(fail(problems)),
        };
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()
            .map_err(|err| {
                fail(vec![Problem::at(
                    None,
                    format!("cannot read a listener's address: {err}"),
                )])
            })?;
        let runtime = Runtime::named("fleet", cores());
        let members = start_emulators(plan, &packages, &runtime).map_err(fail)?;
        Ok(Fleet {
            members: members
                .into_iter()
                .zip(&plan.emulators)
                .zip(addrs)
                .map(|((emulator, plan), addr)| Member {
                    plan: plan.clone(),
                    addr,
                    emulator: Arc::new(emulator),
                })
                .collect(),
            listeners,
            admin,
            packages: packages.len(),
            runtime,
        })
    }

    /// Terminates every emulator.
    pub fn terminate(&self) {
        for member in &self.members {
            member.emulator.terminate();
        }
    }
}

/// The available cores (at least 1).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts every emulator of `plan` on `runtime`, creating them on all cores;
/// if any fails, terminates those started and answers every failure.
fn start_emulators(
    plan: &Plan,
    packages: &HashMap<PathBuf, Package>,
    runtime: &Runtime,
) -> Result<Vec<Emulator>, Vec<Problem>> {
    let count = plan.emulators.len();
    let results: Vec<Mutex<Option<Result<Emulator, Problem>>>> =
        (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = cores().min(count).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(emulator) = plan.emulators.get(i) else {
                    return;
                };
                let package = &packages[&emulator.package];
                let options = EngineOptions {
                    runtime: Some(runtime.clone()),
                    ..emulator.engine_options()
                };
                let started = Emulator::from_package(package, options).map_err(|err| {
                    Problem::at(
                        emulator.line,
                        format!("{}: cannot start: {err}", emulator.name()),
                    )
                });
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
            });
        }
    });
    let mut started = Vec::with_capacity(count);
    let mut problems = Vec::new();
    for result in results {
        match result.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(emulator)) => started.push(emulator),
            Some(Err(problem)) => problems.push(problem),
            None => problems.push(Problem::at(
                None,
                "an emulator was never started (a worker died)",
            )),
        }
    }
    if problems.is_empty() {
        Ok(started)
    } else {
        for emulator in &started {
            emulator.terminate();
        }
        Err(problems)
    }
}

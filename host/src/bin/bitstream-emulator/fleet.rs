//! `bitstream-emulator fleet`: many emulators in one process, from a
//! manifest or from the shortcut "N copies of one package"; `--dry-run`
//! checks everything and prints the plan. The format, the checks and the
//! starting are `bitstream_host::fleet`'s; this is the command line and
//! the serving (one tokio runtime for every listener).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bitstream_host::fleet::{self, admin, Fleet, Overrides, Plan, Replicas};
use bitstream_host::http::{connection_limit, serve_router, serve_with, ServeOptions};
use bitstream_host::injector::{InjectorOptions, Targets};
use clap::Args;
use tokio::task::JoinSet;

use crate::logging::{self, LogLevel};
use crate::{limits, swap};

/// `fleet`'s arguments.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// The fleet manifest (TOML: [defaults], [admin], [injector] and one
    /// [[emulator]] per emulator; see docs/fleet.md). Or use --package and
    /// --count.
    #[arg(required_unless_present = "package", conflicts_with = "package")]
    manifest: Option<PathBuf>,
    /// Run --count copies of this package (instead of a manifest).
    #[arg(long, requires = "count")]
    package: Option<PathBuf>,
    /// How many copies of --package.
    #[arg(long, requires = "package")]
    count: Option<usize>,
    /// The copies' ids are <prefix>1 to <prefix><count>.
    #[arg(long, default_value = "fhs-vcc-emulator-")]
    id_prefix: String,
    /// The first copy's port; the others count up (0: each on a free port).
    #[arg(long, default_value_t = 5001)]
    base_port: u16,
    /// The address the copies bind (0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Serve the fleet's index (GET / as JSON, GET /ui as a page) here,
    /// e.g. 127.0.0.1:5000.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Serve the injector here (POST /inject with injector_event_groups for
    /// any member), e.g. 127.0.0.1:5002.
    #[arg(long, value_name = "ADDR")]
    injector: Option<String>,
    /// Milliseconds between real-time pulses for every emulator that does
    /// not set its own (0: accelerated pulses only).
    #[arg(long)]
    pulse_period_ms: Option<u64>,
    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case; also
    /// TRACE); RUST_LOG overrides it.
    #[arg(long)]
    log_level: Option<String>,
    /// Start every emulator with real-time pulses stopped (POST /start
    /// starts them), unless its manifest entry says otherwise.
    #[arg(long)]
    stopped: bool,
    /// Keep device buffers in process memory instead of /dev/shm, unless
    /// an emulator's manifest entry says otherwise.
    #[arg(long)]
    local_buffers: bool,
    /// Check everything (the manifest, every package loaded and checked,
    /// every address free), print the plan as JSON and exit without
    /// listening.
    #[arg(long)]
    dry_run: bool,
    /// Milliseconds the isolated check of a hot-swapped library may take.
    #[arg(long, default_value_t = 10_000)]
    check_timeout_ms: u64,
}

/// Runs `fleet`.
pub fn run(args: FleetArgs) -> Result<()> {
    let overrides = Overrides {
        pulse_period_ms: args.pulse_period_ms,
        admin: args.admin.clone(),
        injector: args.injector.clone(),
        log_level: args.log_level.clone(),
        stopped: args.stopped.then_some(true),
        local_buffers: args.local_buffers.then_some(true),
    };
    let plan = match (&args.manifest, &args.package) {
        (Some(manifest), _) => Plan::from_manifest_file(manifest, &overrides)?,
        (None, Some(package)) => Plan::replicas(
            &Replicas {
                package: package.clone(),
                count: args.count.unwrap_or(0),
                id_prefix: args.id_prefix.clone(),
                base_port: args.base_port,
                bind_host: args.bind_host.clone(),
            },
            &overrides,
        )?,
        (None, None) => anyhow::bail!("give a fleet manifest, or --package and --count"),
    };
    let level: LogLevel = plan
        .log_level
        .as_deref()
        .unwrap_or("INFO")
        .parse()
        .context("the log level")?;
    logging::init(level)?;
    if args.dry_run {
        fleet::start::dry_run(&plan)?;
        println!("{}", serde_json::to_string_pretty(&plan.to_json())?);
        return Ok(());
    }
    serve(&plan, Duration::from_millis(args.check_timeout_ms.max(1)))
}

/// Starts the fleet and serves every emulator (and the admin index) on one
/// runtime until every emulator has terminated (or SIGTERM/SIGINT).
fn serve(plan: &Plan, check_timeout: Duration) -> Result<()> {
    let descriptors = limits::open_file_limit();
    // The descriptors are shared: each listener gets its part (at least 8).
    let servers = plan.emulators.len() + usize::from(plan.admin.is_some());
    let share = descriptors.map(|d| d / servers.max(1) as u64);
    let max_connections =
        connection_limit(bitstream_host::http::DEFAULT_MAX_CONNECTIONS, share).max(8);
    let options = ServeOptions {
        header_read_timeout: plan.header_timeout,
        body_read_timeout: plan.body_timeout,
        max_connections,
        ..ServeOptions::default()
    };
    let started = std::time::Instant::now();
    let fleet = Fleet::start(plan)?;
    let check = Arc::new(swap::ChildCheck::new(check_timeout)?);
    for member in &fleet.members {
        member.emulator.set_isolated_check(check.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()
        .inspect_err(|_| fleet.terminate())
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve_all(fleet, plan, options, started));
    runtime.shutdown_timeout(Duration::from_millis(500));
    served
}

async fn serve_all(
    mut fleet: Fleet,
    plan: &Plan,
    options: ServeOptions,
    started: std::time::Instant,
) -> Result<()> {
    let index = admin::index_of(&fleet);
    let mut servers = JoinSet::new();
    for (member, listener) in fleet
        .members
        .iter()
        .zip(std::mem::take(&mut fleet.listeners))
    {
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener));
        let listener = match listener {
            Ok(listener) => listener,
            Err(err) => {
                fleet.terminate();
                return Err(err)
                    .with_context(|| format!("serving {} on {}", member.plan.id, member.addr));
            }
        };
        tracing::info!(
            id = member.plan.id,
            blocks = member.emulator.blocks().len(),
            "serving {} on http://{}",
            member.plan.package.display(),
            member.addr
        );
        servers.spawn(serve_with(
            member.emulator.clone(),
            listener,
            options.clone(),
        ));
    }

    // The injector (`--injector`, `[injector] bind`): one `POST /inject`
    // for every member, each group handed to its emulator in process. It
    // ends with the fleet, like the admin index.
    let (injector_ended, injector_shutdown) = tokio::sync::oneshot::channel::<()>();
    let injector_server = match plan.injector {
        None => None,
        Some(addr) => {
            let mut targets = Targets::new();
            for member in &fleet.members {
                // Ids are unique: the plan checked them.
                targets
                    .add_in_process(member.emulator.clone())
                    .inspect_err(|_| fleet.terminate())
                    .context("registering the fleet's emulators with the injector")?;
            }
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(err) => {
                    fleet.terminate();
                    return Err(err)
                        .with_context(|| format!("cannot listen on {addr} for the injector"));
                }
            };
            tracing::info!(
                "injector for {} emulators on http://{}/inject",
                targets.len(),
                listener.local_addr()?
            );
            let injector_options = InjectorOptions {
                serve: options.clone(),
                ..InjectorOptions::default()
            };
            let shutdown = async move {
                let _ = injector_shutdown.await;
            };
            Some(tokio::spawn(bitstream_host::injector::serve(
                listener,
                targets,
                injector_options,
                shutdown,
            )))
        }
    };

    let (all_ended, admin_shutdown) = tokio::sync::oneshot::channel::<()>();
    let admin_server = match fleet.admin.take() {
        None => None,
        Some(listener) => {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .inspect_err(|_| fleet.terminate())
                .context("serving the admin index")?;
            tracing::info!("admin index on http://{}/ui", listener.local_addr()?);
            let shutdown = async move {
                let _ = admin_shutdown.await;
            };
            Some(tokio::spawn(serve_router(
                admin::router(index.clone()),
                listener,
                options.clone(),
                shutdown,
            )))
        }
    };
    tracing::info!(
        "fleet: {} emulators of {} packages serving, started in {:.3} s",
        fleet.members.len(),
        fleet.packages,
        started.elapsed().as_secs_f64()
    );

    let emulators: Vec<_> = fleet.members.iter().map(|m| m.emulator.clone()).collect();
    tokio::spawn(async move {
        // End every emulator cleanly, so their buffers leave /dev/shm.
        crate::signals::terminated("terminating every emulator").await;
        for emulator in emulators {
            emulator.terminate();
        }
    });

    let mut failed = None;
    while let Some(ended) = servers.join_next().await {
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                failed = failed.or(Some(anyhow::Error::from(err).context("serving HTTP")))
            }
            Err(err) => failed = failed.or(Some(anyhow::Error::from(err).context("a server task"))),
        }
    }
    let _ = all_ended.send(());
    let _ = injector_ended.send(());
    if let Some(server) = admin_server {
        let _ = server.await;
    }
    if let Some(server) = injector_server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => failed = failed.or(Some(anyhow::Error::from(err))),
            Err(err) => {
                failed = failed.or(Some(anyhow::Error::from(err).context("the injector task")))
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

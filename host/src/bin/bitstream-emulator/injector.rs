//! `bitstream-emulator injector`: the standalone injector service
//! (`bitstream_host::injector`) in front of emulators given by URL.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bitstream_host::injector::{self, InjectorOptions, RemoteEmulator, Target, Targets};
use clap::Args;

use crate::logging::{self, LogLevel};
use crate::serve_args::ServeArgs;

/// The injector's arguments.
#[derive(Args, Debug)]
pub struct InjectorArgs {
    /// Address to listen on (use 0.0.0.0:5002 in a container).
    #[arg(long, default_value = "127.0.0.1:5002")]
    bind: SocketAddr,
    /// An emulator the injector hands groups to: its id (the
    /// bitstream_emulator_id groups name) and the base URL of its HTTP API,
    /// e.g. fhs-vcc-emulator-1=http://127.0.0.1:5001 (repeatable).
    #[arg(long = "emulator", value_name = "ID=URL", required = true, value_parser = parse_emulator)]
    emulators: Vec<(String, RemoteEmulator)>,
    /// Milliseconds one emulator may take to answer its groups; later, they
    /// are reported 504.
    #[arg(long, default_value_t = injector::DEFAULT_FORWARD_TIMEOUT.as_millis() as u64)]
    forward_timeout_ms: u64,
    /// Calls to emulators in flight at once; further ones wait (within
    /// their timeout).
    #[arg(long, default_value_t = injector::DEFAULT_MAX_FORWARDS)]
    max_forwards: usize,
    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case; also
    /// TRACE); RUST_LOG overrides it.
    #[arg(long, default_value = "INFO", value_parser = clap::builder::ValueParser::new(str::parse::<LogLevel>))]
    log_level: LogLevel,
    #[command(flatten)]
    serve: ServeArgs,
}

fn parse_emulator(spec: &str) -> Result<(String, RemoteEmulator), String> {
    injector::parse_spec(spec).map_err(|e| e.to_string())
}

/// The registry of `emulators`; every duplicate id is named.
fn targets(emulators: Vec<(String, RemoteEmulator)>) -> Result<Targets> {
    let mut targets = Targets::new();
    let mut problems = Vec::new();
    for (id, remote) in emulators {
        if let Err(err) = targets.add(id, Target::Remote(remote)) {
            problems.push(format!("--emulator: {err}"));
        }
    }
    if !problems.is_empty() {
        bail!("the injector cannot start:\n  {}", problems.join("\n  "));
    }
    Ok(targets)
}

/// Runs the injector until SIGTERM or SIGINT.
pub fn run(args: InjectorArgs) -> Result<()> {
    logging::init(args.log_level)?;
    let targets = targets(args.emulators)?;
    let options = InjectorOptions {
        serve: args.serve.options(),
        forward_timeout: Duration::from_millis(args.forward_timeout_ms.max(1)),
        max_forwards: args.max_forwards.max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("injector")
        .build()
        .context("starting the async runtime")?;
    let bind = args.bind;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let shown: Vec<String> = targets
            .iter()
            .map(|(id, t)| format!("{id}={}", t.describe()))
            .collect();
        tracing::info!(
            "serving the injector on http://{} for {} emulators: {}",
            listener.local_addr()?,
            targets.len(),
            shown.join(", ")
        );
        injector::serve(
            listener,
            targets,
            options,
            crate::signals::terminated("stopping the injector"),
        )
        .await
        .context("serving the injector")
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    served
}

//! The accept loop: connections up to a limit, each with a header-read
//! timeout, an accept loop that outlives `EMFILE`, and a shutdown that ends
//! within a bound whatever the clients do.
//!
//! - A connection that has not sent a whole request head within
//!   [`ServeOptions::header_read_timeout`] is closed (also an idle
//!   keep-alive connection waiting for its next request).
//! - At most [`ServeOptions::max_connections`] connections are served at
//!   once; the next client waits in the listen backlog until one ends.
//! - An accept error (`EMFILE`, `ENFILE`, `ENOBUFS`, …) is logged (once per
//!   burst) and retried after a short pause: the server answers again as
//!   soon as descriptors are free.
//! - On terminate: stop accepting, ask every connection to finish, and after
//!   [`ServeOptions::shutdown_grace`] drop those still open.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use super::router;
use crate::engine::Emulator;

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a request head (from the
    /// connection's start, or from the end of its previous response).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body once its head has
    /// arrived; a slower body is answered 408.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long connections may take to finish once the emulator
    /// terminates.
    pub shutdown_grace: Duration,
}

/// The default header-read timeout.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default body-read timeout.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default connection limit (lowered to fit the descriptor limit, see
/// [`connection_limit`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Descriptors kept free for everything but connections (plugins, shared
/// memory, logs, the listener).
pub const RESERVED_DESCRIPTORS: u64 = 64;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// `wanted` connections, lowered so that they fit in `descriptors` (the
/// process's open-file limit) with [`RESERVED_DESCRIPTORS`] to spare; at
/// least 1.
pub fn connection_limit(wanted: usize, descriptors: Option<u64>) -> usize {
    let fits = descriptors.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX)
    });
    wanted.min(fits).max(1)
}

/// Whether an accept error concerns one connection only (the client went
/// away before it was accepted): retried at once.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `emulator` on `listener` until it terminates, then returns within
/// about `options.shutdown_grace`.
pub async fn serve_with(
    emulator: Arc<Emulator>,
    listener: TcpListener,
    options: ServeOptions,
) -> io::Result<()> {
    let (ended, terminated) = tokio::sync::oneshot::channel();
    emulator.when_terminated(move || {
        let _ = ended.send(());
    });
    let terminated = async move {
        // A dropped sender (never, the hook holds it) ends serving too.
        let _ = terminated.await;
    };
    serve_router(router(emulator), listener, options, terminated).await
}

/// Serves `routes` on `listener` as [`serve_with`] serves an emulator
/// (trailing slashes trimmed, the body-read deadline, the connection
/// limit, the header-read timeout, a bounded shutdown) until `shutdown`
/// completes, then returns within about `options.shutdown_grace`. The
/// injector is served this way too.
pub async fn serve_router(
    routes: axum::Router,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let routes = routes.layer(axum::middleware::from_fn_with_state(
        options.body_read_timeout,
        super::deadline::body_deadline,
    ));
    let app = NormalizePathLayer::trim_trailing_slash().layer(routes);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let http = Arc::new(http);

    let terminated = shutdown;
    tokio::pin!(terminated);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (shutdown, shutdown_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut failing = false;

    loop {
        // Reap what has finished, so the set does not grow.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut terminated => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut terminated => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                if failing {
                    tracing::info!("accepting connections again");
                    failing = false;
                }
                stream
            }
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                if !failing {
                    tracing::warn!(
                        "cannot accept a connection ({err}); retrying until descriptors are free"
                    );
                    failing = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = &mut terminated => break,
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        let service = TowerToHyperService::new(app.clone());
        let mut shutdown_seen = shutdown_seen.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown_seen.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }

    drop(listener);
    let _ = shutdown.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "closing {} of {open} connections still open after {} ms",
            connections.len(),
            options.shutdown_grace.as_millis()
        );
    }
    connections.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_the_descriptor_limit() {
        assert_eq!(connection_limit(1024, None), 1024);
        assert_eq!(connection_limit(1024, Some(1_048_576)), 1024);
        assert_eq!(connection_limit(1024, Some(1024)), 960);
        assert_eq!(connection_limit(1024, Some(256)), 192);
        assert_eq!(connection_limit(1024, Some(10)), 1);
        assert_eq!(connection_limit(0, None), 1);
    }

    #[test]
    fn only_per_connection_errors_are_retried_at_once() {
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(
            libc_emfile()
        )));
    }

    /// `EMFILE` on Linux.
    fn libc_emfile() -> i32 {
        24
    }
}

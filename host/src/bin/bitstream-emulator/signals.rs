//! The end of a serving command: SIGINT (Ctrl-C) or SIGTERM (`docker
//! stop`, Kubernetes), whichever comes first.

/// Completes on SIGINT or SIGTERM, logging which, then `then` (what the
/// command does next: "terminating", "stopping the injector").
pub(crate) async fn terminated(then: &str) {
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match sigterm.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            // No SIGTERM handler could be installed: Ctrl-C only.
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; {then}"),
        () = term => tracing::info!("SIGTERM; {then}"),
    }
}

//! The flags every serving command shares (`run`, `injector`): how long a
//! client may take and how many are served at once.

use std::time::Duration;

use bitstream_host::http::ServeOptions;

use crate::limits;

/// How the HTTP server treats its clients.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Milliseconds a client may take to send a request head; slower
    /// (or idle keep-alive) connections are closed.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Milliseconds a client may take to send a request body after its
    /// head; slower bodies are answered 408.
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// Connections served at once (lowered to fit the open-file limit);
    /// further clients wait until one ends.
    #[arg(long, default_value_t = bitstream_host::http::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

impl ServeArgs {
    /// The server's options, the connection limit fitted to the process's
    /// open-file limit (raised first), with a warning when it is lowered.
    pub fn options(&self) -> ServeOptions {
        let descriptors = limits::open_file_limit();
        let wanted = self.max_connections;
        let max_connections = bitstream_host::http::connection_limit(wanted, descriptors);
        if max_connections < wanted {
            tracing::warn!(
                "serving at most {max_connections} connections at once (not {wanted}): \
                 the open-file limit is {}",
                descriptors.unwrap_or_default()
            );
        }
        ServeOptions {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            body_read_timeout: Duration::from_millis(self.body_timeout_ms.max(1)),
            max_connections,
            ..ServeOptions::default()
        }
    }
}

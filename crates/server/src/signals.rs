//! The process's signals, for a server run as a daemon: SIGHUP reloads the
//! configuration file, SIGTERM and SIGINT stop accepting and drain.
//!
//! Register with [`Signals::register`] *before* starting the server: from then
//! on a signal is never lost nor fatal (a SIGTERM that arrived between
//! "listening" and the handlers' installation used to kill the process with
//! sessions in progress).

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::ServerHandle;

/// The handlers, installed.
#[derive(Debug)]
pub struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Install the SIGHUP, SIGTERM and SIGINT handlers.
    pub fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Serve until SIGTERM or SIGINT, reloading on every SIGHUP; then drain for
    /// up to `drain` and return. A failed reload is logged and the server keeps
    /// its running configuration.
    pub async fn run_until_stopped(mut self, server: ServerHandle, drain: Duration) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => {
                    // Logged (with every error) by reload itself.
                    let _ = server.reload().await;
                }
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
            }
        }
        tracing::info!(drain = %humantime::format_duration(drain), "shutting down: no new \
            connections; finishing sessions in progress");
        server.shutdown(drain).await;
        tracing::info!("stopped");
    }
}

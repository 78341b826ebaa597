//! The process's signals, for a server run as a daemon: SIGHUP reloads the
//! configuration file, SIGTERM and SIGINT stop accepting and drain.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::ServerHandle;

/// Serve until SIGTERM or SIGINT, reloading on every SIGHUP; then drain for up
/// to `drain` and return. A failed reload is logged and the server keeps its
/// running configuration.
pub async fn run_until_stopped(server: ServerHandle, drain: Duration) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // Logged (with every error) by reload itself.
                let _ = server.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!(drain = %humantime::format_duration(drain), "shutting down: no new connections; finishing sessions in progress");
    server.shutdown(drain).await;
    tracing::info!("stopped");
    Ok(())
}

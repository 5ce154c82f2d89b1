//! Unix signals: SIGHUP asks for a reconcile; the first SIGTERM or SIGINT starts a graceful
//! shutdown (no new triggers, the request in flight finishes, state is saved); a second one
//! exits at once.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::controller::Shared;
use super::triggers::Reason;

/// Installs the handlers. Fails only if the signal streams cannot be registered.
pub fn install(shared: Arc<Shared>, shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let (name, code) = tokio::select! {
                _ = term.recv() => ("SIGTERM", 143),
                _ = int.recv() => ("SIGINT", 130),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reconcile requested");
                    shared.triggers.fire(Reason::Hangup);
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                tracing::warn!(signal = name, "second signal: exiting now");
                std::process::exit(code);
            }
            tracing::info!(
                signal = name,
                "shutting down: finishing the request in flight (send it again to exit at once)"
            );
            shared.status().shutting_down();
            shared.triggers.close();
            shutdown.cancel();
        }
    });
    Ok(())
}

//! Waiting for the signals that end a node: SIGINT (Ctrl-C) and SIGTERM.

use std::future::Future;

/// Starts listening for SIGINT and SIGTERM at once (not at the first poll,
/// as an `async fn` would: a signal sent after a node announced itself but
/// before its main loop first waited would still kill it), and returns
/// what resolves when one of them arrives.
pub fn terminated() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        for (name, registered) in [("SIGTERM", &term), ("SIGINT", &int)] {
            if let Err(e) = registered {
                tracing::warn!(error = %e, "cannot listen for {name}");
            }
        }
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                    only.recv().await;
                }
                (Err(_), Err(_)) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

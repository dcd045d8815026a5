//! The accept loop both of the origin's listeners run: the content server
//! and the control port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown` completes, with
/// TCP_NODELAY set, and spawns `serve(stream, peer)` for each into
/// `connections`, reaping the finished ones as it goes. What happens to the
/// connections still open at shutdown is the caller's choice. `listener_name`
/// labels the log lines.
pub async fn accept_until<F, Fut>(
    listener: &TcpListener,
    shutdown: impl Future<Output = ()>,
    connections: &mut JoinSet<()>,
    listener_name: &str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(listener = listener_name, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(listener = listener_name, error = %e, "cannot set TCP_NODELAY");
                }
                connections.spawn(serve(stream, peer));
            }
        }
    }
}

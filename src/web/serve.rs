//! The HTTP/1 server loop: `axum::serve` without its blind spots. Every connection must
//! send a request's headers within `server.header_read_timeout` (a fresh connection and an
//! idle keep-alive one alike), so idle or trickling clients are closed instead of holding a
//! descriptor for ever; at most `server.max_connections` are open at once (kept below the
//! process's descriptor limit, which is raised to its hard limit at start), so a flood waits
//! in the kernel's accept queue and never starves the database or the log of descriptors.
//! Shutdown stops accepting, lets each connection finish the request in hand, and returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// Descriptors kept free for the database pool, SMTP, Atlassian calls and logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The limits the loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl ServeLimits {
    /// `server.max_connections`, lowered to fit under the descriptor limit (after raising
    /// the soft limit to the hard one where the platform allows).
    pub fn from_config(server: &crate::config::ServerConfig) -> ServeLimits {
        let descriptors = raise_descriptor_limit();
        let fits = descriptors
            .map(|n| n.saturating_sub(RESERVED_DESCRIPTORS).max(16))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let max_connections = server.max_connections.clamp(1, fits);
        if max_connections < server.max_connections {
            tracing::warn!(
                configured = server.max_connections,
                max_connections,
                descriptors,
                "server.max_connections lowered to fit the process's descriptor limit"
            );
        }
        ServeLimits {
            max_connections,
            header_read_timeout: server.header_read_timeout,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!(%error, "cannot read or raise the descriptor limit");
                rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Dropped at shutdown: every connection sees it and finishes gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    // Every connection holds a receiver; all gone = all finished.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before accept: wait a
                    // little rather than spin, and go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(Body::new)
                });
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
            drop(permit);
            drop(done);
        });
    }
    drop(listener);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        if error.is_timeout() {
            tracing::debug!(%peer, "connection closed: no request headers in time");
        } else {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

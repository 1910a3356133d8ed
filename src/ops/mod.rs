//! The operator's HTTP endpoint, on `metrics.listen` when it is set:
//! `/metrics` (Prometheus's text format, see [`scrape`]), `/healthz` (the
//! process answers) and `/readyz` (the checks of [`health`]; 503 naming the
//! one that failed). Plain HTTP/1.1 (hyper), GET and HEAD only, and bounded
//! like the SSH server: a few connections at once (more are closed at
//! once), request headers of 16 KiB read within 5 s, and every connection
//! closed after 30 s.

pub mod health;
pub mod scrape;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use rusqlite::Connection;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::server::Shared;

/// Connections served at once; one more is closed as soon as it is accepted.
/// A scraper and a health checker or two need far fewer.
pub const MAX_CONNECTIONS: usize = 8;
/// The request line and headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of request line and headers read at most (hyper's smallest buffer
/// is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Every connection, kept alive or not, is closed after this.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// What the endpoint answers from: the server's state (configuration, clock,
/// metrics, listener) and a reader connection of its own to the store.
pub struct Ops {
    shared: Arc<Shared>,
    /// For the scrape's reads; WAL readers never wait for an import.
    reader: std::sync::Mutex<Connection>,
    /// The last readiness answer, so a change is logged once.
    was_ready: std::sync::atomic::AtomicBool,
}

impl Ops {
    /// The endpoint's state, with its own reader connection to the store.
    pub fn new(shared: Arc<Shared>) -> anyhow::Result<Arc<Self>> {
        let reader = crate::store::Store::open(&shared.config().storage.database)?.conn;
        Ok(Arc::new(Self {
            shared,
            reader: std::sync::Mutex::new(reader),
            was_ready: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    /// Answer one request.
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n",
            );
            res.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        match req.uri().path() {
            "/metrics" => {
                let ops = self.clone();
                match tokio::task::spawn_blocking(move || ops.scrape()).await {
                    Ok(body) => respond(StatusCode::OK, crate::metrics::CONTENT_TYPE, body),
                    Err(e) => {
                        tracing::error!(error = %e, "metrics scrape failed");
                        text(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n")
                    }
                }
            }
            "/healthz" => respond(
                StatusCode::OK,
                "application/json",
                b"{\"status\":\"ok\"}\n".to_vec(),
            ),
            "/readyz" => {
                let ops = self.clone();
                match tokio::task::spawn_blocking(move || ops.readiness()).await {
                    Ok(ready) => {
                        let status = if ready.is_ready() {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        respond(status, "application/json", ready.to_json())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "readiness check failed");
                        text(StatusCode::SERVICE_UNAVAILABLE, "readiness check failed\n")
                    }
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; this endpoint serves /metrics, /healthz and /readyz\n",
            ),
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// Bind the endpoint's listener (`metrics.listen`).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))
}

/// Serve `listener` until `stop` turns true, then close every connection.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(max = MAX_CONNECTIONS, "metrics endpoint: connection closed, as many are open as allowed");
                    continue;
                };
                let ops = ops.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let ops = ops.clone();
                        async move { Ok::<_, Infallible>(ops.answer(req).await) }
                    });
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(MAX_HEADER_BYTES);
                    let served = http.serve_connection(TokioIo::new(stream), service);
                    // Past its lifetime, the connection is dropped (closed).
                    if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIFETIME, served).await {
                        tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = crate::server::stopping(&mut stop) => break,
        }
    }
    connections.abort_all();
}

//! The exporter's HTTP server (hyper 1): /metrics, /, /-/healthy, /-/ready, /-/reload,
//! with TLS and basic auth from the web config file, and the limits a hostile client meets:
//! header size and read time, connections, in-flight requests.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exposition::Exposition;
use crate::landing;
use crate::webconfig::WebConfig;

type Body = BoxBody<Bytes, Infallible>;

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest request head (request line and headers) read from a client; a larger one is
/// answered 431 and its connection closed. It also caps each connection's read buffer.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// `--web.max-connections` default (Prometheus' default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// `--web.max-requests` default (node_exporter's default).
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// How long in-flight requests may take to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The `--web.*` settings of the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections served at once; one accepted beyond it is closed at once.
    pub max_connections: usize,
    /// Authorized requests handled at once, until their response is sent; one beyond it is
    /// answered 503 at once. 0: no limit.
    pub max_requests: usize,
    /// Time a client has to finish the TLS handshake and send a request's headers; also the
    /// longest a kept-alive connection may stay idle.
    pub read_header_timeout: Duration,
}

pub struct Server {
    exposition: Exposition,
    web: Option<Arc<WebConfig>>,
    /// Fired by `POST /-/reload`; main.rs reloads on it like on SIGHUP.
    reload_requests: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
    options: Options,
    /// One permit per request in flight; `None` without a limit.
    requests: Option<Arc<Semaphore>>,
    /// Whether the request limit was hit since it was last below, so it is logged once.
    requests_saturated: AtomicBool,
}

impl Server {
    pub fn new(
        exposition: Exposition,
        web: Option<WebConfig>,
        reload_requests: tokio::sync::mpsc::Sender<
            tokio::sync::oneshot::Sender<Result<(), String>>,
        >,
        options: Options,
    ) -> Arc<Self> {
        let requests =
            (options.max_requests > 0).then(|| Arc::new(Semaphore::new(options.max_requests)));
        Arc::new(Server {
            exposition,
            web: web.map(Arc::new),
            reload_requests,
            options,
            requests,
            requests_saturated: AtomicBool::new(false),
        })
    }

    /// Accepts connections until `shutdown` fires, then lets in-flight requests finish.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let graceful = GracefulShutdown::new();
        let tls = self.web.as_ref().and_then(|w| w.tls_acceptor());
        let connections = Arc::new(Semaphore::new(self.options.max_connections.max(1)));
        let mut refusing = false;
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Closed at once rather than left waiting: the client learns now, and a flood of
            // connections holds no memory beyond the kernel's accept queue.
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                if !refusing {
                    refusing = true;
                    tracing::warn!(
                        limit = self.options.max_connections,
                        "connection limit reached: new connections are closed until one ends (--web.max-connections)"
                    );
                }
                drop(stream);
                continue;
            };
            if refusing {
                refusing = false;
                tracing::info!("below the connection limit again");
            }
            // The exposition goes out in many small frames; Nagle would hold the tail of each
            // write back for the client's delayed ACK (40 ms per scrape on loopback).
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let server = self.clone();
            let tls = tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                server.connection(stream, peer, tls, watcher).await;
                drop(permit);
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
        }
    }

    /// Serves one accepted connection until it ends.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        watcher: Watcher,
    ) {
        let deadline = Instant::now() + self.options.read_header_timeout;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.read_header_timeout)
            .max_buf_size(MAX_HEADER_BYTES);
        let server = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(req, peer).await) }
        });
        let result = match tls {
            None => {
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
            Some(acceptor) => {
                let stream = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(web) = &self.web {
            if !web
                .authorized(req.headers().get(header::AUTHORIZATION))
                .await
            {
                tracing::debug!(%peer, path = req.uri().path(), "unauthorized request");
                let mut resp = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"backup-exporter\""),
                );
                return resp;
            }
        }
        // Counted after authentication (as node_exporter does): requests without valid
        // credentials cannot take the slots of a scrape that has them.
        let slot = match &self.requests {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(slot) => {
                    if self.requests_saturated.swap(false, Ordering::Relaxed) {
                        tracing::info!("in-flight requests below the limit again");
                    }
                    Some(slot)
                }
                Err(_) => {
                    if !self.requests_saturated.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            limit = self.options.max_requests,
                            "in-flight request limit reached: answering 503 (--web.max-requests)"
                        );
                    }
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!(
                            "Limit of concurrent requests reached ({}), try again later.\n",
                            self.options.max_requests
                        ),
                    );
                }
            },
        };
        let resp = self.route(req).await;
        match slot {
            None => resp,
            Some(slot) => resp.map(|body| SlotHeld { body, _slot: slot }.boxed()),
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/metrics") => self.metrics(&req),
            (&Method::GET | &Method::HEAD, "/") => html(landing::page(self.exposition.store())),
            (&Method::GET | &Method::HEAD, "/-/healthy") => text(StatusCode::OK, "Healthy\n"),
            (&Method::GET | &Method::HEAD, "/-/ready") => {
                if self.exposition.ready() {
                    text(StatusCode::OK, "Ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first polls still running\n",
                    )
                }
            }
            (&Method::POST | &Method::PUT, "/-/reload") => self.reload().await,
            (_, "/metrics" | "/" | "/-/healthy" | "/-/ready" | "/-/reload") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n")
            }
            _ => text(StatusCode::NOT_FOUND, "Not found\n"),
        }
    }

    fn metrics(&self, req: &Request<Incoming>) -> Response<Body> {
        let chunks = self.exposition.chunks();
        let mut resp = if accepts_gzip(req.headers().get(header::ACCEPT_ENCODING)) {
            let mut resp = Response::new(StreamBody::new(gzip_stream(chunks)).boxed());
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        } else {
            let frames = futures_util::stream::iter(chunks.map(|c| Ok(Frame::data(c))));
            Response::new(StreamBody::new(frames).boxed())
        };
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        );
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        resp
    }

    async fn reload(&self) -> Response<Body> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.reload_requests.send(tx).await.is_err() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down\n");
        }
        match rx.await {
            Ok(Ok(())) => text(StatusCode::OK, "Configuration reloaded\n"),
            Ok(Err(problems)) => text(
                StatusCode::BAD_REQUEST,
                &format!("Configuration rejected, the running one stays:\n{problems}\n"),
            ),
            Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "Reload was interrupted\n"),
        }
    }
}

/// A response body that keeps its request's `--web.max-requests` slot until the body has been
/// sent or dropped: a client reading a scrape slowly is still a request in flight.
struct SlotHeld {
    body: Body,
    _slot: OwnedSemaphorePermit,
}

impl hyper::body::Body for SlotHeld {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Output is handed to hyper in pieces of about this size while compressing.
const GZIP_PIECE: usize = 64 * 1024;

/// Compresses the ready chunks as the client reads them: memory stays at one piece and the
/// compressor's state instead of the whole compressed exposition per scrape.
fn gzip_stream(
    chunks: impl Iterator<Item = Bytes> + Send,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    let encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(GZIP_PIECE), flate2::Compression::fast());
    futures_util::stream::unfold(Some((chunks, encoder)), |state| async move {
        let (mut rest, mut encoder) = state?;
        loop {
            match rest.next() {
                Some(chunk) => {
                    // Writing into a Vec cannot fail.
                    let _ = encoder.write_all(&chunk);
                    if encoder.get_ref().len() >= GZIP_PIECE {
                        let piece =
                            std::mem::replace(encoder.get_mut(), Vec::with_capacity(GZIP_PIECE));
                        return Some((Ok(Frame::data(Bytes::from(piece))), Some((rest, encoder))));
                    }
                }
                None => {
                    let last = encoder.finish().unwrap_or_default();
                    return Some((Ok(Frame::data(Bytes::from(last))), None));
                }
            }
        }
    })
}

fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').any(|part| {
        let mut pieces = part.split(';');
        let coding = pieces.next().unwrap_or("").trim();
        let q_zero = pieces.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        coding.eq_ignore_ascii_case("gzip") && !q_zero
    })
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn html(body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gzip_stream_is_the_gzip_of_the_whole_exposition_in_pieces() {
        use futures_util::StreamExt as _;
        use std::io::Read as _;
        // Incompressible-ish text so the output spans several pieces.
        let chunks: Vec<Bytes> = (0..2000u64)
            .map(|i| {
                Bytes::from(format!(
                    "m{{k=\"{}\"}} {i}\n",
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ))
            })
            .collect();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        let frames: Vec<_> = gzip_stream(chunks.into_iter()).collect().await;
        assert!(frames.len() >= 2 || want.len() < GZIP_PIECE);
        let mut gz = Vec::new();
        for frame in frames {
            let frame = frame.unwrap();
            gz.extend_from_slice(frame.data_ref().unwrap());
        }
        let mut got = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        let cases = [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("", false),
        ];
        for (value, want) in cases {
            let v = HeaderValue::from_str(value).unwrap();
            assert_eq!(accepts_gzip(Some(&v)), want, "{value}");
        }
        assert!(!accepts_gzip(None));
    }
}

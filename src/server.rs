//! The exporter's HTTP server (hyper 1): /metrics, /, /-/healthy, /-/ready, /-/reload,
//! with TLS and basic auth from the web config file.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exposition::Exposition;
use crate::landing;
use crate::webconfig::WebConfig;

type Body = BoxBody<Bytes, Infallible>;

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long in-flight requests may take to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Server {
    exposition: Exposition,
    web: Option<Arc<WebConfig>>,
    /// Fired by `POST /-/reload`; main.rs reloads on it like on SIGHUP.
    reload_requests: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl Server {
    pub fn new(
        exposition: Exposition,
        web: Option<WebConfig>,
        reload_requests: tokio::sync::mpsc::Sender<
            tokio::sync::oneshot::Sender<Result<(), String>>,
        >,
    ) -> Arc<Self> {
        Arc::new(Server {
            exposition,
            web: web.map(Arc::new),
            reload_requests,
        })
    }

    /// Accepts connections until `shutdown` fires, then lets in-flight requests finish.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let tls = self.web.as_ref().and_then(|w| w.tls_acceptor());
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
            // The exposition goes out in many small frames; Nagle would hold the tail of each
            // write back for the client's delayed ACK (40 ms per scrape on loopback).
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let server = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req, peer).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            match &tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let stream = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
            }
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(web) = &self.web {
            if !web.authorized(req.headers().get(header::AUTHORIZATION)) {
                tracing::debug!(%peer, path = req.uri().path(), "unauthorized request");
                let mut resp = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"backup-exporter\""),
                );
                return resp;
            }
        }
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

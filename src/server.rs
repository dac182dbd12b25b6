//! The exporter's HTTP server (hyper 1): /metrics (or `--web.telemetry-path`), /, /-/healthy,
//! /-/ready, /-/reload on one or more listeners, with the web config file's TLS (HTTP/2 by
//! ALPN), headers, rate limit and basic auth, and the limits a hostile client meets: header
//! size and read time, connections, in-flight requests, and responses that make no progress
//! (`admission.rs`: who is closed to make room).

mod admission;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exposition::{Answer, Exposition, Pieces};
use crate::landing;
use crate::metrics::Format;
use crate::web::{Auth, LiveWebConfig, WebConfig};

type Body = BoxBody<Bytes, Infallible>;

/// Largest request head (request line and headers) read from a client; a larger one is
/// answered 431 and its connection closed. It also caps each connection's read buffer.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// `--web.max-connections` default (Prometheus' default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// `--web.max-requests` default (node_exporter's default).
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// Largest piece of an answer handed to hyper at a time: its write buffer size. With a
/// `Content-Length`, hyper drops a body (and so frees its `--web.max-requests` slot) once
/// its last bytes are buffered; pieces no larger than the buffer keep a stuck client's
/// request in flight until all but about two pieces are sent.
pub const PIECE: usize = 64 * 1024;

/// How long in-flight requests may take to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// `--web.write-timeout` default: Prometheus' scrape timeout is at most this.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

use admission::{Admission, Closed, ConnectionTicket, Refused, SlotTicket};
pub use admission::{PER_CONNECTION, STALLED};

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Go's net/http answer to plain HTTP on a TLS port.
const PLAIN_HTTP_ON_TLS: &str = "Client sent an HTTP request to an HTTPS server.\n";

/// The `--web.*` settings of the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections served at once; at the limit, a new one closes the oldest idle one (or is
    /// closed at once when every connection has a request in flight).
    pub max_connections: usize,
    /// Authorized requests handled at once, until their response is sent; one beyond it takes
    /// the slot of a response stalled for over [`STALLED`], else is answered 503 at once.
    /// 0: no limit.
    pub max_requests: usize,
    /// A response whose body makes no progress for this long is abandoned (its connection
    /// closed) and its slot freed.
    pub write_timeout: Duration,
    /// Time a client has to finish the TLS handshake and send a request's headers; also the
    /// longest a kept-alive connection may stay idle.
    pub read_header_timeout: Duration,
    /// Whether `POST /-/reload` is served (Prometheus' `--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
    /// Where the exposition is served (`--web.telemetry-path`, default `/metrics`).
    pub telemetry_path: String,
}

/// `--web.telemetry-path` default.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// Whether `path` can serve the exposition: absolute, and not one of the fixed endpoints.
pub fn valid_telemetry_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} does not start with /"));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(format!("{path:?} is not a plain URL path"));
    }
    if matches!(path, "/" | "/-/healthy" | "/-/ready" | "/-/reload") {
        return Err(format!("{path} is taken by another endpoint"));
    }
    Ok(())
}

/// The HTTP server: the exposition's answers and the endpoints around them.
pub struct Server {
    exposition: Exposition,
    web: Option<LiveWebConfig>,
    /// Fired by `POST /-/reload`; main.rs reloads on it like on SIGHUP.
    reload_requests: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
    options: Options,
    /// The connections and request slots, and who is closed to make room.
    admission: Arc<Admission>,
    /// Whether the request limit was hit since it was last below, so it is logged once.
    requests_saturated: AtomicBool,
}

impl Server {
    /// A server answering from `exposition`, with the web config `web` (TLS, auth,
    /// headers) and these options; `POST /-/reload` asks through `reload_requests`.
    pub fn new(
        exposition: Exposition,
        web: Option<LiveWebConfig>,
        reload_requests: tokio::sync::mpsc::Sender<
            tokio::sync::oneshot::Sender<Result<(), String>>,
        >,
        options: Options,
    ) -> Arc<Self> {
        let admission = Admission::new(options.max_connections, options.max_requests);
        Arc::new(Server {
            exposition,
            web,
            reload_requests,
            options,
            admission,
            requests_saturated: AtomicBool::new(false),
        })
    }

    /// Accepts connections on every listener until `shutdown` fires, then lets in-flight
    /// requests finish. The connection limit is shared by all listeners.
    pub async fn serve(self: Arc<Self>, listeners: Vec<TcpListener>, shutdown: CancellationToken) {
        let graceful = GracefulShutdown::new();
        let refusing = AtomicBool::new(false);
        let sweeper = tokio::spawn(self.clone().sweep(shutdown.clone()));
        futures_util::future::join_all(listeners.into_iter().map(|listener| {
            self.clone()
                .accept(listener, &graceful, &refusing, &shutdown)
        }))
        .await;
        sweeper.abort();
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
        }
    }

    /// Closes, until `shutdown`, the connections whose response made no progress for
    /// `--web.write-timeout`.
    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.options.write_timeout / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let closed = self
                .admission
                .sweep(std::time::Instant::now(), self.options.write_timeout);
            if closed > 0 {
                tracing::debug!(
                    connections = closed,
                    total = self.admission.closed(Closed::WriteTimeout),
                    "responses with no progress for --web.write-timeout abandoned, their connections closed"
                );
            }
        }
    }

    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        graceful: &GracefulShutdown,
        refusing: &AtomicBool,
        shutdown: &CancellationToken,
    ) {
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
            // At the limit the oldest idle connection makes room: a flood of idle connections
            // cannot keep a scraper out. With a request in flight on every one, the newcomer
            // is closed at once rather than left waiting: the client learns now, and a flood
            // of connections holds no memory beyond the kernel's accept queue.
            let Some((ticket, evicted)) = self.admission.connect(std::time::Instant::now()) else {
                if !refusing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limit = self.options.max_connections,
                        "connection limit reached with a request in flight on every connection: new connections are closed until one ends (--web.max-connections)"
                    );
                }
                drop(stream);
                continue;
            };
            if refusing.swap(false, Ordering::Relaxed) {
                tracing::info!("below the connection limit again");
            }
            if evicted {
                tracing::debug!(
                    %peer,
                    total = self.admission.closed(Closed::Idle),
                    "connection limit reached: the oldest idle connection was closed to admit a new one"
                );
                // The connections accepted before this one get to read what they were sent
                // (and so count as having spoken) before the next newcomer picks whom to close.
                tokio::task::yield_now().await;
            }
            // The exposition goes out in many small frames; Nagle would hold the tail of each
            // write back for the client's delayed ACK (40 ms per scrape on loopback).
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            // The web config as it is now: a rotated certificate is presented from the next
            // handshake on.
            let web = self.web.as_ref().map(|w| w.current());
            let server = self.clone();
            let watcher = graceful.watcher();
            // Watched from now on: the table can tell that bytes wait on it (a request not
            // read yet) before its task first runs.
            let ticket = Arc::new(ticket);
            let stream = Spoken::new(stream, ticket.clone());
            tokio::spawn(async move {
                let closed = ticket.closed();
                tokio::select! {
                    () = server.connection(stream, peer, web, watcher, ticket) => {}
                    // Closed to make room: dropping the connection closes its socket (an
                    // HTTP/2 connection with all its streams).
                    () = closed.cancelled() => {}
                }
            });
        }
    }

    /// Serves one accepted connection until it ends.
    async fn connection(
        self: Arc<Self>,
        stream: Spoken,
        peer: SocketAddr,
        web: Option<Arc<WebConfig>>,
        watcher: Watcher,
        ticket: Arc<ConnectionTicket>,
    ) {
        let tls = web.as_ref().and_then(|w| w.tls_acceptor());
        let deadline = Instant::now() + self.options.read_header_timeout;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.read_header_timeout)
            .max_buf_size(MAX_HEADER_BYTES);
        let server = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            let ticket = ticket.clone();
            async move {
                // The connection is not idle (cannot be closed to admit another) until the
                // response is sent or dropped.
                let in_flight = ticket.request();
                let resp = server.handle(req, peer, ticket.id()).await;
                Ok::<_, Infallible>(resp.map(|body| {
                    Holding {
                        body,
                        slot: None,
                        _in_flight: in_flight,
                    }
                    .boxed()
                }))
            }
        });
        let result = match tls {
            None => {
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
            Some(acceptor) => {
                let mut first = [0u8; 1];
                match tokio::time::timeout_at(deadline, stream.stream.peek(&mut first)).await {
                    Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
                    Ok(Ok(1)) => {
                        tracing::debug!(%peer, "plain HTTP on the TLS port");
                        refuse_plain_http(stream, deadline).await;
                        return;
                    }
                    _ => return,
                }
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
                let h2 = web.as_ref().is_some_and(|w| w.http2())
                    && stream.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    // HTTP/2 only over TLS, when negotiated by ALPN (as Go's net/http).
                    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    h2.timer(TokioTimer::new())
                        .max_header_list_size(MAX_HEADER_BYTES as u32)
                        .max_concurrent_streams(PER_CONNECTION as u32)
                        .keep_alive_interval(Some(self.options.read_header_timeout))
                        .keep_alive_timeout(self.options.read_header_timeout);
                    watcher
                        .watch(h2.serve_connection(TokioIo::new(stream), service))
                        .await
                } else {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        connection: u64,
    ) -> Response<Body> {
        let Some(web) = self.web.as_ref().map(|w| w.current()) else {
            return self.authorized(req, connection).await;
        };
        let mut resp = if web.allow_request() {
            self.authenticated(req, peer, &web, connection).await
        } else {
            text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n")
        };
        for (name, value) in web.headers() {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }

    async fn authenticated(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        web: &WebConfig,
        connection: u64,
    ) -> Response<Body> {
        match web
            .authorized(req.headers().get(header::AUTHORIZATION))
            .await
        {
            Auth::Allowed => {}
            Auth::Busy => {
                tracing::debug!(%peer, path = req.uri().path(), "too many password checks waiting: 429");
                return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
            }
            Auth::Denied => {
                tracing::debug!(%peer, path = req.uri().path(), "unauthorized request");
                let mut resp = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"backup-exporter\""),
                );
                return resp;
            }
        }
        self.authorized(req, connection).await
    }

    async fn authorized(&self, req: Request<Incoming>, connection: u64) -> Response<Body> {
        // Counted after authentication (as node_exporter does): requests without valid
        // credentials cannot take the slots of a scrape that has them.
        let slot = match self.admission.slot(connection, std::time::Instant::now()) {
            Ok((slot, evicted)) => {
                if self.requests_saturated.swap(false, Ordering::Relaxed) {
                    tracing::info!("in-flight requests below the limit again");
                }
                if evicted {
                    tracing::debug!(
                        total = self.admission.closed(Closed::Stalled),
                        "request limit reached: a response stalled for over a second gave its slot, its connection closed"
                    );
                }
                slot
            }
            Err(Refused::Full) => {
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
            Err(Refused::Connection) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "Limit of concurrent requests on one connection reached ({PER_CONNECTION}), try again later.\n"
                    ),
                );
            }
        };
        let resp = self.route(req).await;
        slot.ready(std::time::Instant::now());
        resp.map(|body| {
            Holding {
                body,
                slot: Some(slot),
                _in_flight: (),
            }
            .boxed()
        })
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        let telemetry = path == self.options.telemetry_path;
        let Some(allow) = allowed_methods(path, telemetry) else {
            return text(StatusCode::NOT_FOUND, "Not found\n");
        };
        if !allow.split(", ").any(|m| m == req.method().as_str()) {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return resp;
        }
        if telemetry {
            return self.metrics(&req);
        }
        match path {
            "/" => html(self.landing()),
            "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
            "/-/ready" => {
                if self.exposition.ready() {
                    text(StatusCode::OK, "Ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first polls still running\n",
                    )
                }
            }
            "/-/reload" => self.reload(&req).await,
            _ => text(StatusCode::NOT_FOUND, "Not found\n"),
        }
    }

    fn metrics(&self, req: &Request<Incoming>) -> Response<Body> {
        let format = negotiate(req.headers().get(header::ACCEPT));
        let mut resp = if accepts_gzip(req.headers().get(header::ACCEPT_ENCODING)) {
            let mut resp = Response::new(Parts::new(self.exposition.gzip(format)).boxed());
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        } else {
            Response::new(Parts::new(self.exposition.plain(format)).boxed())
        };
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        resp.headers_mut().insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
        resp
    }

    /// The landing page, its exposition link following `--web.telemetry-path`.
    fn landing(&self) -> String {
        landing::page(
            self.exposition.jobs(),
            &self.exposition.targets(),
            &self.exposition.inventory(),
            self.exposition.shard(),
            &self.options.telemetry_path,
        )
    }

    async fn reload(&self, req: &Request<Incoming>) -> Response<Body> {
        if !self.options.enable_lifecycle {
            return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n");
        }
        let https = self.web.as_ref().is_some_and(|w| w.tls());
        if let Some(why) = cross_origin(req.headers(), https) {
            tracing::warn!(reason = why, "cross-origin POST /-/reload refused");
            return text(
                StatusCode::FORBIDDEN,
                "Cross-origin requests to /-/reload are refused.\n",
            );
        }
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

/// The methods an endpoint answers, as its 405 lists them in `Allow`; `None`: no such path.
/// `telemetry`: the path is `--web.telemetry-path`.
fn allowed_methods(path: &str, telemetry: bool) -> Option<&'static str> {
    if telemetry {
        return Some("GET, HEAD");
    }
    match path {
        "/" | "/-/healthy" | "/-/ready" => Some("GET, HEAD"),
        "/-/reload" => Some("POST, PUT"),
        _ => None,
    }
}

/// Why a request comes from another origin than the exporter's, if it does: a browser page
/// elsewhere must not make a visitor's browser reload the exporter. Requests without
/// `Origin` (curl, scripts) are same-origin.
fn cross_origin(headers: &HeaderMap, https: bool) -> Option<&'static str> {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some("Sec-Fetch-Site: cross-site");
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().ok().and_then(authority);
    let scheme = if https { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| authority(&format!("{scheme}://{h}")));
    match (origin, host) {
        (Some(origin), Some(host)) if origin == host => None,
        (None, _) => Some("Origin is not a scheme://host[:port]"),
        (_, None) => Some("Host is missing or malformed"),
        _ => Some("Origin differs from Host"),
    }
}

/// Host and port (the scheme's default when absent) of `scheme://host[:port]`, nothing more.
fn authority(origin: &str) -> Option<(String, u16)> {
    let url = url::Url::parse(origin).ok()?;
    let bare = url.username().is_empty()
        && url.password().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare {
        return None;
    }
    Some((url.host_str()?.to_string(), url.port_or_known_default()?))
}

/// Answers plain HTTP on the TLS port with a 400, as Go's net/http does, instead of a TLS
/// alert the client cannot read.
async fn refuse_plain_http(mut stream: Spoken, deadline: Instant) {
    // The request is read first: closing a socket with unread bytes resets the connection,
    // and the client would see the reset instead of the answer.
    let _ = tokio::time::timeout_at(deadline, async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while head.len() < MAX_HEADER_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_ON_TLS}",
        PLAIN_HTTP_ON_TLS.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Whatever else the client sends until it closes is read and dropped, for the same
        // reason, up to a bound.
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < MAX_HEADER_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// A response body that keeps what its request holds until the body has been sent or
/// dropped: its `--web.max-requests` slot (a client reading a scrape slowly is still a
/// request in flight), whose progress it reports as pieces are taken, and `T` (the mark that
/// its connection has a request in flight).
struct Holding<T> {
    body: Body,
    slot: Option<SlotTicket>,
    _in_flight: T,
}

impl<T: Unpin> hyper::body::Body for Holding<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(_)), Some(slot)) = (&frame, &self.slot) {
            slot.progress(std::time::Instant::now());
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client's connection that tells its [`ConnectionTicket`] when the first bytes arrive,
/// and lets the table ask whether bytes are waiting (through a weak handle, without a lock).
struct Spoken {
    stream: Arc<TcpStream>,
    ticket: Option<Arc<ConnectionTicket>>,
}

impl Spoken {
    fn new(stream: TcpStream, ticket: Arc<ConnectionTicket>) -> Self {
        let stream = Arc::new(stream);
        let weak = Arc::downgrade(&stream);
        ticket.waiting(move || {
            weak.upgrade().is_some_and(|stream| {
                let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                // Non-blocking: WouldBlock (nothing waiting) or an error is "no".
                matches!(socket2::SockRef::from(&*stream).peek(&mut byte), Ok(n) if n > 0)
            })
        });
        Spoken {
            stream,
            ticket: Some(ticket),
        }
    }
}

impl tokio::io::AsyncRead for Spoken {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.stream.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    if n > 0 {
                        if let Some(ticket) = self.ticket.take() {
                            ticket.spoke();
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale (tokio has cleared it): wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for Spoken {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let shut = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match shut {
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// A ready answer written piece by piece (pre-compressed segments of a plain answer are
/// inflated as the client reads), with its exact length, so hyper sends a `Content-Length`
/// instead of chunking.
struct Parts {
    pieces: Pieces,
    remaining: u64,
}

impl Parts {
    fn new(answer: Answer) -> Self {
        Parts {
            remaining: answer.len,
            pieces: answer.pieces(PIECE),
        }
    }
}

impl hyper::body::Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.pieces.next();
        match &next {
            Some(piece) => {
                self.remaining = self.remaining.saturating_sub(piece.len() as u64);
            }
            None => self.remaining = 0,
        }
        Poll::Ready(next.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// OpenMetrics 1.0 when the client asks for `application/openmetrics-text` (version 1.0.0 or
/// unspecified) with a higher quality than `text/plain`; the text format otherwise.
fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return Format::Text;
    };
    let mut open_metrics: Option<f32> = None;
    let mut text: Option<f32> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';').map(str::trim);
        let media = pieces.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version_ok = true;
        for p in pieces {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.trim().parse().unwrap_or(0.0),
                "version" => version_ok = matches!(v.trim(), "1.0.0" | "0.0.1"),
                _ => {}
            }
        }
        let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |s: f32| s.max(q)));
        match media.as_str() {
            "application/openmetrics-text" if version_ok => best(&mut open_metrics),
            "text/plain" | "*/*" | "text/*" => best(&mut text),
            _ => {}
        }
    }
    match (open_metrics, text) {
        (Some(om), Some(t)) if om > 0.0 && om >= t => Format::OpenMetrics,
        (Some(om), None) if om > 0.0 => Format::OpenMetrics,
        _ => Format::Text,
    }
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

    #[test]
    fn reload_from_another_origin_is_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let same = [
            vec![("host", "127.0.0.1:10095")],
            vec![
                ("host", "127.0.0.1:10095"),
                ("origin", "http://127.0.0.1:10095"),
            ],
            vec![
                ("host", "Exporter.Example:80"),
                ("origin", "http://exporter.example"),
            ],
            vec![("host", "[::1]:10095"), ("origin", "http://[::1]:10095")],
            vec![("host", "a:10095"), ("sec-fetch-site", "same-origin")],
        ];
        for h in same {
            assert_eq!(cross_origin(&headers(&h), false), None, "{h:?}");
        }
        assert_eq!(
            cross_origin(
                &headers(&[("host", "x:443"), ("origin", "https://x")]),
                true
            ),
            None
        );
        let cross = [
            vec![
                ("host", "127.0.0.1:10095"),
                ("origin", "http://evil.example"),
            ],
            vec![
                ("host", "127.0.0.1:10095"),
                ("origin", "http://127.0.0.1:10096"),
            ],
            vec![("host", "127.0.0.1:10095"), ("origin", "null")],
            vec![("host", "127.0.0.1"), ("origin", "http://127.0.0.1:10095")],
            vec![("origin", "http://127.0.0.1:10095")],
            vec![
                ("host", "evil@127.0.0.1:10095"),
                ("origin", "http://127.0.0.1:10095"),
            ],
            vec![
                ("host", "127.0.0.1:10095"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![
                ("host", "127.0.0.1:10095"),
                ("origin", "http://127.0.0.1:10095/x"),
            ],
        ];
        for h in cross {
            assert!(cross_origin(&headers(&h), false).is_some(), "{h:?}");
        }
    }

    #[test]
    fn every_endpoint_lists_its_methods() {
        assert_eq!(allowed_methods("/metrics", true), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/metrics", false), None);
        assert_eq!(allowed_methods("/", false), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/-/healthy", false), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/-/ready", false), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/-/reload", false), Some("POST, PUT"));
        assert_eq!(allowed_methods("/nope", false), None);
    }

    #[test]
    fn the_telemetry_path_cannot_take_another_endpoint() {
        for ok in ["/metrics", "/probe/metrics", "/m"] {
            assert_eq!(valid_telemetry_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "metrics",
            "",
            "/",
            "/-/healthy",
            "/-/ready",
            "/-/reload",
            "/a b",
            "/m?x",
        ] {
            assert!(valid_telemetry_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_metrics_is_negotiated_like_prometheus_asks_for_it() {
        let cases = [
            // Prometheus 2.x/3.x scrape Accept header.
            ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", Format::OpenMetrics),
            ("application/openmetrics-text", Format::OpenMetrics),
            ("text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5", Format::Text),
            ("application/openmetrics-text;version=2.0.0", Format::Text),
            ("application/openmetrics-text;q=0", Format::Text),
            ("text/plain", Format::Text),
            ("*/*", Format::Text),
            ("", Format::Text),
        ];
        for (accept, want) in cases {
            let v = HeaderValue::from_str(accept).unwrap();
            assert_eq!(negotiate(Some(&v)), want, "{accept}");
        }
        assert_eq!(negotiate(None), Format::Text);
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

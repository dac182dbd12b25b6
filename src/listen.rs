//! Where the server listens: `--web.listen-address` values (`HOST:PORT`, `:PORT`,
//! `[IPv6]:PORT`, host names) bound as Prometheus' tools bind them, or the sockets systemd
//! passes (`--web.systemd-socket`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--web.listen-address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("listening on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("--web.listen-address {address:?}: cannot resolve {host}: {source}")]
    Resolve {
        address: String,
        host: String,
        source: std::io::Error,
    },
    #[error("--web.systemd-socket: {0}")]
    Systemd(String),
}

/// One `--web.listen-address` value, parsed; nothing resolved or bound yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `:PORT`: every interface.
    Any(u16),
    /// A literal address (`0.0.0.0:PORT`, `[::1]:PORT`).
    Ip(SocketAddr),
    /// A host name, resolved when bound; every address it resolves to is bound.
    Host(String, u16),
}

/// Parses `HOST:PORT`, `:PORT`, `[IPv6]:PORT` or `name:PORT` (a pure function).
pub fn parse(address: &str) -> Result<ListenAddress, String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("expected HOST:PORT, :PORT or [IPv6]:PORT")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
    if host.is_empty() {
        return Ok(ListenAddress::Any(port));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ip = inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<Ipv6Addr>().ok())
            .ok_or_else(|| format!("{host} is not an IPv6 address in brackets"))?;
        return Ok(ListenAddress::Ip(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if host.contains(':') {
        return Err("an IPv6 address needs brackets: [::1]:PORT".into());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ListenAddress::Ip(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    let name_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !name_ok {
        return Err(format!("{host:?} is not an IP address or host name"));
    }
    Ok(ListenAddress::Host(host.to_string(), port))
}

/// Binds every `--web.listen-address` (in order; the config's `listen` or the default when
/// none is given).
///
/// - `:PORT` binds `[::]:PORT` as one dual-stack socket (IPv4 clients appear as
///   `::ffff:a.b.c.d`), or `0.0.0.0:PORT` on a host without IPv6, as Go's `net.Listen` does.
/// - `[::]:PORT` is dual-stack too; `0.0.0.0:PORT` is IPv4 only.
/// - A host name binds every address it resolves to (`localhost` -> 127.0.0.1 and ::1); an
///   address the host cannot bind (IPv6 turned off) is skipped with a warning as long as
///   one is bound. With port 0 the later addresses take the port the first one got.
pub async fn bind(addresses: &[String]) -> Result<Vec<TcpListener>, ListenError> {
    let mut listeners = Vec::new();
    for address in addresses {
        let invalid = |reason: String| ListenError::Address {
            address: address.clone(),
            reason,
        };
        match parse(address).map_err(invalid)? {
            ListenAddress::Any(port) => {
                let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
                match bind_one(any6) {
                    Ok(l) => listeners.push(l),
                    Err(e) if ipv6_unavailable(&e) => {
                        listeners.push(bind_one(SocketAddr::new(
                            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            port,
                        ))?);
                    }
                    Err(e) => return Err(e),
                }
            }
            ListenAddress::Ip(addr) => listeners.push(bind_one(addr)?),
            ListenAddress::Host(host, port) => {
                let mut resolved: Vec<SocketAddr> = Vec::new();
                for addr in tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|source| ListenError::Resolve {
                        address: address.clone(),
                        host: host.clone(),
                        source,
                    })?
                {
                    if !resolved.contains(&addr) {
                        resolved.push(addr);
                    }
                }
                let mut bound: Vec<TcpListener> = Vec::new();
                for mut addr in resolved {
                    if let Some(first) = bound.first().and_then(|l| l.local_addr().ok()) {
                        if port == 0 {
                            addr.set_port(first.port());
                        }
                    }
                    match bind_one(addr) {
                        Ok(l) => bound.push(l),
                        Err(e) if addr.is_ipv6() && ipv6_unavailable(&e) => {
                            tracing::warn!(%addr, %host, error = %e, "skipping an address of the host name that cannot be bound");
                        }
                        Err(e) => return Err(e),
                    }
                }
                if bound.is_empty() {
                    return Err(invalid(format!("{host} resolves to no address to bind")));
                }
                listeners.extend(bound);
            }
        }
    }
    Ok(listeners)
}

/// Whether a bind failed because the host has no IPv6 (module off, address not assigned).
fn ipv6_unavailable(e: &ListenError) -> bool {
    match e {
        ListenError::Bind { source, .. } => matches!(
            source.raw_os_error(),
            Some(libc_codes::EAFNOSUPPORT | libc_codes::EADDRNOTAVAIL)
        ),
        _ => false,
    }
}

/// The two errno values (Linux and the BSDs differ; these are Linux's and macOS's).
mod libc_codes {
    #[cfg(target_os = "linux")]
    pub const EAFNOSUPPORT: i32 = 97;
    #[cfg(target_os = "linux")]
    pub const EADDRNOTAVAIL: i32 = 99;
    #[cfg(not(target_os = "linux"))]
    pub const EAFNOSUPPORT: i32 = 47;
    #[cfg(not(target_os = "linux"))]
    pub const EADDRNOTAVAIL: i32 = 49;
}

/// One listening socket: SO_REUSEADDR (a restart does not wait for TIME_WAIT), and an IPv6
/// wildcard accepting IPv4 too.
fn bind_one(address: SocketAddr) -> Result<TcpListener, ListenError> {
    let fail = |source| ListenError::Bind { address, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(fail)?;
    if let SocketAddr::V6(v6) = address {
        if v6.ip().is_unspecified() {
            socket.set_only_v6(false).map_err(fail)?;
        } else {
            socket.set_only_v6(true).map_err(fail)?;
        }
    }
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&address.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    TcpListener::from_std(socket.into()).map_err(fail)
}

/// The TCP sockets systemd passes (`LISTEN_FDS` from fd 3, for the process named by
/// `LISTEN_PID`), still std sockets: call before the async runtime starts, because taking
/// them clears those variables from the environment.
///
/// The `listenfd` crate does the taking (wrapping an inherited descriptor needs `unsafe`,
/// which this crate forbids); like it, a missing `LISTEN_PID` is accepted.
pub fn systemd_sockets() -> Result<Vec<std::net::TcpListener>, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Err(ListenError::Systemd(
            "no sockets were passed (LISTEN_FDS is unset or 0, or LISTEN_PID names another process)".into(),
        ));
    }
    let mut sockets = Vec::with_capacity(fds.len());
    for i in 0..fds.len() {
        let fd = 3 + i;
        match fds.take_tcp_listener(i) {
            Ok(Some(socket)) => sockets.push(socket),
            Ok(None) => {}
            Err(e) => {
                return Err(ListenError::Systemd(format!(
                    "fd {fd} is not a listening TCP socket: {e}"
                )))
            }
        }
    }
    Ok(sockets)
}

/// The systemd sockets as tokio listeners (inside the runtime).
pub fn adopt(sockets: Vec<std::net::TcpListener>) -> Result<Vec<TcpListener>, ListenError> {
    sockets
        .into_iter()
        .map(|socket| {
            let address = socket
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            socket
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(socket))
                .map_err(|source| ListenError::Bind { address, source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_form_of_prometheus_tools_parses() {
        let ip = |s: &str| ListenAddress::Ip(s.parse().unwrap());
        let cases = [
            (":10095", ListenAddress::Any(10095)),
            ("0.0.0.0:10095", ip("0.0.0.0:10095")),
            ("127.0.0.1:0", ip("127.0.0.1:0")),
            ("[::]:10095", ip("[::]:10095")),
            ("[::1]:9", ip("[::1]:9")),
            ("[fe80::1]:80", ip("[fe80::1]:80")),
            (
                "localhost:10095",
                ListenAddress::Host("localhost".into(), 10095),
            ),
            (
                "exporter-1.example.com:1",
                ListenAddress::Host("exporter-1.example.com".into(), 1),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        for (text, needle) in [
            ("10095", "expected HOST:PORT"),
            ("", "expected HOST:PORT"),
            (":", "port \"\""),
            (":65536", "port \"65536\""),
            ("host:http", "port \"http\""),
            ("::1:80", "needs brackets"),
            ("[::1:80", "not an IPv6 address"),
            ("[1.2.3.4]:80", "not an IPv6 address"),
            ("a b:80", "not an IP address or host name"),
            ("a..b:80", "not an IP address or host name"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn parsing_any_string_never_panics() {
        use proptest::prelude::*;
        proptest!(|(s in "\\PC{0,40}")| {
            let _ = parse(&s);
        });
    }
}

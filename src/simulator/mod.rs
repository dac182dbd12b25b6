//! The bundled upstream simulator: a fake ZDM server for `--demo`, the tests and the benches.
//!
//! It speaks the API of the seed documents with its own types ([`zdm`]) and never touches
//! the exporter's client code, so a misreading of the docs on one side shows up as a failing
//! test instead of passing silently.
//!
//! What it serves, under both `/api/v1` (RFC 3339 times) and `/api` (1.0.x, naive Seoul times):
//! - the seed examples verbatim ([`fixtures`]): system `server-01`, backup jobs `daily-backup`,
//!   `daily-backup-win`, `incomplete-job` (400), recovery job `daily-recovery`;
//! - a live scenario whose jobs cycle with wall-clock time ([`scenario`]), plus an optional
//!   generated fleet `fleet-00001`.. for benchmarks;
//! - login (`POST {prefix}/auth/issue`, `POST {prefix}/token/issue`) issuing expiring tokens;
//! - an admin API under `/_sim/` to inject faults, pin responses and read request counts
//!   ([`admin`]).

mod admin;
mod faults;
mod fixtures;
mod router;
mod scenario;
#[cfg(test)]
mod tests;
mod zdm;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use faults::Fault;
use scenario::Fleet;

/// How long in-flight connections may finish after shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options of one simulator instance.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Static bearer token accepted on the monitoring endpoints.
    ///
    /// With neither `token` nor `login` set, requests are not checked at all; with either
    /// set, every monitoring request needs this token or a live token issued by login.
    pub token: Option<String>,
    /// `(email, password)` accepted by the login endpoints; `None` rejects every login.
    pub login: Option<(String, String)>,
    /// Lifetime of tokens issued by login.
    pub token_lifetime: Duration,
    /// Length of one job cycle in the live scenario.
    pub cycle: Duration,
    /// `(servers, jobs per server)`: generated servers `fleet-00001`.. for benchmarks.
    pub fleet: Option<(usize, usize)>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token: None,
            login: None,
            token_lifetime: Duration::from_secs(3600),
            cycle: Duration::from_secs(120),
            fleet: None,
        }
    }
}

/// Mutable state shared by all connections: injected faults, pinned fixtures, request
/// counts and issued tokens. Maps are indexed by [`Endpoint::index`].
#[derive(Default)]
struct State {
    faults: [HashMap<String, Fault>; 3],
    fixtures: [HashMap<String, Bytes>; 3],
    requests: [HashMap<String, u64>; 3],
    logins: u64,
    tokens: HashMap<String, Instant>,
}

/// A running fake ZDM server; see the module documentation.
pub struct Simulator {
    opts: SimOptions,
    cycle_ms: i64,
    fleet: Option<Fleet>,
    state: Mutex<State>,
}

impl Simulator {
    pub fn new(opts: SimOptions) -> Arc<Simulator> {
        let cycle_ms = i64::try_from(opts.cycle.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let fleet = opts
            .fleet
            .map(|(servers, jobs)| Fleet { servers, jobs })
            .filter(|f| f.servers > 0);
        Arc::new(Simulator {
            opts,
            cycle_ms,
            fleet,
            state: Mutex::new(State::default()),
        })
    }

    /// Serve until `shutdown` resolves. Each connection is handled on its own task; after
    /// shutdown, in-flight requests get a short grace period, then are dropped.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let cancel = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(self.clone(), stream, cancel.clone()));
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "simulator: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        cancel.cancel();
        let drain = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
        connections.abort_all();
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover anyway rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve_connection(sim: Arc<Simulator>, stream: TcpStream, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| router::handle(sim.clone(), req));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "simulator: connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Identifiers the live scenario serves, for `--demo`'s built-in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTargets {
    pub servers: Vec<String>,
    pub backup_jobs: Vec<String>,
    pub recovery_jobs: Vec<String>,
}

pub fn demo_targets() -> DemoTargets {
    DemoTargets {
        servers: scenario::SERVERS
            .iter()
            .map(|s| s.name.to_string())
            .collect(),
        backup_jobs: scenario::BACKUP_JOBS
            .iter()
            .map(|b| b.job.name.to_string())
            .collect(),
        recovery_jobs: scenario::RECOVERIES
            .iter()
            .map(|r| r.name.to_string())
            .collect(),
    }
}

/// Command line of the standalone `backup-simulator` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "backup-simulator",
    version,
    about = "Fake ZDM backup monitoring API for trying out and testing backup-exporter"
)]
struct Cli {
    /// Address to listen on; prints `listening on ADDR` once bound.
    #[arg(long, default_value = "127.0.0.1:10096")]
    listen: SocketAddr,
    /// Static bearer token required on the monitoring endpoints.
    #[arg(long, env = "SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// EMAIL:PASSWORD accepted by the login endpoints (enables auth).
    #[arg(long, env = "SIM_LOGIN", hide_env_values = true, value_parser = parse_login)]
    login: Option<(String, String)>,
    /// Lifetime of tokens issued by login (humantime: 30s, 5m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// Length of one job cycle in the live scenario.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    cycle: Duration,
    /// Extra generated servers SERVERSxJOBS (e.g. 2000x5), named fleet-00001..
    #[arg(long, value_parser = parse_fleet)]
    fleet: Option<(usize, usize)>,
}

fn parse_login(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((email, password)) if !email.is_empty() => {
            Ok((email.to_string(), password.to_string()))
        }
        _ => Err("expected EMAIL:PASSWORD".to_string()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than zero".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_fleet(s: &str) -> Result<(usize, usize), String> {
    let parsed = s
        .split_once(['x', 'X'])
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((servers, jobs)) if servers <= 99_999 && (1..=99).contains(&jobs) => {
            Ok((servers, jobs))
        }
        _ => {
            Err("expected SERVERSxJOBS, e.g. 2000x5 (at most 99999 servers, 1-99 jobs)".to_string())
        }
    }
}

/// Entry point of the standalone binary.
pub fn main_cli() -> ExitCode {
    use clap::Parser as _;
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("backup-simulator: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let opts = SimOptions {
        token: cli.token,
        login: cli.login,
        token_lifetime: cli.token_lifetime,
        cycle: cli.cycle,
        fleet: cli.fleet,
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(cli.listen).await {
            Ok(l) => l,
            Err(error) => {
                eprintln!("backup-simulator: cannot listen on {}: {error}", cli.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(error) => {
                eprintln!("backup-simulator: {error}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "listening on {addr}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
        drop(stdout);
        match Simulator::new(opts)
            .serve(listener, shutdown_signal())
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("backup-simulator: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

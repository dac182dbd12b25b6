//! The bundled upstream simulator: a fake ZDM, Samsung Cloud Platform (SCP) and Azure
//! Backup server on one listener, for `--demo`, the tests and the benches.
//!
//! It speaks the APIs of the seed documents with its own types and raw JSON ([`zdm`],
//! [`scp`], [`azure`]) and never touches the exporter's client code, so a misreading of the
//! docs on one side shows up as a failing test instead of passing silently.
//!
//! ZDM, under both `/api/v1` (RFC 3339 times) and `/api` (1.0.x, naive Seoul times):
//! - the seed examples verbatim ([`fixtures`]): system `server-01`, backup jobs `daily-backup`,
//!   `daily-backup-win`, `incomplete-job` (400), recovery job `daily-recovery`;
//! - a live scenario whose jobs cycle with wall-clock time ([`scenario`]), plus an optional
//!   generated fleet `fleet-00001`.. for benchmarks;
//! - login (`POST {prefix}/auth/issue`, `POST {prefix}/token/issue`) issuing expiring tokens.
//!
//! SCP ([`scp`]): `GET /v1/backups/{backup_id}/restore-histories` with paging, sorting and
//! filters, signature v2 checked when [`SimOptions::scp`] is set; the seed's backup
//! `00cd2538fbf94d12b36aabbdd607e974` and live backups whose restore histories grow each cycle.
//!
//! Azure ([`azure`]): the AD token endpoint `POST /{tenant}/oauth2/v2.0/token`, managed
//! identity `GET /metadata/identity/oauth2/token`, and
//! `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs[/{job}]`
//! behind a bearer token, with `$filter` and `nextLink` paging; the seed's vault
//! `abdemovault` and live vaults whose VM backup jobs run each cycle.
//!
//! An admin API under `/_sim/` injects faults, pins responses, replaces SCP histories and
//! Azure jobs, and reads request counts ([`admin`]).

mod admin;
mod azure;
mod faults;
mod fixtures;
mod router;
mod scenario;
mod scp;
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

use faults::{Fault, Target};
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
    /// SCP `(access_key, secret_key)`: every restore-histories request must carry a valid
    /// signature v2 made with them. `None`: signatures are not checked.
    pub scp: Option<(String, String)>,
    /// The Azure AD application the token endpoint accepts; `None` rejects every
    /// client-credentials request. Managed identity (IMDS) always issues tokens. Tokens live
    /// for `token_lifetime`.
    pub azure: Option<AzureSim>,
}

/// Client credentials accepted by the simulated Azure AD token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSim {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token: None,
            login: None,
            token_lifetime: Duration::from_secs(3600),
            cycle: Duration::from_secs(120),
            fleet: None,
            scp: None,
            azure: None,
        }
    }
}

/// Mutable state shared by all connections: injected faults, pinned fixtures, replaced
/// SCP histories and Azure jobs, request counts and issued tokens. Faults and counts are
/// indexed by [`Target::index`], fixtures by [`zdm::Endpoint::index`].
#[derive(Default)]
struct State {
    faults: [HashMap<String, Fault>; Target::COUNT],
    fixtures: [HashMap<String, Bytes>; 3],
    requests: [HashMap<String, u64>; Target::COUNT],
    logins: u64,
    tokens: HashMap<String, Instant>,
    /// Azure tokens (AD and IMDS) with their expiry; kept a while after expiring so that
    /// an expired token is told apart from an unknown one.
    azure_tokens: HashMap<String, Instant>,
    /// SCP histories replaced by the admin API, by backup id.
    scp_entries: HashMap<String, Arc<Vec<serde_json::Value>>>,
    /// Azure jobs replaced by the admin API, by lowercased vault name.
    azure_jobs: HashMap<String, Arc<Vec<azure::JobRecord>>>,
}

/// A running fake upstream server; see the module documentation.
pub struct Simulator {
    opts: SimOptions,
    cycle_ms: i64,
    /// Creation time in Unix milliseconds: SCP histories grow from here.
    started_ms: i64,
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
            started_ms: chrono::Utc::now().timestamp_millis(),
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
    /// ZDM servers.
    pub servers: Vec<String>,
    /// ZDM standalone backup jobs.
    pub backup_jobs: Vec<String>,
    /// ZDM recovery jobs.
    pub recovery_jobs: Vec<String>,
    /// SCP `(backup_id, display name)` with live restore histories.
    pub scp_backups: Vec<(String, String)>,
    /// Azure `(subscription, resource_group, vault)` with live backup jobs.
    pub azure_vaults: Vec<(String, String, String)>,
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
        scp_backups: scp::BACKUPS
            .iter()
            .map(|b| (b.id.to_string(), b.name.to_string()))
            .collect(),
        azure_vaults: azure::VAULTS
            .iter()
            .map(|v| {
                (
                    v.subscription.to_string(),
                    v.resource_group.to_string(),
                    v.name.to_string(),
                )
            })
            .collect(),
    }
}

/// Command line of the standalone `backup-simulator` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "backup-simulator",
    version,
    about = "Fake ZDM, SCP and Azure Backup monitoring APIs for trying out and testing backup-exporter",
    long_about = "Fake ZDM, Samsung Cloud Platform and Azure Backup monitoring APIs for trying out \
        and testing backup-exporter.\n\n\
        ZDM: /api/v1/... and /api/... (login at {prefix}/auth/issue and {prefix}/token/issue).\n\
        SCP: GET /v1/backups/{backup_id}/restore-histories (signature v2 with --scp-keys).\n\
        Azure: POST /{tenant}/oauth2/v2.0/token, GET /metadata/identity/oauth2/token (IMDS), \
        GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs[/{job}].\n\
        Admin: /_sim/fault/{endpoint}/{id}, /_sim/fixture/{endpoint}/{id}, /_sim/scp/{backup_id}/entries, \
        /_sim/azure/{vault}/jobs, /_sim/stats, /_sim/reset."
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
    /// Lifetime of tokens issued by login and by the Azure token endpoints (humantime: 30s,
    /// 5m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// Length of one job cycle in the live scenario.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    cycle: Duration,
    /// Extra generated servers SERVERSxJOBS (e.g. 2000x5), named fleet-00001..
    #[arg(long, value_parser = parse_fleet)]
    fleet: Option<(usize, usize)>,
    /// ACCESS:SECRET keys that SCP requests must be signed with (signature v2); without
    /// it, SCP signatures are not checked.
    #[arg(long, env = "SIM_SCP_KEYS", hide_env_values = true, value_parser = parse_scp_keys)]
    scp_keys: Option<(String, String)>,
    /// TENANT:CLIENT_ID:SECRET accepted by the Azure AD token endpoint; without it, every
    /// client-credentials request is refused (managed identity always works).
    #[arg(long, env = "SIM_AZURE_CLIENT", hide_env_values = true, value_parser = parse_azure_client)]
    azure_client: Option<AzureSim>,
}

fn parse_scp_keys(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((access, secret)) if !access.is_empty() && !secret.is_empty() => {
            Ok((access.to_string(), secret.to_string()))
        }
        _ => Err("expected ACCESS_KEY:SECRET_KEY".to_string()),
    }
}

fn parse_azure_client(s: &str) -> Result<AzureSim, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(tenant), Some(client), Some(secret))
            if !tenant.is_empty() && !client.is_empty() && !secret.is_empty() =>
        {
            Ok(AzureSim {
                tenant_id: tenant.to_string(),
                client_id: client.to_string(),
                client_secret: secret.to_string(),
            })
        }
        _ => Err("expected TENANT:CLIENT_ID:SECRET".to_string()),
    }
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
        scp: cli.scp_keys,
        azure: cli.azure_client,
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

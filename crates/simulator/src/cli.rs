//! The command line of the standalone `backup-simulator` binary.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use super::azure::AzureSim;
use super::options::SimOptions;
use super::router::Simulator;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Cli;
    use crate::azure::AzureSim;

    #[test]
    fn command_line() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "backup-simulator",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "T",
            "--login",
            "a@b.c:p:w",
            "--cycle",
            "90s",
            "--fleet",
            "2000x5",
        ])
        .expect("parses");
        assert_eq!(cli.token.as_deref(), Some("T"));
        assert_eq!(cli.login, Some(("a@b.c".to_string(), "p:w".to_string())));
        assert_eq!(cli.cycle, Duration::from_secs(90));
        assert_eq!(cli.fleet, Some((2000, 5)));
        assert_eq!(cli.token_lifetime, Duration::from_secs(3600));
        for bad in [
            vec!["--fleet", "2000"],
            vec!["--fleet", "x5"],
            vec!["--fleet", "10x0"],
            vec!["--login", "nopassword"],
            vec!["--cycle", "0s"],
            vec!["--listen", "nonsense"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_line_takes_scp_keys_and_an_azure_client() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "backup-simulator",
            "--scp-keys",
            "AK:S:K",
            "--azure-client",
            "tenant-1:client-1:se:cret",
        ])
        .expect("parses");
        assert_eq!(cli.scp_keys, Some(("AK".to_string(), "S:K".to_string())));
        assert_eq!(
            cli.azure_client,
            Some(AzureSim {
                tenant_id: "tenant-1".into(),
                client_id: "client-1".into(),
                client_secret: "se:cret".into(),
            })
        );
        for bad in [
            vec!["--scp-keys", "nosecret"],
            vec!["--scp-keys", ":secret"],
            vec!["--azure-client", "tenant:client"],
            vec!["--azure-client", "::secret"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

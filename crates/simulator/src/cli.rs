//! The command line of the standalone `backup-simulator` binary: its listen address, and
//! the [`SimOptions`] (each system's flags, gathered by the registry); its help text says
//! what each system serves.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use super::options::SimOptions;
use super::router::Simulator;
use super::system::{listed, Help};

/// Command line of the standalone `backup-simulator` binary.
#[derive(Debug, clap::Parser)]
#[command(name = "backup-simulator", version)]
struct Cli {
    /// Address to listen on; prints `listening on ADDR` once bound.
    #[arg(long, default_value = "127.0.0.1:10096")]
    listen: SocketAddr,
    #[command(flatten)]
    options: SimOptions,
}

/// The command line with the help text of every system.
fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let options = SimOptions::default();
    let helps: Vec<&Help> = options.systems.all().iter().map(|s| s.help()).collect();
    let names = |name: fn(&Help) -> &str| {
        let names: Vec<&str> = helps.iter().map(|help| name(help)).collect();
        listed(&names, "and")
    };
    let purpose = "monitoring APIs for trying out and testing backup-exporter";
    let mut long = format!("Fake {} {purpose}.\n\n", names(|help| help.long_name));
    for help in &helps {
        long.push_str(help.routes);
        long.push('\n');
    }
    let mut admin = vec![
        "/_sim/fault/{endpoint}/{id}",
        "/_sim/fixture/{endpoint}/{id}",
    ];
    admin.extend(helps.iter().flat_map(|help| help.admin.iter().copied()));
    admin.extend(["/_sim/stats", "/_sim/reset"]);
    long.push_str(&format!("Admin: {}.", admin.join(", ")));
    Cli::command()
        .about(format!("Fake {} {purpose}", names(|help| help.name)))
        .long_about(long)
}

/// Entry point of the standalone binary.
pub fn main_cli() -> ExitCode {
    use clap::FromArgMatches as _;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
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
        match Simulator::new(cli.options)
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

    use super::{command, Cli};
    use crate::options::SimOptions;

    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn command_line() {
        use clap::FromArgMatches as _;
        let parse = |args: &[&str]| {
            let args = std::iter::once("backup-simulator").chain(args.iter().copied());
            let matches = command().try_get_matches_from(args)?;
            Cli::from_arg_matches(&matches)
        };
        let cli =
            parse(&["--listen", "127.0.0.1:0", "--cycle", "90s", "--token", "T"]).expect("parses");
        assert_eq!(cli.listen.port(), 0);
        assert_eq!(cli.options.cycle, Duration::from_secs(90));
        assert_eq!(cli.options.token_lifetime, Duration::from_secs(3600));
        assert_eq!(cli.options.systems.zdm.token.as_deref(), Some("T"));
        for bad in [
            vec!["--cycle", "0s"],
            vec!["--token-lifetime", "soon"],
            vec!["--listen", "nonsense"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_help_says_what_every_system_serves() {
        let command = command();
        let about = command
            .get_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        let long = command
            .get_long_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            about.starts_with("Fake ") && !about.contains('\n'),
            "{about}"
        );
        let options = SimOptions::default();
        for help in options.systems.all().iter().map(|system| system.help()) {
            assert!(about.contains(help.name), "{about}");
            assert!(long.contains(help.long_name), "{long}");
            assert!(long.contains(&format!("\n{}\n", help.routes)), "{long}");
            for route in help.admin {
                assert!(long.contains(&format!(" {route}, ")), "{long}");
            }
        }
        assert!(long.ends_with(", /_sim/stats, /_sim/reset."), "{long}");
    }
}

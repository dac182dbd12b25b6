//! ZDM's options: its command-line flags, the credentials `--demo` uses, and how it starts.

use std::net::SocketAddr;

use super::demo;
use super::routes::Zdm;
use super::wire::Release;
use crate::system::{Help, Setup, Shared, System};
use crate::targets::ExporterConfig;

/// ZDM's options. With neither `token` nor `login` set, requests are not checked at all;
/// with either set, every monitoring request needs `token` or a live token issued by
/// login.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
// No argument group: every system's is called `Options`, and clap's ids must be unique.
#[group(skip)]
pub struct Options {
    /// Static bearer token required on the monitoring endpoints.
    #[arg(long, env = "SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// EMAIL:PASSWORD accepted by the login endpoints (enables auth).
    #[arg(long, env = "SIM_LOGIN", hide_env_values = true, value_parser = parse_login)]
    pub login: Option<(String, String)>,
    /// Extra generated servers SERVERSxJOBS (e.g. 2000x5), named fleet-00001..
    #[arg(long, value_parser = parse_fleet)]
    pub fleet: Option<(usize, usize)>,
    /// Speak only this ZDM release (0.2.0, 1.0.3, 1.1.0, 1.2.0, 1.3.0, 1.3.1, 2.0.0,
    /// 2.0.1): its prefix, login path, lists and status words. Default: every version.
    #[arg(long, value_parser = parse_release)]
    pub zdm_version: Option<String>,
}

static HELP: Help = Help {
    name: "ZDM",
    long_name: "ZDM",
    routes:
        "ZDM: /api/v1/... and /api/... (login at {prefix}/auth/issue and {prefix}/token/issue); with --zdm-version only that release's.",
    admin: &[],
};

impl Setup for Options {
    fn help(&self) -> &'static Help {
        &HELP
    }

    fn start(&self, shared: &Shared) -> Box<dyn System> {
        Box::new(Zdm::new(
            self.token.clone(),
            self.login.clone(),
            shared.token_lifetime,
            shared.cycle_ms,
            self.fleet,
            self.zdm_version.as_deref().and_then(Release::parse),
        ))
    }

    fn use_demo_credentials(&mut self) {
        self.zdm_version = Some(Release::NEWEST.to_string());
        self.token = Some(demo::TOKEN.to_string());
        self.login = Some((demo::EMAIL.to_string(), demo::PASSWORD.to_string()));
    }

    fn write_demo_config(&self, sim: SocketAddr, config: &mut ExporterConfig) {
        demo::write_config(sim, config);
    }
}

fn parse_release(s: &str) -> Result<String, String> {
    match Release::parse(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("expected one of {}", Release::ALL.join(", "))),
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

#[cfg(test)]
mod tests {
    use super::Options;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        zdm: Options,
    }

    #[test]
    fn command_line() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "backup-simulator",
            "--token",
            "T",
            "--login",
            "a@b.c:p:w",
            "--fleet",
            "2000x5",
        ])
        .expect("parses");
        assert_eq!(cli.zdm.token.as_deref(), Some("T"));
        assert_eq!(
            cli.zdm.login,
            Some(("a@b.c".to_string(), "p:w".to_string()))
        );
        assert_eq!(cli.zdm.fleet, Some((2000, 5)));
        for bad in [
            vec!["--fleet", "2000"],
            vec!["--fleet", "x5"],
            vec!["--fleet", "10x0"],
            vec!["--login", "nopassword"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

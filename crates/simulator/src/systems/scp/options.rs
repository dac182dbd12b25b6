//! SCP's options: its command-line flag, the keys `--demo` signs with, and how it starts.

use std::net::SocketAddr;

use super::demo;
use super::routes::Scp;
use crate::system::{Help, Setup, Shared, System};
use crate::targets::ExporterConfig;

/// SCP's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
// No argument group: every system's is called `Options`, and clap's ids must be unique.
#[group(skip)]
pub struct Options {
    /// ACCESS:SECRET keys that SCP requests must be signed with (signature v2); without
    /// it, SCP signatures are not checked.
    #[arg(
        long = "scp-keys",
        value_name = "SCP_KEYS",
        env = "SIM_SCP_KEYS",
        hide_env_values = true,
        value_parser = parse_keys
    )]
    pub keys: Option<(String, String)>,
    /// Generated backups for benchmarks (1 to 99999): `fleet-00001-backup`.. of servers
    /// `fleet-00001`.. (ZDM's fleet names), in the backup list with their histories, and
    /// one server in a hundred more in the backup targets with no backup.
    #[arg(
        id = "scp_fleet",
        long = "scp-fleet",
        value_name = "BACKUPS",
        env = "SIM_SCP_FLEET",
        value_parser = clap::value_parser!(u32).range(1..=99_999)
    )]
    pub fleet: Option<u32>,
}

static HELP: Help = Help {
    name: "SCP",
    long_name: "Samsung Cloud Platform",
    routes: "SCP: GET /v1/backups, /v1/backups/backup-targets, /v1/backups/{backup_id}/restore-histories and \
        /backup-histories (signature v2 with --scp-keys).",
    admin: &["/_sim/scp/{backup_id}/entries"],
};

impl Setup for Options {
    fn help(&self) -> &'static Help {
        &HELP
    }

    fn start(&self, shared: &Shared) -> Box<dyn System> {
        Box::new(Scp::new(
            self.keys.clone(),
            shared.cycle_ms,
            self.fleet.map_or(0, |n| n as usize),
        ))
    }

    fn use_demo_credentials(&mut self) {
        self.keys = Some((demo::ACCESS_KEY.to_string(), demo::SECRET_KEY.to_string()));
    }

    fn write_demo_config(&self, sim: SocketAddr, config: &mut ExporterConfig) {
        demo::write_config(sim, config);
    }
}

fn parse_keys(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((access, secret)) if !access.is_empty() && !secret.is_empty() => {
            Ok((access.to_string(), secret.to_string()))
        }
        _ => Err("expected ACCESS_KEY:SECRET_KEY".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        scp: Options,
    }

    #[test]
    fn command_line_takes_scp_keys() {
        use clap::Parser as _;
        let cli =
            Cli::try_parse_from(["backup-simulator", "--scp-keys", "AK:S:K"]).expect("parses");
        assert_eq!(cli.scp.keys, Some(("AK".to_string(), "S:K".to_string())));
        let cli = Cli::try_parse_from(["backup-simulator", "--scp-fleet", "10000"]).expect("parses");
        assert_eq!(cli.scp.fleet, Some(10_000));
        for bad in [
            vec!["--scp-keys", "nosecret"],
            vec!["--scp-keys", ":secret"],
            vec!["--scp-fleet", "0"],
            vec!["--scp-fleet", "100000"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

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
        Box::new(Scp::new(self.keys.clone(), shared.cycle_ms))
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
        for bad in [
            vec!["--scp-keys", "nosecret"],
            vec!["--scp-keys", ":secret"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

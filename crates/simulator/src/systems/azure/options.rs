//! Azure's options: its command-line flag, the application `--demo` authenticates as, and
//! how it starts.

use std::net::SocketAddr;

use super::auth::AzureSim;
use super::demo;
use super::routes::{Azure, PAGE_SIZE};
use crate::system::{Help, Setup, Shared, System};
use crate::targets::ExporterConfig;

/// Azure's options. Managed identity (IMDS) always issues tokens; tokens from either
/// endpoint live for [`SimOptions::token_lifetime`](crate::SimOptions::token_lifetime).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
// No argument group: every system's is called `Options`, and clap's ids must be unique.
#[group(skip)]
pub struct Options {
    /// TENANT:CLIENT_ID:SECRET accepted by the Azure AD token endpoint; without it, every
    /// client-credentials request is refused (managed identity always works).
    #[arg(
        long = "azure-client",
        value_name = "AZURE_CLIENT",
        env = "SIM_AZURE_CLIENT",
        hide_env_values = true,
        value_parser = parse_client
    )]
    pub client: Option<AzureSim>,
    /// Items per page of a job list, a vault list and a vault's protected and protectable
    /// items (1 to 1000; default 3, so small lists page too). Benchmarks set a larger one.
    #[arg(
        long = "azure-page-size",
        value_name = "JOBS",
        env = "SIM_AZURE_PAGE_SIZE",
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub page_size: Option<u16>,
    /// Generated vaults for benchmarks (1 to 99999): `fleet-vault-00001`.. in resource
    /// group `rg-fleet` of the live subscription, in its vault list, each with the jobs and
    /// protected items of `vault-01` (its own job names) and one unprotected VM.
    #[arg(
        id = "azure_fleet",
        long = "azure-fleet",
        value_name = "VAULTS",
        env = "SIM_AZURE_FLEET",
        value_parser = clap::value_parser!(u32).range(1..=99_999)
    )]
    pub fleet: Option<u32>,
}

static HELP: Help = Help {
    name: "Azure Backup",
    long_name: "Azure Backup",
    routes: "Azure: POST /{tenant}/oauth2/v2.0/token, GET /metadata/identity/oauth2/token (IMDS), \
        GET /subscriptions/{sub}[/resourceGroups/{rg}]/providers/Microsoft.RecoveryServices/vaults, \
        GET .../vaults/{vault}/backupJobs[/{job}], .../backupProtectedItems and .../backupProtectableItems.",
    admin: &["/_sim/azure/{vault}/jobs"],
};

impl Setup for Options {
    fn help(&self) -> &'static Help {
        &HELP
    }

    fn start(&self, shared: &Shared) -> Box<dyn System> {
        Box::new(Azure::new(
            self.client.clone(),
            shared.token_lifetime,
            shared.cycle_ms,
            self.page_size.map_or(PAGE_SIZE, usize::from),
            self.fleet.map_or(0, |n| n as usize),
        ))
    }

    fn use_demo_credentials(&mut self) {
        self.client = Some(AzureSim {
            tenant_id: demo::TENANT.to_string(),
            client_id: demo::CLIENT_ID.to_string(),
            client_secret: demo::CLIENT_SECRET.to_string(),
        });
    }

    fn write_demo_config(&self, sim: SocketAddr, config: &mut ExporterConfig) {
        demo::write_config(sim, config);
    }
}

fn parse_client(s: &str) -> Result<AzureSim, String> {
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

#[cfg(test)]
mod tests {
    use super::{AzureSim, Options};

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        azure: Options,
    }

    #[test]
    fn command_line_takes_an_azure_client() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "backup-simulator",
            "--azure-client",
            "tenant-1:client-1:se:cret",
        ])
        .expect("parses");
        assert_eq!(
            cli.azure.client,
            Some(AzureSim {
                tenant_id: "tenant-1".into(),
                client_id: "client-1".into(),
                client_secret: "se:cret".into(),
            })
        );
        let cli = Cli::try_parse_from(["backup-simulator", "--azure-page-size", "200"])
            .expect("parses");
        assert_eq!(cli.azure.page_size, Some(200));
        let cli = Cli::try_parse_from(["backup-simulator", "--azure-fleet", "2000"]).expect("parses");
        assert_eq!(cli.azure.fleet, Some(2000));
        for bad in [
            vec!["--azure-client", "tenant:client"],
            vec!["--azure-client", "::secret"],
            vec!["--azure-page-size", "0"],
            vec!["--azure-page-size", "1001"],
            vec!["--azure-fleet", "0"],
            vec!["--azure-fleet", "100000"],
        ] {
            let args = std::iter::once("backup-simulator").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

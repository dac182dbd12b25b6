//! `backup-simulator`: the bundled fake ZDM, SCP and Azure Backup APIs as a standalone process.
//!
//! `backup-simulator --listen 127.0.0.1:0 [--token T] [--login EMAIL:PASSWORD] [--cycle 120s]
//! [--fleet 2000x5] [--scp-keys ACCESS:SECRET] [--azure-client TENANT:CLIENT_ID:SECRET]`
//! prints `listening on ADDR` once bound and serves until SIGTERM/SIGINT.

fn main() -> std::process::ExitCode {
    backup_simulator::main_cli()
}

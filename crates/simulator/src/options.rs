//! The options of one simulator instance: the ones every system shares, and each system's
//! own (gathered by the registry, `systems/mod.rs`). They are the `backup-simulator` command
//! line too: the field docs are its `--help`.

use std::time::Duration;

use super::system::Shared;
use super::systems::Systems;

/// Options of one simulator instance.
///
/// With no credentials set, a system checks none; each system's own options say what it
/// checks once they are set ([`Systems`]).
#[derive(Debug, Clone, clap::Args)]
pub struct SimOptions {
    /// Lifetime of tokens issued by login and by the Azure token endpoints (humantime: 30s,
    /// 5m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub token_lifetime: Duration,
    /// Length of one job cycle in the live scenario.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub cycle: Duration,
    /// Each system's own options.
    #[command(flatten)]
    pub systems: Systems,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token_lifetime: Duration::from_secs(3600),
            cycle: Duration::from_secs(120),
            systems: Systems::default(),
        }
    }
}

impl SimOptions {
    /// What every system's state is built from besides its own options: the token
    /// lifetime, and [`cycle`](SimOptions::cycle) in milliseconds, at least 1.
    pub(crate) fn shared(&self) -> Shared {
        Shared {
            token_lifetime: self.token_lifetime,
            cycle_ms: i64::try_from(self.cycle.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
        }
    }
}

/// A humantime duration (`30s`, `5m`, `1h`), not zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than zero".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

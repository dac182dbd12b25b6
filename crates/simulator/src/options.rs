//! The options of one simulator instance.

use std::time::Duration;

use super::azure::AzureSim;

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

impl SimOptions {
    /// [`cycle`](SimOptions::cycle) in milliseconds, at least 1.
    pub(crate) fn cycle_ms(&self) -> i64 {
        i64::try_from(self.cycle.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

//! What the landing page and readiness read of the store: jobs and targets as views, copied
//! out per request, never a reference into the store.

use crate::model::{JobRecord, TargetId};
use crate::outcome::Outcome;

/// A job as the landing page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The record of the target that owns the job's identity.
    pub record: JobRecord,
    /// The target that owns it.
    pub target: TargetId,
    /// Whether that target's last poll succeeded.
    pub target_up: bool,
    /// The end of the job's last successful run (Unix seconds), whoever reported it.
    pub last_success: Option<f64>,
}

/// A target as the landing page shows it.
#[derive(Debug, Clone)]
pub struct TargetView {
    /// The target's identity and labels.
    pub target: TargetId,
    /// Whether its first poll has finished.
    pub polled: bool,
    /// Whether its last poll succeeded.
    pub up: bool,
    /// The outcome failing the target and since when (Unix seconds).
    pub failure: Option<(Outcome, f64)>,
    /// When its last successful poll ended (Unix seconds).
    pub last_success: Option<f64>,
}

/// The read side of the job and target state, as the HTTP server may see it (the store
/// implements it; the server never gets the store itself).
pub trait Views: Send + Sync {
    /// Every job that has series, sorted by identity.
    fn jobs(&self) -> Vec<JobView>;
    /// Every target, polled or not, in store order.
    fn targets(&self) -> Vec<TargetView>;
    /// True once every target has finished its first poll; stays true afterwards.
    fn ready(&self) -> bool;
}

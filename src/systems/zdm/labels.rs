//! ZDM's `system` label and the kinds of target it polls, with the ranks that order its
//! series among every system's (see the registry's test).

use crate::model::{System, TargetKind};

/// The `system` label; first in the registry.
pub const SYSTEM: System = System::new("zdm", 0);

/// A backup server: `GET {api_prefix}/backups/monitoring/system/{id}`.
pub const SERVER: TargetKind = TargetKind::new("server", 0);
/// A backup job: `GET {api_prefix}/backups/monitoring/job/{id}`.
pub const BACKUP_JOB: TargetKind = TargetKind::new("backup_job", 1);
/// A recovery job: `GET {api_prefix}/recoveries/monitoring/job/{id}`.
pub const RECOVERY_JOB: TargetKind = TargetKind::new("recovery_job", 2);

/// Every kind, in the order they sort.
pub const KINDS: &[TargetKind] = &[SERVER, BACKUP_JOB, RECOVERY_JOB];

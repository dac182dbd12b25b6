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

/// A server's recoveries with their summary:
/// `GET {api_prefix}/recoveries/monitoring/system/{id}`.
pub const RECOVERY_SERVER: TargetKind = TargetKind::new("recovery_server", 3);
/// A replication job (ZDM 1.1.0 on): `GET {api_prefix}/replications/monitoring/job/{id}`.
pub const REPLICATION_JOB: TargetKind = TargetKind::new("replication_job", 4);

/// Every kind, in the order they sort.
pub const KINDS: &[TargetKind] = &[
    SERVER,
    BACKUP_JOB,
    RECOVERY_JOB,
    RECOVERY_SERVER,
    REPLICATION_JOB,
];

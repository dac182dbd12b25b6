//! SCP's `system` label and the kind of target it polls, with the ranks that order its
//! series among every system's (see the registry's test).

use crate::model::{System, TargetKind};

/// The `system` label; second in the registry.
pub const SYSTEM: System = System::new("scp", 1);

/// A backup, whose restore histories are polled:
/// `GET /v1/backups/{id}/restore-histories`.
pub const BACKUP: TargetKind = TargetKind::new("backup", 5);

/// Every kind, in the order they sort.
pub const KINDS: &[TargetKind] = &[BACKUP];

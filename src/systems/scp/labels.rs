//! SCP's `system` label and the kinds of target it polls, with the ranks that order its
//! series among every system's (see the registry's test; ranks leave room for the kinds
//! of the systems before it).

use crate::model::{System, TargetKind};

/// The `system` label; second in the registry.
pub const SYSTEM: System = System::new("scp", 1);

/// A backup, whose restore histories are polled:
/// `GET /v1/backups/{id}/restore-histories`.
pub const BACKUP: TargetKind = TargetKind::new("backup", 10);

/// A backup, whose backup runs are polled: `GET /v1/backups/{id}/backup-histories`.
pub const BACKUP_HISTORIES: TargetKind = TargetKind::new("backup_histories", 11);

/// Every kind, in the order they sort.
pub const KINDS: &[TargetKind] = &[BACKUP, BACKUP_HISTORIES];

//! Azure Backup's `system` label and the kind of target it polls, with the ranks that
//! order its series among every system's (see the registry's test).

use crate::model::{System, TargetKind};

/// The `system` label; third in the registry.
pub const SYSTEM: System = System::new("azure", 2);

/// A Recovery Services vault, whose backupJobs are polled.
pub const VAULT: TargetKind = TargetKind::new("vault", 6);

/// Every kind, in the order they sort.
pub const KINDS: &[TargetKind] = &[VAULT];

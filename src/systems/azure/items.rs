//! What discovery reads of a vault's protected and protectable items, as kept between
//! listings (a failed list keeps what it gave last): the source holds it, `discovery.rs`
//! fills it.

/// One protected item as exported.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Item {
    /// What the item's jobs name it (`entityFriendlyName`): the `job_name` label, so the
    /// item joins its job series.
    pub(super) job_name: String,
    /// `workloadType` (`VM`, `SQLDataBase`, `AzureFileShare`, ...); "" when absent.
    pub(super) workload: String,
    /// The server it backs up, for the coverage: none for a file share.
    pub(super) server: Option<String>,
    pub(super) last_backup_status: Option<String>,
    /// `lastBackupTime` (Unix seconds).
    pub(super) last_backup_time: Option<f64>,
    /// The newest of `lastBackupTime` when `lastBackupStatus` is a success and
    /// `lastRecoveryPoint` (a recovery point is what a successful backup leaves).
    pub(super) last_success_time: Option<f64>,
    pub(super) health: Option<String>,
    pub(super) protection_state: Option<String>,
}

/// What one vault's item lists gave last; `None` until that list first succeeds.
#[derive(Debug, Clone, Default)]
pub(super) struct VaultItems {
    /// The vault's `target` label.
    pub(super) target: String,
    pub(super) protected: Option<Vec<Item>>,
    /// The names of the VMs `NotProtected`.
    pub(super) protectable: Option<Vec<String>>,
}


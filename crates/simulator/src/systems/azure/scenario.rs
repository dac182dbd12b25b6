//! The Azure live scenario: vaults whose VMs are backed up every cycle (some cycles fail,
//! complete with warnings or are cancelled), restored and reconfigured now and then; SQL
//! Server databases with a full backup every cycle and four log backups; Azure Files
//! shares backed up every cycle; all as a pure function of the clock.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::wire::{
    hms, iso_duration, sort_newest_first, time7, timespan, uuid, Bag, ExtendedInfo, JobProperties,
    JobRecord, JobResource, Task,
};
use crate::clock::{fnv, mix, unit};

/// Cycles of live jobs kept in a vault's list.
const HISTORY: i64 = 3;
/// Longer cycles are treated as this long, which keeps every time computable.
const MAX_CYCLE_MS: i64 = 30 * 86_400_000;

/// What a protected item is, which decides its job type and fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// An Azure VM: `AzureIaaSVMJob`, `"Backup Size": "2332 MB"`.
    Vm,
    /// A SQL Server database in an Azure VM: `AzureWorkloadJob` with `workloadType`
    /// `SQLDataBase`, operations `"Backup (Full)"` (each cycle) and `"Backup (Log)"` (four
    /// per cycle), `"Data Transferred (in MB)"`.
    SqlDatabase,
    /// An Azure Files share: `AzureStorageJob`, `"Data Transferred (in MB)"`.
    FileShare,
}

/// An item (VM, database, file share) protected by a live vault, and how its jobs go.
pub(crate) struct VmDef {
    pub name: &'static str,
    pub(super) workload: Workload,
    /// The backup of cycle `n` fails when `n % fail_every == 0` (0 = never).
    fail_every: i64,
    /// ... completes with warnings when `n % warn_every == 2`.
    warn_every: i64,
    /// ... is cancelled (shown `Cancelling` a moment first) when `n % cancel_every == 1`.
    cancel_every: i64,
    /// A restore runs late in cycle `n` when `n % restore_every == 0`.
    restore_every: i64,
    /// Backup is (re)configured early in cycle `n` when `n % configure_every == 3`.
    configure_every: i64,
    /// Durations as ISO 8601 (`PT12.4272909S`) instead of a TimeSpan (`00:20:23.0896697`).
    iso_duration: bool,
    pub(super) classic: bool,
    /// The `healthStatus` of its protected item while its last backup did not fail (a
    /// failed one makes it `ActionRequired`); `None` is `Passed`.
    pub(super) health: Option<&'static str>,
    /// Share of the cycle a backup takes.
    run: f64,
    size_mb: u32,
}

const fn vm(name: &'static str) -> VmDef {
    VmDef {
        name,
        workload: Workload::Vm,
        fail_every: 0,
        warn_every: 0,
        cancel_every: 0,
        restore_every: 0,
        configure_every: 0,
        iso_duration: false,
        classic: false,
        health: None,
        run: 0.5,
        size_mb: 2048,
    }
}

/// A SQL Server database (its `entityFriendlyName`, as the REST article writes one).
const fn sql(name: &'static str) -> VmDef {
    VmDef {
        workload: Workload::SqlDatabase,
        run: 0.2,
        size_mb: 8192,
        ..vm(name)
    }
}

/// An Azure Files share.
const fn share(name: &'static str) -> VmDef {
    VmDef {
        workload: Workload::FileShare,
        run: 0.15,
        size_mb: 512,
        ..vm(name)
    }
}

/// A live Recovery Services vault.
pub(crate) struct VaultDef {
    pub subscription: &'static str,
    pub resource_group: &'static str,
    pub name: &'static str,
    /// Its Azure region, as the vault list writes it.
    pub location: &'static str,
    pub vms: &'static [VmDef],
    /// VMs whose protection was stopped long ago (data retained): protected items with no
    /// job in the list, their last backup [`STOPPED_DAYS`] days old.
    pub stopped: &'static [&'static str],
    /// VMs of its region that nothing protects: its protectable items.
    pub unprotected: &'static [&'static str],
}

/// Days since the last backup of a VM whose protection was stopped: past the exporter's
/// default 9-day `lookback`, so its protected item is the only record of that backup.
pub(crate) const STOPPED_DAYS: i64 = 12;

pub(crate) static VAULTS: &[VaultDef] = &[
    VaultDef {
        subscription: "11111111-2222-3333-4444-555555555555",
        resource_group: "rg-backup",
        name: "vault-01",
        location: "koreacentral",
        stopped: &["vm-legacy-01"],
        unprotected: &["vm-test-07"],
        vms: &[
            VmDef {
                warn_every: 3,
                size_mb: 5120,
                ..vm("vm-web-01")
            },
            VmDef {
                fail_every: 4,
                restore_every: 5,
                iso_duration: true,
                run: 0.6,
                size_mb: 40_960,
                ..vm("vm-db-01")
            },
            // Its backups succeed, but Azure asks for action (an outdated VM agent, say).
            VmDef {
                cancel_every: 4,
                configure_every: 6,
                run: 0.4,
                health: Some("ActionRequired"),
                ..vm("vm-app-02")
            },
            VmDef {
                fail_every: 5,
                warn_every: 4,
                restore_every: 7,
                iso_duration: true,
                run: 0.65,
                size_mb: 153_600,
                ..vm("가상머신-파일서버")
            },
        ],
    },
    VaultDef {
        subscription: "11111111-2222-3333-4444-555555555555",
        resource_group: "rg-dr",
        name: "vault-dr",
        location: "koreasouth",
        stopped: &[],
        unprotected: &["vm-sandbox-01"],
        vms: &[
            VmDef {
                classic: true,
                run: 0.3,
                ..vm("vm-dr-01")
            },
            VmDef {
                fail_every: 3,
                iso_duration: true,
                ..vm("vm-dr-02")
            },
            // Every backup fails: its protected item's last backup always failed.
            VmDef {
                fail_every: 1,
                run: 0.2,
                ..vm("vm-batch-03")
            },
        ],
    },
    VaultDef {
        subscription: "11111111-2222-3333-4444-555555555555",
        resource_group: "rg-backup",
        name: "vault-workloads",
        location: "koreacentral",
        stopped: &[],
        unprotected: &[],
        vms: &[
            // The full backup fails every third cycle; the log backups after it succeed.
            VmDef {
                fail_every: 3,
                ..sql("MSSQLSERVER/salesdb [sql-01.contoso.com]")
            },
            sql("MSSQLSERVER/hrdb [sql-01.contoso.com]"),
            VmDef {
                warn_every: 4,
                ..share("finance-share")
            },
        ],
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Backup,
    Restore,
    ConfigureBackup,
    BackupFull,
    BackupLog,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "Backup",
            Operation::Restore => "Restore",
            Operation::ConfigureBackup => "ConfigureBackup",
            Operation::BackupFull => "Backup (Full)",
            Operation::BackupLog => "Backup (Log)",
        }
    }
}

/// The job `op` of `vm` in cycle `k`, as it stands at `now_ms`; `None` before it starts.
fn live_job(
    vault: &VaultDef,
    vm: &VmDef,
    op: Operation,
    k: i64,
    now_ms: i64,
    cycle: i64,
) -> Option<JobRecord> {
    let vm_seed = fnv(vault.name) ^ fnv(vm.name).rotate_left(21);
    let offset = (unit(mix(vm_seed)) * cycle as f64) as i64;
    let seed = mix(vm_seed ^ mix(k as u64) ^ ((op as u64) << 56));
    let roll = unit(seed);
    let base = k.saturating_mul(cycle).saturating_sub(offset);
    let (start_share, run_share) = match op {
        Operation::Backup => (0.1, vm.run.clamp(0.05, 0.6) * (0.8 + 0.2 * roll)),
        Operation::Restore => (0.72, 0.18),
        Operation::ConfigureBackup => (0.02, 0.03),
        Operation::BackupFull => (0.1, vm.run.clamp(0.05, 0.6) * (0.8 + 0.2 * roll)),
        Operation::BackupLog => (0.3, 0.1 + 0.1 * roll),
    };
    let start = base + (start_share * cycle as f64) as i64;
    if now_ms < start {
        return None;
    }
    let run = ((run_share * cycle as f64) as i64).max(1);
    let hit = |every: i64, rem: i64| every > 0 && k.rem_euclid(every) == rem;
    let (outcome, stop_at) = match op {
        Operation::Backup | Operation::BackupFull if hit(vm.fail_every, 0) => {
            ("Failed", 0.3 + 0.6 * roll)
        }
        Operation::Backup if hit(vm.cancel_every, 1) => ("Cancelled", 0.2 + 0.5 * roll),
        Operation::Backup if hit(vm.warn_every, 2) => ("CompletedWithWarnings", 1.0),
        _ => ("Completed", 1.0),
    };
    let stop = start + ((run as f64 * stop_at) as i64).max(1);
    let cancelling = if outcome == "Cancelled" {
        (cycle / 20).max(1)
    } else {
        0
    };
    let (status, end, done) = if now_ms < stop {
        ("InProgress", None, (now_ms - start) as f64 / run as f64)
    } else if now_ms < stop + cancelling {
        ("Cancelling", None, stop_at)
    } else {
        (outcome, Some(stop + cancelling), stop_at)
    };
    let running = end.is_none();
    let elapsed_ms = end.unwrap_or(now_ms) - start;
    let ticks = u64::try_from(elapsed_ms).unwrap_or(0) * 10_000 + (mix(seed ^ 1) % 10_000);
    let duration = if vm.iso_duration {
        iso_duration(ticks)
    } else {
        timespan(ticks)
    };
    let name = uuid(seed ^ 0xa5);
    let start_time = time7(start, mix(seed ^ 2))?;
    let end_time = match end {
        Some(end) => Some(time7(end, mix(seed ^ 3))?),
        None => None,
    };

    // Tasks: each covers a share of the run; the one the run stopped in takes its outcome.
    let shares: &[(&'static str, f64, f64)] = match op {
        Operation::Backup | Operation::BackupFull | Operation::BackupLog
            if vm.workload != Workload::Vm =>
        {
            &[("Transfer data to vault", 0.0, 1.0)]
        }
        Operation::Backup | Operation::BackupFull | Operation::BackupLog => &[
            ("Take Snapshot", 0.0, 0.2),
            ("Transfer data to vault", 0.2, 1.0),
        ],
        Operation::Restore => &[("Transfer data", 0.0, 1.0)],
        Operation::ConfigureBackup => &[],
    };
    let tasks_list = shares
        .iter()
        .map(|&(task_id, from, to)| {
            let finished = running || outcome.starts_with("Completed") || to < stop_at;
            let status = if done >= to && finished {
                "Completed"
            } else if done < from {
                "NotStarted"
            } else if running {
                "InProgress"
            } else if outcome == "Failed" {
                "Failed"
            } else {
                "Cancelled"
            };
            let spent = (done.clamp(from, to) - from) * run as f64;
            Task {
                task_id,
                duration: hms(spent as i64),
                status,
            }
        })
        .collect();
    let completed = outcome.starts_with("Completed") && !running;
    let mut bag = match vm.workload {
        Workload::Vm => vec![("VM Name", vm.name.to_string())],
        Workload::SqlDatabase | Workload::FileShare => Vec::new(),
    };
    match op {
        _ if vm.workload != Workload::Vm => {
            // The unit is in the key; a failed run transferred nothing.
            let share = if op == Operation::BackupLog { 0.02 } else { 1.0 };
            let size = f64::from(vm.size_mb) * share * (0.9 + 0.2 * unit(mix(seed ^ 4)));
            if !running {
                let mb = if completed { size.round() } else { 0.0 };
                bag.push(("Data Transferred (in MB)", format!("{mb}")));
            }
        }
        Operation::Backup if completed => {
            let size = f64::from(vm.size_mb) * (0.9 + 0.2 * unit(mix(seed ^ 4)));
            bag.push(("Backup Size", format!("{} MB", size.round())));
        }
        Operation::Restore => {
            bag.push(("Job Type", "Recover disks".to_string()));
            bag.push(("Target Storage Account Name", "restorestg01".to_string()));
            bag.push(("Target resource group", "rg-restore".to_string()));
        }
        Operation::ConfigureBackup => {
            bag.push(("Policy Name", "DefaultPolicy".to_string()));
        }
        Operation::Backup | Operation::BackupFull | Operation::BackupLog => {}
    }
    let failed = outcome == "Failed" && !running;
    let extended_info = ExtendedInfo {
        tasks_list,
        property_bag: Bag(bag),
        progress_percentage: running.then(|| ((done * 100.0).min(99.99) * 100.0).round() / 100.0),
        estimated_remaining_duration: (status == "InProgress")
            .then(|| hms(((1.0 - done) * run as f64) as i64)),
        dynamic_error_message: (failed && vm.workload == Workload::Vm)
            .then_some("Could not communicate with the VM agent for snapshot status."),
    };
    let error_details = if failed && vm.workload == Workload::SqlDatabase {
        // As the REST article's failed full backup of a SQL database reads.
        vec![json!({
            "errorCode": 510_008,
            "errorString": "Operation cancelled as a conflicting operation was already running on the same database.",
            "errorTitle": "OperationCancelledBecauseConflictingOperationRunningUserError",
            "recommendations": ["Please try again after sometime."],
        })]
    } else if failed {
        vec![json!({
            "errorCode": 400_006,
            "errorString": "Could not communicate with the VM agent for snapshot status.",
            "errorTitle": "",
            "recommendations": [
                "Ensure that the VM agent is running and reachable, then retry the operation."
            ],
        })]
    } else {
        Vec::new()
    };
    let (job_type, management) = match vm.workload {
        Workload::Vm => ("AzureIaaSVMJob", "AzureIaasVM"),
        Workload::SqlDatabase => ("AzureWorkloadJob", "AzureWorkload"),
        Workload::FileShare => ("AzureStorageJob", "AzureStorage"),
    };
    let mut resource = JobResource {
        id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/microsoft.recoveryservices/vaults/{}/backupJobs/{name}",
            vault.subscription, vault.resource_group, vault.name
        ),
        name: &name,
        kind: "Microsoft.RecoveryServices/vaults/backupJobs",
        properties: JobProperties {
            job_type,
            workload_type: (vm.workload == Workload::SqlDatabase).then_some("SQLDataBase"),
            duration,
            actions_info: running.then_some([1]),
            virtual_machine_version: (vm.workload == Workload::Vm).then_some(if vm.classic {
                "ClassicCompute"
            } else {
                "Compute"
            }),
            storage_account_name: (vm.workload == Workload::FileShare).then_some("financestg01"),
            extended_info: Some(extended_info),
            entity_friendly_name: vm.name,
            backup_management_type: management,
            operation: op.as_str(),
            status,
            start_time,
            end_time,
            activity_id: uuid(seed ^ 0x5a),
            error_details,
        },
    };
    let details = serde_json::to_string(&resource).ok()?;
    resource.properties.extended_info = None;
    let list = serde_json::to_string(&resource).ok()?;
    Some(JobRecord {
        name: name.clone(),
        start: DateTime::<Utc>::from_timestamp_millis(start),
        operation: op.as_str().to_string(),
        status: status.to_string(),
        management: management.to_string(),
        entity: vm.name.to_string(),
        list,
        details,
    })
}

/// The jobs of a live vault at `now_ms` that have started: each VM's backups of the last
/// [`HISTORY`] cycles and its two latest restores and configurations.
pub(crate) fn live_jobs(vault: &VaultDef, now_ms: i64, cycle_ms: i64) -> Vec<JobRecord> {
    let cycle = cycle_ms.clamp(1, MAX_CYCLE_MS);
    let mut jobs = Vec::new();
    for vm in vault.vms {
        let vm_seed = fnv(vault.name) ^ fnv(vm.name).rotate_left(21);
        let offset = (unit(mix(vm_seed)) * cycle as f64) as i64;
        let n = now_ms.saturating_add(offset).div_euclid(cycle);
        let backup = match vm.workload {
            Workload::SqlDatabase => Operation::BackupFull,
            Workload::Vm | Workload::FileShare => Operation::Backup,
        };
        let mut runs: Vec<(Operation, i64)> = (n - HISTORY + 1..=n).map(|k| (backup, k)).collect();
        if vm.workload == Workload::SqlDatabase {
            // Four log backups a cycle: the last HISTORY * 4 of them, on their own clock.
            let log_cycle = (cycle / 4).max(1);
            let log_offset = (unit(mix(vm_seed)) * log_cycle as f64) as i64;
            let m = now_ms.saturating_add(log_offset).div_euclid(log_cycle);
            jobs.extend(
                (m - HISTORY * 4 + 1..=m)
                    .filter_map(|k| live_job(vault, vm, Operation::BackupLog, k, now_ms, log_cycle)),
            );
        }
        // Restores and configurations are rarer: keep the latest two of each, so that one
        // that has already started is always in the list.
        for (op, every, rem) in [
            (Operation::Restore, vm.restore_every, 0),
            (Operation::ConfigureBackup, vm.configure_every, 3),
        ] {
            if every > 0 {
                let latest = n - (n - rem).rem_euclid(every);
                runs.push((op, latest));
                runs.push((op, latest - every));
            }
        }
        jobs.extend(
            runs.into_iter()
                .filter_map(|(op, k)| live_job(vault, vm, op, k, now_ms, cycle)),
        );
    }
    sort_newest_first(&mut jobs);
    jobs
}

//! The SCP live scenario: backups whose restore histories grow by one restore per cycle
//! (`INPROGRESS`, then `COMPLETED` or, for some cycles, `FAILED`) and whose backup
//! histories grow by one backup run per cycle (`INPROGRESS`, then `SUCCESS`, for some
//! cycles `FAILED` or `PARTIAL_SUCCESS`), as a pure function of the clock.

use serde_json::{json, Value};

use super::wire::{naive, offset, zulu};
use crate::clock::{fnv, mix, unit};

/// A live backup whose restore history grows by one entry per cycle.
pub(crate) struct BackupDef {
    pub id: &'static str,
    /// Display name, for `--demo`'s config and the backup list.
    pub name: &'static str,
    /// The server it backs up (`server_name` of the backup list).
    pub server: &'static str,
    /// `policy_type` of the backup list: `VM_IMAGE` or `FILESYSTEM`.
    pub policy_type: &'static str,
    /// `retention_period`: `WEEK_2`, `MONTH_1`, `MONTH_3`, `MONTH_6` or `YEAR_1`.
    pub retention: &'static str,
    /// Where its restores go (`restore_server_name` of its restore history).
    server_name: &'static str,
    server_id: &'static str,
    schedule: &'static str,
    /// The schedule's id (`schedule_id` of the backup runs).
    schedule_id: &'static str,
    /// The restore of cycle `n` fails when `n % fail_every == 0` (0 = never); the backup
    /// run of cycle `n` fails when `n % fail_every == 1`.
    fail_every: i64,
    /// Share of the cycle a restore takes (before a per-cycle jitter of up to -30%).
    run: f64,
}

pub(crate) static BACKUPS: &[BackupDef] = &[
    BackupDef {
        id: "5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c",
        name: "erp-db",
        server: "erp-db-01",
        policy_type: "VM_IMAGE",
        retention: "MONTH_1",
        server_name: "erp-db-restore",
        server_id: "7c2d9a41-5e3b-4f6a-9d8c-1b2e3f4a5b6c",
        schedule: "FULL_DAILY_02:00:00-erp7Qz",
        schedule_id: "a1b2e22b-0d88-4698-9996-fb44217c8227",
        fail_every: 4,
        run: 0.5,
    },
    BackupDef {
        id: "a3c9e1f27b4d4c8e9f0a1b2c3d4e5f60",
        name: "파일서버-복구",
        server: "파일서버-01",
        policy_type: "FILESYSTEM",
        retention: "MONTH_3",
        server_name: "파일서버-복구-01",
        server_id: "0e8f6a2b-3c4d-4e5f-8a9b-7c6d5e4f3a2b",
        schedule: "INCREMENTAL_DAILY_15:00:00-fs3Kp2",
        schedule_id: "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b",
        fail_every: 5,
        run: 0.6,
    },
    BackupDef {
        id: "0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b",
        name: "web-static",
        server: "web-01",
        policy_type: "VM_IMAGE",
        retention: "WEEK_2",
        server_name: "restoretest2",
        server_id: "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
        schedule: "INCREMENTAL_WEEKLY_SUN_03:00:00-web9Xa",
        schedule_id: "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
        fail_every: 0,
        run: 0.35,
    },
];

/// Entries a live history already has when the simulator starts.
const PRELOADED: i64 = 32;
/// A live history keeps its newest entries only.
const MAX_ENTRIES: i64 = 200;
/// Longer cycles are treated as this long, which keeps every time computable.
const MAX_CYCLE_MS: i64 = 30 * 86_400_000;
/// `created_by` / `modified_by` of live entries.
pub(crate) const USER_ID: &str = "3f9a1c7e5b2d4e6f8a0b1c2d3e4f5a6b";

/// The live history of `def` at `now_ms`, oldest first: one entry per cycle since
/// [`PRELOADED`] cycles before `started_ms`, the newest [`MAX_ENTRIES`] of them.
pub(crate) fn entries(def: &BackupDef, now_ms: i64, started_ms: i64, cycle_ms: i64) -> Vec<Value> {
    let cycle = cycle_ms.clamp(1, MAX_CYCLE_MS);
    let seed = fnv(def.id);
    let offset = (unit(mix(seed)) * cycle as f64) as i64;
    let n = now_ms.saturating_add(offset).div_euclid(cycle);
    let first =
        (started_ms.saturating_add(offset).div_euclid(cycle) - PRELOADED).max(n - MAX_ENTRIES + 1);
    let mut out = Vec::new();
    for k in first..=n {
        let roll = mix(seed ^ mix(k as u64));
        let base = k.saturating_mul(cycle).saturating_sub(offset);
        let start = base + cycle / 10;
        if now_ms < start {
            continue;
        }
        let run = ((def.run.clamp(0.01, 0.85) * (0.7 + 0.3 * unit(roll))) * cycle as f64) as i64;
        let end = start + run.max(1);
        let ended = now_ms >= end;
        let state = match (
            ended,
            def.fail_every > 0 && k.rem_euclid(def.fail_every) == 0,
        ) {
            (false, _) => "INPROGRESS",
            (true, true) => "FAILED",
            (true, false) => "COMPLETED",
        };
        // The restored backup was taken 1 to 21 hours before the restore started.
        let backup_start = start - 3_600_000 - (unit(mix(roll)) * 72_000_000.0) as i64;
        let entry = json!({
            "backup_id": def.id,
            "backup_start_time": naive(backup_start),
            "created_at": zulu(start),
            "created_by": USER_ID,
            "modified_at": zulu(if ended { end } else { start }),
            "modified_by": USER_ID,
            "restore_end_time": if ended { naive(end) } else { None },
            "restore_server_id": def.server_id,
            "restore_server_name": def.server_name,
            "restore_start_time": naive(start),
            "restore_state": state,
            "schedule_name": def.schedule,
        });
        out.push(entry);
    }
    out
}

/// The live backup history of `def` at `now_ms`, oldest first, shaped as Samsung's SDK
/// `BackupHistoryResponse`: one run per cycle, over the same cycles as its restores. A
/// run takes a fifth of the cycle; it fails when `n % fail_every == 1` and ends in
/// `PARTIAL_SUCCESS` when `n % 7 == 3`.
pub(crate) fn runs(def: &BackupDef, now_ms: i64, started_ms: i64, cycle_ms: i64) -> Vec<Value> {
    let cycle = cycle_ms.clamp(1, MAX_CYCLE_MS);
    let seed = fnv(def.id) ^ 0x5eed;
    let offset_ms = (unit(mix(seed)) * cycle as f64) as i64;
    let n = now_ms.saturating_add(offset_ms).div_euclid(cycle);
    let first = (started_ms.saturating_add(offset_ms).div_euclid(cycle) - PRELOADED)
        .max(n - MAX_ENTRIES + 1);
    let mut out = Vec::new();
    for k in first..=n {
        let roll = mix(seed ^ mix(k as u64));
        let start = k.saturating_mul(cycle).saturating_sub(offset_ms) + cycle / 20;
        if now_ms < start {
            continue;
        }
        let end = start + ((0.2 * (0.7 + 0.3 * unit(roll))) * cycle as f64).max(1.0) as i64;
        let ended = now_ms >= end;
        let state = if !ended {
            "INPROGRESS"
        } else if def.fail_every > 0 && k.rem_euclid(def.fail_every) == 1 {
            "FAILED"
        } else if k.rem_euclid(7) == 3 {
            "PARTIAL_SUCCESS"
        } else {
            "SUCCESS"
        };
        out.push(json!({
            "backup_job_state": state,
            "backup_end_time": if ended { offset(end) } else { None },
            "backup_start_time": offset(start),
            "schedule_id": def.schedule_id,
            "schedule_name": def.schedule,
            "backup_job_guid": format!("{:016x}{:016x}", mix(roll), mix(roll ^ 1)),
        }));
    }
    out
}

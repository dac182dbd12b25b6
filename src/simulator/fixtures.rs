//! The seed documents' example responses, copied verbatim (whitespace and timestamps
//! included) so tests can compare what the simulator serves with what the docs show.
//! ZDM fixtures are looked up by [`lookup`]; the SCP and Azure ones by their modules.

use super::zdm::Endpoint;

/// Seed 000: `GET /api/v1/backups/monitoring/system/server-01`.
pub(crate) const SERVER_01: &str = r#"{
  "success": true,
  "requestID": "req-abc123",
  "data": {
    "system": {
      "name": "server-01"
    },
    "summary": {
      "total": 3,
      "completed": 1,
      "inProgress": 1,
      "failed": 0,
      "pending": 1,
      "overallProgress": "45%"
    },
    "job": [
      {
        "info": {
          "name": "daily-backup-root",
          "partition": "/"
        },
        "progressInfo": {
          "status": "complete",
          "percent": "100%",
          "message": "Backup completed",
          "start": "2025-01-15T02:00:00Z",
          "elapsed": "00:30:00",
          "end": "2025-01-15T02:30:00Z"
        },
        "log": []
      },
      {
        "info": {
          "name": "daily-backup-home",
          "partition": "/home"
        },
        "progressInfo": {
          "status": "run",
          "percent": "45%",
          "message": "Processing files...",
          "start": "2025-01-15T03:00:00Z",
          "elapsed": "00:15:00",
          "end": "-"
        },
        "log": ["Starting backup...", "Processing files..."]
      }
    ]
  },
  "message": "Server backup monitoring info",
  "timestamp": "2025-01-15T11:15:00Z"
}"#;

/// Seed 001 (Linux): `GET /api/backups/monitoring/job/daily-backup`.
pub(crate) const DAILY_BACKUP: &str = r#"{
  "success": true,
  "requestID": "req-abc123",
  "data": {
    "system": {
      "name": "linux-server-01"
    },
    "job": {
      "info": {
        "name": "daily-backup",
        "partition": "/"
      },
      "progressInfo": {
        "status": "complete",
        "percent": "100%",
        "message": "Backup completed successfully",
        "start": "2025-01-15 02:00:00",
        "elapsed": "00:30:00",
        "end": "2025-01-15 02:30:00"
      },
      "log": [
        "Starting backup...",
        "Processing files...",
        "Backup completed"
      ]
    }
  },
  "message": "Backup monitoring info",
  "timestamp": "2025-01-15 10:30:00"
}"#;

/// Seed 001 (Windows): `GET /api/backups/monitoring/job/daily-backup-win`.
pub(crate) const DAILY_BACKUP_WIN: &str = r#"{
  "success": true,
  "requestID": "req-abc123",
  "data": {
    "system": {
      "name": "windows-server-01"
    },
    "job": {
      "info": {
        "name": "daily-backup-win",
        "drive": "C:"
      },
      "progressInfo": {
        "status": "run",
        "percent": "60%",
        "message": "Processing files...",
        "start": "2025-01-15 02:00:00",
        "elapsed": "00:20:00",
        "end": "-"
      },
      "log": [
        "Starting backup...",
        "Processing files..."
      ]
    }
  },
  "message": "Backup monitoring info",
  "timestamp": "2025-01-15 10:20:00"
}"#;

/// Seed 001, 400 Bad Request: backup job data incomplete.
pub(crate) const INCOMPLETE_JOB: &str = r#"{
  "requestID": "req-abc123",
  "success": false,
  "error": "작업 데이터가 불완전합니다. backup 정보가 누락되었습니다.",
  "timestamp": "2025-01-15 10:30:00"
}"#;

/// Seed 002: `GET /api/v1/recoveries/monitoring/job/daily-recovery`.
pub(crate) const DAILY_RECOVERY: &str = r#"{
  "success": true,
  "requestID": "req-abc123",
  "data": {
    "system": {
      "source": {
        "name": "source-server"
      },
      "target": {
        "name": "target-server"
      }
    },
    "job": {
      "info": {
        "name": "daily-recovery"
      },
      "log": [
        "Starting recovery...",
        "Transferring data..."
      ],
      "details": [
        {
          "partition": "/",
          "progressInfo": {
            "status": "run",
            "percent": "45%",
            "message": "Transferring data...",
            "start": "2025-01-15T10:00:00Z",
            "elapsed": "00:15:00",
            "end": "-"
          }
        },
        {
          "partition": "/home",
          "progressInfo": {
            "status": "pending",
            "percent": "0%",
            "message": "Waiting...",
            "start": "-",
            "elapsed": "-",
            "end": "-"
          }
        }
      ]
    }
  },
  "message": "Recovery monitoring info",
  "timestamp": "2025-01-15T10:15:00Z"
}"#;

/// Seed 003: `GET /v1/backups/00cd2538fbf94d12b36aabbdd607e974/restore-histories`.
pub(crate) const SCP_RESTORE_HISTORIES: &str = r#"{
"contents": [
{
"backup_id": "00cd2538fbf94d12b36aabbdd607e974",
"backup_start_time": "2024-10-28T05:38:48",
"created_at": "2024-05-17T00:23:17Z",
"created_by": "90dddfc2b1e04edba54ba2b41539a9ac",
"modified_at": "2024-05-17T00:23:17Z",
"modified_by": "90dddfc2b1e04edba54ba2b41539a9ac",
"restore_end_time": "2024-10-28T05:52:47",
"restore_server_id": "26895cb7-2059-49e7-b6fe-9c9c4b0d3db0",
"restore_server_name": "restoretest1",
"restore_start_time": "2024-10-28T05:52:47",
"restore_state": "COMPLETED",
"schedule_name": "INCREMENTAL_DAILY_15:00:00-chg4By"
}
],
"count": 1
}"#;

/// The backup id of seed 003.
pub(crate) const SCP_BACKUP_ID: &str = "00cd2538fbf94d12b36aabbdd607e974";

/// Seed 004: `GET .../vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700`.
pub(crate) const AZURE_JOB_DETAILS: &str = r#"{
  "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Default-RecoveryServices-ResourceGroup-centralindia/providers/microsoft.recoveryservices/vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700",
  "name": "7ddead57-bcb9-4269-ac31-6a1b57588700",
  "type": "Microsoft.RecoveryServices/vaults/backupJobs",
  "properties": {
    "jobType": "AzureIaaSVMJob",
    "duration": "00:20:23.0896697",
    "actionsInfo": [
      1
    ],
    "virtualMachineVersion": "Compute",
    "extendedInfo": {
      "tasksList": [
        {
          "taskId": "Take Snapshot",
          "duration": "00:00:00",
          "status": "Completed"
        },
        {
          "taskId": "Transfer data to vault",
          "duration": "00:00:00",
          "status": "Completed"
        }
      ],
      "propertyBag": {
        "VM Name": "uttestvmub1",
        "Backup Size": "2332 MB"
      }
    },
    "entityFriendlyName": "uttestvmub1",
    "backupManagementType": "AzureIaasVM",
    "operation": "Backup",
    "status": "Completed",
    "startTime": "2018-05-21T08:35:40.9488967Z",
    "endTime": "2018-05-21T08:56:04.0385664Z",
    "activityId": "7df8e874-1d66-4f81-8e91-da2fe054811d"
  }
}"#;

/// The seed 004 job as an item of the job list: the same without `extendedInfo`, which
/// only the details answer carries.
pub(crate) const AZURE_JOB_LIST_ITEM: &str = r#"{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Default-RecoveryServices-ResourceGroup-centralindia/providers/microsoft.recoveryservices/vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700","name":"7ddead57-bcb9-4269-ac31-6a1b57588700","type":"Microsoft.RecoveryServices/vaults/backupJobs","properties":{"jobType":"AzureIaaSVMJob","duration":"00:20:23.0896697","actionsInfo":[1],"virtualMachineVersion":"Compute","entityFriendlyName":"uttestvmub1","backupManagementType":"AzureIaasVM","operation":"Backup","status":"Completed","startTime":"2018-05-21T08:35:40.9488967Z","endTime":"2018-05-21T08:56:04.0385664Z","activityId":"7df8e874-1d66-4f81-8e91-da2fe054811d"}}"#;

/// Where the seed 004 job lives: subscription, resource group, vault.
pub(crate) const AZURE_SEED_VAULT: (&str, &str, &str) = (
    "00000000-0000-0000-0000-000000000000",
    "Default-RecoveryServices-ResourceGroup-centralindia",
    "abdemovault",
);

/// The seed's 404 body for an unknown backup job, kept to pin the error shape in tests.
#[cfg(test)]
pub(crate) const NOT_FOUND_DAILY_BACKUP: &str = r#"{
  "requestID": "req-abc123",
  "success": false,
  "error": "Name이 'daily-backup'인 조건에 맞는 Backup 작업을 찾을 수 없습니다.",
  "timestamp": "2025-01-15 10:30:00"
}"#;

/// Built-in fixture for `(endpoint, id)`: HTTP status and body.
pub(crate) fn lookup(endpoint: Endpoint, id: &str) -> Option<(u16, &'static str)> {
    let found = match (endpoint, id) {
        (Endpoint::System, "server-01") => (200, SERVER_01),
        (Endpoint::BackupJob, "daily-backup") => (200, DAILY_BACKUP),
        (Endpoint::BackupJob, "daily-backup-win") => (200, DAILY_BACKUP_WIN),
        (Endpoint::BackupJob, "incomplete-job") => (400, INCOMPLETE_JOB),
        (Endpoint::RecoveryJob, "daily-recovery") => (200, DAILY_RECOVERY),
        _ => return None,
    };
    Some(found)
}

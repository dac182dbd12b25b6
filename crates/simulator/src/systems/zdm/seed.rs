//! The ZDM seed documents' example responses (seeds 000, 001 and 002), copied verbatim
//! (whitespace and timestamps included) and served as they are by [`lookup`].
//!
//! The tests compare what is served with the samples carried in `tests/data/seeds/`, read
//! from the documents separately, so an edit here shows up as a failing test.

use super::wire::Endpoint;

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

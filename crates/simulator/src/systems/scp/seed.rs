//! The SCP seed document's example response (seed 003), copied verbatim and served as it
//! is whenever a page holds exactly its one entry; and the example backup history of
//! Samsung's SDK, served the same way for the same backup.
//!
//! The tests compare them with the sample carried in `tests/data/seeds/` and the SDK's
//! example block carried in `tests/data/vendor/scp/`, read from the documents separately.

/// Seed 003: `GET /v1/backups/00cd2538fbf94d12b36aabbdd607e974/restore-histories`.
pub(crate) const RESTORE_HISTORIES: &str = r#"{
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
pub(crate) const BACKUP_ID: &str = "00cd2538fbf94d12b36aabbdd607e974";

/// The `BackupHistoryListResponse` example of Samsung's SDK OpenAPI document
/// (`library/backup/1.0/api/openapi.yaml`, lines 2801-2814) written as JSON, key for key
/// and value for value (two identical entries and `count: 1`, as published):
/// `GET /v1/backups/00cd2538fbf94d12b36aabbdd607e974/backup-histories`.
pub(crate) const BACKUP_HISTORIES: &str = r#"{
"contents": [
{
"backup_job_state": "SUCCESS",
"backup_end_time": "2000-01-23T04:56:07.000+00:00",
"backup_start_time": "2000-01-23T04:56:07.000+00:00",
"schedule_id": "f5b8e22b-0d88-4698-9996-fb44217c8227",
"schedule_name": "INCREMENTAL_DAILY_15:00:00-chg4By",
"backup_job_guid": "backup_job_guid"
},
{
"backup_job_state": "SUCCESS",
"backup_end_time": "2000-01-23T04:56:07.000+00:00",
"backup_start_time": "2000-01-23T04:56:07.000+00:00",
"schedule_id": "f5b8e22b-0d88-4698-9996-fb44217c8227",
"schedule_name": "INCREMENTAL_DAILY_15:00:00-chg4By",
"backup_job_guid": "backup_job_guid"
}
],
"count": 1
}"#;

//! The Azure seed document's example job (seed 004), copied verbatim: the details answer
//! as the document shows it, and the same job as a list item.
//!
//! The tests compare it with the sample carried in `tests/data/seeds/`, read from the
//! document separately.

use chrono::{DateTime, Utc};

use super::wire::JobRecord;

/// Seed 004: `GET .../vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700`.
pub(crate) const JOB_DETAILS: &str = r#"{
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
pub(crate) const JOB_LIST_ITEM: &str = r#"{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Default-RecoveryServices-ResourceGroup-centralindia/providers/microsoft.recoveryservices/vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700","name":"7ddead57-bcb9-4269-ac31-6a1b57588700","type":"Microsoft.RecoveryServices/vaults/backupJobs","properties":{"jobType":"AzureIaaSVMJob","duration":"00:20:23.0896697","actionsInfo":[1],"virtualMachineVersion":"Compute","entityFriendlyName":"uttestvmub1","backupManagementType":"AzureIaasVM","operation":"Backup","status":"Completed","startTime":"2018-05-21T08:35:40.9488967Z","endTime":"2018-05-21T08:56:04.0385664Z","activityId":"7df8e874-1d66-4f81-8e91-da2fe054811d"}}"#;

/// Where the seed 004 job lives: subscription, resource group, vault.
pub(crate) const VAULT: (&str, &str, &str) = (
    "00000000-0000-0000-0000-000000000000",
    "Default-RecoveryServices-ResourceGroup-centralindia",
    "abdemovault",
);

/// The seed 004 job: the details answer verbatim, the list item without `extendedInfo`.
pub(crate) fn job() -> JobRecord {
    JobRecord {
        name: "7ddead57-bcb9-4269-ac31-6a1b57588700".to_string(),
        start: DateTime::parse_from_rfc3339("2018-05-21T08:35:40.9488967Z")
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        operation: "Backup".to_string(),
        status: "Completed".to_string(),
        management: "AzureIaasVM".to_string(),
        entity: "uttestvmub1".to_string(),
        list: JOB_LIST_ITEM.to_string(),
        details: JOB_DETAILS.to_string(),
    }
}

//! Azure Backup's answers as serde structs: the job list page, a job (its details), the
//! token answer. Leaves are raw JSON values so a wrong type in one field is a parse error
//! of that field, not a failed poll.

use serde::Deserialize;
use serde_json::Value;

use crate::sources::source::Entries;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobList {
    pub(super) value: Option<Vec<Job>>,
    pub(super) next_link: Option<String>,
}

/// A job list page as counted before it is built.
#[derive(Deserialize)]
pub(super) struct ListCount {
    value: Option<Entries>,
}

impl From<ListCount> for usize {
    fn from(c: ListCount) -> usize {
        c.value.map_or(0, |e| e.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Job {
    pub(super) name: Option<Value>,
    pub(super) properties: Option<JobProperties>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobProperties {
    pub(super) job_type: Option<Value>,
    /// What a workload, MAB or DPM job backs up (`SQLDataBase`, `SAPHanaDatabase`, ...);
    /// absent for VM, Azure Files and vault jobs.
    pub(super) workload_type: Option<Value>,
    pub(super) duration: Option<Value>,
    pub(super) entity_friendly_name: Option<Value>,
    pub(super) operation: Option<Value>,
    pub(super) status: Option<Value>,
    pub(super) start_time: Option<Value>,
    pub(super) end_time: Option<Value>,
    pub(super) extended_info: Option<ExtendedInfo>,
    pub(super) error_details: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExtendedInfo {
    pub(super) progress_percentage: Option<Value>,
    pub(super) dynamic_error_message: Option<Value>,
    pub(super) tasks_list: Option<Value>,
    pub(super) property_bag: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenAnswer {
    pub(super) access_token: Option<String>,
    pub(super) expires_in: Option<Value>,
}

//! SCP's restore history page as serde structs. Leaves are raw JSON values so a wrong
//! type in one field is a parse error of that field, not a failed poll.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    pub(super) contents: Option<Vec<Entry>>,
    pub(super) count: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Entry {
    pub(super) created_at: Option<Value>,
    pub(super) restore_server_id: Option<Value>,
    pub(super) restore_server_name: Option<Value>,
    pub(super) restore_start_time: Option<Value>,
    pub(super) restore_end_time: Option<Value>,
    pub(super) restore_state: Option<Value>,
    pub(super) schedule_name: Option<Value>,
}

impl Entry {
    /// The API gives entries no id of their own; these three fields tell them apart.
    pub(super) fn identity(&self) -> String {
        let text = |v: &Option<Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        format!(
            "{}|{}|{}",
            text(&self.created_at),
            text(&self.restore_server_id),
            text(&self.restore_start_time)
        )
    }
}

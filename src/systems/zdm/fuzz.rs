//! Arbitrary bytes and mutated seed-shaped answers through the decoders and mappers
//! of each endpoint: `Ok` or a fault, never a panic, and what is kept stays in range.

use std::time::Instant;

use proptest::prelude::*;

use super::auth::parse_login;
use super::labels::SYSTEM as ZDM;
use super::map::{
    self, map_backup_job, map_recovery_job, map_recovery_server, map_replication_job, map_system,
};
use super::wire::{
    compat_envelope, decode_envelope, open_envelope, JobData, RecoveryData, ReplicationData, Streamed,
    SystemData,
};
use crate::sources::fuzzing;
use crate::sources::source::{FieldParser, MAX_TOKEN_LIFETIME};
use crate::status::{Status, StatusMap};
use crate::telemetry::Telemetry;

fn fields(telemetry: &Telemetry) -> FieldParser {
    let mut map = StatusMap::new();
    map.insert("verifying", Status::Running);
    FieldParser::new(
        ZDM,
        std::sync::Arc::from("u"),
        chrono_tz::Asia::Seoul,
        map,
        telemetry.clone(),
    )
    .with_labels(map::label)
}

const SYSTEM: &str = r#"{"success":true,"requestID":"r-1","timestamp":"2025-01-15 02:30:00","data":{"system":{"name":"server-01"},"summary":{"total":3,"completed":1,"inProgress":1,"failed":1,"pending":0,"overallProgress":"45%"},"job":[{"info":{"name":"a","partition":"/"},"progressInfo":{"status":"run","percent":"45%","message":"copying","start":"2025-01-15 02:00:00","elapsed":"00:30:00","end":"-"},"log":["x"]},{"info":{"name":"b","drive":"C:"},"progressInfo":{"status":"complete","percent":"100%","start":"2025-01-15T01:00:00Z","elapsed":"27:03:10","end":"2025-01-15T02:00:00+09:00"}}]}}"#;
const JOB: &str = r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"daily-backup","partition":"/var"},"progressInfo":{"status":"Verifying","percent":45.5,"start":"2025-01-15 02:00:00.123","elapsed":"1.02:03:04.5","end":null}}}}"#;
const RECOVERY: &str = r#"{"success":true,"data":{"system":{"source":{"name":"src"},"target":{"name":"dst"}},"job":{"info":{"name":"r"},"details":[{"drive":"C:","progressInfo":{"status":"complete","percent":"100%","end":"2025-01-15T02:30:00Z"}},{"partition":"/home","progressInfo":{"status":"fail","elapsed":"PT1H2M3S"}}]}}}"#;
const LOGIN: &str = r#"{"success":true,"data":{"token":"abc","expiresAt":"2999-01-01T00:00:00Z"}}"#;

/// Object keys the mutations use: this system's field names.
const KEYS: &[&str] = &[
    "success",
    "data",
    "system",
    "job",
    "info",
    "name",
    "partition",
    "drive",
    "progressInfo",
    "status",
    "percent",
    "elapsed",
    "start",
    "end",
    "summary",
    "details",
    "source",
    "target",
    "token",
];

/// The streamed read decodes `body` exactly as the untagged enum does, for every
/// endpoint: the same data or the same fault.
fn streamed_as_untagged(body: &[u8]) -> Result<(), TestCaseError> {
    fn same<T: Streamed + std::fmt::Debug>(body: &[u8]) -> Result<(), TestCaseError> {
        let streamed = format!("{:?}", decode_envelope::<T>(body));
        let untagged = format!("{:?}", compat_envelope::<T>(body).and_then(open_envelope));
        prop_assert_eq!(streamed, untagged);
        Ok(())
    }
    same::<SystemData>(body)?;
    same::<JobData>(body)?;
    same::<RecoveryData>(body)
}

#[test]
fn jobs_read_straight_decode_as_the_untagged_enum() {
    let bodies = [
        SYSTEM,
        JOB,
        RECOVERY,
        r#"{"success":true,"data":{"job":[]}}"#,
        r#"{"success":true,"data":{"job":null}}"#,
        r#"{"success":true,"data":{"job":5}}"#,
        r#"{"success":true,"data":{"job":"x"}}"#,
        r#"{"success":true,"data":{"job":[{"info":5}]}}"#,
        r#"{"success":true,"data":{"job":[[{"info":{"name":"a"}}]]}}"#,
        r#"{"success":true,"data":{"job":[{"info":{"name":"a"}},"x"]}}"#,
        r#"{"success":true,"data":{"job":{"info":{"name":"a"},"info":{}}}}"#,
        r#"{"success":true,"data":{"job":[{"progressInfo":{"percent":1e400}}]}}"#,
        r#"{"success":true,"data":{"job":{"details":[{"drive":"C:"}],"log":["a"]}}}"#,
        r#"{"success":false,"error":"no","data":{"job":[1]}}"#,
        r#"{"success":true,"data":{"job":[{"info":{"name":"a"}}"#,
    ];
    for body in bodies {
        streamed_as_untagged(body.as_bytes()).unwrap();
    }
}

fn all_endpoints(body: &[u8]) -> Result<(), TestCaseError> {
    let telemetry = Telemetry::new();
    let fields = fields(&telemetry);
    if let Ok(data) = decode_envelope::<SystemData>(body) {
        fuzzing::check(map_system(&fields, map::Words::Current, data, "id"))?;
    }
    if let Ok(data) = decode_envelope::<JobData>(body) {
        fuzzing::check(map_backup_job(&fields, map::Words::Current, data, "id"))?;
    }
    if let Ok(data) = decode_envelope::<RecoveryData>(body) {
        fuzzing::check(map_recovery_job(&fields, map::Words::Current, data, "id"))?;
    }
    if let Ok(data) = decode_envelope::<RecoveryData>(body) {
        fuzzing::check(map_recovery_server(&fields, map::Words::V0_2, data, "id"))?;
    }
    if let Ok(data) = decode_envelope::<ReplicationData>(body) {
        fuzzing::check(map_replication_job(&fields, map::Words::Current, data, "id"))?;
    }
    if let Ok(issued) = parse_login(body, chrono_tz::UTC) {
        prop_assert!(issued.renew_at <= Instant::now() + MAX_TOKEN_LIFETIME);
    }
    Ok(())
}

#[test]
fn seeds_decode_and_map() {
    let telemetry = Telemetry::new();
    let fields = fields(&telemetry);
    let system = map_system(&fields, map::Words::Current, decode_envelope(SYSTEM.as_bytes()).unwrap(), "id");
    assert_eq!((system.jobs.len(), system.summaries.len()), (2, 1));
    let job = map_backup_job(&fields, map::Words::Current, decode_envelope(JOB.as_bytes()).unwrap(), "id");
    assert_eq!(job.jobs.len(), 1);
    let recovery = map_recovery_job(&fields, map::Words::Current, decode_envelope(RECOVERY.as_bytes()).unwrap(), "id");
    assert_eq!(recovery.jobs.len(), 2);
    assert!(parse_login(LOGIN.as_bytes(), chrono_tz::UTC).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        all_endpoints(&body)?;
    }

    #[test]
    fn mutated_answers_never_panic(
        body in prop_oneof![fuzzing::mutated(SYSTEM, KEYS), fuzzing::mutated(JOB, KEYS), fuzzing::mutated(RECOVERY, KEYS), fuzzing::mutated(LOGIN, KEYS)]
    ) {
        all_endpoints(&body)?;
    }

    #[test]
    fn mutated_answers_decode_as_the_untagged_enum(
        body in prop_oneof![fuzzing::mutated(SYSTEM, KEYS), fuzzing::mutated(JOB, KEYS), fuzzing::mutated(RECOVERY, KEYS)]
    ) {
        streamed_as_untagged(&body)?;
    }
}

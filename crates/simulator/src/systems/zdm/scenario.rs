//! The ZDM live scenario: servers and jobs whose state is a pure function of wall-clock time.
//!
//! Every job repeats one cycle: pending, then running with rising percent, then an outcome
//! (complete, or for some cycles of some jobs fail or cancel) until the cycle ends. Each job
//! has its own phase offset, derived from its name, so a server never shows all its jobs in
//! the same state. Nothing is stored: a response is rendered from the clock on request,
//! which keeps a generated fleet of thousands of servers cheap.

use super::wire::{
    self, ApiVersion, BackupJobData, Endpoint, JobEntry, JobInfo, Name, ProgressInfo, RecoveryData,
    RecoveryDetail, RecoveryJob, RecoverySystems, ReplicationData, ReplicationInfo, ReplicationJob,
    ReplicationProgress, ReplicationTime, Summary, SystemData,
};
use crate::clock::{fnv, mix, unit};

/// A job's target volume: partition on Linux, drive on Windows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Volume<'a> {
    Partition(&'a str),
    Drive(&'a str),
}

impl<'a> Volume<'a> {
    fn partition(self) -> Option<&'a str> {
        match self {
            Volume::Partition(p) => Some(p),
            Volume::Drive(_) => None,
        }
    }

    fn drive(self) -> Option<&'a str> {
        match self {
            Volume::Drive(d) => Some(d),
            Volume::Partition(_) => None,
        }
    }
}

/// Language of a job's progress messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lang {
    En,
    Ko,
}

/// Backup or recovery: only changes the wording of messages.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Backup,
    Recovery,
}

/// How one job behaves over its cycle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobDef<'a> {
    pub name: &'a str,
    pub volume: Volume<'a>,
    pub lang: Lang,
    /// Share of the cycle spent pending before the run starts.
    pub pending: f64,
    /// Share of the cycle a full run takes.
    pub run: f64,
    /// Fail the run of cycle `n` when `n % fail_every == 0` (0 = never).
    pub fail_every: i64,
    /// Cancel the run of cycle `n` when `n % cancel_every == 1` (0 = never).
    pub cancel_every: i64,
    /// While pending, show percent as `-` instead of `0%`.
    pub dash_when_pending: bool,
    /// Data size in GB, for the transfer message.
    pub size_gb: f64,
}

const fn job(name: &'static str, volume: Volume<'static>, lang: Lang) -> JobDef<'static> {
    JobDef {
        name,
        volume,
        lang,
        pending: 0.2,
        run: 0.6,
        fail_every: 0,
        cancel_every: 0,
        dash_when_pending: false,
        size_gb: 12.0,
    }
}

pub(crate) struct ServerDef {
    pub name: &'static str,
    pub jobs: &'static [JobDef<'static>],
}

/// A standalone backup job and the server it runs on.
pub(crate) struct BackupJobDef {
    pub server: &'static str,
    pub job: JobDef<'static>,
}

pub(crate) struct RecoveryDef {
    pub name: &'static str,
    pub source: &'static str,
    pub target: &'static str,
    pub details: &'static [JobDef<'static>],
}

/// Served both by `db-서버-02` and as a standalone backup job.
const PGSQL: JobDef<'static> = JobDef {
    run: 0.55,
    fail_every: 3,
    size_gb: 48.0,
    ..job("pgsql-백업", Volume::Partition("/var/lib/pgsql"), Lang::Ko)
};

pub(crate) static SERVERS: &[ServerDef] = &[
    ServerDef {
        name: "web-01",
        jobs: &[
            job("web-root-daily", Volume::Partition("/"), Lang::En),
            JobDef {
                run: 0.45,
                size_gb: 30.0,
                ..job("web-home-daily", Volume::Partition("/home"), Lang::En)
            },
            JobDef {
                pending: 0.3,
                run: 0.4,
                dash_when_pending: true,
                size_gb: 3.5,
                ..job("웹로그-백업", Volume::Partition("/var/log"), Lang::Ko)
            },
        ],
    },
    ServerDef {
        name: "db-서버-02",
        jobs: &[
            PGSQL,
            JobDef {
                pending: 0.1,
                run: 0.5,
                ..job("db-root", Volume::Partition("/"), Lang::En)
            },
        ],
    },
    ServerDef {
        name: "win-fs-01",
        jobs: &[
            JobDef {
                dash_when_pending: true,
                size_gb: 80.0,
                ..job("win-system", Volume::Drive("C:"), Lang::En)
            },
            JobDef {
                pending: 0.15,
                run: 0.7,
                fail_every: 4,
                size_gb: 250.0,
                ..job("공유폴더-백업", Volume::Drive("D:"), Lang::Ko)
            },
        ],
    },
    ServerDef {
        name: "파일서버-03",
        jobs: &[
            job("파일서버-전체", Volume::Partition("/"), Lang::Ko),
            JobDef {
                run: 0.5,
                fail_every: 5,
                size_gb: 120.0,
                ..job("nas-home", Volume::Partition("/home"), Lang::En)
            },
            JobDef {
                pending: 0.25,
                run: 0.35,
                size_gb: 6.0,
                ..job("자료실-증분", Volume::Partition("/data"), Lang::Ko)
            },
            JobDef {
                pending: 0.1,
                run: 0.7,
                cancel_every: 4,
                dash_when_pending: true,
                size_gb: 500.0,
                ..job("archive-weekly", Volume::Partition("/archive"), Lang::En)
            },
        ],
    },
];

pub(crate) static BACKUP_JOBS: &[BackupJobDef] = &[
    BackupJobDef {
        server: "db-서버-02",
        job: PGSQL,
    },
    BackupJobDef {
        server: "app-01",
        job: JobDef {
            pending: 0.3,
            run: 0.45,
            fail_every: 6,
            size_gb: 0.8,
            ..job("app-config-백업", Volume::Partition("/etc"), Lang::Ko)
        },
    },
];

pub(crate) static RECOVERIES: &[RecoveryDef] = &[RecoveryDef {
    name: "db-복구",
    source: "db-서버-02",
    target: "db-dr-02",
    // Both details share the job's name, hence its phase; `/home` starts later.
    details: &[
        JobDef {
            pending: 0.1,
            run: 0.5,
            size_gb: 20.0,
            ..job("db-복구", Volume::Partition("/"), Lang::Ko)
        },
        JobDef {
            pending: 0.3,
            run: 0.55,
            fail_every: 4,
            size_gb: 40.0,
            ..job("db-복구", Volume::Partition("/home"), Lang::Ko)
        },
    ],
}];

/// A replication job (1.1.0 on) and the center that runs it.
pub(crate) struct ReplicationDef {
    pub center: &'static str,
    pub id: u32,
    pub job: JobDef<'static>,
}

pub(crate) static REPLICATIONS: &[ReplicationDef] = &[ReplicationDef {
    center: "center-01",
    id: 1,
    job: JobDef {
        pending: 0.15,
        run: 0.5,
        fail_every: 5,
        size_gb: 30.0,
        ..job("db-복제", Volume::Partition("/"), Lang::Ko)
    },
}];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Complete,
    Failed,
    Cancelled,
}

impl Phase {
    /// A replication's words: `running` and `success` as the vendor's examples answer,
    /// the rest from its `replication-job-status` list.
    fn replication_status(self) -> &'static str {
        match self {
            Phase::Pending => "scheduled",
            Phase::Running => "running",
            Phase::Complete => "success",
            Phase::Failed => "error",
            Phase::Cancelled => "canceled",
        }
    }

    /// The seed's words, or a released version's (its `job-status` list): a job waiting
    /// for its schedule is `Scheduled` (no end time: it has not run in this cycle).
    pub(crate) fn status(self, version: ApiVersion) -> &'static str {
        match (self, version) {
            (Phase::Pending, ApiVersion::Vendor) => "Scheduled",
            (Phase::Running, ApiVersion::Vendor) => "Processing",
            (Phase::Complete, ApiVersion::Vendor) => "Complete",
            (Phase::Failed, ApiVersion::Vendor) => "Error",
            (Phase::Cancelled, ApiVersion::Vendor) => "Canceled",
            (Phase::Pending, _) => "pending",
            (Phase::Running, _) => "run",
            (Phase::Complete, _) => "complete",
            (Phase::Failed, _) => "fail",
            (Phase::Cancelled, _) => "cancel",
        }
    }
}

/// A job's state at one instant.
#[derive(Clone, Debug)]
pub(crate) struct JobState {
    pub phase: Phase,
    /// `None` renders as `-`.
    pub percent: Option<u32>,
    pub message: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub elapsed: Option<i64>,
    pub log: Vec<&'static str>,
}

fn messages(kind: Kind, lang: Lang) -> [&'static str; 8] {
    // pending, starting, scanning, transfer, finalizing, complete, failed, cancelled
    match (kind, lang) {
        (Kind::Backup, Lang::En) => [
            "Waiting for schedule",
            "Starting backup...",
            "Scanning files...",
            "Processing files...",
            "Finalizing snapshot...",
            "Backup completed",
            "Backup failed: connection reset by peer (repository unreachable)",
            "Backup canceled by user",
        ],
        (Kind::Backup, Lang::Ko) => [
            "예약 대기 중",
            "백업 시작 중...",
            "파일 검색 중...",
            "데이터 전송 중...",
            "스냅샷 정리 중...",
            "백업이 완료되었습니다",
            "백업 실패: 대상 저장소의 디스크 공간이 부족합니다",
            "사용자에 의해 백업이 취소되었습니다",
        ],
        (Kind::Recovery, Lang::En) => [
            "Waiting...",
            "Starting recovery...",
            "Preparing target volume...",
            "Transferring data...",
            "Verifying restored data...",
            "Recovery completed",
            "Recovery failed: target volume is read-only",
            "Recovery canceled by user",
        ],
        (Kind::Recovery, Lang::Ko) => [
            "대기 중...",
            "복구 시작 중...",
            "대상 볼륨 준비 중...",
            "데이터 전송 중...",
            "복구 데이터 검증 중...",
            "복구가 완료되었습니다",
            "복구 실패: 대상 볼륨이 읽기 전용입니다",
            "사용자에 의해 복구가 취소되었습니다",
        ],
    }
}

/// Stage of a run at `progress` (0..1): index into [`messages`].
fn stage(progress: f64) -> usize {
    match progress {
        p if p < 0.05 => 1,
        p if p < 0.25 => 2,
        p if p < 0.9 => 3,
        _ => 4,
    }
}

/// One finished run of the live scenario as the histories (1.2.0 on) list it.
pub(crate) struct PastRun {
    pub id: u64,
    /// `system.name`: the server (backups) or the source server (recoveries).
    pub system: String,
    pub job: String,
    /// `recoverySystemName` of a recovery run.
    pub target: Option<String>,
    pub volume: String,
    /// Whether the volume is a Windows drive (`C:`), not a Linux partition.
    pub windows: bool,
    pub failed: bool,
    pub state: JobState,
}

/// The finished runs of `def` in the last `cycles` cycles up to `now_ms`, newest first:
/// completed and failed ones (the results the histories document).
fn past_runs(kind: Kind, def: &JobDef<'_>, now_ms: i64, cycle_ms: i64, cycles: i64) -> Vec<(u64, JobState)> {
    let cycle_ms = cycle_ms.max(1);
    let offset = (unit(mix(fnv(def.name))) * cycle_ms as f64) as i64;
    let shifted = now_ms.saturating_add(offset);
    let cycle_start = now_ms - shifted.rem_euclid(cycle_ms);
    let mut out = Vec::new();
    // This cycle's run when it already stopped, then the last moment of each earlier cycle.
    let moments = std::iter::once(now_ms)
        .chain((0..cycles).map(|k| cycle_start - k * cycle_ms - 1));
    for at in moments {
        let state = job_state_of(kind, def, at, cycle_ms);
        if matches!(state.phase, Phase::Complete | Phase::Failed) {
            let n = at.saturating_add(offset).div_euclid(cycle_ms) as u64;
            let id = (mix(fnv(def.name) ^ mix(n)) & 0x001f_ffff_ffff_ffff).max(1);
            out.push((id, state));
        }
    }
    out
}

/// The backup runs of `def` on `server` as the history lists them.
fn backup_runs(out: &mut Vec<PastRun>, server: &str, def: &JobDef<'_>, now_ms: i64, cycle_ms: i64) {
    for (id, state) in past_runs(Kind::Backup, def, now_ms, cycle_ms, 3) {
        out.push(PastRun {
            id,
            system: server.to_string(),
            job: def.name.to_string(),
            target: None,
            volume: def.volume.partition().or(def.volume.drive()).unwrap_or("").to_string(),
            windows: def.volume.drive().is_some(),
            failed: state.phase == Phase::Failed,
            state,
        });
    }
}

/// Every finished run of the scenario's backups (`recoveries` false; the generated fleet's
/// too) or recoveries in the last three cycles, newest first.
pub(crate) fn history(recoveries: bool, now_ms: i64, cycle_ms: i64, fleet: Option<Fleet>) -> Vec<PastRun> {
    let mut runs = Vec::new();
    if recoveries {
        for r in RECOVERIES {
            for d in r.details {
                let volume = d.volume.partition().or(d.volume.drive()).unwrap_or("");
                for (id, state) in past_runs(Kind::Recovery, d, now_ms, cycle_ms, 3) {
                    runs.push(PastRun {
                        id: id ^ fnv(volume),
                        system: r.source.to_string(),
                        job: r.name.to_string(),
                        target: Some(r.target.to_string()),
                        volume: volume.to_string(),
                        windows: d.volume.drive().is_some(),
                        failed: state.phase == Phase::Failed,
                        state,
                    });
                }
            }
        }
    } else {
        let mut seen = std::collections::BTreeSet::new();
        let served = SERVERS
            .iter()
            .flat_map(|s| s.jobs.iter().map(move |j| (s.name, j)))
            .chain(BACKUP_JOBS.iter().map(|b| (b.server, &b.job)));
        for (server, def) in served {
            if seen.insert((server, def.name)) {
                backup_runs(&mut runs, server, def, now_ms, cycle_ms);
            }
        }
        if let Some(fleet) = fleet {
            for index in 1..=fleet.servers {
                let server = Fleet::server_name(index);
                for job in 1..=fleet.jobs {
                    let name = Fleet::job_name(index, job);
                    let def = Fleet::job_def(&name, index, job);
                    backup_runs(&mut runs, &server, &def, now_ms, cycle_ms);
                }
            }
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.state.end));
    runs
}

/// State of `def` at `now_ms` (Unix milliseconds) in a cycle of `cycle_ms`.
pub(crate) fn job_state(def: &JobDef<'_>, now_ms: i64, cycle_ms: i64) -> JobState {
    job_state_of(Kind::Backup, def, now_ms, cycle_ms)
}

fn job_state_of(kind: Kind, def: &JobDef<'_>, now_ms: i64, cycle_ms: i64) -> JobState {
    let cycle_ms = cycle_ms.max(1);
    let seed = fnv(def.name);
    let offset = (unit(mix(seed)) * cycle_ms as f64) as i64;
    let shifted = now_ms.saturating_add(offset);
    let n = shifted.div_euclid(cycle_ms);
    let cycle_start = now_ms - shifted.rem_euclid(cycle_ms);
    let run_start = cycle_start + (def.pending.clamp(0.0, 0.95) * cycle_ms as f64) as i64;
    let run_len = ((def.run.clamp(0.01, 1.0) * cycle_ms as f64) as i64)
        .min(cycle_start + cycle_ms - run_start)
        .max(1);
    let text = messages(kind, def.lang);

    // Outcome of this cycle's run and the share of the run done when it stops.
    let roll = unit(mix(seed ^ mix(n as u64)));
    let (outcome, stop_at) = if def.fail_every > 0 && n.rem_euclid(def.fail_every) == 0 {
        (Phase::Failed, 0.3 + 0.6 * roll)
    } else if def.cancel_every > 0 && n.rem_euclid(def.cancel_every) == 1 {
        (Phase::Cancelled, 0.2 + 0.5 * roll)
    } else {
        (Phase::Complete, 1.0)
    };
    let stop_ms = run_start + ((run_len as f64 * stop_at) as i64).max(1);
    let now_s = now_ms.div_euclid(1000);
    let start_s = run_start.div_euclid(1000);

    if now_ms < run_start {
        return JobState {
            phase: Phase::Pending,
            percent: (!def.dash_when_pending).then_some(0),
            message: text[0].to_string(),
            start: None,
            end: None,
            elapsed: None,
            log: Vec::new(),
        };
    }
    let (done, phase) = if now_ms < stop_ms {
        ((now_ms - run_start) as f64 / run_len as f64, Phase::Running)
    } else {
        (stop_at, outcome)
    };
    let reached = stage(done.min(0.999));
    let mut log: Vec<&'static str> = (1..=reached).map(|i| text[i]).collect();
    let percent = ((done * 100.0).floor() as u32).min(99);
    match phase {
        Phase::Running => {
            let message = if reached == 3 {
                format!(
                    "{} ({:.1} GB / {:.1} GB)",
                    text[3],
                    def.size_gb * done,
                    def.size_gb
                )
            } else {
                text[reached].to_string()
            };
            JobState {
                phase,
                percent: Some(percent),
                message,
                start: Some(start_s),
                end: None,
                elapsed: Some(now_s - start_s),
                log,
            }
        }
        _ => {
            let (percent, message) = match phase {
                Phase::Complete => (100, text[5]),
                Phase::Failed => (percent, text[6]),
                _ => (percent, text[7]),
            };
            log.push(message);
            let end_s = stop_ms.div_euclid(1000);
            JobState {
                phase,
                percent: Some(percent),
                message: message.to_string(),
                start: Some(start_s),
                end: Some(end_s),
                elapsed: Some(end_s - start_s),
                log,
            }
        }
    }
}

fn progress_info(version: ApiVersion, state: JobState) -> (ProgressInfo, Vec<&'static str>) {
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_string(), |s| version.format_unix(s));
    let info = ProgressInfo {
        status: state.phase.status(version),
        percent: state
            .percent
            .map_or_else(|| "-".to_string(), |p| format!("{p}%")),
        message: state.message,
        start: time(state.start),
        elapsed: state.elapsed.map_or_else(|| "-".to_string(), wire::hms),
        end: time(state.end),
    };
    (info, state.log)
}

fn entry<'a>(version: ApiVersion, def: &JobDef<'a>, state: JobState) -> JobEntry<'a> {
    let (progress_info, log) = progress_info(version, state);
    JobEntry {
        info: JobInfo {
            name: def.name,
            partition: def.volume.partition(),
            drive: def.volume.drive(),
        },
        progress_info,
        log,
    }
}

/// Summary block computed from the jobs; `overallProgress` is the mean percent.
pub(crate) fn summary(states: &[JobState]) -> Summary {
    let count = |p: Phase| states.iter().filter(|s| s.phase == p).count() as u32;
    let sum: u32 = states.iter().map(|s| s.percent.unwrap_or(0)).sum();
    let overall = if states.is_empty() {
        0
    } else {
        (f64::from(sum) / states.len() as f64).round() as u32
    };
    Summary {
        total: states.len() as u32,
        completed: count(Phase::Complete),
        in_progress: count(Phase::Running),
        failed: count(Phase::Failed),
        pending: count(Phase::Pending),
        overall_progress: format!("{overall}%"),
    }
}

fn system_body(
    version: ApiVersion,
    name: &str,
    jobs: &[JobDef<'_>],
    now_ms: i64,
    cycle_ms: i64,
) -> Vec<u8> {
    let states: Vec<JobState> = jobs
        .iter()
        .map(|d| job_state(d, now_ms, cycle_ms))
        .collect();
    let summary = summary(&states);
    let job = jobs
        .iter()
        .zip(states)
        .map(|(def, state)| entry(version, def, state))
        .collect();
    let data = SystemData {
        system: Name { name },
        summary,
        job,
    };
    wire::envelope(version, Endpoint::System, data)
}

fn backup_job_body(
    version: ApiVersion,
    server: &str,
    def: &JobDef<'_>,
    now_ms: i64,
    cycle_ms: i64,
) -> Vec<u8> {
    let data = BackupJobData {
        system: Name { name: server },
        job: entry(version, def, job_state(def, now_ms, cycle_ms)),
    };
    wire::envelope(version, Endpoint::BackupJob, data)
}

/// A recovery job's answer; for the recovery server endpoint (`endpoint`
/// `RecoverySystem`) with the summary of its details.
fn recovery_body(
    version: ApiVersion,
    endpoint: Endpoint,
    def: &RecoveryDef,
    now_ms: i64,
    cycle_ms: i64,
) -> Vec<u8> {
    let mut job_log = Vec::new();
    let states: Vec<JobState> = def
        .details
        .iter()
        .map(|d| job_state_of(Kind::Recovery, d, now_ms, cycle_ms))
        .collect();
    let summary = (endpoint == Endpoint::RecoverySystem).then(|| summary(&states));
    let details = def
        .details
        .iter()
        .zip(states)
        .enumerate()
        .map(|(i, (d, state))| {
            let (progress_info, log) = progress_info(version, state);
            if i == 0 {
                job_log = log;
            }
            RecoveryDetail {
                partition: d.volume.partition(),
                drive: d.volume.drive(),
                progress_info,
            }
        })
        .collect();
    let data = RecoveryData {
        system: RecoverySystems {
            source: Name { name: def.source },
            target: Name { name: def.target },
        },
        summary,
        job: RecoveryJob {
            info: Name { name: def.name },
            log: job_log,
            details,
        },
    };
    wire::envelope(version, endpoint, data)
}

fn replication_body(
    version: ApiVersion,
    def: &ReplicationDef,
    now_ms: i64,
    cycle_ms: i64,
) -> Vec<u8> {
    let state = job_state(&def.job, now_ms, cycle_ms);
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_string(), |s| version.format_unix(s));
    let step = match state.phase {
        Phase::Pending => "Waiting",
        Phase::Running => "Transferring",
        Phase::Complete => "Complete",
        Phase::Failed | Phase::Cancelled => "Stopped",
    };
    let data = ReplicationData {
        system: Name { name: def.center },
        job: ReplicationJob {
            info: ReplicationInfo {
                name: def.job.name,
                id: def.id,
            },
            log: state.log.clone(),
            progress: ReplicationProgress {
                status: state.phase.replication_status(),
                step,
                percent: state
                    .percent
                    .map_or_else(|| "-".to_string(), |p| format!("{p}%")),
                message: state.message.clone(),
            },
            time: ReplicationTime {
                start: time(state.start),
                end: time(state.end),
                elapsed: state.elapsed.map_or_else(|| "-".to_string(), wire::hms),
            },
        },
    };
    wire::envelope(version, Endpoint::ReplicationJob, data)
}

const FLEET_VOLUMES: [&str; 8] = [
    "/", "/home", "/var", "/data", "/opt", "/srv", "/backup", "/var/log",
];

/// The generated benchmark fleet: `fleet-00001`.. with `jobs` jobs each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fleet {
    pub servers: usize,
    pub jobs: usize,
}

impl Fleet {
    pub(crate) fn server_name(index: usize) -> String {
        format!("fleet-{index:05}")
    }

    pub(crate) fn job_name(server: usize, job: usize) -> String {
        format!("fleet-{server:05}-job-{job:02}")
    }

    /// 1-based index of a canonical fleet server name.
    fn server_index(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix("fleet-")?;
        let index: usize = digits.parse().ok()?;
        let canonical = (1..=self.servers).contains(&index) && format!("{index:05}") == digits;
        canonical.then_some(index)
    }

    /// `(server, job)` indexes of a canonical fleet job name.
    fn job_index(&self, name: &str) -> Option<(usize, usize)> {
        let (server, job) = name.rsplit_once("-job-")?;
        let server = self.server_index(server)?;
        let index: usize = job.parse().ok()?;
        let canonical = (1..=self.jobs).contains(&index) && format!("{index:02}") == job;
        canonical.then_some((server, index))
    }

    pub(crate) fn job_def(name: &str, server: usize, job: usize) -> JobDef<'_> {
        let volume = FLEET_VOLUMES[(job - 1) % FLEET_VOLUMES.len()];
        JobDef {
            name,
            volume: Volume::Partition(volume),
            lang: if (server + job).is_multiple_of(2) {
                Lang::Ko
            } else {
                Lang::En
            },
            pending: 0.1 + 0.05 * (job % 4) as f64,
            run: 0.4 + 0.1 * (job % 4) as f64,
            fail_every: if (server + job).is_multiple_of(3) {
                5
            } else {
                0
            },
            cancel_every: 0,
            dash_when_pending: job.is_multiple_of(2),
            size_gb: 10.0 * job as f64,
        }
    }
}

/// Renders the live answer for `(endpoint, id)`, `None` when the scenario has no such id.
pub(crate) fn render(
    version: ApiVersion,
    endpoint: Endpoint,
    id: &str,
    now_ms: i64,
    cycle_ms: i64,
    fleet: Option<Fleet>,
) -> Option<Vec<u8>> {
    match endpoint {
        Endpoint::System => {
            if let Some(server) = SERVERS.iter().find(|s| s.name == id) {
                return Some(system_body(
                    version,
                    server.name,
                    server.jobs,
                    now_ms,
                    cycle_ms,
                ));
            }
            // A standalone backup job's server answers with its jobs, as the listings
            // name it.
            let standalone: Vec<JobDef<'_>> = BACKUP_JOBS
                .iter()
                .filter(|b| b.server == id && SERVERS.iter().all(|s| s.name != id))
                .map(|b| b.job)
                .collect();
            if !standalone.is_empty() {
                return Some(system_body(version, id, &standalone, now_ms, cycle_ms));
            }
            let fleet = fleet?;
            let index = fleet.server_index(id)?;
            let names: Vec<String> = (1..=fleet.jobs)
                .map(|j| Fleet::job_name(index, j))
                .collect();
            let jobs: Vec<JobDef<'_>> = names
                .iter()
                .enumerate()
                .map(|(j, name)| Fleet::job_def(name, index, j + 1))
                .collect();
            Some(system_body(version, id, &jobs, now_ms, cycle_ms))
        }
        Endpoint::BackupJob => {
            if let Some(b) = BACKUP_JOBS.iter().find(|b| b.job.name == id) {
                return Some(backup_job_body(version, b.server, &b.job, now_ms, cycle_ms));
            }
            let fleet = fleet?;
            let (server, job) = fleet.job_index(id)?;
            let server_name = Fleet::server_name(server);
            let def = Fleet::job_def(id, server, job);
            Some(backup_job_body(
                version,
                &server_name,
                &def,
                now_ms,
                cycle_ms,
            ))
        }
        Endpoint::RecoveryJob => RECOVERIES
            .iter()
            .find(|r| r.name == id)
            .map(|r| recovery_body(version, endpoint, r, now_ms, cycle_ms)),
        Endpoint::RecoverySystem => RECOVERIES
            .iter()
            .find(|r| r.target == id)
            .map(|r| recovery_body(version, endpoint, r, now_ms, cycle_ms)),
        Endpoint::ReplicationJob => REPLICATIONS
            .iter()
            .find(|r| r.job.name == id)
            .map(|r| replication_body(version, r, now_ms, cycle_ms)),
    }
}

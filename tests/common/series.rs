//! Series names of any system, as the exposition writes them, for jobs whose `volume` is
//! empty (SCP and Azure; ZDM's have a volume: see the helpers in `super`).

/// `metric` of one job.
pub fn series(
    metric: &str,
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
) -> String {
    format!(
        "{metric}{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\"}}"
    )
}

/// `backup_job_status` of one job in one status.
pub fn status(
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
    status: &str,
) -> String {
    format!(
        "backup_job_status{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\",status=\"{status}\"}}"
    )
}

/// `backup_job_runs_total` of one job and result.
pub fn runs_of(
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
    result: &str,
) -> String {
    format!(
        "backup_job_runs_total{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\",result=\"{result}\"}}"
    )
}

/// `backup_target_up` of one target.
pub fn up(system: &str, upstream: &str, kind: &str, target: &str) -> String {
    format!("backup_target_up{{system=\"{system}\",upstream=\"{upstream}\",kind=\"{kind}\",target=\"{target}\"}}")
}

/// `backup_upstream_requests_total` of one upstream and outcome.
pub fn outcome(system: &str, upstream: &str, outcome: &str) -> String {
    format!("backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"{system}\",upstream=\"{upstream}\"}}")
}

/// `a` is there and within a thousandth of `b` (times and durations with fractions).
pub fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-3)
}

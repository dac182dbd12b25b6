//! Poll settings: the keys that may appear under `defaults` and again in any upstream.
//! One validator reads them wherever they appear, one merge lays an upstream's keys over
//! `defaults` (themselves laid over the built-in values), then `stale_after` is resolved
//! against the interval that applies.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;

use super::checks::{join, Cx, RawDuration};
use crate::model::JobStatusSeries;
use crate::status::StatusMap;

/// The keys of [`RawSettings`]: split off an upstream's map before its type's own keys are
/// read, so every type takes them without listing them again.
pub const KEYS: &[&str] = &[
    "interval",
    "timeout",
    "concurrency",
    "timezone",
    "stale_after",
    "max_body_bytes",
    "max_jobs_per_target",
    "job_status",
    "forget_after",
];

// The allowed range of every numeric key (the README's "Bounds" table). They keep a config
// that passes `--check-config` from overflowing the schedule's arithmetic or a semaphore.

/// `interval`: sub-second polls are for simulators; one a day is the slowest useful.
pub const INTERVAL: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(24 * 3600);
/// `timeout` of each request.
pub const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(300);
/// `concurrency`: requests of one upstream in flight at once.
pub const CONCURRENCY: RangeInclusive<usize> = 1..=1024;
/// `stale_after` as `Nx`.
pub const STALE_INTERVALS: RangeInclusive<u32> = 1..=1000;
/// `stale_after` as a duration: from the interval up to this.
pub const STALE_MAX: Duration = Duration::from_secs(30 * 24 * 3600);
/// `forget_after`: from `stale_after` (at least a second) up to this.
pub const FORGET_MAX: Duration = Duration::from_secs(3650 * 24 * 3600);
/// `forget_after` when the configuration does not set it.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);
/// `max_body_bytes`: 1 KiB to 1 GiB.
pub const MAX_BODY_BYTES: RangeInclusive<u64> = 1024..=1024 * 1024 * 1024;
/// `max_jobs_per_target`.
pub const MAX_JOBS_PER_TARGET: RangeInclusive<usize> = 1..=1_000_000;
/// `max_jobs_per_target` when the configuration does not set it (and the field parser's
/// own default).
pub const DEFAULT_MAX_JOBS_PER_TARGET: usize = 10_000;

/// Poll settings as written; every key may appear under `defaults` and be overridden per
/// upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Poll interval (humantime: 500ms, 30s, 5m, 1h). Default 30s, from 100ms to 24h.
    pub interval: Option<RawDuration>,
    /// Timeout of each request. Default 10s, from 100ms to 5m.
    pub timeout: Option<RawDuration>,
    /// Maximum in-flight requests per upstream. Default 16, from 1 to 1024.
    pub concurrency: Option<usize>,
    /// IANA time zone for timestamps that carry no offset. Default UTC.
    pub timezone: Option<String>,
    /// How long last-known series are kept after polls fail: `Nx` (N intervals) or a
    /// duration of at least one interval. Default 3x; N from 1 to 1000, a duration up to 30d.
    pub stale_after: Option<RawDuration>,
    /// Response bodies larger than this are refused as `too_large`. Default 16 MiB, from
    /// 1 KiB to 1 GiB.
    pub max_body_bytes: Option<u64>,
    /// An answer (or paged list) with more jobs than this fails the poll as `too_large`.
    /// Default 10000, from 1 to 1000000.
    pub max_jobs_per_target: Option<usize>,
    /// `stateset` (default): every `backup_job_status` series, exactly one of them 1;
    /// `active`: only the series whose value is 1.
    pub job_status: Option<String>,
    /// How long a job's last success (and failing-since) is kept after a target last
    /// reported it, through target outages longer than `stale_after` and, with
    /// `--storage.path`, restarts. Default 30d; at least `stale_after`, at most 3650d.
    pub forget_after: Option<RawDuration>,
}

/// Polling settings, from `defaults` overridden per upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How often each target is polled.
    pub interval: Duration,
    /// Timeout of each request, body included.
    pub timeout: Duration,
    /// Maximum requests (and polls) of the upstream in flight at once.
    pub concurrency: usize,
    /// The zone of upstream timestamps that carry no offset.
    pub timezone: chrono_tz::Tz,
    /// Whether `timezone` was set (under `defaults` or the upstream) rather than defaulted.
    pub timezone_set: bool,
    /// How long last-known series stay after polls fail. Resolved: `3x` is already
    /// `3 * interval`.
    pub stale_after: Duration,
    /// Larger response bodies are refused while they stream.
    pub max_body_bytes: u64,
    /// More jobs in one target's answer fail its poll as `too_large`.
    pub max_jobs_per_target: usize,
    /// Which `backup_job_status` series are exported.
    pub job_status: JobStatusSeries,
    /// How long a job's last success outlives the last poll that reported it.
    pub forget_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            timezone: chrono_tz::UTC,
            timezone_set: false,
            stale_after: Duration::from_secs(90),
            max_body_bytes: 16 * 1024 * 1024,
            max_jobs_per_target: DEFAULT_MAX_JOBS_PER_TARGET,
            job_status: JobStatusSeries::StateSet,
            forget_after: DEFAULT_FORGET_AFTER,
        }
    }
}

/// `stale_after` as written: it follows the interval of each upstream that inherits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StaleAfter {
    Intervals(u32),
    Fixed(Duration),
}

const DEFAULT_STALE_INTERVALS: u32 = 3;

/// `defaults` after validation: built-in values where a key was absent or invalid (and
/// reported), so the upstreams can still be checked.
#[derive(Debug, Clone)]
pub struct Defaults {
    settings: Settings,
    stale_after: StaleAfter,
    /// Whether `forget_after` was set: when not, it grows to a longer `stale_after`.
    forget_set: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            settings: Settings::default(),
            stale_after: StaleAfter::Intervals(DEFAULT_STALE_INTERVALS),
            forget_set: false,
        }
    }
}

/// An upstream's validated parts: those every type has, and its type's own config.
#[derive(Debug)]
pub struct Validated<T> {
    /// The `upstream` label.
    pub name: String,
    /// Its poll settings over `defaults`.
    pub settings: Settings,
    /// Its `status_map`.
    pub status_map: StatusMap,
    /// What its type's own keys resolved to.
    pub config: T,
}

/// The settings keys one map holds, each validated: `None` where absent or invalid.
#[derive(Debug)]
struct Checked {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    concurrency: Option<usize>,
    timezone: Option<chrono_tz::Tz>,
    stale_after: Option<StaleAfter>,
    max_body_bytes: Option<u64>,
    max_jobs_per_target: Option<usize>,
    job_status: Option<JobStatusSeries>,
    forget_after: Option<Duration>,
    /// False when a key was present but invalid (and reported).
    ok: bool,
}

/// The one validator of the settings keys, under `defaults` (`path` = `defaults`) or in an
/// upstream (`path` = `upstreams[i]`).
fn check(cx: &mut Cx<'_>, path: &str, raw: &RawSettings) -> Checked {
    let p = |key: &str| join(path, key);
    let errors_before = cx.errors.len();
    let interval = raw
        .interval
        .as_ref()
        .and_then(|d| cx.bounded_duration(&p("interval"), d, INTERVAL));
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|d| cx.bounded_duration(&p("timeout"), d, TIMEOUT));
    let concurrency = raw
        .concurrency
        .and_then(|c| cx.bounded(&p("concurrency"), c, CONCURRENCY));
    let timezone = raw
        .timezone
        .as_ref()
        .and_then(|t| cx.timezone(&p("timezone"), t));
    let max_body_bytes = raw
        .max_body_bytes
        .and_then(|b| cx.bounded(&p("max_body_bytes"), b, MAX_BODY_BYTES));
    let max_jobs_per_target = raw
        .max_jobs_per_target
        .and_then(|n| cx.bounded(&p("max_jobs_per_target"), n, MAX_JOBS_PER_TARGET));
    let stale_after = raw
        .stale_after
        .as_ref()
        .and_then(|r| stale_after(cx, &p("stale_after"), r));
    let job_status = raw.job_status.as_deref().and_then(|v| match v.trim() {
        "stateset" => Some(JobStatusSeries::StateSet),
        "active" => Some(JobStatusSeries::Active),
        other => {
            cx.error(
                p("job_status"),
                format!("must be `stateset` or `active`, got {other:?}"),
            );
            None
        }
    });
    let forget_after = raw.forget_after.as_ref().and_then(|raw| {
        let d = cx.duration(&p("forget_after"), raw)?;
        if (Duration::from_secs(1)..=FORGET_MAX).contains(&d) {
            return Some(d);
        }
        cx.error(
            p("forget_after"),
            format!("must be from 1s to 3650d, got `{}`", raw.0.trim()),
        );
        None
    });
    Checked {
        forget_after,
        interval,
        timeout,
        concurrency,
        timezone,
        stale_after,
        max_body_bytes,
        max_jobs_per_target,
        job_status,
        ok: cx.errors.len() == errors_before,
    }
}

impl Checked {
    /// The merge step: these keys laid over `base`; `stale_after` still unresolved.
    fn onto(&self, base: &Defaults) -> Defaults {
        let b = &base.settings;
        Defaults {
            settings: Settings {
                interval: self.interval.unwrap_or(b.interval),
                timeout: self.timeout.unwrap_or(b.timeout),
                concurrency: self.concurrency.unwrap_or(b.concurrency),
                timezone: self.timezone.unwrap_or(b.timezone),
                timezone_set: self.timezone.is_some() || b.timezone_set,
                stale_after: b.stale_after,
                max_body_bytes: self.max_body_bytes.unwrap_or(b.max_body_bytes),
                max_jobs_per_target: self.max_jobs_per_target.unwrap_or(b.max_jobs_per_target),
                job_status: self.job_status.unwrap_or(b.job_status),
                forget_after: self.forget_after.unwrap_or(b.forget_after),
            },
            stale_after: self.stale_after.unwrap_or(base.stale_after),
            forget_set: self.forget_after.is_some() || base.forget_set,
        }
    }
}

fn stale_after(cx: &mut Cx<'_>, path: &str, raw: &RawDuration) -> Option<StaleAfter> {
    let text = raw.0.trim();
    if let Some(n) = text.strip_suffix(['x', 'X']) {
        return match n.trim().parse::<u32>() {
            Ok(n) if STALE_INTERVALS.contains(&n) => Some(StaleAfter::Intervals(n)),
            Ok(n) if n >= 1 => {
                cx.error(
                    path,
                    format!(
                        "must be from {}x to {}x, got `{text}`",
                        STALE_INTERVALS.start(),
                        STALE_INTERVALS.end()
                    ),
                );
                None
            }
            _ => {
                cx.error(
                    path,
                    format!("invalid stale_after `{text}`: expected Nx with a whole N >= 1 (like 3x) or a duration"),
                );
                None
            }
        };
    }
    match humantime::parse_duration(text) {
        Ok(d) if d > STALE_MAX => {
            cx.error(
                path,
                format!(
                    "must be at most {} (or {}x to {}x), got `{text}`",
                    humantime::format_duration(STALE_MAX),
                    STALE_INTERVALS.start(),
                    STALE_INTERVALS.end()
                ),
            );
            None
        }
        Ok(d) => Some(StaleAfter::Fixed(d)),
        Err(e) => {
            cx.error(
                path,
                format!("invalid stale_after `{text}`: {e} (expected Nx like 3x, or a duration like 5m)"),
            );
            None
        }
    }
}

fn resolve_stale(stale: StaleAfter, interval: Duration) -> Result<Duration, String> {
    match stale {
        StaleAfter::Intervals(n) => interval
            .checked_mul(n)
            .ok_or_else(|| format!("stale_after {n}x the interval is too long")),
        StaleAfter::Fixed(d) if d < interval => Err(format!(
            "stale_after {} is shorter than the interval {}",
            humantime::format_duration(d),
            humantime::format_duration(interval)
        )),
        StaleAfter::Fixed(d) => Ok(d),
    }
}

/// `forget_after` keeps what `stale_after` drops: it may not be shorter. Unset, it grows to
/// a longer `stale_after`.
fn forget_fits(settings: &mut Settings, set: bool) -> Result<(), String> {
    if !set {
        settings.forget_after = settings.forget_after.max(settings.stale_after);
    }
    if settings.forget_after < settings.stale_after {
        return Err(format!(
            "forget_after {} is shorter than stale_after {}",
            humantime::format_duration(settings.forget_after),
            humantime::format_duration(settings.stale_after)
        ));
    }
    Ok(())
}

/// Validates `defaults`, keeping the built-in value for any invalid key.
pub fn defaults(cx: &mut Cx<'_>, raw: &RawSettings) -> Defaults {
    let checked = check(cx, "defaults", raw);
    let mut defaults = checked.onto(&Defaults::default());
    match resolve_stale(defaults.stale_after, defaults.settings.interval) {
        Ok(d) => {
            defaults.settings.stale_after = d;
            if let Err(message) = forget_fits(&mut defaults.settings, defaults.forget_set) {
                let key = if checked.forget_after.is_some() {
                    "forget_after"
                } else {
                    "stale_after"
                };
                cx.error(join("defaults", key), message);
                defaults.settings.forget_after = defaults.settings.stale_after;
            }
        }
        Err(message) => {
            let key = if checked.stale_after.is_some() {
                "stale_after"
            } else {
                "interval"
            };
            cx.error(join("defaults", key), message);
        }
    }
    defaults
}

/// An upstream's settings: its own keys over `defaults` (`None` when `defaults` could not
/// be read, or a key is invalid).
pub fn upstream(
    cx: &mut Cx<'_>,
    path: &str,
    raw: &RawSettings,
    defaults: Option<&Defaults>,
) -> Option<Settings> {
    let checked = check(cx, path, raw);
    let base = defaults.cloned().unwrap_or_default();
    let Defaults {
        mut settings,
        stale_after,
        forget_set,
    } = checked.onto(&base);
    let mut ok = checked.ok && defaults.is_some();
    // Which key a stale_after that does not fit the interval is reported under.
    let stale = match (&raw.stale_after, checked.stale_after) {
        (Some(_), None) => None,
        (Some(_), Some(own)) => Some((own, "stale_after")),
        (None, _) => defaults.map(|_| (stale_after, "interval")),
    };
    match stale {
        Some((stale, key)) => match resolve_stale(stale, settings.interval) {
            Ok(d) => {
                settings.stale_after = d;
                if let Err(message) = forget_fits(&mut settings, forget_set) {
                    // Reported where it was set here; inherited as it was, under defaults.
                    let key = [
                        ("forget_after", raw.forget_after.is_some()),
                        ("stale_after", raw.stale_after.is_some()),
                        ("interval", raw.interval.is_some()),
                    ]
                    .into_iter()
                    .find(|(_, set)| *set);
                    if let Some((key, _)) = key {
                        cx.error(join(path, key), message);
                    }
                    ok = false;
                }
            }
            Err(message) => {
                // Inherited with the interval it was set with: reported under defaults.
                if raw.stale_after.is_some() || raw.interval.is_some() {
                    cx.error(join(path, key), message);
                }
                ok = false;
            }
        },
        None => ok = false,
    }
    ok.then_some(settings)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn raw(yaml: &str) -> RawSettings {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn with_cx<T>(f: impl FnOnce(&mut Cx<'_>) -> T) -> (T, Vec<String>) {
        let env = |_: &str| None;
        let mut cx = Cx {
            errors: Vec::new(),
            base_dir: Path::new("."),
            env: &env,
            skip_secrets: false,
        };
        let out = f(&mut cx);
        (out, cx.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn keys_list_every_field() {
        let all = KEYS
            .iter()
            .map(|k| {
                let v = match *k {
                    "concurrency" | "max_jobs_per_target" => "1",
                    "max_body_bytes" => "1024",
                    "timezone" => "UTC",
                    "job_status" => "active",
                    "forget_after" => "2s",
                    _ => "1s",
                };
                format!("{k}: {v}")
            })
            .collect::<Vec<_>>()
            .join("\n");
        // Exhaustive: a new field fails to compile here until KEYS and this test know it.
        let RawSettings {
            interval,
            timeout,
            concurrency,
            timezone,
            stale_after,
            max_body_bytes,
            max_jobs_per_target,
            job_status,
            forget_after,
        } = raw(&all);
        assert!(interval.is_some() && timeout.is_some() && concurrency.is_some());
        assert!(timezone.is_some() && stale_after.is_some() && max_body_bytes.is_some());
        assert!(max_jobs_per_target.is_some() && job_status.is_some());
        assert!(forget_after.is_some());
    }

    #[test]
    fn built_in_defaults() {
        let (d, errors) = with_cx(|cx| defaults(cx, &RawSettings::default()));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.settings, Settings::default());
        assert_eq!(d.stale_after, StaleAfter::Intervals(3));
    }

    #[test]
    fn one_validator_for_defaults_and_upstreams() {
        let bad = raw("interval: 0s\ntimeout: soon\nconcurrency: 0\ntimezone: Mars/Olympus\nstale_after: 0x\nmax_body_bytes: 0\nmax_jobs_per_target: 0");
        let (_, under_defaults) = with_cx(|cx| defaults(cx, &bad));
        let (s, under_upstream) =
            with_cx(|cx| upstream(cx, "upstreams[2]", &bad, Some(&Defaults::default())));
        assert_eq!(s, None);
        assert_eq!(under_defaults.len(), 7, "{under_defaults:?}");
        let renamed: Vec<String> = under_defaults
            .iter()
            .map(|e| e.replacen("defaults.", "upstreams[2].", 1))
            .collect();
        assert_eq!(renamed, under_upstream);
    }

    #[test]
    fn upstream_keys_override_defaults_and_stale_follows_the_interval() {
        let (d, errors) = with_cx(|cx| {
            defaults(
                cx,
                &raw("interval: 1m\nstale_after: 4x\ntimezone: Asia/Seoul"),
            )
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.settings.stale_after, Duration::from_secs(240));
        let (s, errors) =
            with_cx(|cx| upstream(cx, "u", &raw("interval: 10s\nconcurrency: 2"), Some(&d)));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            s,
            Some(Settings {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(10),
                concurrency: 2,
                timezone: chrono_tz::Asia::Seoul,
                timezone_set: true,
                stale_after: Duration::from_secs(40),
                max_body_bytes: 16 * 1024 * 1024,
                max_jobs_per_target: 10_000,
                job_status: crate::model::JobStatusSeries::StateSet,
                forget_after: DEFAULT_FORGET_AFTER,
            })
        );
    }

    #[test]
    fn forget_after_is_a_duration_no_shorter_than_stale_after() {
        let (d, errors) = with_cx(|cx| defaults(cx, &raw("forget_after: 2h")));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.settings.forget_after, Duration::from_secs(7200));
        let (s, errors) =
            with_cx(|cx| upstream(cx, "upstreams[0]", &raw("forget_after: 5s"), Some(&d)));
        assert_eq!(
            errors,
            ["upstreams[0].forget_after: forget_after 5s is shorter than stale_after 1m 30s"]
        );
        assert_eq!(s, None);
        // A longer interval makes the inherited stale_after too long for it.
        let (_, errors) =
            with_cx(|cx| upstream(cx, "upstreams[1]", &raw("interval: 1h"), Some(&d)));
        assert_eq!(
            errors,
            ["upstreams[1].interval: forget_after 2h is shorter than stale_after 3h"]
        );
        // Unset, it follows a stale_after longer than its default.
        let (d, errors) = with_cx(|cx| defaults(cx, &raw("interval: 24h\nstale_after: 40x")));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.settings.forget_after, Duration::from_secs(40 * 24 * 3600));
        let (_, errors) = with_cx(|cx| defaults(cx, &raw("forget_after: 3651d")));
        assert_eq!(
            errors,
            ["defaults.forget_after: must be from 1s to 3650d, got `3651d`"]
        );
        let (_, errors) = with_cx(|cx| defaults(cx, &raw("stale_after: 1h\nforget_after: 59m")));
        assert_eq!(
            errors,
            ["defaults.forget_after: forget_after 59m is shorter than stale_after 1h"]
        );
    }

    #[test]
    fn a_short_stale_after_is_reported_once_where_it_is_set() {
        let (d, errors) = with_cx(|cx| defaults(cx, &raw("interval: 1m\nstale_after: 30s")));
        assert_eq!(
            errors,
            ["defaults.stale_after: stale_after 30s is shorter than the interval 1m"]
        );
        // Inherited as it was: not reported again, but the upstream is not resolved.
        let (s, errors) = with_cx(|cx| upstream(cx, "u", &raw("timeout: 1s"), Some(&d)));
        assert_eq!((s, errors.len()), (None, 0));
        // With the upstream's own interval it fits.
        let (s, errors) = with_cx(|cx| upstream(cx, "u", &raw("interval: 10s"), Some(&d)));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.map(|s| s.stale_after), Some(Duration::from_secs(30)));
        // With a longer one the upstream's interval is the problem.
        let (_, errors) = with_cx(|cx| upstream(cx, "u", &raw("interval: 2m"), Some(&d)));
        assert_eq!(
            errors,
            ["u.interval: stale_after 30s is shorter than the interval 2m"]
        );
    }

    #[test]
    fn unreadable_defaults_leave_upstreams_unresolved() {
        let (s, errors) = with_cx(|cx| upstream(cx, "u", &raw("interval: 10s"), None));
        assert_eq!((s, errors.len()), (None, 0));
    }

    #[test]
    fn stale_multiplier_follows_the_upstream_interval() {
        let env = |name: &str| (name == "ZDM_TOKEN").then(|| "t".to_owned());
        let yaml = "defaults: {stale_after: 4x}\nupstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x], interval: 10s}]";
        let c = crate::config::parse(yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.upstreams[0].settings.stale_after, Duration::from_secs(40));
    }

    #[test]
    fn every_bound_is_inclusive_and_crossing_it_is_reported() {
        let at_bounds = [
            "interval: 100ms\nstale_after: 1000x",
            "interval: 24h\nstale_after: 30d",
            "timeout: 100ms\nconcurrency: 1\nmax_body_bytes: 1024\nmax_jobs_per_target: 1",
            "timeout: 5m\nconcurrency: 1024\nmax_body_bytes: 1073741824\nmax_jobs_per_target: 1000000",
            "interval: 1h\nstale_after: 1h",
        ];
        for yaml in at_bounds {
            let (_, errors) = with_cx(|cx| defaults(cx, &raw(yaml)));
            assert!(errors.is_empty(), "{yaml}: {errors:?}");
        }
        let crossed = [
            (
                "interval: 99ms",
                "defaults.interval: must be from 100ms to 1day, got `99ms`",
            ),
            (
                "interval: 24h 1s",
                "defaults.interval: must be from 100ms to 1day, got `24h 1s`",
            ),
            (
                "timeout: 99ms",
                "defaults.timeout: must be from 100ms to 5m, got `99ms`",
            ),
            (
                "timeout: 301s",
                "defaults.timeout: must be from 100ms to 5m, got `301s`",
            ),
            (
                "concurrency: 1025",
                "defaults.concurrency: must be from 1 to 1024, got 1025",
            ),
            (
                "stale_after: 1001x",
                "defaults.stale_after: must be from 1x to 1000x, got `1001x`",
            ),
            (
                "stale_after: 30d 1s",
                "defaults.stale_after: must be at most 30days (or 1x to 1000x), got `30d 1s`",
            ),
            (
                "max_body_bytes: 1023",
                "defaults.max_body_bytes: must be from 1024 to 1073741824, got 1023",
            ),
            (
                "max_body_bytes: 1073741825",
                "defaults.max_body_bytes: must be from 1024 to 1073741824, got 1073741825",
            ),
            (
                "max_jobs_per_target: 1000001",
                "defaults.max_jobs_per_target: must be from 1 to 1000000, got 1000001",
            ),
        ];
        for (yaml, want) in crossed {
            let (d, errors) = with_cx(|cx| defaults(cx, &raw(yaml)));
            assert_eq!(errors, [want], "{yaml}");
            // The built-in value stands in, so upstreams can still be checked.
            assert_eq!(d.settings, Settings::default(), "{yaml}");
        }
    }

    #[test]
    fn the_longest_schedule_cannot_overflow() {
        let (d, errors) = with_cx(|cx| defaults(cx, &raw("interval: 24h\nstale_after: 1000x")));
        assert!(errors.is_empty(), "{errors:?}");
        let s = d.settings;
        assert_eq!(s.stale_after, Duration::from_secs(1000 * 24 * 3600));
        // What the poller and the store compute from them.
        assert!(s.interval.checked_mul(u32::MAX).is_some());
        assert!(std::time::Instant::now()
            .checked_add(s.stale_after + s.interval + s.timeout)
            .is_some());
    }

    /// The README's "Bounds" table says what the code enforces.
    #[test]
    fn the_readme_lists_these_bounds() {
        let table = readme_bounds();
        let duration = |s: &str| humantime::parse_duration(s).unwrap();
        let ends = bounds_of(table, "`interval`");
        assert_eq!(duration(&ends[0])..=duration(&ends[1]), INTERVAL);
        let ends = bounds_of(table, "`timeout`");
        assert_eq!(duration(&ends[0])..=duration(&ends[1]), TIMEOUT);
        let ends = bounds_of(table, "`concurrency`");
        assert_eq!(
            ends[0].parse().unwrap()..=ends[1].parse().unwrap(),
            CONCURRENCY
        );
        let ends = bounds_of(table, "`stale_after`");
        let n = |s: &str| s.trim_end_matches('x').parse::<u32>().unwrap();
        assert_eq!(n(&ends[0])..=n(&ends[1]), STALE_INTERVALS);
        assert_eq!(duration(&ends[2]), STALE_MAX);
        let ends = bounds_of(table, "`max_body_bytes`");
        assert_eq!(
            ends[0].parse().unwrap()..=ends[1].parse().unwrap(),
            MAX_BODY_BYTES
        );
        let ends = bounds_of(table, "`max_jobs_per_target`");
        assert_eq!(
            ends[0].parse().unwrap()..=ends[1].parse().unwrap(),
            MAX_JOBS_PER_TARGET
        );
        let defaults = Settings::default();
        for (key, default) in [
            (
                "interval",
                format!("`{}`", humantime::format_duration(defaults.interval)),
            ),
            ("concurrency", format!("`{}`", defaults.concurrency)),
            (
                "max_jobs_per_target",
                format!("`{}`", defaults.max_jobs_per_target),
            ),
        ] {
            assert!(
                table.contains(&format!("| `{key}` | {default} |")),
                "README Bounds: default of {key}"
            );
        }
    }

    /// The "Bounds" section of the README.
    fn readme_bounds() -> &'static str {
        include_str!("../../README.md")
            .split("### Bounds")
            .nth(1)
            .expect("a Bounds section in README.md")
    }

    /// The backquoted values of the "allowed" column of `key`'s row.
    fn bounds_of(table: &str, key: &str) -> Vec<String> {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {key} |")))
            .unwrap_or_else(|| panic!("no Bounds row for {key}"));
        let cell = row.split('|').nth(3).unwrap_or_default();
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }
}

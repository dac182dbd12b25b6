//! Normalization of the loosely formatted fields upstream APIs send: percentages,
//! durations and timestamps (status words: [`crate::status`]).
//!
//! Every function here is pure and total: any input string yields a value, `None`
//! (the API said "absent", e.g. `"-"`) or a [`ParseError`], never a panic.

use std::fmt::Write as _;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone};

/// A field value that could not be parsed: what was expected, and the input
/// (truncated to 64 characters so a huge body cannot flood the logs).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid percent {input:?}: {reason}")]
    Percent { input: String, reason: &'static str },
    #[error("invalid duration {input:?}: {reason}")]
    Duration { input: String, reason: &'static str },
    #[error("invalid time {input:?}: {reason}")]
    Time { input: String, reason: &'static str },
    #[error("invalid size {input:?}: {reason}")]
    Size { input: String, reason: &'static str },
    #[error("local time {input:?} does not exist in time zone {tz} (skipped by a DST change)")]
    NonexistentLocalTime { input: String, tz: String },
}

const MAX_SHOWN_CHARS: usize = 64;

fn shown(raw: &str) -> String {
    crate::text::truncate(raw, MAX_SHOWN_CHARS)
}

/// A size as upstreams write it, `"2332 MB"`: a decimal and a unit among B, KB, MB, GB, TB
/// (powers of 1024; case-insensitive, `KiB`-style spellings too), into bytes.
pub fn parse_size(raw: &str) -> Result<Option<f64>, ParseError> {
    let s = raw.trim();
    if absent(s) {
        return Ok(None);
    }
    let err = |reason| ParseError::Size {
        input: shown(raw),
        reason,
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value = decimal(number).ok_or_else(|| err("expected a number"))?;
    let power = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "kb" | "kib" => 1,
        "mb" | "mib" => 2,
        "gb" | "gib" => 3,
        "tb" | "tib" => 4,
        _ => return Err(err("expected a unit among B, KB, MB, GB, TB")),
    };
    let bytes = value * 1024f64.powi(power);
    if !bytes.is_finite() {
        return Err(err("too large"));
    }
    Ok(Some(bytes))
}

/// `"-"` and `""` (after trimming) mean the API has no value.
fn absent(s: &str) -> bool {
    s.is_empty() || s == "-"
}

/// A plain decimal: digits with at most one `.`, at least one digit. Rejects the
/// exponents, signs, `inf` and `NaN` that `f64::from_str` would accept.
fn decimal(s: &str) -> Option<f64> {
    let mut digits = 0usize;
    let mut dots = 0usize;
    for c in s.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            _ => return None,
        }
    }
    if digits == 0 || dots > 1 {
        return None;
    }
    s.parse().ok()
}

/// `"45%"`, `"45"`, `"45.5 %"`, `"100%"` -> ratio in `0..=1`.
pub fn parse_percent(raw: &str) -> Result<Option<f64>, ParseError> {
    let s = raw.trim();
    if absent(s) {
        return Ok(None);
    }
    let err = |reason| ParseError::Percent {
        input: shown(raw),
        reason,
    };
    let number = s.strip_suffix('%').unwrap_or(s).trim_end();
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let value = decimal(digits)
        .ok_or_else(|| err("expected a number from 0 to 100, optionally followed by %"))?;
    if (negative && value != 0.0) || value > 100.0 {
        return Err(err("must be between 0 and 100"));
    }
    Ok(Some(value / 100.0))
}

/// Elapsed time in seconds from `HH:MM:SS` (hours may exceed 24), `MM:SS`,
/// `D.HH:MM:SS`, `D:HH:MM:SS` (seconds may carry a fraction), or ISO-8601 `PnDTnHnMnS`.
pub fn parse_duration(raw: &str) -> Result<Option<f64>, ParseError> {
    let s = raw.trim();
    if absent(s) {
        return Ok(None);
    }
    let err = |reason| ParseError::Duration {
        input: shown(raw),
        reason,
    };
    if s.starts_with('-') {
        return Err(err("must not be negative"));
    }
    let seconds = if s.starts_with(['P', 'p']) {
        iso_duration(s).map_err(err)?
    } else {
        clock_duration(s).map_err(err)?
    };
    if seconds.is_finite() {
        Ok(Some(seconds))
    } else {
        Err(err("too large"))
    }
}

const CLOCK_FORMS: &str =
    "expected HH:MM:SS, MM:SS, D.HH:MM:SS, D:HH:MM:SS or ISO-8601 like PT1H2M3S";

/// Whole number made of ASCII digits only.
fn whole(s: &str) -> Option<f64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn clock_duration(s: &str) -> Result<f64, &'static str> {
    let fields: Vec<&str> = s.split(':').collect();
    // (days, hours, minutes, seconds) as text; the first present field is unbounded.
    let (days, hours, minutes, secs) = match fields.as_slice() {
        [m, sec] => (None, None, *m, *sec),
        [h, m, sec] => match h.split_once('.') {
            Some((d, h)) => (Some(d), Some(h), *m, *sec),
            None => (None, Some(*h), *m, *sec),
        },
        [d, h, m, sec] => (Some(*d), Some(*h), *m, *sec),
        _ => return Err(CLOCK_FORMS),
    };
    let days = days.map(whole).map(|d| d.ok_or(CLOCK_FORMS)).transpose()?;
    let hours = hours.map(whole).map(|h| h.ok_or(CLOCK_FORMS)).transpose()?;
    let minutes = whole(minutes).ok_or(CLOCK_FORMS)?;
    let secs = decimal(secs)
        .filter(|_| secs.bytes().next().is_some_and(|b| b.is_ascii_digit()))
        .ok_or(CLOCK_FORMS)?;
    if days.is_some() && hours.is_some_and(|h| h >= 24.0) {
        return Err("hours must be below 24 when days are given");
    }
    if hours.is_some() && minutes >= 60.0 {
        return Err("minutes must be below 60");
    }
    if secs >= 60.0 {
        return Err("seconds must be below 60");
    }
    Ok(days.unwrap_or(0.0) * 86_400.0 + hours.unwrap_or(0.0) * 3_600.0 + minutes * 60.0 + secs)
}

/// ISO-8601 duration: `P[nW][nD][T[nH][nM][nS]]`, any component may be fractional
/// (`.` or `,`). Years and months are refused: they have no fixed length.
fn iso_duration(s: &str) -> Result<f64, &'static str> {
    const ISO_FORM: &str = "expected an ISO-8601 duration like PT1H2M3S or P1DT2H";
    const DATE_UNITS: &[(char, f64)] = &[('W', 604_800.0), ('D', 86_400.0)];
    const TIME_UNITS: &[(char, f64)] = &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)];
    let upper = s.to_ascii_uppercase();
    let body = upper.strip_prefix('P').ok_or(ISO_FORM)?;
    let (date, time) = match body.split_once('T') {
        Some((_, "")) => return Err(ISO_FORM),
        Some((date, time)) => (date, time),
        None => (body, ""),
    };
    let mut total = 0.0;
    let mut components = 0;
    for (section, units) in [(date, DATE_UNITS), (time, TIME_UNITS)] {
        let mut rest = section;
        // Units must appear largest first, each at most once.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| c.is_ascii_alphabetic())
                .ok_or(ISO_FORM)?;
            let (number, tail) = rest.split_at(end);
            let unit = tail.chars().next().ok_or(ISO_FORM)?;
            if unit == 'Y' || (unit == 'M' && units == DATE_UNITS) {
                return Err("years and months have no fixed length");
            }
            let position = units
                .get(next_unit..)
                .and_then(|later| later.iter().position(|(u, _)| *u == unit))
                .ok_or(ISO_FORM)?;
            let factor = units.get(next_unit + position).map_or(0.0, |(_, f)| *f);
            next_unit += position + 1;
            total += decimal(&number.replace(',', ".")).ok_or(ISO_FORM)? * factor;
            components += 1;
            rest = tail.get(unit.len_utf8()..).unwrap_or("");
        }
    }
    if components == 0 {
        return Err(ISO_FORM);
    }
    Ok(total)
}

/// Formats seconds as `HH:MM:SS` or, from one day on, `D.HH:MM:SS`, with up to seven
/// fraction digits (100 ns, the precision upstreams send); [`parse_duration`] reads it back.
/// Negative or non-finite input has no duration to show and formats as `"-"`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    const TICKS: u128 = 10_000_000;
    // Saturates for absurd inputs (> 10^31 s) instead of panicking.
    let ticks = (seconds * TICKS as f64).round() as u128;
    let fraction = ticks % TICKS;
    let total = ticks / TICKS;
    let (days, rem) = (total / 86_400, total % 86_400);
    let (h, m, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    let mut out = String::new();
    if days > 0 {
        let _ = write!(out, "{days}.");
    }
    let _ = write!(out, "{h:02}:{m:02}:{s:02}");
    if fraction > 0 {
        let digits = format!("{fraction:07}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out
}

/// Unix time in seconds (fraction kept) from RFC 3339 (`Z` or an offset), or from
/// `YYYY-MM-DD HH:MM:SS[.f]` / `YYYY-MM-DDTHH:MM:SS[.f]` read in `tz`. An ambiguous
/// local time (DST fall-back) takes the earlier instant; a skipped one is an error.
pub fn parse_time(raw: &str, tz: chrono_tz::Tz) -> Result<Option<f64>, ParseError> {
    let s = raw.trim();
    if absent(s) {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(unix_seconds(&t)));
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .ok_or_else(|| ParseError::Time {
            input: shown(raw),
            reason: "expected RFC 3339 (2025-01-15T02:00:00Z) or YYYY-MM-DD HH:MM:SS",
        })?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(Some(unix_seconds(&t))),
        LocalResult::Ambiguous(a, b) => Ok(Some(unix_seconds(&a).min(unix_seconds(&b)))),
        LocalResult::None => Err(ParseError::NonexistentLocalTime {
            input: shown(raw),
            tz: tz.name().to_owned(),
        }),
    }
}

/// A calendar date `YYYY-MM-DD` as the Unix time of its first instant in `tz` (a day
/// that begins in a DST gap begins at the gap's end); anything else as [`parse_time`].
pub fn parse_date(raw: &str, tz: chrono_tz::Tz) -> Result<Option<f64>, ParseError> {
    let s = raw.trim();
    let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") else {
        return parse_time(raw, tz);
    };
    // Days begin at midnight, or (in a zone that skips midnight) within the next hours.
    for hour in 0..4 {
        let Some(start) = date.and_hms_opt(hour, 0, 0) else {
            break;
        };
        match tz.from_local_datetime(&start) {
            LocalResult::Single(t) => return Ok(Some(unix_seconds(&t))),
            LocalResult::Ambiguous(a, b) => {
                return Ok(Some(unix_seconds(&a).min(unix_seconds(&b))))
            }
            LocalResult::None => {}
        }
    }
    Err(ParseError::NonexistentLocalTime {
        input: shown(raw),
        tz: tz.name().to_owned(),
    })
}

fn unix_seconds<Z: TimeZone>(t: &DateTime<Z>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seoul() -> chrono_tz::Tz {
        chrono_tz::Asia::Seoul
    }

    #[test]
    fn percent_table() {
        let ok: &[(&str, Option<f64>)] = &[
            ("45%", Some(0.45)),
            ("45", Some(0.45)),
            ("45.5 %", Some(0.455)),
            ("100%", Some(1.0)),
            ("0%", Some(0.0)),
            ("0", Some(0.0)),
            (" 7 % ", Some(0.07)),
            ("+5%", Some(0.05)),
            ("-0%", Some(0.0)),
            (".5%", Some(0.005)),
            ("99.", Some(0.99)),
            ("-", None),
            ("", None),
            ("  -  ", None),
        ];
        for (input, want) in ok {
            let got = parse_percent(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{input:?}: {g} != {w}"),
                (g, w) => assert_eq!(g, *w, "{input:?}"),
            }
        }
        for bad in [
            "-1%", "100.1%", "101", "abc", "NaN", "inf", "1e2", "45%%", "%", "4 5%", "1.2.3",
            "45,5%", ".",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad:?} should fail");
        }
        let e = parse_percent("150%").unwrap_err().to_string();
        assert!(
            e.contains("\"150%\"") && e.contains("between 0 and 100"),
            "{e}"
        );
    }

    #[test]
    fn duration_table() {
        let ok: &[(&str, f64)] = &[
            ("00:30:00", 1800.0),
            ("00:15:00", 900.0),
            ("27:03:10", 97_390.0),
            ("1.02:03:04.5", 93_784.5),
            ("1:02:03:04.5", 93_784.5),
            ("1:02:03:04", 93_784.0),
            ("00:20:23.0896697", 1223.0896697),
            ("05:30", 330.0),
            ("90:30", 5430.0),
            ("0:00", 0.0),
            ("100:00:00", 360_000.0),
            ("PT1H2M3S", 3723.0),
            ("PT12.42S", 12.42),
            ("P1DT2H", 93_600.0),
            ("P1D", 86_400.0),
            ("P1W", 604_800.0),
            ("PT0.5H", 1800.0),
            ("PT1,5M", 90.0),
            ("PT90M", 5400.0),
            ("pt1h", 3600.0),
            ("P0D", 0.0),
            (" 00:00:01 ", 1.0),
        ];
        for (input, want) in ok {
            let got = parse_duration(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got = got.unwrap_or_else(|| panic!("{input:?} gave None"));
            assert!((got - want).abs() < 1e-9, "{input:?}: {got} != {want}");
        }
        assert_eq!(parse_duration("-"), Ok(None));
        assert_eq!(parse_duration(" "), Ok(None));
        for bad in [
            "-00:00:01",
            "00:60:00",
            "00:00:60",
            "1.24:00:00",
            "1:24:00:00",
            "10",
            "1:2:3:4:5",
            "::",
            "00::00",
            "aa:bb:cc",
            "00:00:.5",
            "+00:00:01",
            "1 day",
            "P",
            "PT",
            "P1Y",
            "P1M",
            "PT1H1H",
            "PT1S1M",
            "P1DT",
            "PTS",
            "PT1.2.3S",
            "P1H",
            "-PT1S",
            "00:00:1e1",
            "１:00:00",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        let e = parse_duration("half an hour").unwrap_err().to_string();
        assert!(
            e.contains("\"half an hour\"") && e.contains("HH:MM:SS"),
            "{e}"
        );
    }

    #[test]
    fn format_duration_table() {
        for (seconds, want) in [
            (0.0, "00:00:00"),
            (1800.0, "00:30:00"),
            (97_390.0, "1.03:03:10"),
            (93_784.5, "1.02:03:04.5"),
            (1223.0896697, "00:20:23.0896697"),
            (59.99999999, "00:01:00"),
            (-1.0, "-"),
            (f64::NAN, "-"),
            (f64::INFINITY, "-"),
        ] {
            assert_eq!(format_duration(seconds), want, "{seconds}");
        }
        // Saturates rather than panicking.
        let _ = format_duration(f64::MAX);
    }

    #[test]
    fn time_table() {
        let utc = chrono_tz::UTC;
        let ok: &[(&str, chrono_tz::Tz, f64)] = &[
            ("2025-01-15T02:00:00Z", utc, 1_736_906_400.0),
            ("2025-01-15T02:00:00Z", seoul(), 1_736_906_400.0),
            ("2025-01-15 02:00:00", seoul(), 1_736_874_000.0),
            ("2025-01-15T02:00:00", seoul(), 1_736_874_000.0),
            ("2025-01-15 02:00:00", utc, 1_736_906_400.0),
            ("2025-01-15T11:00:00+09:00", utc, 1_736_906_400.0),
            ("2025-01-15T02:00:00.25Z", utc, 1_736_906_400.25),
            ("2025-01-15 02:00:00.5", utc, 1_736_906_400.5),
            ("2018-05-21T08:35:40.9488967Z", utc, 1_526_891_740.948_896_7),
            ("2018-05-21T08:35:40.948896789Z", utc, 1_526_891_740.948_897),
            (" 2025-01-15T02:00:00z ", utc, 1_736_906_400.0),
            ("2025-01-15 02:00:00Z", seoul(), 1_736_906_400.0),
            ("2025-01-15 11:00:00+09:00", utc, 1_736_906_400.0),
            // DST fall-back in New York: 01:30 happens twice, the earlier (EDT) wins.
            (
                "2024-11-03 01:30:00",
                chrono_tz::America::New_York,
                1_730_611_800.0,
            ),
        ];
        for (input, tz, want) in ok {
            let got = parse_time(input, *tz).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got = got.unwrap_or_else(|| panic!("{input:?} gave None"));
            assert!((got - want).abs() < 1e-6, "{input:?}: {got} != {want}");
        }
        assert_eq!(parse_time("-", utc), Ok(None));
        assert_eq!(parse_time("", utc), Ok(None));
        for bad in [
            "2025-01-15",
            "2025-13-01 00:00:00",
            "2025-01-15 25:00:00",
            "yesterday",
            "1736906400",
            "2025-01-15T02:00Z",
            "2025-02-30T00:00:00Z",
        ] {
            assert!(parse_time(bad, utc).is_err(), "{bad:?} should fail");
        }
        // DST spring-forward in New York: 02:30 never happens.
        let e = parse_time("2024-03-10 02:30:00", chrono_tz::America::New_York).unwrap_err();
        assert!(matches!(e, ParseError::NonexistentLocalTime { .. }), "{e}");
        assert!(e.to_string().contains("America/New_York"), "{e}");
    }

    #[test]
    fn error_input_is_truncated() {
        let long = "x".repeat(1000);
        let e = parse_duration(&long).unwrap_err().to_string();
        assert!(e.len() < 250, "{e}");
        assert!(
            e.contains(&"x".repeat(64)) && !e.contains(&"x".repeat(65)),
            "{e}"
        );
        // Truncation respects char boundaries.
        let korean = "완".repeat(100);
        assert!(parse_percent(&korean).is_err());
    }

    #[test]
    fn size_table() {
        let ok: &[(&str, f64)] = &[
            ("2332 MB", 2332.0 * 1024.0 * 1024.0),
            ("0 B", 0.0),
            ("1.5 GB", 1.5 * 1024.0 * 1024.0 * 1024.0),
            ("10KB", 10240.0),
            ("2 TiB", 2.0 * 1024f64.powi(4)),
            ("512", 512.0),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input), Ok(Some(*want)), "{input}");
        }
        for absent in ["-", "", "  "] {
            assert_eq!(parse_size(absent), Ok(None));
        }
        for bad in ["MB", "12 PB", "-3 MB", "1e3 MB", "a lot"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = parse_size(&s);
            let _ = parse_percent(&s);
            let _ = parse_duration(&s);
            let _ = parse_time(&s, seoul());
        }

        #[test]
        fn parsers_never_panic_on_lookalikes(s in "[-+PTDHMSWpt0-9:., %Z]{0,24}") {
            let _ = parse_percent(&s);
            let _ = parse_duration(&s);
            let _ = parse_time(&s, seoul());
        }

        #[test]
        fn duration_round_trips(millis in 0u64..=10_000_000_000) {
            let seconds = millis as f64 / 1000.0;
            let text = format_duration(seconds);
            let back = parse_duration(&text).unwrap().unwrap();
            prop_assert!((back - seconds).abs() <= 1e-6 * seconds.max(1.0), "{} -> {} -> {}", seconds, text, back);
        }

        #[test]
        fn percent_round_trips(hundredths in 0u32..=10_000) {
            let percent = f64::from(hundredths) / 100.0;
            let back = parse_percent(&format!("{percent}%")).unwrap().unwrap();
            prop_assert!((back - percent / 100.0).abs() < 1e-12);
            let back = parse_percent(&format!("{percent}")).unwrap().unwrap();
            prop_assert!((back - percent / 100.0).abs() < 1e-12);
        }

        #[test]
        fn time_round_trips(secs in -2_000_000_000i64..4_000_000_000, nanos in 0u32..1_000_000_000, offset_min in -720i32..=840) {
            let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
            let t = DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&offset);
            for format in [chrono::SecondsFormat::AutoSi, chrono::SecondsFormat::Secs] {
                let text = t.to_rfc3339_opts(format, true);
                let back = parse_time(&text, seoul()).unwrap().unwrap();
                let want = if format == chrono::SecondsFormat::Secs { secs as f64 } else { unix_seconds(&t) };
                prop_assert!((back - want).abs() < 1e-5, "{} -> {} != {}", text, back, want);
            }
        }
    }

    #[test]
    fn date_table() {
        assert_eq!(
            parse_date("2026-01-01", chrono_tz::UTC),
            Ok(Some(1_767_225_600.0))
        );
        assert_eq!(
            parse_date("2026-01-01", seoul()),
            Ok(Some(1_767_225_600.0 - 9.0 * 3600.0))
        );
        assert_eq!(parse_date(" - ", seoul()), Ok(None));
        assert_eq!(parse_date("", seoul()), Ok(None));
        assert_eq!(
            parse_date("2026-01-01 10:00:00", chrono_tz::UTC),
            Ok(Some(1_767_261_600.0))
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "01/01/2026",
            "tomorrow",
            "2026-1-1x",
        ] {
            assert!(parse_date(bad, seoul()).is_err(), "{bad}");
        }
        // Midnight skipped by DST (America/Santiago, 2022-09-11): the day starts at 01:00.
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(
            parse_date("2022-09-11", santiago),
            Ok(Some(1_662_868_800.0))
        );
    }

    proptest! {
        #[test]
        fn date_never_panics(s in "\\PC{0,40}") {
            let _ = parse_date(&s, seoul());
        }

        #[test]
        fn every_calendar_date_is_its_utc_midnight(days in -100_000i64..100_000) {
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = date.format("%Y-%m-%d").to_string();
            prop_assert_eq!(parse_date(&text, chrono_tz::UTC), Ok(Some((days * 86_400) as f64)));
        }
    }
}

//! Property tests over arbitrary bytes for every decoder a hostile config file, web config or
//! upstream can reach through the public API: each answers `Ok` or an error, never panics,
//! and what it accepts stays in range. (The upstream JSON of each system is fuzzed beside
//! its private decoders, in `src/sources/{zdm,scp,azure}.rs`.)

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use backup_exporter::config;
use backup_exporter::http::retry_after;
use backup_exporter::parse::{format_duration, parse_duration, parse_percent, parse_time};
use backup_exporter::status::{normalize_status, parse_status, Status, StatusMap};
use backup_exporter::web::WebConfig;
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Valid configs that mutations start from: the shipped examples and the test data.
const CONFIG_SEEDS: &[&str] = &[
    include_str!("../config/zdm.yaml"),
    include_str!("../config/scp.yaml"),
    include_str!("../config/azure.yaml"),
    include_str!("../config/backup-exporter.yaml"),
    include_str!("data/valid-all-systems.yaml"),
    include_str!("data/valid-zdm.yaml"),
];

/// Values a hostile or careless config may hold where a number, duration or name belongs.
const HOSTILE_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "0.5",
    ".nan",
    ".inf",
    "-.inf",
    "0x7fffffff",
    "1_000",
    "0s",
    "1ns",
    "18446744073709551615s",
    "584942417356y",
    "9999999999999999h",
    "0x",
    "1000000000x",
    "-3x",
    "~",
    "null",
    "[]",
    "{}",
    "''",
    "\"\\0\"",
    "*undefined",
    "&a [*a, *a]",
    "!!binary aGk=",
    "!!float 1",
    "|\n  multi\n  line",
    "'",
    "\"",
    "\"\\ud800\"",
    "\u{202e}evil",
    "\u{0}",
    "http://",
    "http://[::1",
    "http://user:pass@h",
    "ftp://h",
    "/dev/null",
    "Mars/Olympus_Mons",
    "verifying: nonsense",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    ReplaceValue { line: usize, value: String },
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent { line: usize, spaces: usize },
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(HOSTILE_VALUES).prop_map(str::to_string),
        2 => "[0-9]{1,40}",
        2 => "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|y|x)",
        1 => any::<String>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (
            any::<usize>(),
            prop_oneof![hostile_value(), "[ :\\-\\[\\]{}&*!|>'\"#,\n\t]{1,4}"]
        )
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), hostile_value())
            .prop_map(|(line, value)| Mutation::ReplaceValue { line, value }),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..6).prop_map(|(line, spaces)| Mutation::Indent { line, spaces }),
    ]
}

/// Applies `mutations` to `text` on char boundaries and line structure.
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut s = text.to_string();
    for m in mutations {
        let chars: Vec<char> = s.chars().collect();
        let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
        match m {
            Mutation::Delete { at, len } if !chars.is_empty() => {
                let a = at % chars.len();
                let b = (a + len).min(chars.len());
                s = chars[..a].iter().chain(&chars[b..]).collect();
            }
            Mutation::Insert { at, text } => {
                let a = at % (chars.len() + 1);
                s = chars[..a]
                    .iter()
                    .copied()
                    .chain(text.chars())
                    .chain(chars[a..].iter().copied())
                    .collect();
            }
            Mutation::ReplaceValue { line, value } if !lines.is_empty() => {
                let i = line % lines.len();
                let l = &lines[i];
                lines[i] = if let Some(p) = l.find(": ") {
                    format!("{}: {value}", &l[..p])
                } else if let Some(p) = l.find("- ") {
                    format!("{}- {value}", &l[..p])
                } else {
                    value.clone()
                };
                s = lines.join("\n");
            }
            Mutation::DuplicateLine(line) if !lines.is_empty() => {
                let i = line % lines.len();
                lines.insert(i, lines[i].clone());
                s = lines.join("\n");
            }
            Mutation::SwapLines(a, b) if !lines.is_empty() => {
                let n = lines.len();
                lines.swap(a % n, b % n);
                s = lines.join("\n");
            }
            Mutation::Indent { line, spaces } if !lines.is_empty() => {
                let i = line % lines.len();
                lines[i] = format!("{}{}", " ".repeat(*spaces), lines[i].trim_start());
                s = lines.join("\n");
            }
            _ => {}
        }
    }
    s
}

fn config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

/// Every variable is set, so validation goes past the environment checks.
fn any_env(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| format!("value-of-{name}"))
}

/// `Ok` or a list of problems, each with a message; never a panic.
fn check_config(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), TestCaseError> {
    if let Err(errors) = config::parse(yaml, config_dir(), env) {
        prop_assert!(!errors.0.is_empty(), "an Err without a problem in it");
        for e in &errors.0 {
            prop_assert!(
                !e.message.is_empty(),
                "a problem without a message at {:?}",
                e.path
            );
        }
    }
    Ok(())
}

#[test]
fn every_config_seed_is_valid() {
    for (i, seed) in CONFIG_SEEDS.iter().enumerate() {
        let result = config::parse(seed, config_dir(), &any_env);
        assert!(result.is_ok(), "seed {i}: {:?}", result.err());
    }
}

/// A YAML alias bomb and deep nesting are refused without exhausting memory or the stack.
/// (Nesting is kept at 10,000 levels here: the YAML scanner's time grows with the square of
/// the depth, about a minute at 100,000 levels in a debug build.)
#[test]
fn yaml_bombs_and_deep_nesting_in_a_config_are_errors() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb.push_str("upstreams: *a11\n");
    assert!(config::parse(&bomb, config_dir(), &any_env).is_err());
    let deep = format!("upstreams: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(config::parse(&deep, config_dir(), &any_env).is_err());
    let deep_map = format!("defaults: {}1{}", "{a: ".repeat(10_000), "}".repeat(10_000));
    assert!(config::parse(&deep_map, config_dir(), &any_env).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn config_parse_never_panics_on_arbitrary_text(yaml in any::<String>()) {
        check_config(&yaml, &any_env)?;
        check_config(&yaml, &|_| None)?;
    }

    #[test]
    fn config_parse_never_panics_on_yaml_like_text(
        yaml in "([a-z_]{1,12}:( [-a-z0-9.:/{}\\[\\],*&!|'\"]{0,16})?\n( {2,6}- ?)?){0,12}"
    ) {
        check_config(&yaml, &any_env)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn config_parse_never_panics_on_mutated_valid_configs(
        seed in prop::sample::select(CONFIG_SEEDS),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let yaml = mutate(seed, &mutations);
        check_config(&yaml, &any_env)?;
    }
}

// --- web config ---------------------------------------------------------------------------------

struct WebFixture {
    dir: tempfile::TempDir,
    cert_pem: String,
    key_pem: String,
    hash: String,
}

/// A temp dir with a valid certificate and key, and a cheap bcrypt hash, made once.
fn web_fixture() -> &'static WebFixture {
    static FIXTURE: OnceLock<WebFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_pem = cert.cert.pem();
        let key_pem = cert.signing_key.serialize_pem();
        std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();
        WebFixture {
            dir,
            cert_pem,
            key_pem,
            hash: bcrypt::hash("pw", 4).unwrap(),
        }
    })
}

fn web_seed() -> String {
    let f = web_fixture();
    format!(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: NoClientCert\n  min_version: TLS12\n  max_version: TLS13\nbasic_auth_users:\n  prometheus: {}\n  other: {}\n",
        f.hash, f.hash
    )
}

/// Writes `contents` to a fresh file next to the certificate and loads it.
fn load_web(contents: &[u8]) -> Result<(), TestCaseError> {
    let f = web_fixture();
    let file = tempfile::Builder::new()
        .suffix(".yml")
        .tempfile_in(f.dir.path())
        .unwrap();
    std::fs::write(file.path(), contents).unwrap();
    if let Err(e) = WebConfig::load(file.path()) {
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

#[test]
fn the_web_config_seed_is_valid() {
    let f = web_fixture();
    let path = f.dir.path().join("seed.yml");
    std::fs::write(&path, web_seed()).unwrap();
    let web = WebConfig::load(&path).unwrap();
    assert!(web.tls_acceptor().is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn web_config_load_never_panics_on_arbitrary_bytes(bytes in prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
    ]) {
        load_web(&bytes)?;
    }

    #[test]
    fn web_config_load_never_panics_on_mutated_valid_configs(
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        load_web(mutate(&web_seed(), &mutations).as_bytes())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Certificate and key files are read from disk: broken PEM is an error too.
    #[test]
    fn web_config_load_never_panics_on_mutated_pem_files(
        cert_mutations in prop::collection::vec(mutation(), 0..4),
        key_mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let f = web_fixture();
        let dir = tempfile::tempdir_in(f.dir.path()).unwrap();
        std::fs::write(dir.path().join("c.pem"), mutate(&f.cert_pem, &cert_mutations)).unwrap();
        std::fs::write(dir.path().join("k.pem"), mutate(&f.key_pem, &key_mutations)).unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").unwrap();
        if let Err(e) = WebConfig::load(&path) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

// --- Retry-After -------------------------------------------------------------------------------

fn http_date() -> impl Strategy<Value = Vec<u8>> {
    // From 1970 to the year 9999, the range an HTTP date can spell.
    (0u64..253_402_300_799).prop_map(|secs| {
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).into_bytes()
    })
}

fn retry_after_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
        " {0,3}[0-9]{1,40} {0,3}".prop_map(String::into_bytes),
        "-?[0-9]{1,20}(\\.[0-9]{1,5})?".prop_map(String::into_bytes),
        http_date(),
        "(Mon|Sun|Xyz), [0-9]{1,3} (Jan|Feb|Dec|Foo) [0-9]{1,6} [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2} (GMT|UTC|\\+0900)"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn retry_after_never_panics_and_is_at_most_a_day(
        first in retry_after_value(),
        second in prop::option::of(retry_after_value()),
    ) {
        let mut headers = HeaderMap::new();
        for value in std::iter::once(&first).chain(second.as_ref()) {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.append(RETRY_AFTER, v);
            }
        }
        if let Some(wait) = retry_after(&headers) {
            prop_assert!(wait <= DAY, "{:?} -> {:?}", String::from_utf8_lossy(&first), wait);
        }
    }

    #[test]
    fn retry_after_seconds_up_to_a_day_are_taken_as_given(secs in 0u64..=86_400) {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&secs.to_string()).unwrap());
        prop_assert_eq!(retry_after(&headers), Some(Duration::from_secs(secs)));
    }
}

// --- field parsers and status words ---------------------------------------------------------

const ZONES: &[chrono_tz::Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Asia::Seoul,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Kiritimati,
    chrono_tz::America::St_Johns,
];

fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+PTDHMSWYpt0-9:., %Z]{0,32}",
        "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "[0-9]{0,30}(\\.[0-9]{0,30})? ?%?",
        "P([0-9]{1,20}[YMWD]){0,3}(T([0-9]{1,20}(\\.[0-9]{1,9})?[HMS]){0,3})?",
        "[0-9]{1,25}(\\.[0-9]{1,9})?:[0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})?(\\.[0-9]{1,12})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn field_parsers_never_panic_and_stay_in_range(
        s in field_text(),
        tz in prop::sample::select(ZONES),
    ) {
        if let Ok(Some(ratio)) = parse_percent(&s) {
            prop_assert!((0.0..=1.0).contains(&ratio), "{:?} -> {}", s, ratio);
        }
        if let Ok(Some(seconds)) = parse_duration(&s) {
            prop_assert!(seconds.is_finite() && seconds >= 0.0, "{:?} -> {}", s, seconds);
            let _ = format_duration(seconds);
        }
        if let Ok(Some(t)) = parse_time(&s, tz) {
            prop_assert!(t.is_finite(), "{:?} -> {}", s, t);
        }
    }

    #[test]
    fn format_duration_never_panics(seconds in any::<f64>()) {
        let text = format_duration(seconds);
        if !seconds.is_finite() || seconds < 0.0 {
            prop_assert_eq!(text, "-");
        }
    }

    #[test]
    fn status_words_never_panic_and_the_status_map_wins(
        raw in any::<String>(),
        mapped in prop::collection::vec((any::<String>(), prop::sample::select(&Status::ALL[..])), 0..4),
        to in prop::sample::select(&Status::ALL[..]),
    ) {
        let mut map = StatusMap::new();
        for (k, v) in &mapped {
            map.insert(k, *v);
        }
        let _ = parse_status(&raw, &map);
        let _ = Status::from_label(&raw);
        let normalized = normalize_status(&raw);
        prop_assert_eq!(normalize_status(&normalized), normalized.clone(), "normalizing twice changes nothing");
        map.insert(&raw, to);
        prop_assert_eq!(parse_status(&raw, &map), to);
    }
}

//! Hostile upstreams: the real exporter against a raw HTTP server on 127.0.0.1
//! ([`crate::common::hostile`]) that answers whatever a test wants (redirects, absurd
//! Retry-After and token lifetimes, control characters), and records every request it
//! receives.

use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::hostile::*;
use crate::common::*;

fn once(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["--once", "--log.format", "json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn(cmd);
    let code = proc.wait_exit(Duration::from_secs(30));
    let out = proc.stdout_text();
    let err = proc.stderr_text();
    (code, out, err)
}

const LOGIN_EMAIL: &str = "ops-7c1e@example.com";
const LOGIN_PASSWORD: &str = "login-secret-5b2e9d";
const AZURE_SECRET: &str = "azure-client-secret-91f3";
const SCP_ACCESS: &str = "scp-access-key-3a7d";
const SCP_SECRET: &str = "scp-secret-key-c02b";

/// Regression: 307/308 sent the ZDM login JSON, the Azure client secret form and SCP's
/// signed headers to whatever origin the upstream named.
#[test]
fn redirects_are_not_followed_and_no_credential_reaches_another_origin() {
    let sink = Hostile::start(|_| answer("200 OK", &[], "{}"));
    let target = format!("{}/elsewhere", sink.url());
    let redirector = Hostile::start(move |req| {
        let status = if req.method == "POST" {
            "307 Temporary Redirect"
        } else {
            "301 Moved Permanently"
        };
        answer(status, &[("Location", &target)], "")
    });
    let up = redirector.url();
    let yaml = format!(
        "upstreams:
  - name: zdm-login
    type: zdm
    url: {up}
    login: {{ path: /api/auth/issue, email_env: LOGIN_EMAIL, password_env: LOGIN_PASSWORD }}
    backup_jobs: [daily-backup]
  - name: zdm-token
    type: zdm
    url: {up}
    token_env: ZDM_TOKEN
    backup_jobs: [daily-backup]
  - name: scp
    type: scp
    url: {up}
    access_key_env: SCP_ACCESS
    secret_key_env: SCP_SECRET
    backups: [00cd2538fbf94d12b36aabbdd607e974]
  - name: azure
    type: azure
    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
    client_id: 04b07795-8ddb-461a-bbee-02f9e1bf7b46
    client_secret_env: AZURE_SECRET
    subscription_id: 11111111-2222-3333-4444-555555555555
    vaults: [{{ resource_group: rg, name: vault-01 }}]
    management_url: {up}
    authority_url: {up}
"
    );
    let (code, out, err) = once(
        &yaml,
        &[
            ("LOGIN_EMAIL", LOGIN_EMAIL),
            ("LOGIN_PASSWORD", LOGIN_PASSWORD),
            ("ZDM_TOKEN", "zdm-token-0d9e"),
            ("SCP_ACCESS", SCP_ACCESS),
            ("SCP_SECRET", SCP_SECRET),
            ("AZURE_SECRET", AZURE_SECRET),
        ],
    );
    assert_eq!(code, Some(1), "every target fails:\n{err}");
    assert!(
        sink.seen().is_empty(),
        "the redirect target received {:?}",
        sink.seen()
    );
    let methods: Vec<String> = redirector.seen().iter().map(|s| s.method.clone()).collect();
    assert!(
        methods.iter().filter(|m| *m == "POST").count() >= 2,
        "login and token requests were sent: {methods:?}"
    );
    let seen = redirector.seen();
    assert!(
        seen.iter()
            .any(|s| String::from_utf8_lossy(&s.body).contains(LOGIN_EMAIL)),
        "the login went to its own origin"
    );
    assert!(
        seen.iter()
            .any(|s| s.head.to_ascii_lowercase().contains("scp-signature:")),
        "the signed SCP request went to its own origin"
    );
    // One request per target: a redirect is not retried either.
    assert_eq!(redirector.seen().len(), 4, "{methods:?}");
    for upstream in ["zdm-login", "zdm-token", "scp", "azure"] {
        let line = out
            .lines()
            .find(|l| {
                l.starts_with("backup_upstream_requests_total{")
                    && l.contains(&format!("upstream=\"{upstream}\""))
                    && l.contains("outcome=\"upstream_error\"")
            })
            .unwrap_or_else(|| panic!("no upstream_error series for {upstream}:\n{out}"));
        assert!(line.ends_with(" 1"), "{line}");
    }
    assert!(
        err.contains("not followed") && err.contains("/elsewhere"),
        "the Location is logged:\n{err}"
    );
    for secret in [LOGIN_PASSWORD, AZURE_SECRET, SCP_SECRET] {
        assert!(!err.contains(secret) && !out.contains(secret));
    }
}

/// Regression: `Retry-After: 18446744073709551615` overflowed the poller's clock and killed
/// the target's poll loop for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_clamped_and_the_target_is_polled_again() {
    let upstream = Hostile::start(|_| {
        answer(
            "429 Too Many Requests",
            &[("Retry-After", "18446744073709551615")],
            "{}",
        )
    });
    let yaml = format!(
        "defaults:\n  interval: 1s\n  stale_after: 2s\nupstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n    backup_jobs: [daily-backup]\n",
        upstream.url()
    );
    let exporter = Exporter::start(&yaml);
    exporter.wait_ready().await;
    // Clamped to the stale window (2 s): a second request comes, and the process lives.
    wait_for("a second poll", Duration::from_secs(15), || async {
        (upstream.seen().len() >= 2).then_some(())
    })
    .await;
    let m = exporter.metrics().await;
    assert!(value(&m, &outcome_series("zdm", "rate_limited")).unwrap_or(0.0) >= 2.0);
    let logs = exporter.proc.stderr_text();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// Regression: an Azure token answer with `"expires_in": 18446744073709551615` panicked in
/// decode and `/-/ready` stayed 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_token_lifetime_is_clamped() {
    let upstream = Hostile::start(|req| {
        if req.path.contains("/oauth2/") {
            answer(
                "200 OK",
                &[],
                r#"{"token_type":"Bearer","access_token":"tok-1","expires_in":18446744073709551615}"#,
            )
        } else {
            answer("200 OK", &[], r#"{"value":[]}"#)
        }
    });
    let yaml = format!(
        "upstreams:
  - name: azure
    type: azure
    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
    client_id: 04b07795-8ddb-461a-bbee-02f9e1bf7b46
    client_secret_env: AZURE_SECRET
    subscription_id: 11111111-2222-3333-4444-555555555555
    vaults: [{{ resource_group: rg, name: vault-01 }}]
    management_url: {0}
    authority_url: {0}
",
        upstream.url()
    );
    let exporter = Exporter::start_with(&yaml, &[], &[("AZURE_SECRET", AZURE_SECRET)]);
    exporter.wait_ready().await;
    let m = exporter
        .wait_metrics("the vault polled successfully", |m| {
            m.lines().any(|l| {
                l.starts_with("backup_target_up{") && l.contains("azure") && l.ends_with(" 1")
            })
        })
        .await;
    assert!(m.contains("backup_target_up"));
    let logs = exporter.proc.stderr_text();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// Regression: upstream error text was logged with its newlines and ANSI escapes, so an
/// upstream could forge log lines.
#[test]
fn upstream_text_in_logs_has_its_control_characters_escaped() {
    let upstream = Hostile::start(|_| {
        answer(
            "500 Internal Server Error",
            &[],
            r#"{"message":"boom\nlevel=error msg=\"forged line\"\u001b[31m"}"#,
        )
    });
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: ZDM_TOKEN\n    backup_jobs: [daily-backup]\n",
        upstream.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &yaml);
    // Text logs: the format an attacker would want to forge lines in.
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["--once", "--log.format", "text"])
        .env("ZDM_TOKEN", "t");
    let mut proc = Proc::spawn(cmd);
    assert_eq!(proc.wait_exit(Duration::from_secs(30)), Some(1));
    let err = proc.stderr_text();
    assert!(err.contains("boom"), "{err}");
    assert!(
        !err.lines().any(|l| l.starts_with("level=error")),
        "a forged line:\n{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "an ANSI escape reached the log:\n{err}"
    );
    assert!(err.contains("\\n"), "the newline is escaped:\n{err}");
}

/// Regression: error texts said their cause twice ("(os error 111): ... (os error 111)").
#[test]
fn error_texts_say_their_cause_once() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: http://{addr}\n    token_env: ZDM_TOKEN\n    backup_jobs: [daily-backup]\n"
    );
    let (code, _, err) = once(&yaml, &[("ZDM_TOKEN", "t")]);
    assert_eq!(code, Some(1));
    let line = err
        .lines()
        .find(|l| l.contains("connect_error"))
        .unwrap_or_else(|| panic!("no connect_error logged:\n{err}"));
    assert_eq!(line.matches("os error").count(), 1, "{line}");

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .args([
            "--web.config.file",
            "/nonexistent/web.yml",
            "--log.format",
            "json",
        ])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("ZDM_TOKEN", "t");
    let mut proc = Proc::spawn(cmd);
    assert_eq!(proc.wait_exit(Duration::from_secs(10)), Some(1));
    let err = proc.stderr_text();
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

/// A label value longer than 1024 bytes is cut and counted, the rest of the job exported.
#[test]
fn long_label_values_are_cut_and_counted() {
    let long_name = "긴".repeat(2000);
    let body = format!(
        r#"{{"success":true,"data":{{"system":{{"name":"srv"}},"job":{{"info":{{"name":"{long_name}","partition":"/"}},"progressInfo":{{"status":"run","percent":"10%"}}}}}}}}"#
    );
    let upstream = Hostile::start(move |_| answer("200 OK", &[], &body));
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: ZDM_TOKEN\n    backup_jobs: [daily-backup]\n",
        upstream.url()
    );
    let (code, out, err) = once(&yaml, &[("ZDM_TOKEN", "t")]);
    assert_eq!(code, Some(0), "{err}");
    let cut = "긴".repeat(341);
    assert!(
        out.contains(&format!("job_name=\"{cut}\",server=\"srv\"")),
        "the name is cut to 1,023 bytes on a character boundary"
    );
    assert_eq!(
        value(
            &out,
            "backup_parse_errors_total{field=\"label\",system=\"zdm\",upstream=\"zdm\"}"
        ),
        Some(1.0)
    );
}

/// Regression: 100,000 jobs in one answer took 822 MB; past `max_jobs_per_target`
/// (default 10,000) the answer is refused as `too_large` before a job is built.
#[test]
fn an_answer_with_more_jobs_than_the_limit_is_too_large() {
    let jobs: Vec<String> = (0..10_001)
        .map(|i| format!(r#"{{"info":{{"name":"j{i}"}},"progressInfo":{{"status":"run"}}}}"#))
        .collect();
    let body = format!(
        r#"{{"success":true,"data":{{"system":{{"name":"srv"}},"job":[{}]}}}}"#,
        jobs.join(",")
    );
    let upstream = Hostile::start(move |_| answer("200 OK", &[], &body));
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: ZDM_TOKEN\n    servers: [srv]\n",
        upstream.url()
    );
    let (code, out, err) = once(&yaml, &[("ZDM_TOKEN", "t")]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(value(&out, &outcome_series("zdm", "too_large")), Some(1.0));
    assert!(!out.contains("backup_job_status{"), "no truncated list");
    assert!(err.contains("max_jobs_per_target"), "{err}");
}

/// Azure pages are counted as they arrive. A list names runs, many per exporter job: two
/// pages of 6,000 runs of 7 jobs are 7 series under the default limit; past 25 times
/// `max_jobs_per_target` runs (400: 10,000) the poll fails when the second page arrives, and
/// past `max_jobs_per_target` jobs (500 jobs, limit 300) when the first is folded.
#[test]
fn azure_pages_past_the_job_limit_are_too_large() {
    // The number of exporter jobs (VMs) the 6,000 runs of a page belong to.
    let vms = Arc::new(std::sync::atomic::AtomicUsize::new(7));
    let vms_now = vms.clone();
    let page = move |next: Option<String>| {
        let m = vms_now.load(std::sync::atomic::Ordering::Relaxed);
        let jobs: Vec<String> = (0..6000)
            .map(|i| {
                format!(
                    r#"{{"name":"id-{i}","properties":{{"entityFriendlyName":"vm-{}","operation":"Backup","status":"Completed","startTime":"2026-11-28T01:00:00Z"}}}}"#,
                    i % m
                )
            })
            .collect();
        match next {
            Some(link) => format!(r#"{{"value":[{}],"nextLink":"{link}"}}"#, jobs.join(",")),
            None => format!(r#"{{"value":[{}]}}"#, jobs.join(",")),
        }
    };
    let addr: Arc<Mutex<String>> = Arc::default();
    let base = addr.clone();
    let upstream = Hostile::start(move |req| {
        if req.path.contains("/oauth2/") {
            answer("200 OK", &[], r#"{"access_token":"tok","expires_in":3600}"#)
        } else if req.path.contains("page=2") {
            answer("200 OK", &[], &page(None))
        } else {
            let link = format!("{}{}&page=2", base.lock().unwrap(), req.path);
            answer("200 OK", &[], &page(Some(link)))
        }
    });
    *addr.lock().unwrap() = upstream.url();
    let yaml = |limit: &str| {
        format!(
            "upstreams:
  - name: azure
    type: azure
    tenant_id: t
    client_id: c
    client_secret_env: AZURE_SECRET
    subscription_id: s
    vaults: [{{ resource_group: rg, name: vault-01 }}]
    management_url: {0}
    authority_url: {0}
{limit}",
            upstream.url()
        )
    };
    let second_pages = || {
        upstream
            .seen()
            .iter()
            .filter(|s| s.path.contains("page=2"))
            .count()
    };
    // The vault is down as too_large; `request` too when a request brought it (the runs),
    // not when the requests all succeeded and the jobs folded from them are too many.
    let too_large = |out: &str, request: bool| {
        let reason = out.lines().any(|l| {
            l == "backup_target_failure_reason{system=\"azure\",upstream=\"azure\",kind=\"vault\",target=\"rg/vault-01\",reason=\"too_large\"} 1"
        });
        let requests = out
            .lines()
            .find(|l| l.contains("outcome=\"too_large\"") && l.contains("upstream=\"azure\""))
            .is_some_and(|l| l.ends_with(" 1"));
        reason && requests == request
    };

    let (code, out, err) = once(&yaml(""), &[("AZURE_SECRET", AZURE_SECRET)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("too_large\"} 1"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("backup_job_info{"))
            .count(),
        7,
        "{out}"
    );
    assert_eq!(second_pages(), 1);

    let (code, out, err) = once(
        &yaml("    max_jobs_per_target: 400\n"),
        &[("AZURE_SECRET", AZURE_SECRET)],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(too_large(&out, true), "{out}");
    assert!(
        err.contains("listed runs exceed 25 x max_jobs_per_target (10000)"),
        "{err}"
    );
    assert_eq!(second_pages(), 2);

    vms.store(500, std::sync::atomic::Ordering::Relaxed);
    let (code, out, err) = once(
        &yaml("    max_jobs_per_target: 300\n"),
        &[("AZURE_SECRET", AZURE_SECRET)],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(too_large(&out, false), "{out}");
    assert!(
        err.contains("500 jobs exceed max_jobs_per_target (300)"),
        "{err}"
    );
    assert_eq!(second_pages(), 2, "the first page alone is refused");
}

/// `max_jobs_per_target` is a setting: under `defaults` or per upstream.
#[test]
fn max_jobs_per_target_is_configurable() {
    let body = r#"{"success":true,"data":{"system":{"name":"srv"},"job":[
        {"info":{"name":"a"},"progressInfo":{"status":"run"}},
        {"info":{"name":"b"},"progressInfo":{"status":"run"}},
        {"info":{"name":"c"},"progressInfo":{"status":"run"}}]}}"#;
    let upstream = Hostile::start(move |_| answer("200 OK", &[], body));
    for (limit, code, too_large) in [(2, 1, Some(1.0)), (3, 0, Some(0.0))] {
        let yaml = format!(
            "defaults:\n  max_jobs_per_target: {limit}\nupstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: ZDM_TOKEN\n    servers: [srv]\n",
            upstream.url()
        );
        let (got, out, err) = once(&yaml, &[("ZDM_TOKEN", "t")]);
        assert_eq!(got, Some(code), "limit {limit}: {err}");
        assert_eq!(
            value(&out, &outcome_series("zdm", "too_large")),
            too_large,
            "limit {limit}"
        );
    }
}

/// The peak resident memory (`VmHWM`, KiB) of process `pid`, while it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Issue 20: an upstream body never holds more than `max_body_bytes`. Eight targets are
/// answered at once with bodies 16 MiB past a cap just over 8 MiB, sent without a length (so
/// nothing announces the size): each is held open a few bytes short of the cap until all eight
/// are that far, then the rest follows. Each poll stops reading at the cap (`too_large`), so the
/// exporter's peak stays under eight caps plus 48 MiB of its own; reading on past the cap
/// would hold 164 MiB of bodies at the second stop.
#[test]
fn hostile_bodies_in_flight_never_hold_more_than_their_cap() {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicUsize, Ordering};
    const TARGETS: usize = 8;
    const CAP: usize = 8 * 1024 * 1024 + 512 * 1024;
    const TAIL: usize = 16;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // JSON whose end never comes within the cap.
    let mut body = br#"{"success":true,"data":"#.to_vec();
    body.resize(CAP + 16 * 1024 * 1024, b' ');
    let body = Arc::new(body);
    // How many connections have reached each stage; the most at the first one at once.
    let waiting = Arc::new((Mutex::new([0usize; 2]), std::sync::Condvar::new()));
    let most = Arc::new(AtomicUsize::new(0));
    {
        let (body, waiting, most) = (body.clone(), waiting.clone(), most.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(TARGETS) {
                let Ok(mut stream) = stream else { return };
                let (body, waiting, most) = (body.clone(), waiting.clone(), most.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    );
                    // Held a few bytes short of the cap, then (had the exporter read on)
                    // 12 MiB past it, each time until all eight are that far.
                    let mut sent = 0;
                    for (stage, upto) in
                        [CAP - TAIL, CAP + 12 * 1024 * 1024].into_iter().enumerate()
                    {
                        let _ = stream.write_all(&body[sent..upto]);
                        sent = upto;
                        let (counts, all_here) = &*waiting;
                        let mut counts = counts.lock().unwrap();
                        counts[stage] += 1;
                        most.fetch_max(counts[0], Ordering::SeqCst);
                        all_here.notify_all();
                        // Bounded: a slow exporter ends the wait, not the test.
                        let (guard, _) = all_here
                            .wait_timeout_while(counts, Duration::from_secs(20), |c| {
                                c[stage] < TARGETS
                            })
                            .unwrap();
                        drop(guard);
                        // The exporter reads what was sent before more arrives.
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    let _ = stream.write_all(&body[sent..]);
                });
            }
        });
    }
    let servers: Vec<String> = (1..=TARGETS).map(|i| format!("s{i}")).collect();
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {url}\n    api_version: \"1.3\"\n    token_env: ZDM_TOKEN\n    concurrency: {TARGETS}\n    timeout: 30s\n    interval: 60s\n    max_body_bytes: {CAP}\n    servers: [{}]\n",
        servers.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["--once", "--log.format", "json"])
        .env("ZDM_TOKEN", "t");
    let mut proc = Proc::spawn(cmd);
    // VmHWM only grows: the last reading before the exit is the peak (the bodies are held
    // for half a second at the end, far longer than the sampling step).
    let mut peak = 0;
    let started = std::time::Instant::now();
    while proc.child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        peak = peak_rss_kib(proc.pid()).unwrap_or(peak).max(peak);
        std::thread::sleep(Duration::from_millis(10));
    }
    let code = proc.wait_exit(Duration::from_secs(10));
    let out = proc.stdout_text();
    assert_eq!(code, Some(1), "{}", proc.stderr_text());
    assert_eq!(
        most.load(Ordering::SeqCst),
        TARGETS,
        "all eight bodies were in flight at once"
    );
    let bound = (TARGETS * CAP) as u64 / 1024 + 48 * 1024;
    assert!(
        peak > (TARGETS * CAP) as u64 / 1024 / 2,
        "the bodies were held: peak {peak} KiB"
    );
    assert!(peak <= bound, "peak RSS {peak} KiB over {bound} KiB");
    assert_eq!(
        value(&out, &outcome_series("zdm", "too_large")),
        Some(TARGETS as f64),
        "{out}"
    );
}

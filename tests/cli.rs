//! The command line: --check-config exit codes and messages, --help, --demo.

use std::process::Command;

use crate::common::*;

fn check_config(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--check-config").arg("--config").arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_accepts_the_valid_example_and_prints_one_line_per_upstream() {
    let yaml = std::fs::read_to_string("tests/data/valid-zdm.yaml").unwrap();
    let env = [
        ("ZDM_TOKEN", "tok-1f2e"),
        ("ZDM_EMAIL", "a@b.c"),
        ("ZDM_PASSWORD", "pw-77aa"),
    ];
    let (code, out) = check_config(&yaml, &env);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("zdm-prod: zdm https://zdm.example.com/api/v1"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("zdm-legacy: zdm")),
        "{out}"
    );
    assert!(
        !out.contains("tok-1f2e") && !out.contains("pw-77aa"),
        "no secret in the summary"
    );
}

#[test]
fn check_config_prints_every_problem_with_its_path_and_exits_2() {
    let yaml = "defaults:\n  interval: soon\nupstreams:\n  - name: a\n    type: zdm\n    url: http://127.0.0.1:1\n    token_env: UNSET_TOKEN_VAR_1\n    timezone: Mars/Olympus\n    servers: [s1]\n  - name: a\n    type: zdm\n    url: http://127.0.0.1:1\n    token_env: UNSET_TOKEN_VAR_1\n    servers: [s1]\n    colour: blue\n";
    let (code, out) = check_config(yaml, &[]);
    assert_eq!(code, Some(2), "{out}");
    for needle in [
        "defaults.interval",
        "upstreams[0].timezone",
        "UNSET_TOKEN_VAR_1",
        "upstreams[1]",
        "colour",
    ] {
        assert!(out.contains(needle), "missing {needle} in:\n{out}");
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = Command::new(exporter_bin())
        .args([
            "--check-config",
            "--config",
            "/nonexistent/backup-exporter.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/nonexistent/backup-exporter.yaml"), "{text}");
}

#[test]
fn help_lists_every_flag_of_the_contract() {
    let out = Command::new(exporter_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--web.listen-address",
        "--web.config.file",
        "--log.level",
        "--log.format",
        "--check-config",
        "--once",
        "--demo",
        "--web.max-connections",
        "--web.max-requests",
        "--web.read-header-timeout",
        "--web.enable-lifecycle",
        "--web.systemd-socket",
        "--web.telemetry-path",
        "--config.file",
        "--config.check",
        "--version",
        "BACKUP_EXPORTER_CONFIG",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_monitors_the_bundled_simulator_with_live_changing_metrics() {
    let mut cmd = Command::new(exporter_bin());
    cmd.args([
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]);
    let exp = Exporter::launch(cmd, tempfile::tempdir().unwrap());
    exp.wait_ready().await;
    let first = exp.metrics().await;
    for upstream in ["demo-zdm", "demo-zdm-login", "demo-scp", "demo-azure"] {
        let up = first
            .lines()
            .filter(|l| {
                l.starts_with("backup_target_up{")
                    && l.contains(&format!("upstream=\"{upstream}\""))
            })
            .filter(|l| l.ends_with(" 1"))
            .count();
        assert!(up > 0, "{upstream} has targets up:\n{first}");
    }
    assert!(
        first.contains("operation=\"restore\""),
        "the demo has a recovery job"
    );
    assert!(
        first.contains("volume=\"C:\""),
        "the demo has Windows drives"
    );
    let progress = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| {
                l.starts_with("backup_job_progress_ratio{")
                    || l.starts_with("backup_job_elapsed_seconds{")
            })
            .map(str::to_string)
            .collect()
    };
    let before = progress(&first);
    exp.wait_metrics("progress moves", |m| progress(m) != before)
        .await;
    let (_, page) = exp.get("/").await;
    assert!(
        page.contains("demo-zdm-login") && page.contains("<tr data-s=running"),
        "lively landing page"
    );

    // demo-zdm discovers: its unprotected servers, the disconnected agent, the repositories
    // and the fully used licence are in the boxes beside the failures.
    exp.wait_metrics("the demo's inventory", |m| {
        m.contains("backup_license_copies{") && m.contains("backup_repository_free_bytes{")
    })
    .await;
    let (_, page) = exp.get("/").await;
    let boxed = |id: &str| -> String {
        let start = page
            .find(&format!(" id={id}>"))
            .unwrap_or_else(|| panic!("no {id} box:\n{page}"));
        let end = page[start..].find("</section>").unwrap();
        page[start..start + end].to_owned()
    };
    let unprotected = boxed("unprotected");
    for needle in [
        "<h3>demo-zdm <span class=muted>(zdm)</span></h3>",
        "servers without a backup job: 2 of ",
        "<li>legacy-erp-01</li><li>test-vm-07</li></ul>",
        "agents disconnected: 1 of ",
        "<li>win-fs-01</li></ul>",
    ] {
        assert!(unprotected.contains(needle), "{needle}:\n{unprotected}");
    }
    assert!(page.contains("<section class=\"box warn\" id=unprotected><h2>Unprotected: 3</h2>"));
    let capacity = boxed("capacity");
    for needle in [
        "<td>demo-zdm</td><td>2 <span class=muted>Main-Center · NFS</span></td><td class=num>",
        " / 2.0 TiB</td>",
        "<tr class=f><td>demo-zdm</td><td>ZDM Recovery Standard</td><td class=why>",
        " days left)</td><td class=why>10 / 10 <b>all used</b></td></tr>",
        "<td>demo-zdm</td><td>ZDM Backup Enterprise</td>",
    ] {
        assert!(capacity.contains(needle), "{needle}:\n{capacity}");
    }
    assert!(capacity.contains("<h2>Capacity: "), "{capacity}");
    assert!(!page.contains("no upstream lists its servers"));
}

#[test]
fn every_example_config_passes_check_config() {
    let env = [
        ("ZDM_TOKEN", "t"),
        ("ZDM_EMAIL", "e@example.com"),
        ("ZDM_PASSWORD", "p"),
        ("SCP_ACCESS_KEY", "a"),
        ("SCP_SECRET_KEY", "s"),
        ("AZURE_CLIENT_SECRET", "c"),
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--check-config").arg("--config").arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        checked += 1;
    }
    assert!(checked >= 4, "one example per system and a combined one");
}

/// `--check-config.skip-secrets` with no secret in the environment: every shipped example
/// (the systemd one, whose token file exists only on a production host, included) passes.
#[test]
fn check_config_skip_secrets_passes_the_shipped_examples_without_secrets() {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir("config")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    paths.push("deploy/systemd/backup-exporter.yaml".into());
    for path in &paths {
        let out = Command::new(exporter_bin())
            .arg("--check-config.skip-secrets")
            .arg("--config")
            .arg(path)
            .env_clear()
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}: {stdout}", path.display());
        assert!(
            stdout.contains("configuration is valid (secrets not read"),
            "{}: {stdout}",
            path.display()
        );
    }
    // Without the flag, the same run needs the secrets.
    let out = Command::new(exporter_bin())
        .args(["--check-config", "--config", "config/backup-exporter.yaml"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Skipping secrets still checks everything else, the shape of secret settings included.
#[test]
fn check_config_skip_secrets_still_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, needles) in [
        (
            "upstreams:\n  - name: a\n    type: zdm\n    url: http://h\n    token_env: T\n    token_file: t\n    servers: [s]\n",
            &["upstreams[0]", "more than one authentication method"][..],
        ),
        (
            "upstreams:\n  - name: a\n    type: zdm\n    url: http://h\n    servers: [s]\n",
            &["upstreams[0]", "missing authentication"][..],
        ),
        (
            "upstreams:\n  - name: a\n    type: scp\n    url: http://h\n    access_key_env: 'not a name'\n    secret_key_env: S\n    backups: [b]\n",
            &["upstreams[0].access_key_env", "must name an environment variable"][..],
        ),
        (
            "upstreams:\n  - name: a\n    type: zdm\n    url: http://h\n    token_file: ' '\n    servers: [s]\n",
            &["upstreams[0].token_file", "must not be empty"][..],
        ),
        (
            "defaults: {interval: soon}\nupstreams:\n  - name: a\n    type: zdm\n    url: http://h\n    token_env: T\n    servers: [s]\n    colour: blue\n",
            &["defaults.interval", "upstreams[0]", "colour"][..],
        ),
    ] {
        let config = write_config(dir.path(), yaml);
        let out = Command::new(exporter_bin())
            .args(["--check-config", "--check-config.skip-secrets", "--config"])
            .arg(&config)
            .env_clear()
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {stdout}");
        for needle in needles {
            assert!(stdout.contains(needle), "{needle} in {stdout}");
        }
    }
}

#[test]
fn web_limits_out_of_bounds_are_refused() {
    for args in [
        ["--web.max-connections", "0"],
        ["--web.max-requests", "some"],
        ["--web.max-requests", "2000000"],
        ["--web.read-header-timeout", "0s"],
        ["--web.read-header-timeout", "2h"],
        ["--web.read-header-timeout", "soon"],
    ] {
        let out = Command::new(exporter_bin())
            .args(["--check-config", "--config", "/nonexistent.yaml"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

/// Logs as Prometheus' tools write them: logfmt by default (`text` is an alias), JSON with
/// `ts`, `level`, `msg`; never a colour code. Start-up says where to look, then "ready".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_logfmt_or_json_with_ts_level_msg_and_say_where_to_look() {
    let sim = Sim::start();
    let yaml = zdm_config(&sim, "", "    backup_jobs: [daily-backup]\n");
    for format in ["logfmt", "text"] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &yaml);
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--config")
            .arg(&config)
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.format",
                format,
            ])
            .env("SIM_TOKEN", TOKEN);
        let proc = Proc::spawn(cmd);
        let logs = wait_for("the ready line", std::time::Duration::from_secs(20), || {
            let text = proc.stderr_text();
            async move { text.contains("msg=\"ready: ").then_some(text) }
        })
        .await;
        assert!(!logs.contains('\u{1b}'), "no colour codes:\n{logs}");
        for line in logs.lines() {
            let (ts, rest) = line
                .strip_prefix("ts=")
                .and_then(|l| l.split_once(' '))
                .unwrap_or_else(|| panic!("not logfmt: {line}"));
            assert!(
                chrono::DateTime::parse_from_rfc3339(ts).is_ok()
                    && ts.ends_with('Z')
                    && ts.len() == 24,
                "ts is RFC 3339 UTC with milliseconds: {line}"
            );
            assert!(rest.starts_with("level="), "{line}");
            assert!(rest.contains(" msg=\""), "{line}");
        }
        let listening = logs
            .lines()
            .find(|l| l.contains("msg=\"backup-exporter listening\""))
            .expect("a listening line");
        assert!(listening.contains("url=http://127.0.0.1:"), "{listening}");
        let started = logs
            .lines()
            .find(|l| l.contains("msg=\"polling started\""))
            .expect("a polling line");
        assert!(
            started.contains("upstreams=1") && started.contains("targets=1"),
            "{started}"
        );
        assert!(started.contains("config="), "{started}");
    }
    // JSON: the same keys.
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let logs = exp.proc.stderr_text();
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["ts"].is_string() && v["level"].is_string() && v["msg"].is_string(),
            "{line}"
        );
    }
}

/// These passed `--check-config` and then crashed the daemon (a semaphore too large for
/// tokio, a Duration overflow in the schedule); now both refuse them with exit code 2.
#[test]
fn configs_that_crashed_the_daemon_are_refused_with_exit_code_2() {
    for file in [
        "invalid-concurrency.yaml",
        "invalid-interval-long.yaml",
        "invalid-interval-long-stale-after.yaml",
    ] {
        let yaml = std::fs::read_to_string(format!("tests/data/{file}")).unwrap();
        let want = yaml
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap();
        let (code, out) = check_config(&yaml, &[("ZDM_TOKEN", "t")]);
        assert_eq!(code, Some(2), "{file}: {out}");
        assert!(out.contains(want), "{file}: expected {want:?} in:\n{out}");
        assert!(!out.contains("panicked"), "{file}: {out}");

        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &yaml);
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--config")
            .arg(&config)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env("ZDM_TOKEN", "t");
        let mut daemon = Proc::spawn(cmd);
        let code = daemon.wait_exit(std::time::Duration::from_secs(10));
        let logs = daemon.stderr_text();
        assert_eq!(code, Some(2), "{file}: the daemon\n{logs}");
        assert!(!logs.contains("panicked"), "{file}: {logs}");
    }
}

/// Regression: ZDM's /api answers with times that carry no offset; with no `timezone` they
/// were read as UTC silently (9 h off in Korea). `--check-config` warns. (SCP's are UTC, as
/// Samsung's SDK reads them: no warning.)
#[test]
fn check_config_warns_when_naive_times_have_no_timezone() {
    let base = "upstreams:
  - name: legacy
    type: zdm
    url: https://zdm.example.com
    api_prefix: /api
    token_env: ZDM_TOKEN
    servers: [a]
  - name: v1
    type: zdm
    url: https://zdm.example.com
    api_version: '0.2'
    token_env: ZDM_TOKEN
    servers: [a]
  - name: scp
    type: scp
    url: https://scp.example.com
    access_key_env: ZDM_TOKEN
    secret_key_env: ZDM_TOKEN
    backups: [00cd2538fbf94d12b36aabbdd607e974]
";
    let env = [("ZDM_TOKEN", "t")];
    let (code, out) = check_config(base, &env);
    assert_eq!(code, Some(0), "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("legacy") && warnings[0].contains("timezone"));
    // A timezone under defaults (or per upstream) silences them.
    let (code, out) = check_config(&format!("defaults:\n  timezone: Asia/Seoul\n{base}"), &env);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning: "), "{out}");
}
/// `--version` as Prometheus' tools print it: version, branch and revision, then build date,
/// rust version and platform.
#[test]
fn version_prints_like_prometheus_tools() {
    let out = Command::new(exporter_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let head = format!(
        "backup-exporter, version {} (branch: ",
        env!("CARGO_PKG_VERSION")
    );
    assert!(lines[0].starts_with(&head), "{text}");
    assert!(
        lines[0].contains(", revision: ") && lines[0].ends_with(')'),
        "{text}"
    );
    assert_eq!(env!("CARGO_PKG_VERSION"), "0.2.0");
    let date = lines[1]
        .strip_prefix("  build date:       ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        chrono::NaiveDateTime::parse_from_str(date, "%Y%m%d-%H:%M:%S").is_ok(),
        "build date as YYYYMMDD-HH:MM:SS: {text}"
    );
    assert!(
        lines[2].starts_with("  rust version:     rustc 1."),
        "{text}"
    );
    assert_eq!(
        lines[3],
        format!(
            "  platform:         {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    );
}

#[test]
fn config_file_and_config_check_are_aliases() {
    let out = Command::new(exporter_bin())
        .args([
            "--config.check",
            "--config.file",
            "tests/data/valid-zdm.yaml",
        ])
        .env("ZDM_TOKEN", "t")
        .env("ZDM_EMAIL", "e@example.com")
        .env("ZDM_PASSWORD", "p")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("zdm-prod: zdm"), "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_path_moves_the_exposition_and_the_landing_link() {
    let yaml = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";
    let exp = Exporter::start_with(yaml, &["--web.telemetry-path", "/probe/metrics"], &[]);
    let (status, body) = exp.get("/probe/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("backup_exporter_build_info"), "{body}");
    assert_eq!(exp.get("/metrics").await.0, 404);
    let (_, page) = exp.get("/").await;
    assert!(page.contains("<a href=\"/probe/metrics\">"), "{page}");
    assert!(!page.contains("href=\"/metrics\""), "{page}");
    assert!(
        exp.proc.stderr_text().contains("/probe/metrics\""),
        "the listening line's url follows the path"
    );
    for bad in ["metrics", "/-/ready", "/"] {
        let out = Command::new(exporter_bin())
            .args(["--check-config", "--config", "/nonexistent.yaml"])
            .args(["--web.telemetry-path", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--web.telemetry-path"), "{bad}: {err}");
    }
}

/// `--check-config.skip-secrets` lints a workload-identity upstream without the pod's
/// environment (the federated token file and ids the webhook injects).
#[test]
fn skip_secrets_lints_workload_identity_without_the_pod_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "upstreams:\n  - name: aks\n    type: azure\n    workload_identity: true\n    subscription_id: 11111111-2222-3333-4444-555555555555\n    vaults: [{ resource_group: rg, name: v }]\n",
    );
    let run = |skip: bool| {
        let mut cmd = Command::new(exporter_bin());
        cmd.arg(if skip {
            "--check-config.skip-secrets"
        } else {
            "--check-config"
        })
        .arg("--config")
        .arg(&config)
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_TENANT_ID");
        cmd.output().unwrap()
    };
    let out = run(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(false);
    assert_eq!(
        out.status.code(),
        Some(2),
        "without the flag the environment is needed"
    );
}

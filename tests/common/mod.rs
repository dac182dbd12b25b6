//! Test harness of both tiers (tests/tests.rs and tests/e2e/main.rs): the real
//! `backup-simulator` and `backup-exporter` binaries on 127.0.0.1, with bounded waits, and
//! every process killed by PID when its handle drops.

#![allow(dead_code)]

pub mod gzip;
pub mod hostile;
pub mod ops_kit;
pub mod seeds;
pub mod series;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "sim-token-4f9a7c";
pub const EMAIL: &str = "ops@example.com";
pub const PASSWORD: &str = "pw-93b1e0c2";

/// Polls `check` every 50 ms until it returns `Some` or `limit` passes.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

fn spawn_reader(
    stream: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => sink.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    })
}

/// A child process killed (SIGKILL) when dropped, unless it already exited.
pub struct Proc {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; they end when the process closes them.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_with_stdin(cmd, Stdio::null())
    }

    /// Spawns `cmd` with `stdin` as its standard input (a socket handed down, say).
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            spawn_reader(child.stdout.take().unwrap(), stdout.clone()),
            spawn_reader(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `sig` (`HUP`, `TERM`...) with the shell's built-in `kill`: `/bin/kill`
    /// (procps) is not on every machine that builds the crate.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$0\" \"$1\"", sig, &self.pid().to_string()])
            .status()
            .expect("sh");
        assert!(status.success(), "kill -s {sig} {}", self.pid());
    }

    /// Waits up to `limit` for the process to exit and returns its exit code; once it has,
    /// its stdout and stderr are read to their end (within the same limit), so that
    /// [`Proc::stdout_text`] and [`Proc::stderr_text`] hold everything it wrote.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                while start.elapsed() < limit && !self.readers.iter().all(|r| r.is_finished()) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator binary on an ephemeral loopback port.
pub struct Sim {
    pub proc: Proc,
    pub addr: String,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(&["--token", TOKEN, "--login", &format!("{EMAIL}:{PASSWORD}")])
    }

    pub fn start_with(args: &[&str]) -> Sim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup-simulator"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        let proc = Proc::spawn(cmd);
        let start = Instant::now();
        let addr = loop {
            if let Some(line) = proc
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with("listening on "))
            {
                break line.trim_start_matches("listening on ").trim().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "simulator did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Sim { proc, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn fault(&self, endpoint: &str, id: &str, fault: &str) {
        let resp = client()
            .put(format!(
                "{}/_sim/fault/{endpoint}/{}",
                self.url(),
                encode(id)
            ))
            .body(fault.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "setting fault {fault}: {}",
            resp.status()
        );
    }

    pub async fn fixture(&self, endpoint: &str, id: &str, body: &serde_json::Value) {
        let resp = client()
            .put(format!(
                "{}/_sim/fixture/{endpoint}/{}",
                self.url(),
                encode(id)
            ))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "setting fixture: {}",
            resp.status()
        );
    }

    /// PUTs `body` to the admin API's `path` (`/_sim/...`), which must accept it.
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) {
        let resp = client()
            .put(format!("{}{path}", self.url()))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
    }

    pub async fn stats(&self) -> serde_json::Value {
        client()
            .get(format!("{}/_sim/stats", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn requests(&self, endpoint: &str, id: &str) -> u64 {
        self.stats().await[format!("{endpoint}/{id}")]
            .as_u64()
            .unwrap_or(0)
    }
}

pub fn encode(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `--once` over `yaml` with `env` set: (exit code, stdout, stderr).
pub fn once_with(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--once").arg("--config").arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The exporter binary with a config file in a temp dir.
pub struct Exporter {
    pub proc: Proc,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

pub fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_backup-exporter")
}

pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

impl Exporter {
    pub fn start(yaml: &str) -> Exporter {
        Exporter::start_with(yaml, &[], &[])
    }

    pub fn start_with(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        Exporter::start_in(dir, yaml, args, env)
    }

    /// Every replica of `total` shards of `yaml` (`--total-shards total --shard i`).
    pub fn start_shards(yaml: &str, total: usize, env: &[(&str, &str)]) -> Vec<Exporter> {
        let total_text = total.to_string();
        (0..total)
            .map(|i| {
                let shard = i.to_string();
                let args = [
                    "--total-shards",
                    total_text.as_str(),
                    "--shard",
                    shard.as_str(),
                ];
                Exporter::start_with(yaml, &args, env)
            })
            .collect()
    }

    pub fn start_in(
        dir: tempfile::TempDir,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Exporter {
        let config = write_config(dir.path(), yaml);
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--config")
            .arg(&config)
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.format",
                "json",
            ])
            .args(args)
            .env("SIM_TOKEN", TOKEN)
            .env("SIM_EMAIL", EMAIL)
            .env("SIM_PASSWORD", PASSWORD);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Exporter::launch(cmd, dir)
    }

    /// Starts `cmd` (which must log JSON) and waits for its "listening" line.
    pub fn launch(cmd: Command, dir: tempfile::TempDir) -> Exporter {
        Exporter::launch_with_stdin(cmd, dir, Stdio::null())
    }

    /// [`Exporter::launch`] with `stdin` as the process's standard input.
    pub fn launch_with_stdin(cmd: Command, dir: tempfile::TempDir, stdin: Stdio) -> Exporter {
        let proc = Proc::spawn_with_stdin(cmd, stdin);
        let start = Instant::now();
        let addr = loop {
            let found = proc.stderr.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                if v["msg"] == "backup-exporter listening" {
                    v["address"].as_str().map(str::to_string)
                } else {
                    None
                }
            });
            if let Some(addr) = found {
                break addr;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("exporter did not start:\n{}", proc.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Exporter { proc, addr, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = client().get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body
    }

    pub async fn wait_ready(&self) {
        wait_for("/-/ready", Duration::from_secs(20), || async {
            (self.get("/-/ready").await.0 == 200).then_some(())
        })
        .await
    }

    /// Waits until a scrape satisfies `check`; returns that scrape.
    pub async fn wait_metrics(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if check(&m) {
                return m;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let relevant: Vec<&str> = m
                    .lines()
                    .filter(|l| {
                        l.starts_with("backup_target_up")
                            || l.starts_with("backup_upstream_requests_total")
                    })
                    .collect();
                panic!(
                    "timed out waiting for {what}; last scrape:\n{}\nlogs:\n{}",
                    relevant.join("\n"),
                    self.proc.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of the series whose line starts with `series` (name and labels exactly).
pub fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

pub fn outcome_series(upstream: &str, outcome: &str) -> String {
    format!("backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"zdm\",upstream=\"{upstream}\"}}")
}

pub fn target_up(upstream: &str, kind: &str, target: &str) -> String {
    format!("backup_target_up{{system=\"zdm\",upstream=\"{upstream}\",kind=\"{kind}\",target=\"{target}\"}}")
}

pub fn job_series(
    metric: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
    volume: &str,
) -> String {
    format!(
        "{metric}{{system=\"zdm\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"{volume}\"}}"
    )
}

pub fn job_status(upstream: &str, job: &str, server: &str, volume: &str, status: &str) -> String {
    format!(
        "backup_job_status{{system=\"zdm\",upstream=\"{upstream}\",operation=\"backup\",job_name=\"{job}\",server=\"{server}\",volume=\"{volume}\",status=\"{status}\"}}"
    )
}

pub fn runs(upstream: &str, job: &str, server: &str, volume: &str, result: &str) -> String {
    format!(
        "backup_job_runs_total{{system=\"zdm\",upstream=\"{upstream}\",operation=\"backup\",job_name=\"{job}\",server=\"{server}\",volume=\"{volume}\",result=\"{result}\"}}"
    )
}

/// A one-upstream ZDM config against the simulator.
pub fn zdm_config(sim: &Sim, extra: &str, targets: &str) -> String {
    format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n{extra}{targets}",
        sim.url()
    )
}

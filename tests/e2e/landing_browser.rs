//! The landing page in a real browser: the exporter against the simulator (failed jobs, long
//! names, failing targets), rendered by Debian's headless Chromium at 1400x1000 and, emulating
//! a phone, at 420x900. Checks that nothing scrolls sideways, that the narrow window shows
//! cards, that failed rows come first, that the counts match the rows, and that the status
//! and text filters work and survive a reload. Then, against an upstream with `discover:
//! true`, that the Unprotected and Capacity boxes list the simulator's unprotected servers,
//! disconnected agent, repositories and fully used licence, side by side when wide and one
//! above the other on a phone, still without sideways scrolling.
//!
//! Chromium comes from Debian's `chromium` package (scripts/test-all.sh installs it); a missing
//! one fails the test with the install line. The test speaks the DevTools protocol to it over
//! `--remote-debugging-pipe` (fds 3 and 4, set up by `sh`), so it needs no crate and no
//! download, and sets the viewport exactly (headless windows are at least 500 px wide).
//! Screenshots go to `$TMPDIR/landing-1400.png`, `$TMPDIR/landing-420.png` and
//! `$TMPDIR/landing-inventory-{1400,420}.png`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{Exporter, Sim};
use base64::Engine as _;
use serde_json::{json, Value as Json};

const INSTALL: &str = "apt-get install -y --no-install-recommends chromium";

/// How long one protocol command or event may take.
const STEP: Duration = Duration::from_secs(30);

/// Statuses in the order the page lists them.
const TRIAGE: [&str; 7] = [
    "failed",
    "unknown",
    "running",
    "pending",
    "cancelled",
    "completed_with_warnings",
    "completed",
];

const LONG_SERVER: &str =
    "app-server-with-an-extraordinarily-long-hostname-0001.backup.prod.internal.example";
const LONG_JOB: &str =
    "nightly-full-backup-of-the-enterprise-resource-planning-database-cluster-primary-and-replicas";

fn chromium() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`chromium` is not installed; install it with: {INSTALL}"))
}

fn rfc3339(ago_secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(ago_secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn zdm_job(name: &str, volume: &str, status: &str, percent: &str, message: &str) -> Json {
    let terminal = !matches!(status, "run" | "queued" | "verifying");
    json!({
        "info": { "name": name, "partition": volume },
        "progressInfo": {
            "status": status,
            "percent": percent,
            "message": message,
            "start": if status == "queued" { "-".to_string() } else { rfc3339(5_400) },
            "elapsed": "00:42:17",
            "end": if terminal { rfc3339(2_700) } else { "-".to_string() }
        },
        "log": []
    })
}

/// One server with a job in every status, two of them failed.
fn server_answer() -> Json {
    json!({
        "success": true,
        "requestID": "req-landing",
        "data": {
            "system": { "name": "db-서버-02" },
            "summary": { "total": 8, "completed": 1, "inProgress": 1, "failed": 2, "pending": 1, "overallProgress": "40%" },
            "job": [
                zdm_job("pgsql-백업", "/var/lib/pgsql", "fail", "63%",
                    "Backup failed: connection reset by peer (repository unreachable)"),
                zdm_job("웹로그-백업", "/var/log", "error", "12%",
                    "디스크 공간 부족: /backup 볼륨이 가득 찼습니다"),
                zdm_job("db-root", "/", "run", "45%", "Transferring 5.4 GB of 12 GB"),
                zdm_job("db-home", "/home", "complete", "100%", "Backup completed"),
                zdm_job("archive-weekly", "/archive", "cancelled", "30%", "Cancelled by operator"),
                zdm_job("config-snap", "/etc", "warning", "100%", "Completed with 3 skipped files"),
                zdm_job("queue-job", "/data", "queued", "-", "Waiting for a free slot"),
                zdm_job("verify-job", "/srv", "verifying", "80%", "Verifying checksums"),
            ]
        },
        "message": "Server backup monitoring info",
        "timestamp": rfc3339(0)
    })
}

/// A failed job whose names and reason have no spaces to break at.
fn long_job_answer() -> Json {
    let reason = format!(
        "Backup failed: cannot write /mnt/{}/{}",
        "very-long-directory-name".repeat(6),
        "x".repeat(120)
    );
    json!({
        "success": true,
        "requestID": "req-landing-long",
        "data": {
            "system": { "name": LONG_SERVER },
            "job": zdm_job(LONG_JOB, "/var/lib/erp-database-cluster/primary", "fail", "99%", &reason)
        },
        "message": "Backup monitoring info",
        "timestamp": rfc3339(0)
    })
}

/// Headless Chromium driven over the DevTools protocol: one page, closed when dropped.
struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: mpsc::Receiver<Json>,
    /// Events that arrived while a command waited for its answer.
    events: VecDeque<Json>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(profile.path().join("stderr.log")).unwrap();
        // Chromium reads commands from fd 3 and writes answers to fd 4, each ending in NUL.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec 3<&0 4>&1 </dev/null >/dev/null; exec \"$0\" \"$@\"")
            .arg(chromium())
            .args([
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--no-proxy-server",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting chromium");
        let to_browser = child.stdin.take().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (tx, from_browser) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(msg) = serde_json::from_slice::<Json>(&buf) {
                    if tx.send(msg).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            child,
            to_browser,
            from_browser,
            events: VecDeque::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.browser_call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({}));
        browser
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._profile.path().join("stderr.log")).unwrap_or_default()
    }

    fn next_message(&mut self, deadline: Instant, what: &str) -> Json {
        let left = deadline.saturating_duration_since(Instant::now());
        self.from_browser
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("chromium: no {what} ({e}); its log:\n{}", self.log()))
    }

    fn send(&mut self, method: &str, params: Json, session: bool) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if session {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        self.to_browser.flush().unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            let msg = self.next_message(deadline, method);
            if msg["id"] == id {
                assert!(msg["error"].is_null(), "{method}: {}", msg["error"]);
                return msg["result"].clone();
            }
            self.events.push_back(msg);
        }
    }

    fn browser_call(&mut self, method: &str, params: Json) -> Json {
        self.send(method, params, false)
    }

    /// A command to the page.
    fn call(&mut self, method: &str, params: Json) -> Json {
        self.send(method, params, true)
    }

    fn wait_event(&mut self, method: &str) {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            self.events.drain(..=i);
            return;
        }
        self.events.clear();
        let deadline = Instant::now() + STEP;
        while self.next_message(deadline, method)["method"] != method {}
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_event("Page.loadEventFired");
    }

    fn reload(&mut self) {
        self.events.clear();
        self.call("Page.reload", json!({}));
        self.wait_event("Page.loadEventFired");
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Json {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    fn screenshot(&mut self, file: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a real screenshot"
        );
        std::fs::write(file, png).unwrap();
    }
}

impl Drop for Browser {
    /// Asks Chromium to close (it then removes its helper processes), kills it if it lingers.
    fn drop(&mut self) {
        let close = json!({ "id": self.next_id + 1, "method": "Browser.close" });
        let mut bytes = serde_json::to_vec(&close).unwrap();
        bytes.push(0);
        let _ = self.to_browser.write_all(&bytes);
        let _ = self.to_browser.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page looks like: measured in the browser, after layout.
const MEASURE: &str = r#"(() => {
  const e = document.documentElement, counts = {};
  for (const a of document.querySelectorAll('.cnt[data-status]')) counts[a.dataset.status || 'all'] = +a.dataset.n;
  const rows = [...document.querySelectorAll('#jobs tbody tr[data-s]')];
  const times = [...document.querySelectorAll('[data-ts]')];
  return {
    scrollWidth: e.scrollWidth, clientWidth: e.clientWidth, innerWidth,
    layout: getComputedStyle(document.getElementById('jobs')).display,
    visible: rows.filter(r => r.getClientRects().length > 0).map(r => r.dataset.s),
    counts, hash: location.hash, filter: document.getElementById('q').value,
    times: times.map(t => t.textContent), titles: times.map(t => t.title),
    spilled: [...document.querySelectorAll('th, td')].filter(c => c.getClientRects().length > 0 && c.scrollWidth > c.clientWidth + 1).map(c => c.textContent),
  };
})()"#;

#[derive(Debug)]
struct Page {
    scroll_width: i64,
    client_width: i64,
    inner_width: i64,
    layout: String,
    visible: Vec<String>,
    counts: Json,
    hash: String,
    filter: String,
    times: Vec<String>,
    titles: Vec<String>,
    /// Cells whose content is wider than the cell.
    spilled: Vec<String>,
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn measure(browser: &mut Browser) -> Page {
    let m = browser.eval(MEASURE);
    Page {
        scroll_width: m["scrollWidth"].as_i64().unwrap(),
        client_width: m["clientWidth"].as_i64().unwrap(),
        inner_width: m["innerWidth"].as_i64().unwrap(),
        layout: m["layout"].as_str().unwrap().to_string(),
        visible: strings(&m["visible"]),
        counts: m["counts"].clone(),
        hash: m["hash"].as_str().unwrap().to_string(),
        filter: m["filter"].as_str().unwrap().to_string(),
        times: strings(&m["times"]),
        titles: strings(&m["titles"]),
        spilled: strings(&m["spilled"]),
    }
}

/// Types `text` into the filter box as a person would, and waits out its debounce.
fn type_filter(browser: &mut Browser, text: &str) {
    browser.eval(&format!(
        "(async () => {{ const q = document.getElementById('q'); q.focus(); q.value = {}; \
         q.dispatchEvent(new Event('input')); await new Promise(r => setTimeout(r, 400)); }})()",
        json!(text)
    ));
}

fn click_count(browser: &mut Browser, status: &str) {
    browser.eval(&format!(
        "document.querySelector('.cnt[data-status=\"{status}\"]').click()"
    ));
}

fn assert_fits(p: &Page, width: u32, layout: &str) {
    assert_eq!(p.inner_width, i64::from(width), "{p:?}");
    assert!(
        p.scroll_width <= p.client_width && p.client_width <= p.inner_width,
        "horizontal overflow at {width} px: {p:?}"
    );
    assert_eq!(p.layout, layout, "{width} px: {p:?}");
    assert!(p.spilled.is_empty(), "long names wrap: {:?}", p.spilled);
    assert!(!p.times.is_empty());
    for (text, title) in p.times.iter().zip(&p.titles) {
        assert!(
            text == "just now" || text.ends_with(" ago") || text.starts_with("in "),
            "relative time: {text:?}"
        );
        assert!(title.ends_with(" UTC"), "exact time on hover: {title:?}");
    }
}

/// Failed rows first, then the triage order; the counts are the rows' and the expected ones.
fn assert_rows_and_counts(p: &Page, expected: &[(&str, u64)]) {
    let ranks: Vec<usize> = p
        .visible
        .iter()
        .map(|s| TRIAGE.iter().position(|t| t == s).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "rows out of triage order: {:?}",
        p.visible
    );
    assert_eq!(p.visible.first().map(String::as_str), Some("failed"));
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(p.counts["all"], total, "{:?}", p.counts);
    assert_eq!(p.visible.len() as u64, total);
    for status in TRIAGE {
        let want = expected
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        let rows = p.visible.iter().filter(|s| *s == status).count() as u64;
        assert_eq!(p.counts[status], want, "count of {status}: {:?}", p.counts);
        assert_eq!(rows, want, "rows of {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_page_fits_both_widths_failed_first_counts_and_filters_work() {
    chromium();
    let sim = Sim::start();
    sim.fixture("system", "db-server-02", &server_answer())
        .await;
    sim.fixture("backup_job", "erp-nightly", &long_job_answer())
        .await;
    sim.fault("backup_job", "daily-backup", "error500").await;
    sim.fault("recovery_job", "daily-recovery", "unauthorized")
        .await;
    // API 1.1: the fixtures replace the monitoring answers only; from 1.2 on the exporter
    // also reads the simulator's run histories, which hold its live jobs of the same names
    // on db-서버-02 (pgsql-백업, db-root) and would give their latest results instead.
    let yaml = format!(
        "upstreams:\n  - name: zdm-prod\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n    api_version: '1.1'\n    interval: 1s\n    timeout: 1s\n    servers: [db-server-02]\n    backup_jobs: [erp-nightly, daily-backup]\n    recovery_jobs: [daily-recovery]\n",
        sim.url()
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    exp.wait_metrics("the jobs and both failing targets", |m| {
        m.lines()
            .filter(|l| l.starts_with("backup_job_status{") && l.ends_with(" 1"))
            .count()
            == 9
            && m.contains("reason=\"http_5xx\"")
            && m.contains("reason=\"auth_error\"")
    })
    .await;

    let (_, html) = exp.get("/").await;
    assert!(html.contains("Targets failing: 2"), "{html}");
    assert!(html.contains("<b>http_5xx</b>") && html.contains("<b>auth_error</b>"));
    assert!(
        html.contains("repository unreachable"),
        "the failure reason"
    );
    assert!(
        html.contains("</b></td><td>since <span data-ts="),
        "failing since when"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );

    let expected = [
        ("failed", 3),
        ("unknown", 1),
        ("running", 1),
        ("pending", 1),
        ("cancelled", 1),
        ("completed_with_warnings", 1),
        ("completed", 1),
    ];
    let url = exp.url("/");
    let tmp = std::env::temp_dir();
    let mut browser = Browser::start();

    browser.viewport(1400, 1000, false);
    browser.navigate(&url);
    let wide = measure(&mut browser);
    assert_fits(&wide, 1400, "table");
    assert_rows_and_counts(&wide, &expected);
    browser.screenshot(&tmp.join("landing-1400.png"));

    // "failed 3" shows only the failed rows; the text filter narrows them further; a reload
    // keeps both (they live in the URL's fragment); "all" resets.
    click_count(&mut browser, "failed");
    let failed = measure(&mut browser);
    assert_eq!(failed.visible, ["failed"; 3]);
    assert_eq!(failed.hash, "#status=failed");
    type_filter(&mut browser, "REPOSITORY  reset");
    let both = measure(&mut browser);
    assert_eq!(both.visible, ["failed"], "status and text filter combined");
    browser.reload();
    let reloaded = measure(&mut browser);
    assert_eq!(reloaded.visible, ["failed"], "{reloaded:?}");
    assert_eq!(reloaded.filter, "REPOSITORY  reset");
    type_filter(&mut browser, "");
    click_count(&mut browser, "");
    let all = measure(&mut browser);
    assert_eq!(all.hash, "");
    assert_rows_and_counts(&all, &expected);

    browser.viewport(420, 900, true);
    browser.navigate(&url);
    let narrow = measure(&mut browser);
    assert_fits(&narrow, 420, "block");
    assert_rows_and_counts(&narrow, &expected);
    browser.screenshot(&tmp.join("landing-420.png"));
    type_filter(&mut browser, "웹로그");
    let korean = measure(&mut browser);
    assert_eq!(korean.visible, ["failed"], "Korean text filter");
    assert_fits(&korean, 420, "block");
    drop(exp);

    // An upstream that discovers: its unprotected servers, disconnected agent, repositories
    // and licences fill the two boxes, side by side when wide, one above the other on a
    // phone; neither makes the page scroll sideways.
    let yaml = format!(
        "upstreams:\n  - name: zdm-fleet\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n    interval: 1s\n    timeout: 1s\n    discover: true\n",
        sim.url()
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    exp.wait_metrics("the fleet's inventory", |m| {
        m.contains("backup_license_copies{") && m.contains("backup_server_protected{")
    })
    .await;
    let url = exp.url("/");
    browser.viewport(1400, 1000, false);
    browser.navigate(&url);
    let wide = measure(&mut browser);
    assert_fits(&wide, 1400, "table");
    let boxes = browser.eval(BOXES);
    assert_eq!(
        boxes["unprotected"],
        json!(["legacy-erp-01", "test-vm-07", "win-fs-01"]),
        "{boxes}"
    );
    assert_eq!(
        boxes["flagged"],
        json!(["ZDM Recovery Standard"]),
        "{boxes}"
    );
    assert_eq!(boxes["repositories"], 3, "{boxes}");
    assert_eq!(boxes["sideBySide"], true, "{boxes}");
    browser.screenshot(&tmp.join("landing-inventory-1400.png"));
    browser.viewport(420, 900, true);
    browser.navigate(&url);
    let narrow = measure(&mut browser);
    assert_fits(&narrow, 420, "block");
    let boxes = browser.eval(BOXES);
    assert_eq!(boxes["stacked"], true, "{boxes}");
    assert_eq!(boxes["repositories"], 3, "{boxes}");
    browser.screenshot(&tmp.join("landing-inventory-420.png"));
}

/// The two inventory boxes as laid out: the names listed as unprotected, the flagged
/// licences, the repository rows shown, and where the boxes sit relative to each other.
const BOXES: &str = r#"(() => {
  const u = document.getElementById('unprotected'), c = document.getElementById('capacity');
  const ur = u.getBoundingClientRect(), cr = c.getBoundingClientRect();
  return {
    unprotected: [...u.querySelectorAll('li')].map(l => l.textContent),
    flagged: [...c.querySelectorAll('#licences tr.f td:nth-child(2)')].map(t => t.textContent),
    repositories: [...c.querySelectorAll('#repositories tbody tr')].filter(r => r.getClientRects().length > 0).length,
    sideBySide: Math.abs(ur.top - cr.top) < 1 && cr.left >= ur.right,
    stacked: cr.top >= ur.bottom && Math.abs(ur.left - cr.left) < 1,
  };
})()"#;

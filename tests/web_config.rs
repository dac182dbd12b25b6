//! `--web.config.file`: TLS and basic auth on every endpoint, as exporter-toolkit does it.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn https_client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_every_endpoint() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash("scrape-pass-8d1f", 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: {hash}\n"
    );
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, web).unwrap();

    let config = write_config(
        dir.path(),
        &zdm_config(&sim, "", "    backup_jobs: [daily-backup]\n"),
    );
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web_path)
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.format",
            "json",
        ])
        .env("SIM_TOKEN", TOKEN);
    let exp = Exporter::launch(cmd, dir);
    let https = https_client(&cert_pem);
    let url = |path: &str| {
        format!(
            "https://{}{path}",
            exp.addr.replace("127.0.0.1", "localhost")
        )
    };

    for path in ["/metrics", "/", "/-/healthy", "/-/ready"] {
        let resp = https.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} without credentials");
        assert!(resp.headers().contains_key("www-authenticate"));
        let resp = https
            .get(url(path))
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} with a wrong password");
    }
    let m = wait_for(
        "authorized scrape with data",
        std::time::Duration::from_secs(20),
        || async {
            let resp = https
                .get(url("/metrics"))
                .basic_auth("prometheus", Some("scrape-pass-8d1f"))
                .send()
                .await
                .ok()?;
            let text = resp.text().await.ok()?;
            text.contains("backup_job_status{").then_some(text)
        },
    )
    .await;
    assert!(m.contains("backup_target_up{"));
    // Plain HTTP on the TLS port gets a 400 saying so (as Go's net/http), not a reset.
    let plain = client()
        .get(format!("http://{}/metrics", exp.addr))
        .basic_auth("prometheus", Some("scrape-pass-8d1f"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    let resp = https
        .get(url("/-/healthy"))
        .basic_auth("prometheus", Some("scrape-pass-8d1f"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "HTTPS still served after it");
    assert!(!exp.proc.stderr_text().contains("scrape-pass-8d1f"));
}

/// A config whose one upstream refuses connections: the exporter starts and serves at once.
const UNREACHABLE: &str = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";

/// The exporter with basic auth for `user` (bcrypt cost 10, as `htpasswd -B` makes them).
fn with_basic_auth(user: &str, password: &str) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(password, 10).unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, format!("basic_auth_users:\n  {user}: {hash}\n")).unwrap();
    let web = web_path.to_str().unwrap().to_string();
    Exporter::start_in(dir, UNREACHABLE, &["--web.config.file", &web], &[])
}

/// Status and time of one GET with Basic credentials (building a client takes longer than
/// a remembered check: `client` is built beforehand and reused).
async fn timed_get(
    client: &reqwest::Client,
    exp: &Exporter,
    path: &str,
    user: &str,
    password: &str,
) -> (u16, Duration) {
    let start = Instant::now();
    let resp = client
        .get(exp.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    (status, start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
    let exp = with_basic_auth("prometheus", "right-pass-51c2");
    let client = client();
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (status, took) =
            timed_get(&client, &exp, "/-/healthy", "nobody", "right-pass-51c2").await;
        assert_eq!(status, 401);
        unknown.push(took);
        let (status, took) = timed_get(&client, &exp, "/-/healthy", "prometheus", "wrong").await;
        assert_eq!(status, 401);
        wrong.push(took);
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    assert!(
        wrong >= Duration::from_millis(5),
        "a cost-10 bcrypt check is measurable: {wrong:?}"
    );
    assert!(
        unknown.as_secs_f64() >= 0.3 * wrong.as_secs_f64(),
        "unknown user {unknown:?} vs wrong password {wrong:?}: the difference tells which users exist"
    );
    let (status, _) = timed_get(&client, &exp, "/-/healthy", "prometheus", "right-pass-51c2").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_floods_leave_scrapes_answered() {
    let exp = Arc::new(with_basic_auth("prometheus", "right-pass-51c2"));
    let scraper = client();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for i in 0..8 {
        let (exp, stop, attempts) = (exp.clone(), stop.clone(), attempts.clone());
        flood.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .get(exp.url("/metrics"))
                    .basic_auth("prometheus", Some(format!("guess-{i}")))
                    .send()
                    .await;
                if let Ok(resp) = resp {
                    assert_eq!(resp.status().as_u16(), 401);
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    wait_for("the flood under way", Duration::from_secs(10), || async {
        (attempts.load(Ordering::Relaxed) >= 16).then_some(())
    })
    .await;

    // The first scrape pays for bcrypt behind the queue of guesses; later ones are remembered
    // and must not wait for a worker thread busy with somebody's guess.
    let (status, first) =
        timed_get(&scraper, &exp, "/metrics", "prometheus", "right-pass-51c2").await;
    assert_eq!(status, 200);
    let mut later = Vec::new();
    for _ in 0..5 {
        let (status, took) =
            timed_get(&scraper, &exp, "/metrics", "prometheus", "right-pass-51c2").await;
        assert_eq!(status, 200);
        later.push(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    assert!(
        first < Duration::from_secs(6),
        "first scrape took {first:?}"
    );
    let slowest = later.iter().max().copied().unwrap_or_default();
    assert!(
        median(later.clone()) < Duration::from_millis(250) && slowest < Duration::from_secs(1),
        "remembered scrapes wait on no bcrypt: {later:?}"
    );
}

#[test]
fn malformed_bcrypt_hashes_stop_start_up_naming_the_user() {
    let good = bcrypt::hash("x", 4).unwrap();
    let cases = [
        ("short-prefix", "$2".to_string()),
        ("cost-99", format!("$2b$99${}", &good[7..])),
        ("truncated", good[..40].to_string()),
        ("not-bcrypt", "$apr1$abc$defghijklmnop".to_string()),
        ("plain", "hunter2".to_string()),
    ];
    for (user, hash) in cases {
        let dir = tempfile::tempdir().unwrap();
        let web_path = dir.path().join("web.yml");
        std::fs::write(
            &web_path,
            format!("basic_auth_users:\n  ok-user: {good}\n  {user}: '{hash}'\n"),
        )
        .unwrap();
        let config = write_config(dir.path(), UNREACHABLE);
        let out = Command::new(exporter_bin())
            .arg("--config")
            .arg(&config)
            .arg("--web.config.file")
            .arg(&web_path)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env("SIM_TOKEN", "x")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{user}: {err}");
        assert!(
            err.contains(&format!("basic_auth_users.{user}: not a bcrypt hash")),
            "{user}: {err}"
        );
        assert!(!err.contains("ok-user"), "only the bad one is named: {err}");
    }
}

#[test]
fn a_bad_web_config_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let config = write_config(
        dir.path(),
        "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n",
    );
    let out = Command::new(exporter_bin())
        .arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web_path)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("SIM_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("basic_auth_users.prometheus: not a bcrypt hash"),
        "{err}"
    );
}

//! `--web.config.file`: TLS and basic auth on every endpoint, as exporter-toolkit does it.

mod common;

use std::process::Command;

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
    // Plain HTTP on the TLS port gets no metrics.
    let plain = client()
        .get(format!("http://{}/metrics", exp.addr))
        .send()
        .await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    assert!(!exp.proc.stderr_text().contains("scrape-pass-8d1f"));
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

//! A one-minute soak: `benches/soak.sh 60` with the binaries of this build. Faults of every
//! kind on rotating targets, a scrape every second, SIGHUP every 10 s; the script fails on a
//! failed scrape, a panic, a dead exporter, RSS over its bound or leaked fds. No timings are
//! asserted.

use std::process::Command;

#[test]
fn one_minute_of_faults_scrapes_and_reloads_leaves_no_panic_no_failed_scrape_and_bounded_memory() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/benches/soak.sh"))
        .arg("60")
        .current_dir(root)
        .env("SKIP_BUILD", "1")
        .env("EXPORTER_BIN", env!("CARGO_BIN_EXE_backup-exporter"))
        .env("SIMULATOR_BIN", env!("CARGO_BIN_EXE_backup-simulator"))
        .env_remove("KEEP_LOGS")
        .output()
        .expect("run bash benches/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("soak: 60 s,"))
        .unwrap_or("");
    assert!(
        out.status.success(),
        "soak.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        summary.contains(" 0 failed scrapes, 0 panics,"),
        "no summary line, or it shows failures:\n{stdout}\n{stderr}"
    );
}

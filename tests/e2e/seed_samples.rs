//! The seed documents' sample answers, through the real binary (`--once`), pass
//! `promtool check metrics` (their exact series are pinned in tests/seed_samples.rs).

use std::process::Command;

use crate::common::seeds::*;

#[test]
fn promtool_check_metrics_is_clean() {
    let sim = seed_sim();
    let (code, m, stderr) = run_once(&seed_config(&sim));
    assert_eq!(code, Some(0), "{stderr}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test-all.sh (Debian's `prometheus` package)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), m.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("cardinality"))
        .collect();
    assert!(
        problems.is_empty() && out.status.success(),
        "promtool: {report}"
    );
}

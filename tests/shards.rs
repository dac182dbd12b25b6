//! Sharding across replicas: `--total-shards N --shard I|auto` split the targets by a stable
//! hash; every target is polled by exactly one shard, and each shard speaks for its own.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::*;

fn targets_up(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("backup_target_up{"))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        .collect()
}

fn sharded(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
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
        .env("SIM_TOKEN", TOKEN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Exporter::launch(cmd, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_targets_disjointly_and_cover_them_all() {
    let sim = Sim::start();
    let jobs: Vec<String> = (0..24).map(|i| format!("job-{i:02}")).collect();
    let yaml = zdm_config(
        &sim,
        "",
        &format!(
            "    backup_jobs: [daily-backup, daily-backup-win, {}]\n    servers: [server-01]\n",
            jobs.join(", ")
        ),
    );
    let all = Exporter::start(&yaml);
    let zero = sharded(&yaml, &["--total-shards", "2", "--shard", "0"], &[]);
    let one = sharded(
        &yaml,
        &["--total-shards", "2", "--shard", "auto"],
        &[("HOSTNAME", "backup-exporter-1")],
    );
    for exp in [&all, &zero, &one] {
        exp.wait_ready().await;
    }
    let (m_all, m0, m1) = (
        all.metrics().await,
        zero.metrics().await,
        one.metrics().await,
    );
    let (t_all, t0, t1) = (targets_up(&m_all), targets_up(&m0), targets_up(&m1));
    assert_eq!(t_all.len(), 27);
    assert!(!t0.is_empty() && !t1.is_empty(), "both shards have targets");
    assert!(t0.is_disjoint(&t1), "no target on two shards");
    assert_eq!(&t0 | &t1, t_all, "every target on one shard");
    assert!(m0.contains("backup_exporter_shard_info{shard=\"0\",total_shards=\"2\"} 1"));
    assert!(m1.contains("backup_exporter_shard_info{shard=\"1\",total_shards=\"2\"} 1"));
    assert!(m_all.contains("backup_exporter_shard_info{shard=\"0\",total_shards=\"1\"} 1"));
    // The landing page speaks for its shard.
    let (_, landing) = one.get("/").await;
    assert!(
        landing.contains("shard 1 of 2"),
        "the landing page names the shard"
    );
    let (_, landing) = all.get("/").await;
    assert!(!landing.contains("shard 0 of 1"));
    // The same split again: the hash is stable.
    let again = sharded(&yaml, &["--total-shards", "2", "--shard", "1"], &[]);
    again.wait_ready().await;
    assert_eq!(targets_up(&again.metrics().await), t1);
}

#[test]
fn a_shard_outside_the_total_or_a_host_without_an_ordinal_is_refused() {
    for (args, env, want) in [
        (
            vec!["--total-shards", "2", "--shard", "2"],
            None,
            "not below",
        ),
        (vec!["--total-shards", "0"], None, "at least 1"),
        (
            vec!["--total-shards", "3", "--shard", "auto"],
            Some("backup-exporter"),
            "does not end in -<number>",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n",
        );
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--config")
            .arg(&config)
            .args(["--once"])
            .args(&args)
            .env("SIM_TOKEN", TOKEN);
        if let Some(host) = env {
            cmd.env("HOSTNAME", host);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// The StatefulSet variant: `--shard auto` with `--total-shards` equal to its replicas, a
/// headless Service over the pods and a ServiceMonitor that scrapes every shard.
#[test]
fn the_sharded_kubernetes_variant_agrees_with_itself() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/sharded");
    let load = |name: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let kustomization = load("kustomization.yaml");
    for res in kustomization["resources"].as_sequence().unwrap() {
        assert!(dir.join(res.as_str().unwrap()).is_file(), "{res:?}");
    }
    let sts = load("statefulset.yaml");
    assert_eq!(sts["kind"].as_str(), Some("StatefulSet"));
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let args: Vec<&str> = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--shard=auto"), "{args:?}");
    assert!(
        args.contains(&format!("--total-shards={replicas}").as_str()),
        "--total-shards equals replicas: {args:?}"
    );
    let service = load("service.yaml");
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        sts["spec"]["serviceName"].as_str(),
        service["metadata"]["name"].as_str()
    );
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[k.as_str().unwrap()],
            v,
            "the Service selects the pods"
        );
    }
    let monitor = load("servicemonitor.yaml");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][k.as_str().unwrap()],
            v,
            "the ServiceMonitor selects the Service"
        );
    }
}

//! Cost of one poll per source: the real client, parser and store against the bundled
//! simulator on loopback (the simulator's own work is included in the wall time).
//!
//! `cargo bench --bench poll -- --warm-up-time 1 --measurement-time 5`

// A bench set-up that fails should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backup_exporter::app::ConfigSource;
use backup_exporter::exposition::Packed;
use backup_exporter::poller::{self, Planned};
use backup_exporter::store::{SeriesSettings, Store};
use backup_exporter::telemetry::Telemetry;
use backup_simulator::systems::azure::AzureSim;
use backup_simulator::{SimOptions, Simulator};
use criterion::{criterion_group, criterion_main, Criterion};

fn setup(rt: &tokio::runtime::Runtime) -> (Vec<Planned>, Arc<Store>) {
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut options = SimOptions::default();
        options.systems.zdm.token = Some("t".into());
        options.systems.scp.keys = Some(("a".into(), "s".into()));
        options.systems.azure.client = Some(AzureSim {
            tenant_id: "tn".into(),
            client_id: "c".into(),
            client_secret: "cs".into(),
        });
        let sim = Simulator::new(options);
        tokio::spawn(sim.serve(listener, std::future::pending()));
        addr
    });
    let yaml = format!(
        "defaults: {{ interval: 30s }}
upstreams:
  - {{ name: zdm, type: zdm, url: 'http://{addr}', token_env: T, servers: [web-01] }}
  - {{ name: scp, type: scp, url: 'http://{addr}', access_key_env: A, secret_key_env: S, backups: [5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c] }}
  - {{ name: azure, type: azure, tenant_id: tn, client_id: c, client_secret_env: C, subscription_id: 11111111-2222-3333-4444-555555555555, management_url: 'http://{addr}', authority_url: 'http://{addr}', vaults: [{{ resource_group: rg-backup, name: vault-01 }}] }}
"
    );
    let env: HashMap<String, String> = [("T", "t"), ("A", "a"), ("S", "s"), ("C", "cs")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = ConfigSource::Inline { yaml, env }
        .load()
        .expect("bench config");
    let client = backup_exporter::http::build_client().expect("client");
    let plan = poller::plan(&config, &client, &Telemetry::new(), Default::default());
    let store = Arc::new(Store::new(Arc::new(Packed::new())));
    let targets: Vec<_> = config
        .upstreams
        .iter()
        .flat_map(|u| {
            let settings = SeriesSettings {
                stale_after: u.settings.stale_after,
                job_status: u.settings.job_status,
                forget_after: u.settings.forget_after,
            };
            plan.iter()
                .filter(move |p| *p.id.upstream == *u.name)
                .map(move |p| (p.id.clone(), settings))
        })
        .collect();
    store.track(&targets);
    (plan, store)
}

fn bench_polls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (plan, store) = setup(&rt);
    let mut group = c.benchmark_group("poll_one_target");
    group.measurement_time(Duration::from_secs(5));
    for planned in &plan {
        // Warm the connection pool and token caches; a failing setup is not a benchmark.
        rt.block_on(poller::poll_once(planned, &store))
            .unwrap_or_else(|f| panic!("{}: {f}", planned.id));
        let name = format!(
            "{}_{}",
            planned.id.system.as_str(),
            planned.id.kind.as_str()
        );
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(poller::poll_once(planned, &store)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_polls);
criterion_main!(benches);

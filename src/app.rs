//! The running exporter: configuration, pollers, store and telemetry, and reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now;
use crate::config::{self, Config, ConfigErrors, Upstream};
use crate::exposition::Exposition;
use crate::model::{JobStatusSeries, TargetId};
use crate::poller::{self, Pollers};
use crate::shard::Shard;
use crate::state::Store;
use crate::telemetry::Telemetry;

/// Where the configuration comes from; read again on every reload.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// A built-in configuration (`--demo`) with its own environment for secrets.
    Inline {
        yaml: String,
        env: HashMap<String, String>,
    },
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::File(path) => config::load(path),
            ConfigSource::Inline { yaml, env } => {
                config::parse(yaml, std::path::Path::new("."), &|k| env.get(k).cloned())
            }
        }
    }
}

pub struct App {
    pub store: Arc<Store>,
    pub telemetry: Telemetry,
    client: reqwest::Client,
    source: ConfigSource,
    shard: Shard,
    running: tokio::sync::Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// One entry per configured upstream, with the configuration it runs with.
    upstreams: Vec<RunningUpstream>,
    /// Expires stale series and compresses changed ones; started with the first
    /// configuration.
    upkeep: Option<Pollers>,
}

struct RunningUpstream {
    config: Upstream,
    /// Its poll loops; `None` under `--once`, which polls without loops.
    pollers: Option<Pollers>,
    targets: Vec<(TargetId, Duration, JobStatusSeries)>,
}

impl Running {
    fn upstreams_seen(&self) -> Vec<(&'static str, String)> {
        self.upstreams
            .iter()
            .map(|r| (r.config.system(), r.config.name.clone()))
            .collect()
    }
}

impl App {
    /// An exporter that polls the targets of `shard` (use `Shard::default()` for all).
    pub fn new(source: ConfigSource, client: reqwest::Client, shard: Shard) -> Arc<Self> {
        let telemetry = Telemetry::new();
        telemetry.set_shard(shard);
        Arc::new(App {
            store: Arc::new(Store::new()),
            telemetry,
            client,
            source,
            shard,
            running: tokio::sync::Mutex::new(Running::default()),
        })
    }

    pub fn load(&self) -> Result<Config, ConfigErrors> {
        self.source.load()
    }

    /// Runs `config`. An upstream whose configuration did not change keeps running as it
    /// is: its schedule, its token and its state (a reload that changes nothing sends no
    /// request). Changed or new upstreams start afresh; removed ones stop and lose their
    /// series. Targets kept across the change keep their series and run counts.
    pub async fn apply(&self, config: &Config) {
        let mut running = self.running.lock().await;
        let mut previous = std::mem::take(&mut running.upstreams);
        let mut next = Vec::with_capacity(config.upstreams.len());
        let mut fresh = Vec::new();
        for upstream in &config.upstreams {
            match previous.iter().position(|r| &r.config == upstream) {
                Some(i) => next.push(previous.swap_remove(i)),
                None => {
                    let plan =
                        poller::plan_upstream(upstream, &self.client, &self.telemetry, self.shard);
                    fresh.push((next.len(), plan));
                    next.push(RunningUpstream {
                        config: upstream.clone(),
                        pollers: None,
                        targets: Vec::new(),
                    });
                }
            }
        }
        for old in previous {
            if let Some(pollers) = old.pollers {
                pollers.stop().await;
            }
        }
        for (i, plan) in &fresh {
            next[*i].targets = plan
                .iter()
                .map(|p| (p.id.clone(), p.stale_after, p.job_status))
                .collect();
        }
        self.register(&running.upstreams_seen(), &next);
        let targets: Vec<_> = next.iter().flat_map(|r| r.targets.clone()).collect();
        self.store.set_targets_with(&targets);
        for (i, plan) in fresh {
            next[i].pollers = Some(Pollers::spawn(plan, self.store.clone()));
        }
        if running.upkeep.is_none() {
            running.upkeep = Some(Pollers::upkeep(self.store.clone()));
        }
        running.upstreams = next;
        self.telemetry.config_loaded(true, unix_now());
    }

    /// `--once`: installs `config` like [`App::apply`], then polls every target once,
    /// concurrently, instead of starting the poll loops. True if every poll succeeded.
    pub async fn poll_once(&self, config: &Config) -> bool {
        let plan = {
            let mut running = self.running.lock().await;
            let plan = poller::plan(config, &self.client, &self.telemetry, self.shard);
            let next: Vec<RunningUpstream> = config
                .upstreams
                .iter()
                .map(|u| RunningUpstream {
                    config: u.clone(),
                    pollers: None,
                    targets: Vec::new(),
                })
                .collect();
            self.register(&running.upstreams_seen(), &next);
            let targets: Vec<_> = plan
                .iter()
                .map(|p| (p.id.clone(), p.stale_after, p.job_status))
                .collect();
            self.store.set_targets_with(&targets);
            running.upstreams = next;
            self.telemetry.config_loaded(true, unix_now());
            plan
        };
        let polls = plan.iter().map(|p| async {
            let result = poller::poll_once(p, &self.store).await;
            if let Err(fault) = &result {
                tracing::warn!(
                    upstream = %p.id.upstream,
                    target = %p.id.target,
                    kind = p.id.kind.as_str(),
                    outcome = fault.outcome.as_str(),
                    reason = %fault.reason,
                    "target poll failed"
                );
            }
            result.is_ok()
        });
        futures_util::future::join_all(polls)
            .await
            .into_iter()
            .all(|ok| ok)
    }

    /// Per-upstream telemetry series: created for new upstreams, removed for gone ones.
    fn register(&self, before: &[(&'static str, String)], next: &[RunningUpstream]) {
        let after: Vec<(&'static str, &str)> = next
            .iter()
            .map(|r| (r.config.system(), r.config.name.as_str()))
            .collect();
        for (system, name) in before {
            if !after.iter().any(|(s, n)| s == system && n == name) {
                self.telemetry.forget_upstream(system, name);
            }
        }
        for (system, name) in after {
            self.telemetry.register_upstream(system, name);
        }
    }

    /// Loads the configuration again; a bad one is refused and the running one stays.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        match self.load() {
            Ok(config) => {
                self.apply(&config).await;
                tracing::info!(upstreams = config.upstreams.len(), "configuration reloaded");
                Ok(())
            }
            Err(errors) => {
                self.telemetry.config_loaded(false, unix_now());
                for e in &errors.0 {
                    tracing::error!(path = %e.path, problem = %e.message, "configuration rejected, keeping the running one");
                }
                Err(errors)
            }
        }
    }

    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for upstream in std::mem::take(&mut running.upstreams) {
            if let Some(pollers) = upstream.pollers {
                pollers.stop().await;
            }
        }
        if let Some(upkeep) = running.upkeep.take() {
            upkeep.stop().await;
        }
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The read-only handle for the HTTP server: ready bytes, readiness, the landing tables.
    pub fn exposition(&self) -> Exposition {
        Exposition::new(self.store.clone(), self.telemetry.clone(), self.shard)
    }
}

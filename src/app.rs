//! The running exporter: configuration, pollers, store and telemetry, and reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::unix_now;
use crate::config::{self, Config, ConfigErrors};
use crate::exposition::Exposition;
use crate::poller::{self, Planned, Pollers};
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
    pollers: Option<Pollers>,
    upstreams: Vec<(&'static str, String)>,
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

    /// Replaces the running pollers with those of `config`. Targets kept across the change
    /// keep their series and run counts.
    pub async fn apply(&self, config: &Config) {
        let mut running = self.running.lock().await;
        if let Some(old) = running.pollers.take() {
            old.stop().await;
        }
        let plan = self.install(config, &mut running);
        running.pollers = Some(Pollers::spawn(plan, self.store.clone()));
    }

    /// `--once`: installs `config` like [`App::apply`], then polls every target once,
    /// concurrently, instead of starting the poll loops. True if every poll succeeded.
    pub async fn poll_once(&self, config: &Config) -> bool {
        let plan = {
            let mut running = self.running.lock().await;
            self.install(config, &mut running)
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

    /// Everything a configuration change does but start polling: per-upstream telemetry
    /// series, the store's target list, the reload gauges. Returns the targets to poll.
    fn install(&self, config: &Config, running: &mut Running) -> Vec<Planned> {
        let plan = poller::plan(config, &self.client, &self.telemetry, self.shard);
        let upstreams: Vec<(&'static str, String)> = config
            .upstreams
            .iter()
            .map(|u| (u.system(), u.name.clone()))
            .collect();
        for (system, name) in &running.upstreams {
            if !upstreams.iter().any(|(s, n)| s == system && n == name) {
                self.telemetry.forget_upstream(system, name);
            }
        }
        for (system, name) in &upstreams {
            self.telemetry.register_upstream(system, name);
        }
        let targets: Vec<_> = plan.iter().map(|p| (p.id.clone(), p.stale_after)).collect();
        self.store.set_targets(&targets);
        running.upstreams = upstreams;
        self.telemetry.config_loaded(true, unix_now());
        plan
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
        if let Some(old) = running.pollers.take() {
            old.stop().await;
        }
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The read-only handle for the HTTP server: ready bytes, readiness, the landing tables.
    pub fn exposition(&self) -> Exposition {
        Exposition::new(self.store.clone(), self.telemetry.clone())
    }
}

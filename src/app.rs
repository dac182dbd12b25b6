//! The running exporter: configuration, pollers, store, exposition and telemetry, and
//! reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::config::{self, Config, ConfigErrors, Settings, Upstream};
use crate::discovery::{self, Lister};
use crate::exposition::{packer, Exposition, Packed};
use crate::model::TargetId;
use crate::poller::{self, Pollers};
use crate::shard::Shard;
use crate::storage::{Entry, StateFile};
use crate::store::{self, SeriesSettings, Store};
use crate::telemetry::Telemetry;

/// Where the configuration comes from; read again on every reload.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A YAML file (`--config`).
    File(PathBuf),
    /// A built-in configuration (`--demo`) with its own environment for secrets.
    Inline {
        /// The configuration's YAML.
        yaml: String,
        /// The variables its `*_env` keys name.
        env: HashMap<String, String>,
    },
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::File(path) => config::load(path),
            ConfigSource::Inline { yaml, env } => {
                config::parse(yaml, std::path::Path::new("."), &|k| env.get(k).cloned())
            }
        }
    }
}

/// The exporter as it runs: its configuration applied, its pollers and background tasks.
pub struct App {
    store: Arc<Store>,
    /// The ready job and target families the store writes and scrapes read.
    packed: Arc<Packed>,
    /// The exporter's own metrics.
    pub telemetry: Telemetry,
    client: reqwest::Client,
    source: ConfigSource,
    shard: Shard,
    /// `--storage.path`: where the store's histories are written.
    storage: Option<StateFile>,
    running: tokio::sync::Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// One entry per configured upstream, with the configuration it runs with.
    upstreams: Vec<RunningUpstream>,
    /// The store's expiry loop and the exposition's packer; started with the first
    /// configuration.
    background: Option<Background>,
}

struct RunningUpstream {
    config: Upstream,
    /// Its poll loops; `None` under `--once`, which polls without loops.
    pollers: Option<Pollers>,
    /// The targets its pollers poll (of this shard).
    targets: Vec<TargetId>,
    /// `discover: true`: its discovery loop and discovered targets.
    discovery: Option<discovery::Task>,
}

/// Tasks that run as long as the exporter: the store's expiry loop, the exposition's
/// packer and, with `--storage.path`, the state writer (which writes once more when
/// stopped).
struct Background {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Background {
    fn start(store: &Arc<Store>, packed: &Arc<Packed>, storage: Option<&StateFile>) -> Self {
        let cancel = CancellationToken::new();
        let mut handles = vec![
            tokio::spawn(store::expiry(store.clone(), cancel.clone())),
            tokio::spawn(packer::run(packed.clone(), cancel.clone())),
        ];
        if let Some(file) = storage {
            handles.push(tokio::spawn(store::persist(
                store.clone(),
                file.clone(),
                cancel.clone(),
            )));
        }
        Background { cancel, handles }
    }

    async fn stop(self) {
        self.cancel.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// What the store is told of an upstream's settings: the ones it applies itself, with no
/// poller restarted.
fn series_settings(settings: &Settings) -> SeriesSettings {
    SeriesSettings {
        stale_after: settings.stale_after,
        job_status: settings.job_status,
        forget_after: settings.forget_after,
    }
}

/// Whether `a` and `b` poll the same way: equal but for the settings the store applies
/// ([`series_settings`]), so an upstream that changed only those keeps its pollers, its
/// schedule and its login.
fn polls_alike(a: &Upstream, b: &Upstream) -> bool {
    if a.name != b.name {
        return false;
    }
    let mut b = b.clone();
    b.settings.stale_after = a.settings.stale_after;
    b.settings.job_status = a.settings.job_status;
    b.settings.forget_after = a.settings.forget_after;
    *a == b
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
        Self::with_storage(source, client, shard, None)
    }

    /// [`App::new`] that writes the store's histories to `storage` (`--storage.path`) while
    /// it runs; read them back first with [`App::restore`].
    pub fn with_storage(
        source: ConfigSource,
        client: reqwest::Client,
        shard: Shard,
        storage: Option<StateFile>,
    ) -> Arc<Self> {
        let telemetry = Telemetry::new();
        telemetry.set_shard(shard);
        let packed = Arc::new(Packed::new());
        Arc::new(App {
            store: Arc::new(Store::new(packed.clone())),
            packed,
            telemetry,
            client,
            source,
            shard,
            storage,
            running: tokio::sync::Mutex::new(Running::default()),
        })
    }

    /// Takes the histories the state file kept (before the first [`App::apply`]).
    pub fn restore(&self, entries: Vec<Entry>) {
        self.store.restore(entries);
    }

    /// Reads the configuration from where it came from at start.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        self.source.load()
    }

    /// Runs `config`. An upstream whose configuration did not change keeps running as it
    /// is: its schedule, its token and its state (a reload that changes nothing sends no
    /// request). One that changed only `stale_after` or `job_status` keeps running too: the
    /// store takes the new settings (a `job_status` change renders its series again at
    /// once). Other changed or new upstreams start afresh; removed ones stop and lose their
    /// series. Targets kept across the change keep their series and run counts.
    pub async fn apply(&self, config: &Config) {
        let mut running = self.running.lock().await;
        let mut previous = std::mem::take(&mut running.upstreams);
        let mut next = Vec::with_capacity(config.upstreams.len());
        let mut fresh = Vec::new();
        for upstream in &config.upstreams {
            match previous
                .iter()
                .position(|r| polls_alike(&r.config, upstream))
            {
                Some(i) => {
                    let mut kept = previous.swap_remove(i);
                    kept.config = upstream.clone();
                    next.push(kept);
                }
                None => {
                    let parts = poller::plan_upstream_parts(
                        upstream,
                        &self.client,
                        &self.telemetry,
                        self.shard,
                    );
                    next.push(RunningUpstream {
                        config: upstream.clone(),
                        pollers: None,
                        targets: parts.planned.iter().map(|p| p.id.clone()).collect(),
                        discovery: None,
                    });
                    fresh.push((next.len() - 1, parts));
                }
            }
        }
        for old in previous {
            stop_upstream(old).await;
        }
        for (i, parts) in &fresh {
            if let Some(upstream) = next.get_mut(*i) {
                // A restarted upstream lists afresh: what it exported before goes.
                self.telemetry
                    .inventory()
                    .forget(upstream.config.system(), &upstream.config.name);
                if let Some(every) = upstream.config.kind.discover_interval() {
                    self.telemetry.inventory().expect(
                        upstream.config.system(),
                        &upstream.config.name,
                        self.shard.owns_upstream(&upstream.config.name),
                    );
                    let settings = series_settings(&upstream.config.settings);
                    let lister = self.lister(&upstream.config, parts, every);
                    upstream.discovery = Some(discovery::Task::start(
                        lister,
                        discovery::shared(settings),
                        self.store.clone(),
                    ));
                }
            }
        }
        self.register(&running.upstreams_seen(), &next);
        track(&self.store, &next);
        for (i, parts) in fresh {
            if let Some(upstream) = next.get_mut(i) {
                upstream.pollers = Some(Pollers::spawn(parts.planned, self.store.clone()));
            }
        }
        if running.background.is_none() {
            running.background = Some(Background::start(
                &self.store,
                &self.packed,
                self.storage.as_ref(),
            ));
        }
        running.upstreams = next;
        self.telemetry.config_loaded(true, unix_now());
    }

    /// `--once`: installs `config` like [`App::apply`], then polls every target once,
    /// concurrently, instead of starting the poll loops. True if every poll succeeded.
    pub async fn poll_once(&self, config: &Config) -> bool {
        let plan = {
            let mut running = self.running.lock().await;
            let mut plan = Vec::new();
            let mut next = Vec::with_capacity(config.upstreams.len());
            let mut listers = Vec::new();
            for upstream in &config.upstreams {
                let parts = poller::plan_upstream_parts(
                    upstream,
                    &self.client,
                    &self.telemetry,
                    self.shard,
                );
                if let Some(every) = upstream.kind.discover_interval() {
                    listers.push(self.lister(upstream, &parts, every));
                }
                next.push(RunningUpstream {
                    config: upstream.clone(),
                    pollers: None,
                    targets: parts.planned.iter().map(|p| p.id.clone()).collect(),
                    discovery: None,
                });
                plan.extend(parts.planned);
            }
            for lister in listers {
                plan.extend(discovery::list_once(&lister).await);
            }
            for p in &plan {
                if let Some(upstream) = next.iter_mut().find(|r| *r.config.name == *p.id.upstream) {
                    if !upstream.targets.contains(&p.id) {
                        upstream.targets.push(p.id.clone());
                    }
                }
            }
            self.register(&running.upstreams_seen(), &next);
            self.store.track(&tracked(&next));
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
        // The config and the secret files it names are read off the runtime's worker
        // threads, within FILE_READ_TIMEOUT: a FIFO or a hung mount fails the reload.
        let source = self.source.clone();
        let loaded = config::read_off_runtime(config::FILE_READ_TIMEOUT, move || source.load())
            .await
            .unwrap_or_else(|why| {
                Err(ConfigErrors(vec![config::ConfigError {
                    path: String::new(),
                    message: format!("reading the configuration: {why}"),
                }]))
            });
        match loaded {
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

    /// Stops every poller and the background tasks; a poll in flight is abandoned.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for upstream in std::mem::take(&mut running.upstreams) {
            stop_upstream(upstream).await;
        }
        if let Some(background) = running.background.take() {
            background.stop().await;
        }
    }

    /// What the discovery loop of `upstream` needs: its source and concurrency limit
    /// (shared with its configured targets), and which targets are configured.
    fn lister(
        &self,
        upstream: &Upstream,
        parts: &poller::UpstreamPlan,
        every: std::time::Duration,
    ) -> Lister {
        Lister {
            system: upstream.kind.system(),
            upstream: Arc::from(upstream.name.as_str()),
            every,
            poll_interval: upstream.settings.interval,
            timeout: upstream.settings.timeout,
            source: parts.source.clone(),
            admission: parts.admission.clone(),
            concurrency: upstream.settings.concurrency.max(1),
            telemetry: self.telemetry.clone(),
            explicit: parts
                .source
                .targets()
                .into_iter()
                .map(|t| (t.kind, t.name))
                .collect(),
            shard: self.shard,
        }
    }

    /// The shard this replica polls.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The read-only handle for the HTTP server: ready bytes, readiness, the landing tables.
    pub fn exposition(&self) -> Exposition {
        Exposition::new(
            self.packed.clone(),
            self.store.clone(),
            self.telemetry.clone(),
            self.shard,
        )
    }
}

/// Stops an upstream's poll loops and its discovery.
async fn stop_upstream(upstream: RunningUpstream) {
    if let Some(pollers) = upstream.pollers {
        pollers.stop().await;
    }
    if let Some(task) = upstream.discovery {
        task.stop().await;
    }
}

/// Makes the store track exactly the configured and discovered targets of `upstreams`. The
/// discovered sets are held locked until the store has them, so a listing that adds a
/// target meanwhile is not lost; each takes its upstream's current settings.
fn track(store: &Store, upstreams: &[RunningUpstream]) {
    let mut all = tracked(upstreams);
    let mut guards = Vec::new();
    for r in upstreams {
        if let Some(task) = &r.discovery {
            let mut found = discovery::lock(&task.shared);
            let settings = series_settings(&r.config.settings);
            found.settings = settings;
            all.extend(found.ids().map(|id| (id.clone(), settings)));
            guards.push(found);
        }
    }
    store.track(&all);
    drop(guards);
}

/// Every target of `upstreams` with the settings the store applies to it.
fn tracked(upstreams: &[RunningUpstream]) -> Vec<(TargetId, SeriesSettings)> {
    upstreams
        .iter()
        .flat_map(|r| {
            let settings = series_settings(&r.config.settings);
            r.targets.iter().map(move |t| (t.clone(), settings))
        })
        .collect()
}

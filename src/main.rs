//! CLI, logging, signals: wiring only.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use backup_exporter::app::{App, ConfigSource};
use backup_exporter::server::{self, Server};
use backup_exporter::shard::Shard;
use backup_exporter::storage::StateFile;
use backup_exporter::web::LiveWebConfig;
use backup_exporter::{config, demo, http, listen, logging, telemetry};
use clap::{Parser, ValueEnum};
use tokio_util::sync::CancellationToken;

/// Prometheus exporter for backup and disaster-recovery monitoring APIs.
///
/// Polls each configured upstream on a schedule, turns its job states, percentages, elapsed
/// times and timestamps into metrics, and serves them on /metrics. A scrape never waits on
/// an upstream. Reload the configuration with SIGHUP (or POST /-/reload with
/// --web.enable-lifecycle).
#[derive(Debug, Parser)]
#[command(
    name = "backup-exporter",
    about,
    long_about,
    disable_version_flag = true
)]
struct Cli {
    /// Configuration file (YAML). `--config.file` is an alias.
    #[arg(
        long,
        visible_alias = "config.file",
        value_name = "FILE",
        env = "BACKUP_EXPORTER_CONFIG",
        default_value = "config/backup-exporter.yaml"
    )]
    config: PathBuf,

    /// Address to listen on, repeatable: HOST:PORT, :PORT (every interface, IPv4 and IPv6),
    /// [IPv6]:PORT or a host name (every address it resolves to). Overrides `listen` in the
    /// configuration [default: 0.0.0.0:10095]
    #[arg(
        long = "web.listen-address",
        value_name = "HOST:PORT",
        value_parser = listen_address
    )]
    web_listen_address: Vec<String>,

    /// Serve on the sockets systemd passes (socket activation: LISTEN_FDS, LISTEN_PID)
    /// instead of binding --web.listen-address.
    #[arg(long = "web.systemd-socket")]
    web_systemd_socket: bool,

    /// Path under which the metrics are served.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = server::DEFAULT_TELEMETRY_PATH,
        value_parser = telemetry_path
    )]
    web_telemetry_path: String,

    /// exporter-toolkit web configuration (TLS and client certificates, HTTP/2, headers, rate
    /// limit, basic auth users with bcrypt hashes); re-read when it or its certificates change.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,

    /// Connections served at once (1 to 1000000). At the limit, a new connection closes the
    /// oldest one with no request in flight (a connection accepted while every one has a
    /// request in flight is closed at once), so a flood of idle or slow clients can neither
    /// exhaust memory or file descriptors nor keep a scraper out.
    #[arg(
        long = "web.max-connections",
        value_name = "N",
        default_value_t = server::DEFAULT_MAX_CONNECTIONS,
        value_parser = |s: &str| count(s, 1)
    )]
    web_max_connections: usize,

    /// Requests handled at once (0 to 1000000; 0: no limit), counted after authentication
    /// until the response is sent; one connection holds at most 4. One beyond it takes the
    /// slot of a response that has made no progress for over a second (closing that
    /// connection), else is answered 503 at once, so slow readers and floods of scrapes can
    /// neither pile up responses in memory nor keep a scraper out.
    #[arg(
        long = "web.max-requests",
        value_name = "N",
        default_value_t = server::DEFAULT_MAX_REQUESTS,
        value_parser = |s: &str| count(s, 0)
    )]
    web_max_requests: usize,

    /// Time a client has to finish the TLS handshake and send a request's headers (1ms to 1h),
    /// so slow-header clients cannot hold connections; also the longest a kept-alive
    /// connection stays idle.
    #[arg(
        long = "web.read-header-timeout",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = header_timeout
    )]
    web_read_header_timeout: Duration,

    /// A response whose body makes no progress for this long (a client that stopped reading)
    /// is abandoned, its connection closed and its request slot freed (1ms to 1h).
    #[arg(
        long = "web.write-timeout",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = header_timeout
    )]
    web_write_timeout: Duration,

    /// Serve POST /-/reload (off by default, as in Prometheus); cross-origin requests are
    /// refused. SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle")]
    web_enable_lifecycle: bool,

    /// Log level.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,

    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    log_format: LogFormat,

    /// Validate the configuration, print one line per upstream and exit: 0 valid, 2 invalid.
    /// `--config.check` is an alias.
    #[arg(long, visible_alias = "config.check")]
    check_config: bool,

    /// With --check-config (which it implies): check the shape of every secret setting but
    /// read no secret file or environment variable, so CI can lint a production configuration
    /// without its secrets.
    #[arg(long = "check-config.skip-secrets")]
    check_config_skip_secrets: bool,

    /// Poll every target once, print the exposition to stdout and exit: 0 if every target
    /// succeeded, 1 otherwise.
    #[arg(long)]
    once: bool,

    /// Start the bundled simulator on loopback and monitor it (no configuration needed).
    #[arg(long)]
    demo: bool,

    /// Split the targets across this many replicas (kube-state-metrics style); each polls
    /// only the targets whose stable hash falls in its --shard.
    #[arg(long = "total-shards", value_name = "N", default_value_t = 1)]
    total_shards: u32,

    /// This replica's shard, 0 <= I < --total-shards, or `auto`: the trailing -<number> of
    /// the host name (a StatefulSet pod).
    #[arg(long, value_name = "I|auto", default_value = "0")]
    shard: String,

    /// Directory where each job's last success, failing-since and run counts are kept across
    /// restarts (`state.json`, written atomically at most every 30 s and at shutdown); created
    /// if missing, and a directory that cannot be written stops the start. One directory per
    /// replica. Default: none (kept in memory only).
    #[arg(
        long = "storage.path",
        value_name = "DIR",
        env = "BACKUP_EXPORTER_STORAGE_PATH"
    )]
    storage_path: Option<PathBuf>,

    /// How often the state is written to --storage.path when it changed, 1s to 30s: a crash
    /// loses at most this much.
    #[arg(
        long = "storage.write-interval",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = write_interval
    )]
    storage_write_interval: Duration,

    /// Print version, branch, revision, build date, rust version and platform, and exit.
    #[arg(long)]
    version: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// `ts=... level=... msg="..." key=value` (`text` is accepted as an alias).
    #[value(alias = "text")]
    Logfmt,
    /// One JSON object per line with `ts`, `level`, `msg`.
    Json,
}

const DEFAULT_LISTEN: &str = "0.0.0.0:10095";
/// Exit code for an invalid configuration (`--check-config` and at start-up).
const EXIT_INVALID_CONFIG: u8 = 2;
/// How long the exit waits for threads of the blocking pool still at work (a file read that
/// blocks): SIGTERM exits within 10 s whatever is blocked.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);
/// Reloads happen at most this often; requests in between are coalesced.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// `POST /-/reload` requests waiting for the next reload, all answered by it; more wait for
/// room (each holds a request slot, so `--web.max-requests` bounds them too).
const RELOAD_QUEUE: usize = 32;
/// Upper bound of `--web.max-connections` and `--web.max-requests`.
const MAX_COUNT: usize = 1_000_000;

/// A whole number in `min..=MAX_COUNT`.
fn count(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if !(min..=MAX_COUNT).contains(&n) {
        return Err(format!("{n} is outside {min}..={MAX_COUNT}"));
    }
    Ok(n)
}

/// A `--web.listen-address` value whose form is valid (resolved and bound later).
fn listen_address(s: &str) -> Result<String, String> {
    listen::parse(s)?;
    Ok(s.to_string())
}

fn telemetry_path(s: &str) -> Result<String, String> {
    server::valid_telemetry_path(s)?;
    Ok(s.to_string())
}

/// `--storage.write-interval`: a duration within `storage::WRITE_EVERY_RANGE`.
fn write_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if !backup_exporter::storage::WRITE_EVERY_RANGE.contains(&d) {
        return Err(format!("{s} is outside 1s..30s"));
    }
    Ok(d)
}

/// A duration (`10s`, `500ms`) from 1 ms to 1 h: never zero, never one that overflows a clock.
fn header_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        return Err(format!("{s} is outside 1ms..1h"));
    }
    Ok(d)
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // Libraries stay at warn: their debug output is not ours to vouch for (headers, bodies).
    // The bundled simulator (`--demo`) is ours, and logs at the exporter's level.
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "warn,backup_exporter={level},backup_simulator={level}"
    ));
    // Plain text always: logfmt and JSON carry no colour codes, whatever stderr is.
    let format = match format {
        LogFormat::Logfmt => logging::Format::Logfmt,
        LogFormat::Json => logging::Format::Json,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .event_format(logging::Lines(format))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        print!("{}", telemetry::version_text());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_level, cli.log_format);
    // Taken before the runtime's threads exist: taking them edits the environment.
    let systemd = match cli.web_systemd_socket {
        false => None,
        true => match listen::systemd_sockets() {
            Ok(sockets) => Some(sockets),
            Err(e) => {
                tracing::error!(error = %e, "backup-exporter stopped");
                return ExitCode::FAILURE;
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli, systemd)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = error_chain(&e), "backup-exporter stopped");
            ExitCode::FAILURE
        }
    };
    // A file read still blocked on a thread of the blocking pool (a FIFO, a hung mount) does
    // not hold the exit.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    code
}

/// The error and its causes, each text once (an error whose message already quotes its
/// source would otherwise say it twice: "... (os error 2): ... (os error 2)").
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// `--shard` and `--total-shards`.
fn shard(cli: &Cli) -> anyhow::Result<Shard> {
    let shard = if cli.shard == "auto" {
        let host = hostname().context("--shard auto: reading the host name")?;
        Shard::from_host_name(&host, cli.total_shards)?
    } else {
        let index = cli
            .shard
            .parse::<u32>()
            .with_context(|| format!("--shard {:?} is neither a number nor auto", cli.shard))?;
        Shard::new(index, cli.total_shards)?
    };
    Ok(shard)
}

/// The host name (`HOSTNAME`, else /proc/sys/kernel/hostname, else /etc/hostname).
fn hostname() -> std::io::Result<String> {
    if let Some(h) = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return Ok(h.trim().to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
}

async fn run(
    mut cli: Cli,
    systemd: Option<Vec<std::net::TcpListener>>,
) -> anyhow::Result<ExitCode> {
    cli.check_config |= cli.check_config_skip_secrets;
    let source = if cli.demo {
        let sim = demo::start_simulator()
            .await
            .context("starting the demo simulator")?;
        tracing::info!(simulator = %sim, "demo simulator listening on loopback");
        demo::config(sim)
    } else {
        ConfigSource::File(cli.config.clone())
    };

    let loaded = match &source {
        ConfigSource::File(path) if cli.check_config_skip_secrets => {
            config::load_with(path, config::LoadOptions { skip_secrets: true })
        }
        _ => source.load(),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            if cli.check_config {
                println!("configuration is invalid:");
                for e in &errors.0 {
                    println!("  {e}");
                }
            } else {
                for e in &errors.0 {
                    tracing::error!(path = %e.path, problem = %e.message, "invalid configuration");
                }
            }
            return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
        }
    };
    let warnings: Vec<String> = config.upstreams.iter().flat_map(|u| u.warnings()).collect();
    if cli.check_config {
        for upstream in &config.upstreams {
            println!("{}", upstream.summary());
        }
        for warning in &warnings {
            println!("warning: {warning}");
        }
        if cli.check_config_skip_secrets {
            println!("configuration is valid (secrets not read: --check-config.skip-secrets)");
        } else {
            println!("configuration is valid");
        }
        return Ok(ExitCode::SUCCESS);
    }

    for warning in &warnings {
        tracing::warn!(problem = %warning, "configuration");
    }
    let shard = shard(&cli)?;
    let client = http::build_client().context("building the HTTP client")?;
    let storage = match (&cli.storage_path, cli.once) {
        (Some(dir), false) => {
            let dir = dir.clone();
            let every = cli.storage_write_interval;
            let (file, entries) = tokio::task::spawn_blocking(move || {
                let file = StateFile::open(&dir)?.every(every);
                let entries = file.load();
                Ok::<_, backup_exporter::storage::StorageError>((file, entries))
            })
            .await
            .context("opening --storage.path")??;
            Some((file, entries))
        }
        _ => None,
    };
    let (storage, kept) = match storage {
        Some((file, entries)) => (Some(file), entries),
        None => (None, Vec::new()),
    };
    let app = App::with_storage(source, client, shard, storage);
    app.restore(kept);
    if shard.is_sharded() {
        tracing::info!(
            shard = shard.index,
            total_shards = shard.total,
            "polling only this shard's targets"
        );
    }

    if cli.once {
        return Ok(once(&app, &config).await);
    }

    let web = match &cli.web_config_file {
        Some(path) => Some(LiveWebConfig::load(path)?),
        None => None,
    };
    let listeners = match systemd {
        Some(sockets) => {
            if !cli.web_listen_address.is_empty() {
                tracing::warn!("--web.systemd-socket: the --web.listen-address flags are ignored");
            }
            listen::adopt(sockets)?
        }
        None => {
            let addresses = match (&cli.web_listen_address[..], config.listen) {
                ([], Some(addr)) => vec![addr.to_string()],
                ([], None) => vec![DEFAULT_LISTEN.to_string()],
                (given, _) => given.to_vec(),
            };
            listen::bind(&addresses).await?
        }
    };
    // Heard from before "listening" is logged: a SIGHUP sent as soon as the exporter says it
    // listens (a test, or systemd's ExecReload right after the start) must reload, not take
    // the signal's default action and end the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let tls = web.as_ref().is_some_and(|w| w.tls());
    let http2 = tls && web.as_ref().is_some_and(|w| w.current().http2());
    for listener in &listeners {
        let Ok(address) = listener.local_addr() else {
            continue;
        };
        tracing::info!(
            address = %address,
            url = %format!("{}://{address}{}", if tls { "https" } else { "http" }, cli.web_telemetry_path),
            version = telemetry::VERSION,
            tls,
            http2,
            systemd_socket = cli.web_systemd_socket,
            "backup-exporter listening"
        );
    }

    app.apply(&config).await;
    let targets = app.exposition().targets().len();
    tracing::info!(
        config = %match &cli.demo { true => "(demo)".to_string(), false => cli.config.display().to_string() },
        upstreams = config.upstreams.len(),
        targets,
        "polling started"
    );
    {
        // One line when every target has finished its first poll: where to look next.
        let exposition = app.exposition();
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            while !exposition.ready() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                // Discovered targets included.
                targets = exposition.targets().len(),
                "ready: the first poll of every target has finished"
            );
        });
    }

    let shutdown = CancellationToken::new();
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<
        tokio::sync::oneshot::Sender<Result<(), String>>,
    >(RELOAD_QUEUE);
    let options = server::Options {
        max_connections: cli.web_max_connections,
        max_requests: cli.web_max_requests,
        read_header_timeout: cli.web_read_header_timeout,
        write_timeout: cli.web_write_timeout,
        enable_lifecycle: cli.web_enable_lifecycle,
        telemetry_path: cli.web_telemetry_path.clone(),
    };
    let server = Server::new(app.exposition(), web, reload_tx, options);
    let serving = tokio::spawn(server.serve(listeners, shutdown.clone()));

    // Reloads at most once per RELOAD_EVERY, coalesced: the SIGHUPs that arrive meanwhile
    // are served by the next one (tokio keeps one pending SIGHUP however many arrive), and
    // so are the POSTs queued by then (up to RELOAD_QUEUE), all answered with that reload's
    // result. SIGTERM is heard while a reload waits or runs.
    let mut next_reload = tokio::time::Instant::now();
    loop {
        let first = tokio::select! {
            _ = hangup.recv() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let mut replies: Vec<_> = first.into_iter().collect();
        let result = tokio::select! {
            result = async {
                tokio::time::sleep_until(next_reload).await;
                while let Ok(reply) = reload_rx.try_recv() {
                    replies.push(reply);
                }
                match replies.len() {
                    0 => tracing::info!("SIGHUP: reloading configuration"),
                    n => tracing::info!(requests = n, "POST /-/reload: reloading configuration"),
                }
                app.reload().await
            } => result,
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        next_reload = tokio::time::Instant::now() + RELOAD_EVERY;
        let answer = result.map_err(|e| e.to_string());
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    app.stop().await;
    let _ = serving.await;
    Ok(ExitCode::SUCCESS)
}

/// `--once`: every target polled once, the exposition on stdout.
async fn once(app: &App, config: &backup_exporter::config::Config) -> ExitCode {
    let all_ok = app.poll_once(config).await;
    let mut stdout = std::io::stdout().lock();
    for chunk in app
        .exposition()
        .plain(backup_exporter::metrics::Format::Text)
        .pieces(server::PIECE)
    {
        if std::io::Write::write_all(&mut stdout, &chunk).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

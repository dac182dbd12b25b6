//! The web config kept current: [`LiveWebConfig`] re-reads the file, and the certificate, key
//! and client CA files it names, when one of them changes, so rotating a certificate needs no
//! restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::basic_auth::BcryptSlots;
use super::config::{WebConfig, WebConfigError};

/// How often, at most, the web config file and the files it names are checked for changes.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The web config file as it is now: re-read when it, a certificate, a key or the client CA
/// file changes (checked at most once per second, on a connection or request), so rotating a
/// certificate needs no restart. The files are read on tokio's blocking pool, never on a
/// worker thread: a file that blocks (a FIFO, a hung mount) stalls no request, only later
/// reloads of the web config. A new file that does not load is logged once and the running
/// configuration stays; so does one that would turn TLS on or off (that needs a restart, as
/// the listening log line and the scheme Prometheus scrapes would change).
pub struct LiveWebConfig(Arc<Live>);

struct Live {
    path: PathBuf,
    current: std::sync::RwLock<Arc<WebConfig>>,
    watch: Mutex<Watch>,
    tls: bool,
    /// Shared by every configuration loaded, so a reload opens no more bcrypt slots.
    bcrypt_slots: BcryptSlots,
    /// A recheck is running on the blocking pool (one at a time: a blocked read holds one
    /// thread, not one per request).
    rechecking: AtomicBool,
}

/// The files of the last load attempt, and how they looked then.
struct Watch {
    /// When the files were last compared with their stamps.
    checked: Instant,
    files: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
}

/// What tells a changed file from the same one cheaply: modification time, size and inode
/// (a Kubernetes secret swaps a symlink to a new file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

/// Each file's stamp now; `None` for a file that cannot be read.
fn stamps(files: &[PathBuf]) -> Vec<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt as _;
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f).ok().map(|m| FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            })
        })
        .collect()
}

impl LiveWebConfig {
    /// Loads the web config file at `path`; it is watched from then on.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let bcrypt_slots = BcryptSlots::new();
        let attempt = WebConfig::attempt(path, bcrypt_slots.clone());
        let stamps = stamps(&attempt.files);
        let web = attempt.result?;
        Ok(LiveWebConfig(Arc::new(Live {
            path: path.to_path_buf(),
            tls: web.tls_acceptor().is_some(),
            current: std::sync::RwLock::new(Arc::new(web)),
            watch: Mutex::new(Watch {
                checked: Instant::now(),
                files: attempt.files,
                stamps,
            }),
            bcrypt_slots,
            rechecking: AtomicBool::new(false),
        })))
    }

    /// Whether the server speaks TLS (fixed at start).
    pub fn tls(&self) -> bool {
        self.0.tls
    }

    /// The configuration in force. Once `RECHECK_EVERY` has passed since the last check, the
    /// files are checked for changes (and re-read) on the blocking pool, for the requests
    /// after this one.
    pub fn current(&self) -> Arc<WebConfig> {
        let now = Instant::now();
        let due = self
            .0
            .watch
            .try_lock()
            .is_ok_and(|w| now.saturating_duration_since(w.checked) >= RECHECK_EVERY);
        if due && !self.0.rechecking.swap(true, Ordering::AcqRel) {
            let live = self.0.clone();
            let recheck = move || {
                live.recheck(now);
                live.rechecking.store(false, Ordering::Release);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(recheck)),
                Err(_) => recheck(),
            }
        }
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<WebConfig> {
        self.0.snapshot()
    }

    #[cfg(test)]
    fn recheck(&self, now: Instant) {
        self.0.recheck(now);
    }
}

impl Live {
    fn snapshot(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the files if `RECHECK_EVERY` has passed since the last check and one of them
    /// changed; a file that does not load is logged once and not tried again until it changes.
    fn recheck(&self, now: Instant) {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(watch.checked) < RECHECK_EVERY {
            return;
        }
        watch.checked = now;
        if stamps(&watch.files) == watch.stamps {
            return;
        }
        let attempt = WebConfig::attempt(&self.path, self.bcrypt_slots.clone());
        watch.stamps = stamps(&attempt.files);
        watch.files = attempt.files;
        match attempt.result {
            Ok(web) if web.tls_acceptor().is_some() != self.tls => {
                tracing::error!(
                    path = %self.path.display(),
                    "web config changed: turning TLS on or off needs a restart; the running web config stays"
                );
            }
            Ok(web) => {
                tracing::info!(path = %self.path.display(), tls = self.tls, "web config reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(web);
            }
            Err(e) => {
                tracing::error!(error = %e, "web config changed but does not load; the running web config stays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces `path` as a secret rotation does (a new file renamed over the old one), so the
    /// stamp changes even within one tick of the file system's clock.
    fn replace(path: &Path, text: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    fn frame_options(live: &LiveWebConfig) -> String {
        let web = live.snapshot();
        let found = web
            .headers()
            .iter()
            .find(|(name, _)| name == "x-frame-options");
        found
            .map(|(_, value)| value.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    fn checked(live: &LiveWebConfig) -> Instant {
        live.0.watch.lock().unwrap().checked
    }

    fn headers_file(value: &str) -> String {
        format!("http_server_config:\n  headers:\n    X-Frame-Options: {value}\n")
    }

    #[test]
    fn a_changed_file_is_read_again_once_the_interval_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, headers_file("deny")).unwrap();
        let live = LiveWebConfig::load(&path).unwrap();
        assert!(!live.tls());
        replace(&path, &headers_file("sameorigin"));
        let at = checked(&live);
        live.recheck(at + RECHECK_EVERY - Duration::from_millis(1));
        assert_eq!(frame_options(&live), "deny", "checked too soon");
        live.recheck(at + RECHECK_EVERY);
        assert_eq!(frame_options(&live), "sameorigin");
    }

    #[test]
    fn a_file_that_does_not_load_leaves_the_running_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, headers_file("deny")).unwrap();
        let live = LiveWebConfig::load(&path).unwrap();
        replace(&path, "unknown_key: 1\n");
        let at = checked(&live);
        live.recheck(at + RECHECK_EVERY);
        assert_eq!(frame_options(&live), "deny");
        replace(&path, &headers_file("sameorigin"));
        live.recheck(at + RECHECK_EVERY * 2);
        assert_eq!(frame_options(&live), "sameorigin", "the fixed file loads");
    }

    #[test]
    fn a_rotated_certificate_is_loaded_but_tls_cannot_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let write_cert = |dir: &Path| {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            replace(&dir.join("tls.crt"), &cert.cert.pem());
            replace(&dir.join("tls.key"), &cert.signing_key.serialize_pem());
        };
        write_cert(dir.path());
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
        )
        .unwrap();
        let live = LiveWebConfig::load(&path).unwrap();
        assert!(live.tls());
        let first = live.snapshot();

        let at = checked(&live);
        live.recheck(at + RECHECK_EVERY);
        assert!(Arc::ptr_eq(&first, &live.snapshot()), "nothing changed");

        write_cert(dir.path());
        live.recheck(at + RECHECK_EVERY * 2);
        let rotated = live.snapshot();
        assert!(
            !Arc::ptr_eq(&first, &rotated),
            "the new certificate is in force"
        );

        replace(&path, "");
        live.recheck(at + RECHECK_EVERY * 3);
        assert!(Arc::ptr_eq(&rotated, &live.snapshot()), "TLS stays on");
        assert!(live.snapshot().tls_acceptor().is_some());
    }

    /// The web config swapped for a FIFO (a read that blocks until a writer comes): requests
    /// get the running config at once, one re-read waits on the blocking pool, and it loads
    /// the file once the FIFO is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_web_config_that_blocks_is_read_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, headers_file("deny")).unwrap();
        let live = LiveWebConfig::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        live.0.watch.lock().unwrap().checked -= RECHECK_EVERY;
        for _ in 0..20 {
            // Answered from the running config, however often asked.
            assert_eq!(
                live.current()
                    .headers()
                    .iter()
                    .find(|(n, _)| n == "x-frame-options")
                    .map(|(_, v)| v.to_str().unwrap().to_string()),
                Some("deny".to_string())
            );
        }
        let mut waited = 0;
        while !live.0.rechecking.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
            assert!(waited < 500, "no re-read started");
        }
        // A writer comes: the blocked read ends and loads what it wrote.
        let writer = path.clone();
        tokio::task::spawn_blocking(move || std::fs::write(writer, headers_file("sameorigin")))
            .await
            .unwrap()
            .unwrap();
        let mut waited = 0;
        while live.0.rechecking.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
            assert!(waited < 500, "the re-read did not end");
        }
        assert_eq!(frame_options(&live), "sameorigin");
    }

    #[test]
    fn stamps_tell_a_missing_or_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let files = [path.clone()];
        assert_eq!(stamps(&files), [None]);
        std::fs::write(&path, "one").unwrap();
        let first = stamps(&files);
        assert!(first[0].is_some());
        assert_eq!(stamps(&files), first, "unchanged");
        replace(&path, "one");
        assert_ne!(stamps(&files), first, "same bytes, new file");
    }
}

//! `--storage.path`: the file that keeps each job's last success, failure streak and run
//! counts across restarts. A leaf: imports nothing of the crate.
//!
//! One file, `state.json`, written whole: a temporary file in the same directory, flushed to
//! disk, then renamed over the old one (and the directory synced), so a crash at any moment
//! leaves either the old file or the new one, never half of one. A file that cannot be read
//! (corrupt, too large, another format version) is logged, renamed aside as
//! `state.json.corrupt-<unix seconds>` and ignored. The file is input like any other: its
//! size and entry count are bounded, and so is every string in it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The state file's name in the storage directory.
pub const FILE: &str = "state.json";
/// Where a write goes before it is renamed over [`FILE`]; a leftover one (a write cut short
/// by a crash) is removed at start-up, never read.
pub const TEMP: &str = "state.json.tmp";
/// The format this version writes and reads.
pub const VERSION: u32 = 1;
/// A larger file is not read (set aside); writes stop adding entries before it.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Entries read or written at most (the most recently seen jobs are kept).
pub const MAX_ENTRIES: usize = 1_000_000;
/// Bytes of any one string (a label value) in an entry; the exporter cuts label values at
/// 1,024 bytes, so a longer one was not written by it.
pub const MAX_STRING_BYTES: usize = 4096;

/// Why the storage directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("--storage.path {path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("--storage.path {path}: not a directory")]
    NotADirectory { path: String },
}

/// Why a state file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading it: {0}")]
    Io(#[from] io::Error),
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("not a state file: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("format version {0}, this exporter reads version {VERSION}")]
    Version(u32),
    #[error("more than {0} entries")]
    TooManyEntries(usize),
}

/// One job as kept: the target that last reported it, its identity and its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The `system` label of the job and its target.
    pub system: String,
    pub upstream: String,
    /// The `kind` and `target` of the target that last reported the job.
    pub kind: String,
    pub target: String,
    pub operation: String,
    pub job_name: String,
    pub server: String,
    pub volume: String,
    /// `backup_job_runs_total` by result: completed, completed_with_warnings, failed,
    /// cancelled.
    pub runs: [u64; 4],
    #[serde(default)]
    pub last_success: Option<f64>,
    /// When the current run of failures began (kept while a retry runs).
    #[serde(default)]
    pub failing_since: Option<f64>,
    #[serde(default)]
    pub last_duration: Option<f64>,
    /// The status label of the run the job was in when last seen, and that run's times:
    /// the next poll after a restart counts a run only if it ended since.
    pub status: String,
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
    /// When a target last reported the job (Unix seconds); it is forgotten `forget_after`
    /// later.
    pub last_seen: f64,
}

impl Entry {
    /// Whether every string is within [`MAX_STRING_BYTES`] and every time a number.
    fn is_sane(&self) -> bool {
        let strings = [
            &self.system,
            &self.upstream,
            &self.kind,
            &self.target,
            &self.operation,
            &self.job_name,
            &self.server,
            &self.volume,
            &self.status,
        ];
        let times = [
            self.last_success,
            self.failing_since,
            self.last_duration,
            self.start,
            self.end,
            Some(self.last_seen),
        ];
        strings.iter().all(|s| s.len() <= MAX_STRING_BYTES)
            && times.iter().flatten().all(|t| t.is_finite())
    }
}

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    /// When it was written (Unix seconds).
    written: f64,
    jobs: Vec<Entry>,
}

/// Only the version, read first so that another version's file is named as such.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// How often the state is written when it changed, unless `--storage.write-interval` says
/// otherwise: a crash loses at most this much.
pub const WRITE_EVERY: Duration = Duration::from_secs(30);
/// `--storage.write-interval`: never rarer than [`WRITE_EVERY`].
pub const WRITE_EVERY_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=WRITE_EVERY;

/// The storage directory of this replica.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
    every: Duration,
}

impl StateFile {
    /// Opens `dir` for the state file: creates it if missing and proves it writable (a
    /// file created, synced and removed), so an unusable path fails the start, naming it.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.display().to_string();
        let io = |what| {
            let path = path.clone();
            move |source| StorageError::Io { path, what, source }
        };
        fs::create_dir_all(dir).map_err(io("creating the directory"))?;
        if !fs::metadata(dir).map_err(io("reading it"))?.is_dir() {
            return Err(StorageError::NotADirectory { path });
        }
        let probe = dir.join(format!(".write-test-{}", std::process::id()));
        let written = File::create(&probe).and_then(|mut f| {
            f.write_all(b"backup-exporter\n")?;
            f.sync_all()
        });
        let removed = fs::remove_file(&probe);
        written.map_err(io("cannot write in it"))?;
        removed.map_err(io("cannot remove a file in it"))?;
        Ok(StateFile {
            dir: dir.to_path_buf(),
            every: WRITE_EVERY,
        })
    }

    /// The same directory, written every `every` when changed (kept within
    /// [`WRITE_EVERY_RANGE`]).
    pub fn every(self, every: Duration) -> Self {
        StateFile {
            every: every.clamp(*WRITE_EVERY_RANGE.start(), *WRITE_EVERY_RANGE.end()),
            ..self
        }
    }

    /// How often the state is written when it changed.
    pub fn interval(&self) -> Duration {
        self.every
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Reads the state file: its entries, or none when there is no file. A file that cannot
    /// be read is logged, renamed aside and ignored; entries that make no sense (a string
    /// too long, a time not a number) are skipped and counted in the log.
    pub fn load(&self) -> Vec<Entry> {
        let temp = self.dir.join(TEMP);
        if temp.exists() {
            // A write that a crash cut short: the file it was to replace is still whole.
            if let Err(e) = fs::remove_file(&temp) {
                tracing::warn!(path = %temp.display(), error = %e, "cannot remove an unfinished state file");
            }
        }
        let path = self.path();
        match read(&path) {
            Ok(None) => Vec::new(),
            Ok(Some(jobs)) => {
                let total = jobs.len();
                let jobs: Vec<Entry> = jobs.into_iter().filter(Entry::is_sane).collect();
                if jobs.len() < total {
                    tracing::warn!(path = %path.display(), skipped = total - jobs.len(), "state file: entries skipped (out of bounds)");
                }
                tracing::info!(path = %path.display(), jobs = jobs.len(), "state read");
                jobs
            }
            Err(why) => {
                let aside = self.dir.join(format!("{FILE}.corrupt-{}", unix_now_secs()));
                match fs::rename(&path, &aside) {
                    Ok(()) => {
                        tracing::warn!(path = %path.display(), error = %why, set_aside = %aside.display(), "state file cannot be read: set aside, starting without it")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %why, rename_error = %e, "state file cannot be read (nor set aside): starting without it")
                    }
                }
                Vec::new()
            }
        }
    }

    /// Writes `jobs` (at most [`MAX_ENTRIES`] of them, and no more than fit in
    /// [`MAX_FILE_BYTES`]; the caller orders them most recently seen first) atomically:
    /// a temporary file, synced, renamed over the state file, the directory synced.
    /// Blocking: run it off the async runtime's workers. Returns how many were written.
    pub fn save(&self, jobs: &[Entry], written: f64) -> io::Result<usize> {
        let header = serde_json::to_string(&Saved {
            version: VERSION,
            written,
            jobs: Vec::new(),
        })
        .map_err(io::Error::other)?;
        // `{"version":1,"written":...,"jobs":[]}`: the entries go between the brackets.
        let Some(open) = header.strip_suffix("]}") else {
            return Err(io::Error::other("unexpected state header"));
        };
        let mut text = Vec::with_capacity(open.len() + jobs.len().min(MAX_ENTRIES) * 400);
        text.extend_from_slice(open.as_bytes());
        let budget = usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX) - 2;
        let mut count = 0;
        for job in jobs.iter().filter(|j| j.is_sane()).take(MAX_ENTRIES) {
            let entry = serde_json::to_vec(job).map_err(io::Error::other)?;
            if text.len() + entry.len() + 1 > budget {
                break;
            }
            if count > 0 {
                text.push(b',');
            }
            text.extend_from_slice(&entry);
            count += 1;
        }
        text.extend_from_slice(b"]}");
        let temp = self.dir.join(TEMP);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, self.path())?;
        // The rename itself is durable once the directory is.
        File::open(&self.dir)?.sync_all()?;
        Ok(count)
    }
}

/// The entries of the file at `path`, `None` if there is none.
fn read(path: &Path) -> Result<Option<Vec<Entry>>, ReadError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    decode(&bytes, MAX_ENTRIES).map(Some)
}

/// The entries of a state file's bytes, at most `max_entries` of them.
fn decode(bytes: &[u8], max_entries: usize) -> Result<Vec<Entry>, ReadError> {
    let version: VersionOnly = serde_json::from_slice(bytes)?;
    if version.version != VERSION {
        return Err(ReadError::Version(version.version));
    }
    let saved: Saved = serde_json::from_slice(bytes)?;
    if saved.jobs.len() > max_entries {
        return Err(ReadError::TooManyEntries(max_entries));
    }
    Ok(saved.jobs)
}

fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            system: "zdm".into(),
            upstream: "u".into(),
            kind: "server".into(),
            target: "s".into(),
            operation: "backup".into(),
            job_name: name.into(),
            server: "s".into(),
            volume: "C:".into(),
            runs: [3, 0, 1, 0],
            last_success: Some(1_700_000_000.5),
            failing_since: Some(1_700_000_100.0),
            last_duration: Some(61.0),
            status: "failed".into(),
            start: Some(1_700_000_040.0),
            end: None,
            last_seen: 1_700_000_200.0,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn entries_round_trip_and_only_the_state_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        assert!(state.load().is_empty(), "no file yet");
        let jobs = vec![entry("일일 \"백업\"\n"), entry("b")];
        assert_eq!(state.save(&jobs, 1.0).unwrap(), 2);
        assert_eq!(state.load(), jobs);
        assert_eq!(files(dir.path()), [FILE]);
        // Written again over the old one.
        assert_eq!(state.save(&jobs[..1], 2.0).unwrap(), 1);
        assert_eq!(state.load(), jobs[..1]);
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        state.save(&[entry("a")], 1.0).unwrap();
        let whole = fs::read(state.path()).unwrap();
        // Cut in the middle, as a write without the rename would leave it.
        fs::write(state.path(), &whole[..whole.len() / 2]).unwrap();
        assert!(state.load().is_empty());
        let names = files(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("state.json.corrupt-"), "{names:?}");
        assert_eq!(
            fs::read(dir.path().join(&names[0])).unwrap(),
            &whole[..whole.len() / 2],
            "set aside as it was"
        );
        // The next write starts a fresh file.
        state.save(&[entry("b")], 2.0).unwrap();
        assert_eq!(state.load(), [entry("b")]);
    }

    #[test]
    fn a_truncated_temporary_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        state.save(&[entry("a")], 1.0).unwrap();
        fs::write(dir.path().join(TEMP), b"{\"version\":1,\"written\":2,\"jo").unwrap();
        assert_eq!(state.load(), [entry("a")], "the last whole file");
        assert_eq!(files(dir.path()), [FILE]);
    }

    #[test]
    fn another_format_version_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        fs::write(
            state.path(),
            br#"{"version":2,"written":1,"jobs":[],"more":true}"#,
        )
        .unwrap();
        assert!(matches!(
            decode(&fs::read(state.path()).unwrap(), MAX_ENTRIES),
            Err(ReadError::Version(2))
        ));
        assert!(state.load().is_empty());
        assert!(files(dir.path())[0].starts_with("state.json.corrupt-"));
    }

    #[test]
    fn bounds_of_what_is_read() {
        // Too many entries.
        let many = format!(
            "{{\"version\":1,\"written\":1,\"jobs\":[{}]}}",
            vec![serde_json::to_string(&entry("a")).unwrap(); 4].join(",")
        );
        assert_eq!(decode(many.as_bytes(), 4).unwrap().len(), 4);
        assert!(matches!(
            decode(many.as_bytes(), 3),
            Err(ReadError::TooManyEntries(3))
        ));
        // An entry with a string longer than the exporter writes is skipped, the rest kept.
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        let long = entry(&"x".repeat(MAX_STRING_BYTES + 1));
        let text = format!(
            "{{\"version\":1,\"written\":1,\"jobs\":[{},{}]}}",
            serde_json::to_string(&long).unwrap(),
            serde_json::to_string(&entry("ok")).unwrap()
        );
        fs::write(state.path(), text).unwrap();
        assert_eq!(state.load(), [entry("ok")]);
        // And is not written either.
        assert_eq!(state.save(&[long, entry("ok")], 1.0).unwrap(), 1);
        // A file past the size bound is not read.
        let f = File::create(state.path()).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(read(&state.path()), Err(ReadError::TooLarge)));
        // Unknown fields are refused: not a file this version wrote.
        let mut value = serde_json::to_value(entry("a")).unwrap();
        value["extra"] = 1.into();
        let text = format!("{{\"version\":1,\"written\":1,\"jobs\":[{value}]}}");
        assert!(matches!(
            decode(text.as_bytes(), MAX_ENTRIES),
            Err(ReadError::Decode(_))
        ));
    }

    #[test]
    fn an_unusable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"").unwrap();
        let e = StateFile::open(&file).unwrap_err().to_string();
        assert!(e.contains(&file.display().to_string()), "{e}");
        let below = file.join("below");
        let e = StateFile::open(&below).unwrap_err().to_string();
        assert!(e.contains(&below.display().to_string()), "{e}");
    }

    /// The sizes docs/deploy.md#storage gives (`cargo test --lib -- storage::tests::size
    /// --nocapture` prints them): a job as a ZDM server lists it, with times of this era.
    #[test]
    fn size_of_the_state_file_for_2000_and_10000_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path()).unwrap();
        for n in [2_000u32, 10_000] {
            let jobs: Vec<Entry> = (0..n)
                .map(|i| Entry {
                    upstream: "zdm-prod".into(),
                    target: format!("server-{:05}", i / 5),
                    job_name: format!("daily-backup-{i:05}"),
                    server: format!("server-{:05}", i / 5),
                    volume: "/".into(),
                    runs: [412, 3, 17, 1],
                    last_success: Some(1_764_723_600.0 + f64::from(i)),
                    failing_since: (i % 10 == 0).then_some(1_764_727_200.0),
                    last_duration: Some(1_834.0),
                    status: "completed".into(),
                    start: Some(1_764_721_766.0),
                    end: Some(1_764_723_600.0),
                    last_seen: 1_764_764_000.123,
                    ..entry("x")
                })
                .collect();
            assert_eq!(state.save(&jobs, 1.0).unwrap(), n as usize);
            let bytes = fs::metadata(state.path()).unwrap().len();
            println!("{n} jobs: {bytes} bytes ({} per job)", bytes / u64::from(n));
            assert!(bytes / u64::from(n) < 512, "{bytes} bytes for {n} jobs");
            assert_eq!(state.load().len(), n as usize);
        }
    }

    proptest::proptest! {
        /// The file is input: any bytes decode to entries or an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&bytes, MAX_ENTRIES);
        }

        /// Any JSON-ish text around a valid header neither panics.
        #[test]
        fn any_jobs_text_decodes_or_fails_cleanly(text in "\\PC{0,200}") {
            let file = format!("{{\"version\":1,\"written\":1,\"jobs\":[{text}]}}");
            let _ = decode(file.as_bytes(), MAX_ENTRIES);
        }

        /// What is written is read back the same, whatever the label values.
        #[test]
        fn entries_round_trip(
            name in proptest::prelude::any::<String>(),
            server in "\\PC{0,20}",
            runs in proptest::prelude::any::<[u64; 4]>(),
            seen in 0.0f64..4e9,
            success in proptest::option::of(0.0f64..4e9),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let state = StateFile::open(dir.path()).unwrap();
            let job = Entry { job_name: name, server, runs, last_seen: seen, last_success: success, ..entry("x") };
            let jobs = if job.is_sane() { vec![job] } else { vec![] };
            state.save(&jobs, 1.0).unwrap();
            proptest::prop_assert_eq!(state.load(), jobs);
        }
    }
}

//! The built-in purge log backend: an append-only, checksummed file, fsync'd
//! before an append returns, replayed (cutting a torn tail) on open, and
//! compacted atomically so that it stays bounded.
//!
//! Layout: see `file_format`. All records still in the file are also held in
//! memory (at most `max_records` plus an eighth), so reads never touch disk.

use super::now_ms;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use super::file_format::{FORMAT_VERSION, LogEntry, encode_entry, scan};
use super::log::{LogFuture, PurgeLog, PurgeLogError};
use super::{PurgeRecord, PurgeSelector};

/// Records kept by default.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

/// Age beyond which records are compacted by default: 7 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How the file log bounds itself, and how many live records a slow
/// subscriber may fall behind before it sees `Lagged`.
///
/// Compaction folds away records beyond the newest `max_records` and records
/// older than `max_age`. It is amortised: it starts only when the log holds
/// an eighth more than `max_records`, or its oldest record is older than
/// `max_age` by an eighth, and then folds right down to the limits.
#[derive(Debug, Clone)]
pub struct FileLogConfig {
    /// Keep at most this many records (at least 1).
    pub max_records: usize,
    /// Keep no record older than this.
    pub max_age: Duration,
    /// Capacity of the live broadcast channel.
    pub live_capacity: usize,
}

impl Default for FileLogConfig {
    fn default() -> Self {
        FileLogConfig {
            max_records: DEFAULT_MAX_RECORDS,
            max_age: DEFAULT_MAX_AGE,
            live_capacity: 1024,
        }
    }
}

/// The built-in [`PurgeLog`]: one append-only file.
#[derive(Clone)]
pub struct FileLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

struct Shared {
    path: PathBuf,
    config: FileLogConfig,
    /// Held for the whole of an append or a compaction (I/O included).
    writer: Mutex<Writer>,
    /// Held only briefly; changes only under `writer`.
    state: Mutex<State>,
    live: broadcast::Sender<PurgeRecord>,
}

struct Writer {
    file: File,
    /// Length of the file's good content.
    len: u64,
    /// Set when a failure left the file in an unknown state: no more appends.
    failed: Option<String>,
}

struct State {
    base_seq: u64,
    records: VecDeque<PurgeRecord>,
    last_issued_ms: u64,
}

impl State {
    fn head(&self) -> u64 {
        self.base_seq + self.records.len() as u64
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_error(context: String) -> impl FnOnce(io::Error) -> PurgeLogError {
    move |source| PurgeLogError::Io { context, source }
}

/// Makes a rename or a creation in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn header(base_seq: u64) -> Result<Vec<u8>, PurgeLogError> {
    encode_entry(&LogEntry::Header {
        format: FORMAT_VERSION,
        base_seq,
        created_ms: now_ms(),
    })
}

impl FileLog {
    /// Opens (or creates) the log at `path` with the default policy.
    /// Blocking: replays the whole file.
    pub fn open(path: impl AsRef<Path>) -> Result<FileLog, PurgeLogError> {
        FileLog::open_with(path, FileLogConfig::default())
    }

    /// Opens (or creates) the log at `path`, replays it, cuts a torn tail
    /// (with a warning saying how many bytes went), and applies the
    /// compaction policy. Damage before the tail is an error naming its
    /// offset. Blocking.
    pub fn open_with(
        path: impl AsRef<Path>,
        config: FileLogConfig,
    ) -> Result<FileLog, PurgeLogError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(format!("open purge log {shown}")))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error(format!("read purge log {shown}")))?;
        let scanned = scan(&bytes, &shown)?;
        drop(bytes);
        if let Some(torn) = &scanned.torn {
            file.set_len(torn.offset)
                .and_then(|()| file.sync_all())
                .map_err(io_error(format!("cut the torn tail of {shown}")))?;
            tracing::warn!(
                path = %shown,
                cut_bytes = torn.bytes,
                at_offset = torn.offset,
                reason = %torn.reason,
                "purge log: cut {} bytes of a torn tail record",
                torn.bytes
            );
        }
        let mut len = scanned.good_len;
        if !scanned.has_header {
            let bytes = header(0)?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .and_then(|()| sync_dir(&path))
                .map_err(io_error(format!("initialise purge log {shown}")))?;
            len = bytes.len() as u64;
        }
        let last_issued_ms = scanned.records.last().map_or(0, |r| r.issued_at_ms);
        let (live, _) = broadcast::channel(config.live_capacity.max(1));
        let log = FileLog {
            shared: Arc::new(Shared {
                path,
                config,
                writer: Mutex::new(Writer {
                    file,
                    len,
                    failed: None,
                }),
                state: Mutex::new(State {
                    base_seq: scanned.base_seq,
                    records: scanned.records.into(),
                    last_issued_ms,
                }),
                live,
            }),
        };
        log.maintain()?;
        tracing::info!(
            path = %shown,
            head_seq = log.shared.head(),
            oldest_seq = log.shared.oldest(),
            "purge log opened"
        );
        Ok(log)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Folds away every record with `seq <= keep_after_seq` (capped at the
    /// head), rewriting the file atomically: a temporary file is written and
    /// fsync'd, renamed over the log, and the directory fsync'd. Numbering
    /// continues; [`PurgeLog::oldest_seq`] becomes `keep_after_seq + 1`.
    /// Returns how many records were dropped. Blocking.
    pub fn compact(&self, keep_after_seq: u64) -> Result<u64, PurgeLogError> {
        let mut writer = lock(&self.shared.writer);
        self.shared.compact_locked(&mut writer, keep_after_seq)
    }

    /// Applies the compaction policy of [`FileLogConfig`] if it is due
    /// (appends do this too). Returns how many records were dropped.
    /// Blocking.
    pub fn maintain(&self) -> Result<u64, PurgeLogError> {
        let mut writer = lock(&self.shared.writer);
        match self.shared.policy_cut() {
            Some(cut) => self.shared.compact_locked(&mut writer, cut),
            None => Ok(0),
        }
    }
}

impl Shared {
    fn head(&self) -> u64 {
        lock(&self.state).head()
    }

    fn oldest(&self) -> u64 {
        lock(&self.state).base_seq + 1
    }

    fn read_from(&self, after_seq: u64) -> Vec<PurgeRecord> {
        let state = lock(&self.state);
        let skip = usize::try_from(after_seq.saturating_sub(state.base_seq)).unwrap_or(usize::MAX);
        state.records.iter().skip(skip).cloned().collect()
    }

    fn append_blocking(
        &self,
        selector: PurgeSelector,
        soft: bool,
    ) -> Result<PurgeRecord, PurgeLogError> {
        let mut writer = lock(&self.writer);
        if let Some(why) = &writer.failed {
            return Err(PurgeLogError::Unavailable(why.clone()));
        }
        let (seq, issued_at_ms) = {
            let state = lock(&self.state);
            // Issue times never go backwards, even if the clock does.
            (state.head() + 1, now_ms().max(state.last_issued_ms))
        };
        let record = PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq,
            issued_at_ms,
            selector,
            soft,
        };
        let bytes = encode_entry(&LogEntry::Record(record.clone()))?;
        let written = writer
            .file
            .write_all(&bytes)
            .and_then(|()| writer.file.sync_data());
        if let Err(source) = written {
            // Cut the partial entry so that the file stays a clean sequence.
            let good = writer.len;
            if let Err(e) = writer
                .file
                .set_len(good)
                .and_then(|()| writer.file.sync_all())
            {
                writer.failed = Some(format!(
                    "append to {} failed and could not be undone: {e}",
                    self.path.display()
                ));
            }
            return Err(PurgeLogError::Io {
                context: format!("append to purge log {}", self.path.display()),
                source,
            });
        }
        writer.len += bytes.len() as u64;
        {
            let mut state = lock(&self.state);
            state.records.push_back(record.clone());
            state.last_issued_ms = issued_at_ms;
            // No subscriber is fine.
            let _ = self.live.send(record.clone());
        }
        if let Some(cut) = self.policy_cut() {
            if let Err(e) = self.compact_locked(&mut writer, cut) {
                tracing::warn!(error = %e, "purge log compaction failed");
            }
        }
        Ok(record)
    }

    /// The sequence to compact up to, if the policy says it is time.
    fn policy_cut(&self) -> Option<u64> {
        let state = lock(&self.state);
        let now = now_ms();
        let max_records = self.config.max_records.max(1);
        let max_age_ms = u64::try_from(self.config.max_age.as_millis()).unwrap_or(u64::MAX);
        let n = state.records.len();
        let count_due = n > max_records + max_records / 8;
        let age_due = state.records.front().is_some_and(|r| {
            now.saturating_sub(r.issued_at_ms) > max_age_ms.saturating_add(max_age_ms / 8)
        });
        if !count_due && !age_due {
            return None;
        }
        let mut cut = state.base_seq;
        if n > max_records {
            cut = cut.max(state.head() - max_records as u64);
        }
        let horizon = now.saturating_sub(max_age_ms);
        if let Some(old) = state
            .records
            .iter()
            .take_while(|r| r.issued_at_ms < horizon)
            .last()
        {
            cut = cut.max(old.seq);
        }
        (cut > state.base_seq).then_some(cut)
    }

    fn compact_locked(
        &self,
        writer: &mut Writer,
        keep_after_seq: u64,
    ) -> Result<u64, PurgeLogError> {
        if let Some(why) = &writer.failed {
            return Err(PurgeLogError::Unavailable(why.clone()));
        }
        let (new_base, kept) = {
            let state = lock(&self.state);
            let new_base = keep_after_seq.min(state.head());
            if new_base <= state.base_seq {
                return Ok(0);
            }
            let kept: Vec<PurgeRecord> = state
                .records
                .iter()
                .filter(|r| r.seq > new_base)
                .cloned()
                .collect();
            (new_base, kept)
        };
        let mut bytes = header(new_base)?;
        for record in &kept {
            bytes.extend(encode_entry(&LogEntry::Record(record.clone()))?);
        }
        let shown = self.path.display();
        let tmp = tmp_path(&self.path);
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(PurgeLogError::Io {
                context: format!("compact purge log {shown}"),
                source,
            });
        }
        // The new file is the log now: appends must go to it, durably.
        let reopened = sync_dir(&self.path)
            .and_then(|()| OpenOptions::new().read(true).append(true).open(&self.path));
        match reopened {
            Ok(file) => {
                writer.file = file;
                writer.len = bytes.len() as u64;
            }
            Err(source) => {
                writer.failed = Some(format!("reopen {shown} after compaction: {source}"));
                return Err(PurgeLogError::Io {
                    context: format!("reopen purge log {shown} after compaction"),
                    source,
                });
            }
        }
        let mut state = lock(&self.state);
        let before = state.records.len();
        while state.records.front().is_some_and(|r| r.seq <= new_base) {
            state.records.pop_front();
        }
        state.base_seq = new_base;
        let dropped = (before - state.records.len()) as u64;
        tracing::info!(
            path = %shown,
            dropped,
            kept = state.records.len(),
            oldest_seq = new_base + 1,
            "purge log compacted"
        );
        Ok(dropped)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".compact-tmp");
    path.with_file_name(name)
}

impl PurgeLog for FileLog {
    fn append(&self, selector: PurgeSelector, soft: bool) -> LogFuture<'_, PurgeRecord> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || shared.append_blocking(selector, soft))
                .await
                .map_err(|e| PurgeLogError::Unavailable(format!("append task failed: {e}")))?
        })
    }

    fn read_from(&self, after_seq: u64) -> LogFuture<'_, Vec<PurgeRecord>> {
        Box::pin(async move { Ok(self.shared.read_from(after_seq)) })
    }

    fn head_seq(&self) -> LogFuture<'_, u64> {
        Box::pin(async move { Ok(self.shared.head()) })
    }

    fn oldest_seq(&self) -> LogFuture<'_, u64> {
        Box::pin(async move { Ok(self.shared.oldest()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<PurgeRecord> {
        self.shared.live.subscribe()
    }
}

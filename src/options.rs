//! Options for [`crate::Bitcask::open`].

use crate::error::{Error, Result};
use crate::format::{MAX_FILE_SIZE_LIMIT, MAX_KEY_LEN_LIMIT, MAX_VALUE_LEN_LIMIT};
use std::time::Duration;

/// When acknowledged writes reach the disk (not just the OS).
///
/// Whatever the policy, a write has been handed to the OS (a `write(2)`) before it
/// returns, unless a write buffer is configured, so a process crash loses nothing
/// acknowledged. The policy decides what a power loss may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fdatasync before every write returns (group commit shares one sync among
    /// concurrent writers).
    Always,
    /// A background fdatasync at most this many milliseconds apart.
    EveryMs(u64),
    /// Left to the OS.
    Never,
}

/// Database options. Construct with `Options::default()` and set fields.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Options {
    /// Durability of writes; see [`SyncPolicy`]. Default: `Never`.
    pub sync: SyncPolicy,
    /// Size at which the active data file becomes immutable. Default 128 MiB.
    pub max_file_size: u64,
    /// Largest key accepted. Default 4096.
    pub max_key_size: usize,
    /// Largest value accepted. Default 64 MiB.
    pub max_value_size: usize,
    /// Open without the writer lock; every write returns `Error::ReadOnly`.
    pub read_only: bool,
    /// Create the database (the directory, and its first data file) when there
    /// is none. Default true; false makes open fail with
    /// `Error::DatabaseNotFound`, so that a mistyped path is not a new, empty
    /// database. A directory without a data file holds no database.
    pub create_if_missing: bool,
    /// Fail the open with `Error::DatabaseExists` when the directory already
    /// holds a database. Default false.
    pub error_if_exists: bool,
    /// Skip corrupt records in immutable files (counting them in `Stats`) instead of
    /// failing the open with `Error::Corruption`.
    pub salvage: bool,
    /// Bytes of writes held in memory before a `write(2)`. 0 (the default) writes
    /// every put through to the OS; a buffer speeds bulk loads and loses at most the
    /// buffered bytes if the process crashes.
    pub write_buffer_size: usize,
    /// Read values through read-only memory maps of the data files (default on):
    /// a read then makes no system call and copies the value once. Off, every read
    /// is a `pread`. A map turns an I/O error while paging in, or a data file cut
    /// short by another program, into SIGBUS instead of an error: see
    /// ARCHITECTURE.md.
    pub mmap: bool,
    /// Once a durable write has been made, keep the active data file zero-filled
    /// ahead of the writes, and the next file ready, so that a durable append
    /// changes no file metadata and its fdatasync writes only data (default on).
    /// Costs up to 13 MiB of allocated space past the data; files are trimmed
    /// to their data when sealed or closed. See docs/format.md.
    pub preallocate: bool,
    /// Merge concurrent writers into one append and one fsync (group commit).
    /// Default on; off serialises writers, for comparison.
    pub write_merging: bool,
    /// Run merges automatically when the triggers below fire. Default on.
    pub auto_merge: bool,
    /// How often the background thread checks merge triggers.
    pub merge_check_interval: Duration,
    /// A file whose dead bytes reach this percentage of its size triggers a merge.
    pub merge_trigger_fragmentation: u8,
    /// A file with this many dead bytes triggers a merge.
    pub merge_trigger_dead_bytes: u64,
    /// Total dead bytes over all immutable files that trigger a merge.
    pub merge_trigger_total_dead_bytes: u64,
    /// Once merging, files at or above this fragmentation percentage are included.
    pub merge_threshold_fragmentation: u8,
    /// Once merging, files with at least this many dead bytes are included.
    pub merge_threshold_dead_bytes: u64,
    /// Cap on merge reads plus writes, bytes per second; 0 means no cap.
    pub merge_bytes_per_sec: u64,
    /// TTL given to every put that does not name its own (`put_with_ttl`).
    /// Default `None`: values do not expire.
    pub default_ttl: Option<Duration>,
    /// Called as open loads each data file, to report progress (a service can log
    /// "loading 40%"). Calls may come from several threads but never overlap;
    /// the last one has `files_done == files_total`, and building the keydir
    /// follows it. Default `None`.
    pub open_progress: Option<OpenProgress>,
    /// Receives the database's events (failed merges, refused writes, bytes
    /// dropped or salvaged at open, slow syncs: see [`crate::EventKind`]), which
    /// also go to the `log` facade under the target `bitcask`. Default `None`.
    pub event_listener: Option<crate::EventListener>,
    /// An fdatasync of the active file taking at least this long is reported as
    /// a `SlowSync` event. `None` reports none. Default 1 s.
    pub slow_sync_threshold: Option<Duration>,
    /// The wall clock expiry is judged by. Tests substitute a model clock; not a
    /// stable API.
    #[doc(hidden)]
    pub clock: Option<Clock>,
    /// Called after each group commit with the time its phases took (the
    /// bench's latency trace). Not a stable API.
    #[doc(hidden)]
    pub commit_trace: Option<CommitTracer>,
}

/// Where one group commit spent its time, phase by phase, on the leader's
/// thread. Not a stable API.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct CommitTrace {
    /// Writes in the group.
    pub writes: usize,
    /// Waiting for the writer lock (held by a merge's seal or a backup's cut).
    pub lock: Duration,
    /// Sealing the active file and starting the next, when the group did.
    pub rotate: Duration,
    /// The rotation renamed the spare in (`Some(true)`) or created a file
    /// (`Some(false)`).
    pub rotated_to_spare: Option<bool>,
    /// Encoding the records.
    pub encode: Duration,
    /// `write(2)` (or the write buffer).
    pub write: Duration,
    /// fdatasync, when the group was durable.
    pub sync: Duration,
    /// Updating the keydir.
    pub index: Duration,
    /// Zero-filling ahead.
    pub prealloc: Duration,
}

/// A [`CommitTrace`] callback. Not a stable API.
#[doc(hidden)]
#[derive(Clone)]
pub struct CommitTracer(pub std::sync::Arc<dyn Fn(&CommitTrace) + Send + Sync>);

impl std::fmt::Debug for CommitTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitTracer")
    }
}

/// How far an open has got: data files and their bytes loaded, of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A progress callback for [`Options::open_progress`].
#[derive(Clone)]
pub struct OpenProgress(pub std::sync::Arc<dyn Fn(Progress) + Send + Sync>);

impl std::fmt::Debug for OpenProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenProgress")
    }
}

/// A source of wall-clock time in milliseconds since the Unix epoch.
#[doc(hidden)]
#[derive(Clone)]
pub struct Clock(pub std::sync::Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::Never,
            max_file_size: 128 << 20,
            max_key_size: 4096,
            max_value_size: 64 << 20,
            read_only: false,
            create_if_missing: true,
            error_if_exists: false,
            salvage: false,
            write_buffer_size: 0,
            mmap: true,
            preallocate: true,
            write_merging: true,
            auto_merge: true,
            merge_check_interval: Duration::from_secs(1),
            // Riak's Bitcask defaults.
            merge_trigger_fragmentation: 60,
            merge_trigger_dead_bytes: 512 << 20,
            merge_trigger_total_dead_bytes: 512 << 20,
            merge_threshold_fragmentation: 40,
            merge_threshold_dead_bytes: 128 << 20,
            merge_bytes_per_sec: 0,
            default_ttl: None,
            open_progress: None,
            event_listener: None,
            slow_sync_threshold: Some(Duration::from_secs(1)),
            clock: None,
            commit_trace: None,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        fn bad(name: &'static str, reason: String) -> Result<()> {
            Err(Error::InvalidOption { name, reason })
        }
        if self.max_file_size < 1024 || self.max_file_size > MAX_FILE_SIZE_LIMIT {
            return bad(
                "max_file_size",
                format!("must be between 1024 and {MAX_FILE_SIZE_LIMIT}"),
            );
        }
        if self.max_key_size == 0 || self.max_key_size > MAX_KEY_LEN_LIMIT {
            return bad(
                "max_key_size",
                format!("must be between 1 and {MAX_KEY_LEN_LIMIT}"),
            );
        }
        if self.max_value_size > MAX_VALUE_LEN_LIMIT {
            return bad(
                "max_value_size",
                format!("must be at most {MAX_VALUE_LEN_LIMIT}"),
            );
        }
        if self.write_buffer_size > 1 << 30 {
            return bad("write_buffer_size", "must be at most 1 GiB".into());
        }
        if let SyncPolicy::EveryMs(0) = self.sync {
            return bad("sync", "EveryMs interval must be at least 1 ms".into());
        }
        for (name, v) in [
            (
                "merge_trigger_fragmentation",
                self.merge_trigger_fragmentation,
            ),
            (
                "merge_threshold_fragmentation",
                self.merge_threshold_fragmentation,
            ),
        ] {
            if v > 100 {
                return bad(name, "is a percentage, 0 to 100".into());
            }
        }
        if let Some(ttl) = self.default_ttl {
            if ttl.is_zero() || ttl > crate::batch::MAX_TTL {
                return bad(
                    "default_ttl",
                    format!(
                        "must be between 1 ms and {} s",
                        crate::batch::MAX_TTL.as_secs()
                    ),
                );
            }
        }
        if self.merge_check_interval.is_zero() {
            return bad("merge_check_interval", "must be positive".into());
        }
        Ok(())
    }
}

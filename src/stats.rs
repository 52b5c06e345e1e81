//! Counters reported by [`crate::Bitcask::stats`].

/// Space use of one data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStats {
    pub id: u32,
    /// File length, header included.
    pub total_bytes: u64,
    /// Bytes of records that hold the current value of a key.
    pub live_bytes: u64,
    /// Everything else: overwritten and deleted values, tombstones, the header.
    pub dead_bytes: u64,
}

/// A snapshot of the database's counters.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Stats {
    /// Live keys: what `len()` counts (expired keys not included).
    pub keys: u64,
    /// Approximate heap bytes of the keydir.
    pub keydir_bytes: u64,
    /// Tombstone records in the data files. A merge drops each once no file
    /// that could hold a value it hides remains.
    pub tombstones: u64,
    /// Bytes in data files.
    pub data_bytes: u64,
    /// Bytes in hint files.
    pub hint_bytes: u64,
    /// Data plus hint bytes.
    pub disk_bytes: u64,
    /// Space allocated past the data for durable writes (`Options::preallocate`):
    /// the zero-filled tail of the active file plus the spare next file. Not in
    /// `data_bytes` or `disk_bytes`; at most 1.5 steps of zeros (a step is a
    /// quarter of the data, 1 to 8 MiB) plus the 1 MiB spare: 13 MiB at most.
    pub preallocated_bytes: u64,
    /// Per data file, ascending id; the last is the active file.
    pub files: Vec<FileStats>,
    /// Bytes of torn tail truncated from the last data file at open.
    pub dropped_bytes_at_open: u64,
    /// Bytes skipped by a salvage open.
    pub salvaged_bytes_at_open: u64,
    /// Sequence number of the newest write (None when read-only).
    pub last_seq: Option<u64>,
    /// The outcome of the last merge since open that succeeded and did work.
    pub last_merge: Option<crate::MergeStats>,
    /// Merges that completed since open (a merge with nothing to reclaim is not
    /// run, so it is not counted).
    pub merges: u64,
    /// Merges that failed in a row, up to now: 0 once a merge succeeds. Automatic
    /// merging backs off while this is above 0.
    pub merge_failures: u64,
    /// The error of the newest failed merge, while `merge_failures` is above 0.
    pub last_merge_error: Option<crate::Error>,
    /// fdatasyncs of the active file since open (durable writes, `sync()`, the
    /// `EveryMs` thread; not the syncs of rotation, hint files or merge).
    pub syncs: u64,
    /// Writes (puts, deletes, batches) committed since open.
    pub writes: u64,
    /// Appends those writes were committed in: with write merging, concurrent
    /// writes share one append and one fdatasync, so this is below `writes`.
    pub write_groups: u64,
    /// Snapshots alive, those iterators read from included.
    pub snapshots: u64,
    /// Versions kept for them: one per key changed since the oldest was taken,
    /// at most one per key and snapshot. 0 once none is alive.
    pub snapshot_versions: u64,
}

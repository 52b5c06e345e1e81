//! The engine abstraction. An adapter is one file in `src/engines/` plus one
//! line in [`registry`].

use crate::Result;
use std::path::{Path, PathBuf};

/// A key-value engine under test. All methods take `&self`: the multi-threaded
/// workloads share one instance between threads.
pub trait Engine: Send + Sync {
    /// Display name, e.g. "redb".
    fn name(&self) -> String;
    /// Insert or overwrite one key. When opened with `durable = true` the write
    /// must be on stable storage when this returns.
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()>;
    /// Insert a batch as one unit (one transaction / one commit where the engine
    /// has them). Durable on return when opened durable.
    fn put_batch(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        for (k, v) in kvs {
            self.put(k, v)?;
        }
        Ok(())
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Force everything written so far to stable storage.
    fn sync(&self) -> Result<()>;
    /// Every file the engine owns (for posix_fadvise DONTNEED and disk usage).
    fn files(&self) -> Vec<PathBuf>;
    /// The engine's own estimate of the memory its in-memory index holds, if it
    /// keeps one (libbitcask's keydir).
    fn index_bytes(&self) -> Option<u64> {
        None
    }
    /// Forward range scan: read up to `n` keys and values in key order, starting at
    /// the first key >= `start`; returns how many were read (fewer at the end of
    /// the key space). Engines without ordered iteration keep the default, which
    /// returns [`Unsupported`]: the scan workload then skips them.
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let _ = (start, n);
        Err(Box::new(Unsupported))
    }
    /// The engine's own write-path counters since open (libbitcask's `Stats`).
    fn sync_counts(&self) -> Option<SyncCounts> {
        None
    }
    /// Compact / merge everything now, if the engine has such an operation
    /// (engines listing "merge" in [`EngineSpec::extra`] must implement it).
    fn merge(&self) -> Result<Option<MergeOutcome>> {
        Ok(None)
    }
    /// Flush and release everything; the directory can be reopened afterwards.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Returned by a default [`Engine`] method the engine does not implement.
#[derive(Debug)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("operation not supported by this engine")
    }
}

impl std::error::Error for Unsupported {}

/// Write-path counters an engine keeps itself (since open).
#[derive(Clone, Copy, Debug)]
pub struct SyncCounts {
    /// fdatasyncs of the log.
    pub syncs: u64,
    /// Writes committed.
    pub writes: u64,
    /// Appends those writes were committed in (group commit merges writes).
    pub write_groups: u64,
}

/// What an explicit merge/compaction reports.
pub struct MergeOutcome {
    /// Bytes of the files the merge read.
    pub bytes_in: u64,
    /// Bytes of the files it wrote.
    pub bytes_out: u64,
}

pub type Opener = fn(dir: &Path, durable: bool) -> Result<Box<dyn Engine>>;

/// Static description of an engine.
pub struct EngineSpec {
    pub name: &'static str,
    pub open: Opener,
    /// Whether the engine has a real multi-key transaction/batch that the fill
    /// workload should also be measured with (batches of 1000).
    pub batched_fill: bool,
    /// Whether its durable mode can be trusted; if false, durable figures are
    /// reported as throughput only.
    pub durability_trusted: bool,
    /// What "durable" and "non-durable" mean for this engine (goes in the report).
    pub modes: &'static str,
    /// If not empty, the only CLI workloads this engine runs (a variant that
    /// exists to measure one option).
    pub only: &'static [&'static str],
    /// Engine-specific CLI workloads it runs besides the generic ones (e.g. "merge").
    pub extra: &'static [&'static str],
    /// Extension of files that only speed up open and may be deleted (libbitcask's
    /// hint files): the open workload then also times an open without them.
    pub hint_ext: Option<&'static str>,
}

impl EngineSpec {
    /// Whether this engine takes part in CLI workload `w`.
    pub fn runs(&self, w: &str) -> bool {
        if !self.only.is_empty() {
            return self.only.contains(&w);
        }
        !crate::SPECIFIC_WORKLOADS.contains(&w) || self.extra.contains(&w)
    }
}

/// All engines compiled in. Add a line here when adding an adapter.
#[allow(clippy::vec_init_then_push)]
pub fn registry() -> Vec<EngineSpec> {
    #[allow(unused_mut)]
    let mut v: Vec<EngineSpec> = Vec::new();
    #[cfg(feature = "libbitcask")]
    {
        v.push(crate::engines::libbitcask::spec());
        v.push(crate::engines::libbitcask::spec_buffered());
        v.push(crate::engines::libbitcask::spec_nomerge());
        v.push(crate::engines::libbitcask::spec_ttl());
    }
    #[cfg(feature = "lmdb")]
    v.push(crate::engines::lmdb::spec());
    #[cfg(feature = "redb")]
    v.push(crate::engines::redb::spec());
    #[cfg(feature = "fjall")]
    v.push(crate::engines::fjall::spec());
    #[cfg(feature = "sled")]
    v.push(crate::engines::sled::spec());
    v
}

//! libbitcask, the engine of this repository (path dependency `..`).
//!
//! Durable: `SyncPolicy::Always` (every put fdatasynced before it returns;
//! concurrent writers share syncs through group commit). Non-durable:
//! `SyncPolicy::Never` (every put still reaches the OS with a `write(2)` before
//! it returns). Three variants measure one option each:
//! `libbitcask-buffered` (fill only) with a 4 MiB write buffer, and
//! `libbitcask-nomerge` (durable writers only) with group commit turned off, and
//! `libbitcask-ttl` (fill, memory, open) with every key carrying an expiry.
use crate::engine::{Engine, EngineSpec, MergeOutcome, SyncCounts};
use crate::Result;
use bitcask::{Bitcask, Options, SyncPolicy, WriteBatch};
use std::path::{Path, PathBuf};

pub fn spec() -> EngineSpec {
    EngineSpec {
        name: "libbitcask",
        open,
        batched_fill: true,
        durability_trusted: true,
        modes: "durable: SyncPolicy::Always (fdatasync before each put returns, group commit across threads); non-durable: SyncPolicy::Never (write(2) per put, no fsync); auto_merge off (the merge workload merges explicitly)",
        only: &[],
        extra: &["merge"],
        hint_ext: Some("hint"),
    }
}

pub fn spec_buffered() -> EngineSpec {
    EngineSpec {
        name: "libbitcask-buffered",
        open: open_buffered,
        batched_fill: false,
        durability_trusted: true,
        modes: "fill only: SyncPolicy::Never with write_buffer_size = 4 MiB (puts gather in memory; a process crash may lose up to 4 MiB)",
        only: &["fill"],
        extra: &[],
        hint_ext: Some("hint"),
    }
}

pub fn spec_ttl() -> EngineSpec {
    EngineSpec {
        name: "libbitcask-ttl",
        open: open_ttl,
        batched_fill: false,
        durability_trusted: true,
        modes: "fill, memory and open only: as libbitcask, with default_ttl = 30 days, so every key carries an expiry (what a TTL costs in time, keydir memory and disk)",
        only: &["fill", "memory", "open"],
        extra: &[],
        hint_ext: Some("hint"),
    }
}

pub fn spec_nomerge() -> EngineSpec {
    EngineSpec {
        name: "libbitcask-nomerge",
        open: open_nomerge,
        batched_fill: false,
        durability_trusted: true,
        modes: "durable writers only: SyncPolicy::Always with write_merging = false (writers serialised, one fdatasync each)",
        only: &["concurrent"],
        extra: &[],
        hint_ext: Some("hint"),
    }
}

struct Lib {
    db: Bitcask,
    name: &'static str,
    dir: PathBuf,
}

fn base(durable: bool) -> Options {
    let mut o = Options::default();
    o.sync = if durable {
        SyncPolicy::Always
    } else {
        SyncPolicy::Never
    };
    // The merge workload triggers merges itself; an automatic merge in the
    // middle of another workload would be measured as that workload.
    o.auto_merge = false;
    o
}

fn open_with(dir: &Path, o: Options, name: &'static str) -> Result<Box<dyn Engine>> {
    let db = Bitcask::open(dir, o)?;
    Ok(Box::new(Lib {
        db,
        name,
        dir: dir.to_path_buf(),
    }))
}

fn open(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    open_with(dir, base(durable), "libbitcask")
}

fn open_buffered(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    let mut o = base(durable);
    o.write_buffer_size = 4 << 20;
    open_with(dir, o, "libbitcask-buffered")
}

fn open_ttl(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    let mut o = base(durable);
    o.default_ttl = Some(std::time::Duration::from_secs(30 * 86_400));
    open_with(dir, o, "libbitcask-ttl")
}

fn open_nomerge(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    let mut o = base(durable);
    o.write_merging = false;
    open_with(dir, o, "libbitcask-nomerge")
}

impl Engine for Lib {
    fn name(&self) -> String {
        self.name.into()
    }
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        self.db.put(k, v)?;
        Ok(())
    }
    fn put_batch(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut b = WriteBatch::new();
        for (k, v) in kvs {
            b.put(k, v);
        }
        self.db.write(&b)?;
        Ok(())
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(k)?)
    }
    fn sync(&self) -> Result<()> {
        Ok(self.db.sync()?)
    }
    fn files(&self) -> Vec<PathBuf> {
        crate::sys::list_files(&self.dir)
    }
    fn index_bytes(&self) -> Option<u64> {
        self.db.stats().ok().map(|s| s.keydir_bytes)
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let mut read = 0;
        let mut it = self.db.range(start.., false)?;
        while read < n {
            let Some(kv) = it.next_ref() else { break };
            std::hint::black_box(kv?);
            read += 1;
        }
        Ok(read)
    }
    fn sync_counts(&self) -> Option<SyncCounts> {
        let s = self.db.stats().ok()?;
        Some(SyncCounts {
            syncs: s.syncs,
            writes: s.writes,
            write_groups: s.write_groups,
        })
    }
    fn merge(&self) -> Result<Option<MergeOutcome>> {
        let m = self.db.merge()?;
        Ok(Some(MergeOutcome {
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
        }))
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.db.close()?;
        Ok(())
    }
}

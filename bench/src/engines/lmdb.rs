//! LMDB through `heed`. Durable: default flags, every write transaction commit
//! fsyncs (data, then meta page). Non-durable: `MDB_NOSYNC`, commits only reach
//! the OS page cache (documented as "ACI without D").
use crate::engine::{Engine, EngineSpec};
use crate::Result;
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};
use std::path::{Path, PathBuf};

pub fn spec() -> EngineSpec {
    EngineSpec {
        name: "lmdb",
        open,
        batched_fill: true,
        durability_trusted: true,
        modes: "durable: commit per write, fsynced; non-durable: MDB_NOSYNC",
        only: &[],
        extra: &[],
        hint_ext: None,
    }
}

struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
    dir: PathBuf,
}

fn open(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    let mut opts = EnvOpenOptions::new();
    opts.map_size(64 << 30).max_dbs(1);
    if !durable {
        // SAFETY: NO_SYNC only weakens durability, which is what this mode measures.
        unsafe {
            opts.flags(EnvFlags::NO_SYNC);
        }
    }
    // SAFETY: the directory is used by this process only.
    let env = unsafe { opts.open(dir)? };
    let mut wtxn = env.write_txn()?;
    let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None)?;
    wtxn.commit()?;
    Ok(Box::new(Lmdb {
        env,
        db,
        dir: dir.to_path_buf(),
    }))
}

impl Engine for Lmdb {
    fn name(&self) -> String {
        "lmdb".into()
    }
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        let mut w = self.env.write_txn()?;
        self.db.put(&mut w, k, v)?;
        w.commit()?;
        Ok(())
    }
    fn put_batch(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut w = self.env.write_txn()?;
        for (k, v) in kvs {
            self.db.put(&mut w, k, v)?;
        }
        w.commit()?;
        Ok(())
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.env.read_txn()?;
        Ok(self.db.get(&r, k)?.map(|v| v.to_vec()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        use std::ops::Bound;
        let r = self.env.read_txn()?;
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(start), Bound::Unbounded);
        let mut read = 0;
        for kv in self.db.range(&r, &range)?.take(n) {
            let (k, v) = kv?;
            std::hint::black_box((k, v));
            read += 1;
        }
        Ok(read)
    }
    fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }
    fn files(&self) -> Vec<PathBuf> {
        crate::sys::list_files(&self.dir)
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.env.force_sync()?;
        let Lmdb { env, .. } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

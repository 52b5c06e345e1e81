//! fjall (LSM). Durable: `Database::persist(PersistMode::SyncData)` after every
//! write. Non-durable: the default, journal written to OS buffers only.
use crate::engine::{Engine, EngineSpec};
use crate::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::{Path, PathBuf};

pub fn spec() -> EngineSpec {
    EngineSpec {
        name: "fjall",
        open,
        batched_fill: true,
        durability_trusted: true,
        modes: "durable: insert + persist(SyncData) per write; non-durable: default (OS buffers)",
        only: &[],
        extra: &[],
        hint_ext: None,
    }
}

struct Fjall {
    db: Database,
    ks: Keyspace,
    durable: bool,
    dir: PathBuf,
}

fn open(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    let db = Database::builder(dir).open()?;
    let ks = db.keyspace("bench", KeyspaceCreateOptions::default)?;
    Ok(Box::new(Fjall {
        db,
        ks,
        durable,
        dir: dir.to_path_buf(),
    }))
}

impl Engine for Fjall {
    fn name(&self) -> String {
        "fjall".into()
    }
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        self.ks.insert(k, v)?;
        if self.durable {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }
    fn put_batch(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut b = self.db.batch();
        for (k, v) in kvs {
            b.insert(&self.ks, *k, *v);
        }
        b.commit()?;
        if self.durable {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.ks.get(k)?.map(|v| v.to_vec()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let mut read = 0;
        for g in self.ks.range(start..).take(n) {
            let (k, v) = g.into_inner()?;
            std::hint::black_box((&k, &v));
            read += 1;
        }
        Ok(read)
    }
    fn sync(&self) -> Result<()> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }
    fn files(&self) -> Vec<PathBuf> {
        crate::sys::list_files(&self.dir)
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.sync()?;
        drop(self);
        Ok(())
    }
}

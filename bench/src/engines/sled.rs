//! sled 0.34. Durable: `flush()` after every write. sled's flush is not a
//! reliable durability guarantee (known crash-consistency issues in 0.34), so
//! its durable figures are throughput only.
use crate::engine::{Engine, EngineSpec};
use crate::Result;
use std::path::{Path, PathBuf};

pub fn spec() -> EngineSpec {
    EngineSpec {
        name: "sled",
        open,
        batched_fill: false,
        durability_trusted: false,
        modes: "durable: insert + flush() per write (fsync NOT reliable: throughput only); non-durable: default",
        only: &[],
        extra: &[],
        hint_ext: None,
    }
}

struct Sled {
    db: sled::Db,
    durable: bool,
    dir: PathBuf,
}

fn open(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    let db = sled::Config::new().path(dir).open()?;
    Ok(Box::new(Sled {
        db,
        durable,
        dir: dir.to_path_buf(),
    }))
}

impl Engine for Sled {
    fn name(&self) -> String {
        "sled".into()
    }
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        self.db.insert(k, v)?;
        if self.durable {
            self.db.flush()?;
        }
        Ok(())
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(k)?.map(|v| v.to_vec()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let mut read = 0;
        for kv in self.db.range(start..).take(n) {
            let (k, v) = kv?;
            std::hint::black_box((&k, &v));
            read += 1;
        }
        Ok(read)
    }
    fn sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
    fn files(&self) -> Vec<PathBuf> {
        crate::sys::list_files(&self.dir)
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.db.flush()?;
        drop(self);
        Ok(())
    }
}

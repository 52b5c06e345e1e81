//! redb. Durable: one write transaction per write with `Durability::Immediate`
//! (the default). Non-durable: `Durability::None` (commit not persisted until a
//! later durable commit).
use crate::engine::{Engine, EngineSpec};
use crate::Result;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

pub fn spec() -> EngineSpec {
    EngineSpec {
        name: "redb",
        open,
        batched_fill: true,
        durability_trusted: true,
        modes: "durable: txn per write, Durability::Immediate; non-durable: Durability::None",
        only: &[],
        extra: &[],
        hint_ext: None,
    }
}

struct Redb {
    db: Database,
    durable: bool,
    dir: PathBuf,
}

fn open(dir: &Path, durable: bool) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    let db = Database::create(dir.join("bench.redb"))?;
    let w = db.begin_write()?;
    w.open_table(TABLE)?;
    w.commit()?;
    Ok(Box::new(Redb {
        db,
        durable,
        dir: dir.to_path_buf(),
    }))
}

impl Redb {
    fn write(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut w = self.db.begin_write()?;
        if !self.durable {
            w.set_durability(Durability::None)?;
        }
        {
            let mut t = w.open_table(TABLE)?;
            for (k, v) in kvs {
                t.insert(*k, *v)?;
            }
        }
        w.commit()?;
        Ok(())
    }
}

impl Engine for Redb {
    fn name(&self) -> String {
        "redb".into()
    }
    fn put(&self, k: &[u8], v: &[u8]) -> Result<()> {
        self.write(&[(k, v)])
    }
    fn put_batch(&self, kvs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write(kvs)
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TABLE)?;
        Ok(t.get(k)?.map(|v| v.value().to_vec()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TABLE)?;
        let mut read = 0;
        for kv in t.range(start..)?.take(n) {
            let (k, v) = kv?;
            std::hint::black_box((k.value(), v.value()));
            read += 1;
        }
        Ok(read)
    }
    fn sync(&self) -> Result<()> {
        // An empty durable commit persists all earlier non-durable ones.
        let w = self.db.begin_write()?;
        w.commit()?;
        Ok(())
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

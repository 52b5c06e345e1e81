//! Shared helpers for the scenario tests: temporary directories, a model to check
//! the database against, and small deterministic random numbers.
#![allow(dead_code)]

use bitcask::{Bitcask, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!(
            "bitcask-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic, seedable, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Options with small files, so tests cross file boundaries.
pub fn small_files() -> Options {
    let mut o = Options::default();
    o.max_file_size = 4096;
    o.auto_merge = false;
    o
}

/// Options for merge tests: files small enough that a few thousand writes make
/// many, and no automatic merge to race with the test's own.
pub fn merge_opts() -> Options {
    let mut o = Options::default();
    o.max_file_size = 16 << 10;
    o.auto_merge = false;
    o
}

/// The defaults, automatic merging included, with small files and an interval
/// and triggers that make background merges run all the time.
pub fn auto_merge_opts() -> Options {
    let mut o = Options::default();
    o.max_file_size = 8 << 10;
    o.merge_check_interval = std::time::Duration::from_millis(5);
    o.merge_trigger_fragmentation = 30;
    o.merge_threshold_fragmentation = 10;
    o
}

/// Asserts that the database holds exactly the model.
pub fn assert_matches(db: &Bitcask, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(db.len().unwrap(), model.len(), "key count");
    for (k, v) in model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "key {k:?}");
    }
    let all: Vec<(Vec<u8>, Vec<u8>)> = db.iter().unwrap().map(|r| r.unwrap()).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, want, "iteration");
}

/// Data file paths of a database directory, ascending.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    v
}

pub fn hint_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    v.sort();
    v
}

/// Waits (bounded) until every immutable data file has its hint file.
pub fn wait_for_hints(dir: &Path) {
    for _ in 0..500 {
        if hint_files(dir).len() + 1 >= data_files(dir).len() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("hint files were not written");
}

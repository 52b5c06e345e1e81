//! The power-loss model crossed with every sync policy, with the default options
//! on: automatic merging (at a short interval, racing the writes), random puts,
//! deletes, batches, syncs and merges, and a power loss at a random moment, in
//! three patterns (unsynced bytes dropped; a random prefix of each file's and
//! directory's unsynced changes, cut independently per file; the same with the
//! rest of the torn page turned to zeros or garbage).
//!
//! The check after each crash, per key: the key reads a value it held at or after
//! its last durable point (under `Always` every acknowledged write; otherwise the
//! last `sync()` or synced write), and a deleted key comes back only to a value it
//! held after that point. So nothing durable before a merge began is ever lost.
//! `BITCASK_POWER_LOSS_RUNS` sets the runs per policy and pattern (default 180:
//! 2,160 crash points; `make soak` raises it).
#![cfg(feature = "fault-injection")]

mod common;

use bitcask::fs::memfs::{Crash, MemFs};
use bitcask::{Bitcask, Options, SyncPolicy, WriteBatch, WriteOptions};
use common::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const DIR: &str = "/db";
const KEYS: u64 = 40;

fn runs() -> u64 {
    std::env::var("BITCASK_POWER_LOSS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180)
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:02}").into_bytes()
}

/// The defaults, with small files and merge triggers low enough that automatic
/// merges run many times in a run of a few hundred writes.
fn options(sync: SyncPolicy, write_buffer: usize) -> Options {
    let mut o = Options::default();
    assert!(o.auto_merge, "automatic merging is on by default");
    o.sync = sync;
    o.write_buffer_size = write_buffer;
    o.max_file_size = 1024;
    o.merge_check_interval = Duration::from_millis(1);
    o.merge_trigger_fragmentation = 30;
    o.merge_threshold_fragmentation = 10;
    o
}

/// Every state each key was in, in order, and the index of the state that was
/// current at the last durable point.
#[derive(Default)]
struct History {
    states: BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>>,
    durable: BTreeMap<Vec<u8>, usize>,
}

impl History {
    fn set(&mut self, k: &[u8], v: Option<Vec<u8>>) {
        self.states
            .entry(k.to_vec())
            .or_insert_with(|| vec![None])
            .push(v);
    }

    /// Everything written so far is durable.
    fn synced(&mut self) {
        for (k, s) in &self.states {
            self.durable.insert(k.clone(), s.len() - 1);
        }
    }

    /// The values `k` may read after a power loss.
    fn allowed(&self, k: &[u8]) -> BTreeSet<Option<Vec<u8>>> {
        let Some(states) = self.states.get(k) else {
            return [None].into();
        };
        let from = self.durable.get(k).copied().unwrap_or(0);
        states[from..].iter().cloned().collect()
    }
}

/// One run: random operations while automatic merges race them, power lost after
/// `crash_after` of them, then reopened and checked.
fn run(seed: u64, o: &Options, how: Crash) -> u64 {
    let fs = MemFs::new();
    let db = Arc::new(Bitcask::open_with_fs(DIR, o.clone(), Arc::new(fs.process())).expect("open"));
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut h = History::default();
    let always = o.sync == SyncPolicy::Always;
    let ops = 100 + rng.below(300);
    for step in 0..ops {
        let value = |rng: &mut Rng| {
            let mut v = format!("s{seed}-{step}-").into_bytes();
            v.resize(v.len() + rng.below(80) as usize, b'.');
            v
        };
        match rng.below(20) {
            0..=9 => {
                let (k, v) = (key(rng.below(KEYS)), value(&mut rng));
                db.put(&k, &v).unwrap();
                h.set(&k, Some(v));
            }
            10..=13 => {
                let k = key(rng.below(KEYS));
                db.delete(&k).unwrap();
                h.set(&k, None);
            }
            14..=16 => {
                let mut b = WriteBatch::new();
                let mut ops = Vec::new();
                for _ in 0..1 + rng.below(4) {
                    let k = key(rng.below(KEYS));
                    let v = (rng.below(3) != 0).then(|| value(&mut rng));
                    match &v {
                        Some(v) => b.put(&k, v),
                        None => b.delete(&k),
                    };
                    ops.push((k, v));
                }
                let sync = rng.below(4) == 0;
                db.write_opt(&b, WriteOptions { sync }).unwrap();
                // A batch sets each key to its last write in the batch.
                for (k, v) in ops {
                    h.set(&k, v);
                }
                if sync {
                    h.synced();
                }
            }
            17 => {
                db.sync().unwrap();
                h.synced();
            }
            18 => {
                db.merge().unwrap();
            }
            _ => {
                // Reads see the newest write, merges or not.
                let k = key(rng.below(KEYS));
                let want = h.states.get(&k).and_then(|s| s.last().cloned().flatten());
                assert_eq!(db.get(&k).unwrap(), want, "seed {seed}: read of {k:?}");
            }
        }
        if always {
            h.synced();
        }
    }
    // Let a merge in flight get somewhere, sometimes.
    if rng.below(2) == 0 {
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
    }
    let merges = db.stats().unwrap().merges;
    fs.crash(how);
    drop(db);
    let db = Bitcask::open_with_fs(DIR, o.clone(), Arc::new(fs.process()))
        .unwrap_or_else(|e| panic!("seed {seed} {how:?}: reopen failed: {e}"));
    for i in 0..KEYS {
        let k = key(i);
        let got = db.get(&k).unwrap();
        let allowed = h.allowed(&k);
        assert!(
            allowed.contains(&got),
            "seed {seed} {:?} {how:?}: {} reads {:?}, allowed {:?}",
            o.sync,
            String::from_utf8_lossy(&k),
            got.map(|v| String::from_utf8_lossy(&v).into_owned()),
            allowed
                .iter()
                .map(|v| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
                .collect::<Vec<_>>()
        );
    }
    // Under `Always` every acknowledged byte was synced, so what a power loss
    // leaves past them is preallocated zeros, never dropped bytes (a torn page
    // may leave garbage, which is).
    if always && !matches!(how, Crash::TornPage(_)) {
        assert_eq!(
            db.stats().unwrap().dropped_bytes_at_open,
            0,
            "seed {seed} {how:?}: the preallocated tail counted as dropped"
        );
    }
    // And it takes writes again.
    db.put(b"after", b"ok").unwrap();
    db.close().unwrap();
    merges
}

fn crash_points(sync: SyncPolicy, write_buffer: usize) -> u64 {
    let o = options(sync, write_buffer);
    let (mut n, mut merges) = (0, 0);
    for seed in 0..runs() {
        for how in [
            Crash::DropUnsynced,
            Crash::Torn(seed),
            Crash::TornPage(seed),
        ] {
            merges += run(seed * 3 + n % 3, &o, how);
            n += 1;
        }
    }
    eprintln!(
        "{sync:?}, write buffer {write_buffer}: {n} power losses checked, {merges} merges before them"
    );
    assert!(merges > n, "merges rarely ran: {merges} in {n} runs");
    n
}

#[test]
fn power_loss_sync_always_with_auto_merge() {
    crash_points(SyncPolicy::Always, 0);
}

#[test]
fn power_loss_sync_every_ms_with_auto_merge() {
    crash_points(SyncPolicy::EveryMs(2), 0);
}

#[test]
fn power_loss_sync_never_with_auto_merge() {
    crash_points(SyncPolicy::Never, 0);
}

#[test]
fn power_loss_write_buffer_with_auto_merge() {
    crash_points(SyncPolicy::Never, 2048);
}

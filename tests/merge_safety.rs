//! Merge with the defaults on: automatic merging, every sync policy, failures
//! of the merge itself, idle hours, and `close` during a merge. Each scenario is
//! one defect of issue 13 that the earlier tests (auto-merge off, power loss only
//! under `SyncPolicy::Always`) could not see.
#![cfg(feature = "fault-injection")]

mod common;

use bitcask::fs::memfs::{Crash, Fault, MemFs, Op, CHANGING_OPS, EIO};
use bitcask::{Bitcask, Error, Options, SyncPolicy, WriteBatch};
use common::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIR: &str = "/db";

fn open(fs: &MemFs, o: &Options) -> bitcask::Result<Bitcask> {
    Bitcask::open_with_fs(DIR, o.clone(), Arc::new(fs.process()))
}

/// Options with automatic merging at a short interval.
fn auto(interval_ms: u64) -> Options {
    let mut o = Options::default();
    o.max_file_size = 1024;
    o.merge_check_interval = Duration::from_millis(interval_ms);
    o
}

/// Options with merging left to the test.
fn manual() -> Options {
    let mut o = auto(1000);
    o.auto_merge = false;
    o
}

fn sorted_names(fs: &MemFs) -> Vec<String> {
    let mut n = fs.names(Path::new(DIR));
    n.sort();
    n
}

/// The file operations that change the disk, counted by the filesystem.
fn disk_ops(fs: &MemFs) -> u64 {
    CHANGING_OPS.iter().map(|&op| fs.count(op)).sum()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Defect 1: the merge output held only the kept tombstone (100% "dead"), so
/// every check sealed the empty active file and merged again, for ever.
#[test]
fn merge_idle_database_does_no_io() {
    let fs = MemFs::new();
    let db = open(&fs, &auto(50)).unwrap();
    db.put(b"a", b"1").unwrap();
    db.delete(b"a").unwrap();
    db.merge().unwrap();
    let seq = db.stats().unwrap().last_seq;
    let merges = db.stats().unwrap().merges;
    let names = sorted_names(&fs);
    fs.reset_counts();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(disk_ops(&fs), 0, "an idle database touched the disk");
    assert_eq!(sorted_names(&fs), names, "files changed while idle");
    assert_eq!(db.stats().unwrap().merges, merges, "idle merges ran");
    db.close().unwrap();
    // The sequence number survived the merge without a record being re-merged.
    let db = open(&fs, &auto(50)).unwrap();
    assert_eq!(db.stats().unwrap().last_seq, seq);
}

/// A database that is written, merged and then left alone settles: after the
/// merges the triggers asked for, nothing more happens.
#[test]
fn merge_settles_after_churn_then_idle() {
    let fs = MemFs::new();
    let mut o = auto(20);
    o.merge_trigger_fragmentation = 30;
    o.merge_threshold_fragmentation = 10;
    let db = open(&fs, &o).unwrap();
    let mut rng = Rng(5);
    for i in 0..3000u32 {
        let k = format!("k{:03}", rng.below(200));
        if rng.below(4) == 0 {
            db.delete(k.as_bytes()).unwrap();
        } else {
            db.put(k.as_bytes(), &[i as u8; 40]).unwrap();
        }
    }
    // Let the triggered merges run, then expect silence.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(db.stats().unwrap().merges > 0, "no automatic merge ran");
    fs.reset_counts();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(disk_ops(&fs), 0, "merges went on without writes");
}

/// Writes `n` distinct keys with 64-byte values through a handle with small files
/// and no automatic merge, closes it, and returns the keys' values.
fn fill(fs: &MemFs, n: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let o = manual();
    let db = open(fs, &o).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..n {
        let k = format!("key{i:04}").into_bytes();
        let v = format!("value-{i:04}-{}", "x".repeat(50)).into_bytes();
        db.put(&k, &v).unwrap();
        model.insert(k, v);
    }
    db.close().unwrap();
    model
}

/// Flips a byte of `needle`'s first occurrence in the durable contents of `file`.
fn damage(fs: &MemFs, file: &str, needle: &[u8]) {
    let path = Path::new(DIR).join(file);
    let mut data = fs.read_file(&path).unwrap();
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in file");
    data[at + needle.len() / 2] ^= 0x40;
    fs.write_file(&path, &data);
}

/// Defect 2: a merge failing on a damaged record was retried at every check and
/// left one more file each time; the error was nowhere to be seen.
#[test]
fn merge_failing_on_a_damaged_live_record_backs_off_and_leaks_nothing() {
    let fs = MemFs::new();
    let model = fill(&fs, 60);
    assert!(fs
        .read_file(&Path::new(DIR).join("0000000001.hint"))
        .is_some());
    // key0003 stays live; its file has a hint, so open does not read the damage.
    damage(&fs, "0000000001.data", b"value-0003");
    let mut o = auto(50);
    o.merge_trigger_fragmentation = 20;
    o.merge_threshold_fragmentation = 10;
    let db = open(&fs, &o).unwrap();
    // Overwrite the other keys of the first file so that it qualifies.
    for i in [0u32, 1, 2, 4, 5, 6, 7, 8] {
        db.put(format!("key{i:04}").as_bytes(), b"new").unwrap();
    }
    wait_until("a failed merge", Duration::from_secs(10), || {
        db.stats().unwrap().merge_failures > 0
    });
    let names = sorted_names(&fs);
    std::thread::sleep(Duration::from_secs(5));
    let st = db.stats().unwrap();
    assert_eq!(sorted_names(&fs), names, "failed merges left files behind");
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // Backoff: at a 50 ms interval, 100 retries in 5 s; with backoff a handful.
    assert!(
        (1..=8).contains(&st.merge_failures),
        "{} merge failures in 5 s",
        st.merge_failures
    );
    match &st.last_merge_error {
        Some(Error::Corruption { file, offset, .. }) => {
            assert!(file.ends_with("0000000001.data"), "{file:?}");
            assert!(*offset > 0);
        }
        other => panic!("last merge error: {other:?}"),
    }
    // Nothing was lost; reads of other keys go on.
    assert_eq!(
        db.get(b"key0010").unwrap().as_ref(),
        model.get(&b"key0010"[..])
    );
}

/// Defect 2, second half: damage in a record no key points at any more must not
/// block the merge that would remove it.
#[test]
fn merge_skips_a_damaged_dead_record() {
    let fs = MemFs::new();
    let mut model = fill(&fs, 60);
    damage(&fs, "0000000001.data", b"value-0003");
    let o = manual();
    let db = open(&fs, &o).unwrap();
    for i in 0..10u32 {
        let k = format!("key{i:04}").into_bytes();
        db.put(&k, b"new").unwrap();
        model.insert(k, b"new".to_vec());
    }
    let m = db.merge().unwrap();
    assert!(m.files_in > 0, "{m:?}");
    assert!(fs
        .read_file(&Path::new(DIR).join("0000000001.data"))
        .is_none());
    db.close().unwrap();
    let db = open(&fs, &o).unwrap();
    common::assert_matches(&db, &model);
}

/// Defect 3: the merge decided what to keep from a keydir holding writes that
/// were not yet durable, then deleted the durable originals. Every key written
/// and synced before the merge must read its old or a newer value after a power
/// loss, under every policy that does not sync each write.
#[test]
fn merge_never_loses_data_that_was_durable_before_it() {
    let policies = [
        ("never", SyncPolicy::Never, 0),
        ("every_ms", SyncPolicy::EveryMs(10_000), 0),
        ("write buffer", SyncPolicy::Never, 16 << 10),
    ];
    for (name, sync, buffer) in policies {
        for round in 0..5u64 {
            let fs = MemFs::new();
            let mut o = manual();
            o.max_file_size = 64 << 10;
            o.sync = sync;
            o.write_buffer_size = buffer;
            let db = Arc::new(open(&fs, &o).unwrap());
            let n = 3000u32;
            for i in 0..n {
                db.put(format!("k{i:05}").as_bytes(), format!("old{i}").as_bytes())
                    .unwrap();
            }
            db.sync().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (db, stop) = (db.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(round + 1);
                    while !stop.load(Ordering::Relaxed) {
                        let i = rng.below(n as u64);
                        if db.put(format!("k{i:05}").as_bytes(), b"new").is_err() {
                            break;
                        }
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(2));
            db.merge().unwrap();
            fs.crash(Crash::DropUnsynced);
            stop.store(true, Ordering::Relaxed);
            let _ = writer.join();
            drop(db);
            let db = open(&fs, &o).unwrap();
            let mut lost = 0;
            for i in 0..n {
                let got = db.get(format!("k{i:05}").as_bytes()).unwrap();
                let old = format!("old{i}").into_bytes();
                if got.as_deref() != Some(&old[..]) && got.as_deref() != Some(&b"new"[..]) {
                    lost += 1;
                }
            }
            assert_eq!(lost, 0, "{name} round {round}: {lost} durable keys lost");
        }
    }
}

/// Defect 4: `close` returned while a merge on another thread went on renaming
/// and deleting files; nothing may touch the directory after `close` returns.
#[test]
fn merge_close_waits_for_a_running_merge() {
    for round in 0..10u64 {
        let fs = MemFs::new();
        let mut o = manual();
        // Slow enough that close lands in the middle of a merge.
        o.merge_bytes_per_sec = 400 << 10;
        let db = Arc::new(open(&fs, &o).unwrap());
        let mut model = BTreeMap::new();
        for r in 0..3u32 {
            for i in 0..300u32 {
                let k = format!("k{i:04}").into_bytes();
                let v = format!("v{r}-{i}").into_bytes();
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        let merger = {
            let db = db.clone();
            std::thread::spawn(move || {
                while db.merge().is_ok() {
                    let _ = db.put(b"k0000", b"v2-0");
                }
            })
        };
        std::thread::sleep(Duration::from_millis(5 * (round % 10)));
        db.close().unwrap();
        let ops = disk_ops(&fs);
        let names = sorted_names(&fs);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            disk_ops(&fs),
            ops,
            "round {round}: the disk changed after close"
        );
        assert_eq!(sorted_names(&fs), names);
        merger.join().unwrap();
        let db = open(&fs, &o).unwrap();
        common::assert_matches(&db, &model);
    }
}

fn fault_once(op: Op) -> Fault {
    Fault {
        op,
        nth: 1,
        errno: EIO,
        sticky: false,
        short: false,
    }
}

/// Defect 5: after a failed fdatasync the kernel may have dropped the dirty pages;
/// a retried sync that succeeds proves nothing. `sync` and `close` must report it.
#[test]
fn sync_and_close_report_a_failed_fsync() {
    let fs = MemFs::new();
    let o = manual();
    let db = open(&fs, &o).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.inject(fault_once(Op::Sync));
    assert!(db.sync().is_err(), "the failing sync");
    let again = db.sync();
    assert!(
        matches!(again, Err(Error::WritesRefused { .. })),
        "a second sync after a failed one: {again:?}"
    );
    assert!(matches!(
        db.put(b"b", b"2"),
        Err(Error::WritesRefused { .. })
    ));
    let closed = db.close();
    assert!(
        matches!(closed, Err(Error::WritesRefused { .. })),
        "close after a failed sync: {closed:?}"
    );
}

/// Defect 6: with a write buffer, a failed flush left part of its bytes in the
/// file, and the retry from `close` appended the whole buffer after them: the
/// next open failed on corruption.
#[test]
fn write_buffer_retry_never_appends_after_a_torn_flush() {
    for short in [true, false] {
        let fs = MemFs::new();
        let mut o = manual();
        o.max_file_size = 1 << 20;
        o.write_buffer_size = 4096;
        let db = open(&fs, &o).unwrap();
        let mut model = BTreeMap::new();
        for i in 0..100u32 {
            let k = format!("k{i:03}").into_bytes();
            db.put(&k, b"durable").unwrap();
            model.insert(k, b"durable".to_vec());
        }
        db.sync().unwrap();
        for i in 0..20u32 {
            db.put(format!("k{i:03}").as_bytes(), b"buffered").unwrap();
        }
        fs.inject(Fault {
            short,
            ..fault_once(Op::Write)
        });
        assert!(db.sync().is_err());
        assert!(db.close().is_err(), "close after a failed flush");
        // A process crash keeps what the OS has: it must open, and hold the
        // synced state (the buffered writes were never acknowledged as durable,
        // and none of them may appear torn).
        fs.crash(Crash::ProcessOnly);
        let db = open(&fs, &o).expect("open after a failed flush");
        for (k, v) in &model {
            let got = db.get(k).unwrap().unwrap();
            assert!(got == *v || got == b"buffered", "{k:?}: {got:?}");
        }
    }
}

/// Defect 7: every duplicate tombstone was kept while an older file sat outside
/// the merge, and the id reserve counted only live values, so enough tombstones
/// made the merge fail with "exceeded its reserved id range".
#[test]
fn merge_keeps_one_tombstone_per_key() {
    let fs = MemFs::new();
    let o = manual();
    let db = open(&fs, &o).unwrap();
    // The oldest file stays fully live, so it is never part of a merge and
    // every tombstone of a key it holds must be kept.
    for i in 0..12u32 {
        db.put(format!("keep{i:02}").as_bytes(), &[1u8; 60])
            .unwrap();
    }
    db.put(b"gone", b"old").unwrap();
    for _ in 0..2000 {
        db.delete(b"gone").unwrap();
    }
    for i in 0..12u32 {
        db.put(format!("tmp{i:02}").as_bytes(), &[2u8; 60]).unwrap();
        db.delete(format!("tmp{i:02}").as_bytes()).unwrap();
    }
    let m = db.merge().unwrap();
    assert!(
        m.tombstones_kept <= 13,
        "{} tombstones kept for 13 deleted keys",
        m.tombstones_kept
    );
    assert_eq!(db.get(b"gone").unwrap(), None);
    db.close().unwrap();
    let db = open(&fs, &o).unwrap();
    assert_eq!(db.get(b"gone").unwrap(), None);
    assert_eq!(db.len().unwrap(), 12);
}

/// Defect 1's tail: file ids are u32, and rotation added one unchecked.
#[test]
fn rotation_at_the_last_file_id_is_an_error_not_a_wrap() {
    let fs = MemFs::new();
    let mut header = Vec::from(&b"BCSKDATA"[..]);
    header.extend_from_slice(&bitcask::FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&[0u8; 4]);
    fs.write_file(&Path::new(DIR).join(format!("{}.data", u32::MAX)), &header);
    let o = manual();
    let db = open(&fs, &o).unwrap();
    let mut failed = None;
    for i in 0..100u32 {
        if let Err(e) = db.put(format!("k{i}").as_bytes(), &[0u8; 100]) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("rotation past the last id must fail");
    assert!(e.to_string().contains("ids exhausted"), "{e}");
}

/// Defect 8: a panic in the group-commit leader left every later writer waiting.
#[test]
fn write_leader_panic_does_not_hang_later_writers() {
    let fs = MemFs::new();
    let o = manual();
    let db = Arc::new(open(&fs, &o).unwrap());
    fs.inject(Fault {
        errno: bitcask::fs::memfs::PANIC,
        ..fault_once(Op::Write)
    });
    let t = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"a", b"1"))
    };
    assert!(t.join().is_err(), "the leader panicked");
    let (tx, rx) = std::sync::mpsc::channel();
    let db2 = db.clone();
    std::thread::spawn(move || {
        let _ = tx.send(db2.put(b"b", b"2").map(drop));
    });
    let res = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a writer after a panicked leader hangs");
    assert!(
        res.is_err(),
        "a write after a panic in the write path: {res:?}"
    );
}

/// Defect 8: salvage resumed at any valid record, so a batch whose first record
/// was damaged came back in part.
#[test]
fn salvage_never_applies_part_of_a_batch() {
    let fs = MemFs::new();
    let mut o = manual();
    o.max_file_size = 1 << 20;
    let db = open(&fs, &o).unwrap();
    db.put(b"before", b"1").unwrap();
    let mut b = WriteBatch::new();
    b.put(b"batch-a", b"first-record")
        .put(b"batch-b", b"2")
        .put(b"batch-c", b"3");
    db.write(&b).unwrap();
    db.put(b"after", b"4").unwrap();
    db.close().unwrap();
    // Make it immutable (a newer file exists), then damage the batch's first record.
    let db = open(&fs, &o).unwrap();
    db.put(b"newer", b"5").unwrap();
    db.close().unwrap();
    let _ = fs
        .read_file(&Path::new(DIR).join("0000000001.hint"))
        .map(|_| fs.write_file(&Path::new(DIR).join("0000000001.hint"), b"junk"));
    damage(&fs, "0000000001.data", b"first-record");
    o.salvage = true;
    let db = open(&fs, &o).unwrap();
    assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"4"[..]));
    for k in [&b"batch-a"[..], b"batch-b", b"batch-c"] {
        assert_eq!(db.get(k).unwrap(), None, "half a batch: {k:?}");
    }
}

/// Defect 8: a failed hint write left its `.hint.tmp` behind.
#[test]
fn failed_hint_write_leaves_no_temporary_file() {
    let fs = MemFs::new();
    let o = manual();
    let db = open(&fs, &o).unwrap();
    for i in 0..40u32 {
        db.put(format!("k{i:03}").as_bytes(), &[0u8; 60]).unwrap();
    }
    db.close().unwrap();
    // Reopen: sealed files without hints get them; fail every write meanwhile.
    for f in fs.names(Path::new(DIR)) {
        if f.ends_with(".hint") {
            fs.write_file(&Path::new(DIR).join(&f), b"x");
        }
    }
    fs.inject(Fault {
        sticky: true,
        ..fault_once(Op::Write)
    });
    let mut ro = o.clone();
    ro.read_only = false;
    let _ = open(&fs, &ro).map(|db| db.close());
    fs.clear_faults();
    let names = sorted_names(&fs);
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );
}

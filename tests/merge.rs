//! Merge scenarios: concurrent traffic, space reclaimed, deletes that stay deleted,
//! descriptors released, and crashes (kill -9) at random moments of a merge.

mod common;

use bitcask::Bitcask;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[test]
fn merge_concurrent_writes_match_the_model() {
    let dir = TempDir::new("merge-conc");
    let db = Arc::new(Bitcask::open(dir.path(), merge_opts()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let merger = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut merges = 0;
            while !stop.load(Ordering::Relaxed) || merges < 3 {
                db.merge().unwrap();
                merges += 1;
            }
            merges
        })
    };
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut model = Model::new();
                let mut rng = Rng(7 + t);
                for i in 0..4000 {
                    let k = format!("w{t}-{:03}", rng.below(200)).into_bytes();
                    match rng.below(6) {
                        0 => {
                            db.delete(&k).unwrap();
                            model.remove(&k);
                        }
                        _ => {
                            let v = format!("{t}-{i}-{}", rng.next()).into_bytes();
                            db.put(&k, &v).unwrap();
                            model.insert(k.clone(), v);
                        }
                    }
                    if i % 97 == 0 {
                        // Reads during the merge see the newest write.
                        assert_eq!(db.get(&k).unwrap(), model.get(&k).cloned());
                    }
                }
                model
            })
        })
        .collect();
    let mut model = Model::new();
    for w in writers {
        model.extend(w.join().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    assert!(merger.join().unwrap() >= 3);
    db.merge().unwrap();
    assert_matches(&db, &model);
    drop(db);
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    assert_matches(&db, &model);
}

/// Merges, automatic and called, that take the active file, beside writers that
/// fill files of 1 KiB: a write often rotates the file a merge planned on before
/// the merge seals it, and the merge must take the file it planned, not the newer
/// one.
#[test]
fn merge_races_writers_that_rotate_the_planned_active_file() {
    let dir = TempDir::new("merge-auto-rotate");
    let mut o = auto_merge_opts();
    o.max_file_size = 1024;
    let db = Arc::new(Bitcask::open(dir.path(), o.clone()).unwrap());
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut model = Model::new();
                let mut rng = Rng(31 + t);
                for i in 0..3000 {
                    let k = format!("w{t}-{:02}", rng.below(40)).into_bytes();
                    if rng.below(5) == 0 {
                        db.delete(&k).unwrap();
                        model.remove(&k);
                    } else {
                        let v = format!("{t}-{i}").into_bytes();
                        db.put(&k, &v).unwrap();
                        model.insert(k, v);
                    }
                    if i % 100 == 0 {
                        db.merge().unwrap();
                    }
                }
                model
            })
        })
        .collect();
    let mut model = Model::new();
    for w in writers {
        model.extend(w.join().unwrap());
    }
    assert!(db.stats().unwrap().merges > 0);
    let err = db.stats().unwrap().last_merge_error;
    assert!(err.is_none(), "{err:?}");
    assert_matches(&db, &model);
    drop(db);
    let db = Bitcask::open(dir.path(), o).unwrap();
    assert_matches(&db, &model);
}

/// Bytes of the files in `dir`. A background hint write may rename its `.tmp`
/// between listing and measuring: a file gone by then counts nothing.
fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn merge_reclaims_space_to_within_ten_percent_of_live_data() {
    let dir = TempDir::new("merge-space");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    let mut rng = Rng(11);
    for round in 0..10 {
        for k in 0..500u32 {
            let v = rng.bytes(100);
            db.put(format!("key-{k:04}").as_bytes(), &v).unwrap();
            let _ = round;
        }
    }
    let before = disk_usage(dir.path());
    let m = db.merge().unwrap();
    let st = db.stats().unwrap();
    let live: u64 = st.files.iter().map(|f| f.live_bytes).sum();
    let after = disk_usage(dir.path());
    assert!(
        m.files_in > 0 && m.files_out > 0 && m.bytes_reclaimed > 0,
        "{m:?}"
    );
    assert!(after < before / 5, "before {before} after {after}");
    let bound = (live + st.hint_bytes) * 11 / 10;
    assert!(
        after <= bound,
        "disk {after} > 110% of live {live} + hints {}",
        st.hint_bytes
    );
    assert_eq!(st.last_merge.as_ref(), Some(&m));
    assert_eq!(db.len().unwrap(), 500);
}

#[test]
fn merge_deleted_keys_never_come_back() {
    let dir = TempDir::new("merge-del");
    let mut model = Model::new();
    {
        let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
        for i in 0..2000u32 {
            let k = format!("k{:03}", i % 300).into_bytes();
            let v = vec![i as u8; 60];
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        for i in (0..300u32).step_by(3) {
            let k = format!("k{i:03}").into_bytes();
            db.delete(&k).unwrap();
            model.remove(&k);
        }
        db.merge().unwrap();
        assert_matches(&db, &model);
        db.merge().unwrap();
        assert_matches(&db, &model);
    }
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    assert_matches(&db, &model);
}

#[test]
fn merge_of_some_files_keeps_tombstones_an_older_file_needs() {
    let dir = TempDir::new("merge-subset");
    let mut o = merge_opts();
    o.auto_merge = true;
    o.merge_check_interval = Duration::from_millis(20);
    o.merge_trigger_fragmentation = 90;
    o.merge_threshold_fragmentation = 90;
    o.merge_trigger_dead_bytes = u64::MAX;
    o.merge_trigger_total_dead_bytes = u64::MAX;
    o.merge_threshold_dead_bytes = u64::MAX;
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    // Old files: mostly live data, plus the victim key.
    db.put(b"victim", b"old value").unwrap();
    for i in 0..400u32 {
        db.put(format!("stable-{i:04}").as_bytes(), &[1u8; 100])
            .unwrap();
    }
    // Newer files: churn on one key (so they fragment) and the victim's delete.
    db.delete(b"victim").unwrap();
    for i in 0..600u32 {
        db.put(b"churn", &i.to_le_bytes().repeat(25)).unwrap();
    }
    for _ in 0..300 {
        if db.stats().unwrap().last_merge.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = db.stats().unwrap();
    let m = st.last_merge.expect("automatic merge ran");
    assert!(m.files_in > 0, "{m:?}");
    assert!(
        st.files.iter().any(|f| f.id == 1),
        "the oldest file was not part of the merge"
    );
    assert_eq!(db.get(b"victim").unwrap(), None);
    drop(db);
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    assert_eq!(db.get(b"victim").unwrap(), None, "a deleted key came back");
    assert_eq!(db.len().unwrap(), 401);
}

#[test]
fn merge_keeps_the_sequence_number() {
    let dir = TempDir::new("merge-seq");
    let last = {
        let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
        for i in 0..50u32 {
            db.put(b"k", &i.to_le_bytes()).unwrap();
        }
        let last = db.delete(b"k").unwrap();
        db.merge().unwrap();
        last
    };
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    assert_eq!(db.stats().unwrap().last_seq, Some(last));
    assert!(db.put(b"x", b"y").unwrap() > last);
    assert_eq!(db.get(b"k").unwrap(), None);
}

fn open_fds_to_deleted_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap() {
        if let Ok(target) = std::fs::read_link(e.unwrap().path()) {
            let t = target.to_string_lossy().into_owned();
            if t.starts_with(&*dir.to_string_lossy()) && t.ends_with("(deleted)") {
                out.push(t);
            }
        }
    }
    out
}

#[test]
fn merge_closes_descriptors_of_removed_files() {
    let dir = TempDir::new("merge-fd");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    for round in 0..5u32 {
        for i in 0..400u32 {
            db.put(format!("k{i}").as_bytes(), &round.to_le_bytes().repeat(20))
                .unwrap();
        }
        let mut it = db.iter().unwrap();
        it.next().unwrap().unwrap();
        db.merge().unwrap();
        // An iterator that outlived the merge still reads its chunk...
        assert!(it.next().unwrap().is_ok());
        drop(it);
        // ...and once it is gone, nothing holds a removed file open.
        assert_eq!(open_fds_to_deleted_files(dir.path()), Vec::<String>::new());
    }
    assert!(data_files(dir.path()).len() < 20);
}

/// Descriptors this process holds on files in `dir` (deleted ones included).
fn open_fds_in(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|t| t.starts_with(dir))
        .count()
}

/// A merge that keeps failing (a damaged live record) on the real filesystem:
/// each failure releases every descriptor it opened and leaves no file behind.
#[test]
fn merge_failures_leak_no_descriptors_or_files() {
    let dir = TempDir::new("merge-fail-fd");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    for i in 0..600u32 {
        let v = format!("value-{i:04}-{}", "x".repeat(60));
        db.put(format!("k{i:04}").as_bytes(), v.as_bytes()).unwrap();
    }
    db.close().unwrap();
    drop(db);
    let first = dir.path().join("0000000001.data");
    assert!(dir.path().join("0000000001.hint").exists());
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.windows(10).position(|w| w == b"value-0003").unwrap();
    bytes[at + 5] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    for i in (0..600u32).filter(|i| i % 2 == 0 && *i != 3) {
        db.put(format!("k{i:04}").as_bytes(), b"new").unwrap();
    }
    db.merge().unwrap_err();
    // The background thread writes hints of the files the writes above sealed,
    // holding a descriptor meanwhile: let it finish before counting.
    wait_for_hints(dir.path());
    std::thread::sleep(Duration::from_millis(50));
    let (fds, files) = (
        open_fds_in(dir.path()),
        std::fs::read_dir(dir.path()).unwrap().count(),
    );
    for _ in 0..20 {
        let e = db.merge().unwrap_err();
        assert!(matches!(e, bitcask::Error::Corruption { .. }), "{e}");
    }
    assert_eq!(open_fds_in(dir.path()), fds, "descriptors leaked");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        files,
        "files leaked"
    );
    assert_eq!(db.stats().unwrap().merge_failures, 21);
}

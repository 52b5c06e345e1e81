//! Merge scenarios: concurrent traffic, space reclaimed, deletes that stay deleted,
//! descriptors released, and crashes (kill -9) at random moments of a merge.

mod common;

use bitcask::{Bitcask, Options, SyncPolicy};
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn merge_opts() -> Options {
    let mut o = Options::default();
    o.max_file_size = 16 << 10;
    o.auto_merge = false;
    o
}

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

fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
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

/// Child side of `merge_crash_kill9_loses_nothing_acknowledged`: writes with sync
/// Always from this thread while another merges in a loop, logging each operation
/// before ("I") and after ("A") it is acknowledged, until killed.
#[test]
fn child_merge_under_load() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_MERGE") else {
        return;
    };
    let seed: u64 = std::env::var("BITCASK_TEST_SEED").unwrap().parse().unwrap();
    let mut o = merge_opts();
    o.max_file_size = 8 << 10;
    o.sync = SyncPolicy::Always;
    let db = Arc::new(Bitcask::open(Path::new(&dir), o).unwrap());
    let merger = db.clone();
    std::thread::spawn(move || loop {
        merger.merge().unwrap();
    });
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(Path::new(&dir).join("acklog.txt"))
        .unwrap();
    let mut rng = Rng(seed);
    loop {
        let k = format!("k{:03}", rng.below(150));
        if rng.below(4) == 0 {
            writeln!(log, "I {k} -").unwrap();
            db.delete(k.as_bytes()).unwrap();
        } else {
            let v = format!("v{}", rng.next());
            writeln!(log, "I {k} {v}").unwrap();
            db.put(k.as_bytes(), v.as_bytes()).unwrap();
        }
        writeln!(log, "A").unwrap();
    }
}

#[test]
fn merge_crash_kill9_loses_nothing_acknowledged() {
    let dir = TempDir::new("merge-crash");
    let log_path = dir.path().join("acklog.txt");
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut consumed = 0usize;
    let (mut acked, mut max_id) = (0usize, 0u32);
    let mut rng = Rng(99);
    let kills = std::env::var("BITCASK_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    for iter in 0..kills {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_merge_under_load",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BITCASK_TEST_CHILD_MERGE", dir.path())
            .env("BITCASK_TEST_SEED", (1000 + iter).to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(120)));
        child.kill().unwrap();
        child.wait().unwrap();

        let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&log_path).unwrap())
            .lines()
            .map(|l| l.unwrap())
            .collect();
        let mut in_flight: Option<(String, String)> = None;
        let start = consumed;
        for line in &lines[consumed..] {
            if line == "A" {
                let (k, v) = in_flight.take().expect("ack follows intent");
                if v == "-" {
                    model.remove(&k);
                } else {
                    model.insert(k, v);
                }
            } else if let Some((k, v)) = line.strip_prefix("I ").and_then(|r| r.split_once(' ')) {
                in_flight = Some((k.to_string(), v.to_string()));
            }
            // A torn last line (killed mid-write) is an unacknowledged intent.
        }
        consumed = lines.len();
        let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
        if let Some((k, v)) = in_flight {
            // Not acknowledged: either outcome is allowed; adopt what is there.
            let got = db
                .get(k.as_bytes())
                .unwrap()
                .map(|b| String::from_utf8(b).unwrap());
            let want_new = (v != "-").then(|| v.clone());
            assert!(
                got == model.get(&k).cloned() || got == want_new,
                "iteration {iter}: in-flight key {k} has {got:?}"
            );
            match got {
                Some(g) => model.insert(k, g),
                None => model.remove(&k),
            };
        }
        assert_eq!(
            db.len().unwrap(),
            model.len(),
            "iteration {iter}: key count"
        );
        for (k, v) in &model {
            let got = db.get(k.as_bytes()).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(v.as_bytes()),
                "iteration {iter}: key {k}"
            );
        }
        acked += lines[start..].iter().filter(|l| *l == "A").count();
        max_id = max_id.max(
            data_files(dir.path())
                .iter()
                .filter_map(|p| p.file_stem()?.to_str()?.parse::<u32>().ok())
                .max()
                .unwrap_or(0),
        );
        drop(db);
        // End a torn last line so the next child's lines start fresh.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
        if std::fs::read(&log_path)
            .unwrap()
            .last()
            .is_some_and(|&b| b != b'\n')
        {
            writeln!(f).unwrap();
        }
    }
    eprintln!("{kills} kills, {acked} acknowledged writes checked, newest file id {max_id}");
    assert!(acked > kills as usize * 5, "children barely wrote: {acked}");
    // Merges leave id gaps: a file id far beyond the number of rotations shows
    // that merges ran and committed while the children were killed.
    assert!(
        max_id > 1000,
        "no merge committed (newest file id {max_id})"
    );
}

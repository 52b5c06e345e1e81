//! Snapshots: a read view as of one sequence number, checked against a model of
//! the database at that number while writes, deletes and merges go on.

mod common;

use bitcask::{Bitcask, Options, Snapshot, SyncPolicy, WriteBatch};
use common::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Asserts that `snap` reads exactly `model`: gets, contains, len, and scans of
/// the whole range, a random range and a prefix, both ways.
fn assert_snapshot(snap: &Snapshot, model: &Model, rng: &mut Rng) {
    assert_eq!(snap.len().unwrap(), model.len(), "len at {}", snap.seq());
    for _ in 0..20 {
        let k = key(rng.below(300));
        assert_eq!(snap.get(&k).unwrap().as_ref(), model.get(&k), "get {k:?}");
        assert_eq!(snap.contains(&k).unwrap(), model.contains_key(&k));
    }
    let all: Vec<_> = snap.iter().unwrap().map(|r| r.unwrap()).collect();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, want, "iteration at {}", snap.seq());
    let (a, b) = (key(rng.below(300)), key(rng.below(300)));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let range = (Bound::Included(lo.clone()), Bound::Excluded(hi.clone()));
    for reverse in [false, true] {
        let got: Vec<_> = snap
            .range::<Vec<u8>>(range.clone(), reverse)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        let mut want: Vec<_> = model.range(range.clone()).map(|(k, _)| k.clone()).collect();
        if reverse {
            want.reverse();
        }
        assert_eq!(got, want, "range {lo:?}..{hi:?} reverse {reverse}");
    }
    let p = format!("k{}", rng.below(3)).into_bytes();
    let got: Vec<_> = snap
        .prefix(&p, true)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    let want: Vec<_> = model
        .keys()
        .rev()
        .filter(|k| k.starts_with(&p))
        .cloned()
        .collect();
    assert_eq!(got, want, "prefix {p:?}");
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:03}").into_bytes()
}

#[test]
fn snapshot_sees_the_state_it_was_taken_at() {
    let dir = TempDir::new("snap-basic");
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.put(b"b", b"1").unwrap();
    let snap = db.snapshot().unwrap();
    assert_eq!(snap.seq(), 2);
    db.put(b"a", b"2").unwrap();
    db.delete(b"b").unwrap();
    db.put(b"c", b"new").unwrap();
    assert_eq!(snap.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snap.get(b"b").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snap.get(b"c").unwrap(), None);
    assert_eq!(snap.len().unwrap(), 2);
    let keys: Vec<_> = snap.iter().unwrap().keys().map(|k| k.unwrap()).collect();
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.len().unwrap(), 2);
    let s = db.stats().unwrap();
    assert_eq!((s.snapshots, s.snapshot_versions), (1, 3));
    drop(snap);
    let s = db.stats().unwrap();
    assert_eq!((s.snapshots, s.snapshot_versions), (0, 0));
    // With no snapshot alive, writes keep nothing.
    db.put(b"a", b"3").unwrap();
    assert_eq!(db.stats().unwrap().snapshot_versions, 0);
}

#[test]
fn snapshot_reads_survive_a_merge_removing_their_files() {
    let dir = TempDir::new("snap-merge");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    let mut model = Model::new();
    for i in 0..500 {
        let v = format!("old{i}").into_bytes();
        db.put(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    let snap = db.snapshot().unwrap();
    let first = data_files(dir.path())[0].clone();
    for i in 0..500 {
        if i % 3 == 0 {
            db.delete(&key(i)).unwrap();
        } else {
            db.put(&key(i), b"new").unwrap();
        }
    }
    let m = db.merge().unwrap();
    assert!(m.files_in > 0);
    assert!(!first.exists(), "the merge removed the oldest file");
    assert_snapshot(&snap, &model, &mut Rng(1));
    // A version kept for the snapshot holds a key at most once per snapshot:
    // writing the same keys again keeps nothing more.
    let kept = db.stats().unwrap().snapshot_versions;
    assert_eq!(kept, 500);
    for i in 0..500 {
        db.put(&key(i), b"newer").unwrap();
    }
    assert_eq!(db.stats().unwrap().snapshot_versions, kept);
    drop(snap);
    assert_eq!(db.stats().unwrap().snapshot_versions, 0);
}

#[test]
fn iterator_reads_an_implicit_snapshot_taken_at_creation() {
    let dir = TempDir::new("snap-iter");
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    for i in 0..100 {
        db.put(&key(i), b"before").unwrap();
    }
    let mut it = db.iter().unwrap();
    let first = it.next().unwrap().unwrap();
    assert_eq!(first, (key(0), b"before".to_vec()));
    // Everything changes after the first chunk was read.
    for i in 0..100 {
        if i % 2 == 0 {
            db.delete(&key(i)).unwrap();
        } else {
            db.put(&key(i), b"after").unwrap();
        }
    }
    db.put(b"k050x", b"inserted").unwrap();
    let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 99);
    assert!(rest.iter().all(|(_, v)| v == b"before"));
    assert_eq!(
        db.stats().unwrap().snapshots,
        0,
        "the iterator's snapshot went with it"
    );
}

#[test]
fn snapshot_model_with_random_writes_deletes_batches_and_merges() {
    let dir = TempDir::new("snap-model");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    let mut rng = Rng(7);
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    for step in 0..6000 {
        match rng.below(100) {
            0..=54 => {
                let (k, n) = (key(rng.below(300)), rng.below(40) as usize);
                let v = rng.bytes(n);
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
            55..=74 => {
                let k = key(rng.below(300));
                db.delete(&k).unwrap();
                model.remove(&k);
            }
            75..=84 => {
                let mut b = WriteBatch::new();
                for _ in 0..rng.below(8) {
                    let k = key(rng.below(300));
                    if rng.below(3) == 0 {
                        b.delete(&k);
                        model.remove(&k);
                    } else {
                        let v = rng.bytes(8);
                        b.put(&k, &v);
                        model.insert(k, v);
                    }
                }
                db.write(&b).unwrap();
            }
            85..=88 => {
                db.merge().unwrap();
            }
            89..=93 if snaps.len() < 12 => {
                snaps.push((db.snapshot().unwrap(), model.clone()));
            }
            94..=96 if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                snaps.swap_remove(i);
            }
            _ if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                let (snap, m) = &snaps[i];
                assert_snapshot(snap, m, &mut rng);
            }
            _ => {}
        }
        if step % 1000 == 999 {
            assert_matches(&db, &model);
        }
    }
    for (snap, m) in &snaps {
        assert_snapshot(snap, m, &mut rng);
    }
    snaps.clear();
    let s = db.stats().unwrap();
    assert_eq!((s.snapshots, s.snapshot_versions), (0, 0));
}

/// One write as the writers log it, by its sequence number.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

/// Each sync policy users run, and the write buffer, with the defaults on
/// (automatic merges racing the explicit ones).
fn policies() -> Vec<(&'static str, Options)> {
    let with = |sync: SyncPolicy, buffer: usize| {
        let mut o = auto_merge_opts();
        o.sync = sync;
        o.write_buffer_size = buffer;
        o
    };
    vec![
        ("always", with(SyncPolicy::Always, 0)),
        ("every-ms", with(SyncPolicy::EveryMs(5), 0)),
        ("never", with(SyncPolicy::Never, 0)),
        ("write-buffer", with(SyncPolicy::Never, 64 << 10)),
    ]
}

#[test]
fn snapshot_concurrent_writers_and_merges_match_the_model_under_every_sync_policy() {
    for (name, o) in policies() {
        concurrent_model(name, o);
    }
}

/// Two writers, merges and readers of snapshots; what each snapshot read is
/// checked against the model rebuilt from the writers' log at its sequence number.
fn concurrent_model(name: &str, o: Options) {
    let dir = TempDir::new(&format!("snap-conc-{name}"));
    let db = Arc::new(Bitcask::open(dir.path(), o).unwrap());
    let log: Arc<Mutex<BTreeMap<u64, Op>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..2u64 {
        let (db, log, stop) = (db.clone(), log.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut rng = Rng(100 + t);
            while !stop.load(Ordering::Relaxed) {
                let k = key(rng.below(300));
                let (seq, op) = match rng.below(10) {
                    0..=5 => {
                        let n = 1 + rng.below(30) as usize;
                        let v = rng.bytes(n);
                        (db.put(&k, &v).unwrap(), Op::Put(k, v))
                    }
                    6..=7 => (db.delete(&k).unwrap(), Op::Delete(k)),
                    _ => {
                        let mut b = WriteBatch::new();
                        let mut ops = Vec::new();
                        for _ in 0..1 + rng.below(5) {
                            let k = key(rng.below(300));
                            if rng.below(3) == 0 {
                                b.delete(&k);
                                ops.push((k, None));
                            } else {
                                b.put(&k, b"batched");
                                ops.push((k, Some(b"batched".to_vec())));
                            }
                        }
                        (db.write(&b).unwrap(), Op::Batch(ops))
                    }
                };
                log.lock().unwrap().insert(seq, op);
            }
        }));
    }
    {
        let (db, stop) = (db.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.merge().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }));
    }
    // Readers: each takes snapshots, reads them over a while, and records what
    // it saw, to be checked against the model once the log is complete.
    type Seen = (
        u64,
        Vec<(Vec<u8>, Vec<u8>)>,
        Vec<(Vec<u8>, Option<Vec<u8>>)>,
        usize,
    );
    let mut readers = Vec::new();
    for t in 0..2u64 {
        let db = db.clone();
        readers.push(std::thread::spawn(move || {
            let mut rng = Rng(200 + t);
            let mut seen: Vec<Seen> = Vec::new();
            let mut held: Vec<Snapshot> = Vec::new();
            for _ in 0..60 {
                held.push(db.snapshot().unwrap());
                if held.len() > 4 {
                    held.remove(0);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
                let snap = &held[rng.below(held.len() as u64) as usize];
                let scan: Vec<_> = snap.iter().unwrap().map(|r| r.unwrap()).collect();
                let gets = (0..30)
                    .map(|_| {
                        let k = key(rng.below(300));
                        let v = snap.get(&k).unwrap();
                        (k, v)
                    })
                    .collect();
                seen.push((snap.seq(), scan, gets, snap.len().unwrap()));
            }
            seen
        }));
    }
    let seen: Vec<Seen> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut checked = 0;
    for (seq, scan, gets, len) in seen {
        let mut model = Model::new();
        for (_, op) in log.range(..=seq) {
            match op {
                Op::Put(k, v) => {
                    model.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    model.remove(k);
                }
                Op::Batch(ops) => {
                    for (k, v) in ops {
                        match v {
                            Some(v) => model.insert(k.clone(), v.clone()),
                            None => model.remove(k),
                        };
                    }
                }
            }
        }
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(scan, want, "{name}: scan of the snapshot at {seq}");
        assert_eq!(len, model.len(), "{name}: len at {seq}");
        for (k, v) in gets {
            assert_eq!(v.as_ref(), model.get(&k), "{name}: get {k:?} at {seq}");
        }
        checked += 1;
    }
    assert_eq!(checked, 120);
    let s = db.stats().unwrap();
    assert!(s.merges > 0, "{name}: merges ran meanwhile");
    assert_eq!((s.snapshots, s.snapshot_versions), (0, 0));
}

#[test]
fn snapshot_after_close_reports_closed() {
    let dir = TempDir::new("snap-closed");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"1").unwrap();
    let snap = db.snapshot().unwrap();
    db.close().unwrap();
    assert!(matches!(snap.get(b"a"), Err(bitcask::Error::Closed)));
    assert!(matches!(snap.iter(), Err(bitcask::Error::Closed)));
    assert!(matches!(db.snapshot(), Err(bitcask::Error::Closed)));
    drop(snap);
    // The writer lock went with the close, not with the snapshot.
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn snapshot_versions_only_dropped_snapshots_read_are_released() {
    let dir = TempDir::new("snap-release");
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    db.put(b"hot", b"0").unwrap();
    let a = db.snapshot().unwrap();
    let versions = || db.stats().unwrap().snapshot_versions;
    // A short-lived snapshot between each pair of writes lets every write keep
    // a version of the hot key while it lives; released, the version only it
    // read goes at the next sweep, so what is held stays bounded while the
    // oldest snapshot lives on.
    let mut most = 0;
    for round in 1..=10_000u32 {
        db.put(b"hot", round.to_string().as_bytes()).unwrap();
        let b = db.snapshot().unwrap();
        db.put(b"hot", format!("{round}b").as_bytes()).unwrap();
        assert_eq!(b.get(b"hot").unwrap(), Some(round.to_string().into_bytes()));
        drop(b);
        most = most.max(versions());
    }
    assert!(most <= 4097, "{most} versions held at most");
    assert!(versions() < 4097);
    assert_eq!(a.get(b"hot").unwrap().as_deref(), Some(&b"0"[..]));
    // Releasing the oldest sweeps: only what the others read stays.
    let c = db.snapshot().unwrap();
    db.put(b"hot", b"last").unwrap();
    drop(a);
    assert_eq!(versions(), 1);
    assert_eq!(c.get(b"hot").unwrap().as_deref(), Some(&b"10000b"[..]));
    drop(c);
    assert_eq!(versions(), 0);
}

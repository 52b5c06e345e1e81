//! Ordered scans against a `BTreeMap` model: random bounds, binary keys, prefixes at
//! the end of the keyspace, seeks, and scans while other threads write and merge.

mod common;

use bitcask::{Bitcask, Options};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keys over a tiny alphabet with 0x00 and 0xFF, so bounds often hit or straddle
/// real keys and prefixes run into the end of the keyspace.
fn binary_key(rng: &mut Rng) -> Vec<u8> {
    const ALPHABET: [u8; 5] = [0x00, 0x01, b'a', 0xFE, 0xFF];
    let len = 1 + rng.below(5) as usize;
    (0..len).map(|_| ALPHABET[rng.below(5) as usize]).collect()
}

fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(binary_key(rng)),
        _ => Bound::Excluded(binary_key(rng)),
    }
}

fn valid(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    // BTreeMap::range panics on inverted or empty-exclusive ranges; those must
    // simply be empty for the engine.
    match (lo, hi) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a < b || (a == b && matches!((lo, hi), (Bound::Included(_), Bound::Included(_))))
        }
        _ => true,
    }
}

fn fill(db: &Bitcask, rng: &mut Rng, n: usize) -> Model {
    let mut model = Model::new();
    for _ in 0..n {
        let k = binary_key(rng);
        if rng.below(5) == 0 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = rng.bytes(8);
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    model
}

#[test]
fn scan_random_bounds_match_the_model() {
    let dir = TempDir::new("scan-model");
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    let mut rng = Rng(21);
    let model = fill(&db, &mut rng, 3000);
    assert!(model.len() > 300);
    for _ in 0..400 {
        let (lo, hi) = (bound(&mut rng), bound(&mut rng));
        for reverse in [false, true] {
            let got: Vec<(Vec<u8>, Vec<u8>)> = db
                .range::<Vec<u8>>((lo.clone(), hi.clone()), reverse)
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = if valid(&lo, &hi) {
                model
                    .range::<Vec<u8>, _>((lo.clone(), hi.clone()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            if reverse {
                want.reverse();
            }
            assert_eq!(got, want, "range {lo:?}..{hi:?} reverse={reverse}");
        }
    }
    // Whole keyspace, empty ranges, single keys.
    assert_eq!(db.iter().unwrap().count(), model.len());
    let some = model.keys().nth(model.len() / 2).unwrap().clone();
    let single: Vec<_> = db
        .range(some.clone()..=some.clone(), false)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(single, vec![some.clone()]);
    assert_eq!(
        db.range(some.clone()..some.clone(), true).unwrap().count(),
        0
    );
}

#[test]
fn prefix_scans_including_the_end_of_the_keyspace() {
    let dir = TempDir::new("scan-prefix");
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    let mut rng = Rng(22);
    let model = fill(&db, &mut rng, 2000);
    let mut prefixes: BTreeSet<Vec<u8>> = (0..100).map(|_| binary_key(&mut rng)).collect();
    prefixes.extend([
        vec![0xFF],
        vec![0xFF, 0xFF],
        vec![0x00],
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    ]);
    for p in prefixes {
        for reverse in [false, true] {
            let got: Vec<Vec<u8>> = db
                .prefix(&p, reverse)
                .unwrap()
                .map(|r| r.unwrap().0)
                .collect();
            let mut want: Vec<Vec<u8>> = model
                .keys()
                .filter(|k| k.starts_with(&p))
                .cloned()
                .collect();
            if reverse {
                want.reverse();
            }
            assert_eq!(got, want, "prefix {p:?} reverse={reverse}");
        }
    }
}

#[test]
fn seek_stays_inside_the_range() {
    let dir = TempDir::new("scan-seek");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    for k in [&b"a1"[..], b"b1", b"b2", b"b3", b"c1"] {
        db.put(k, b"v").unwrap();
    }
    let keys = |it: bitcask::Iter| it.map(|r| r.unwrap().0).collect::<Vec<_>>();
    let mut it = db.prefix(b"b", false).unwrap();
    it.seek(b"b2");
    assert_eq!(keys(it), vec![b"b2".to_vec(), b"b3".to_vec()]);
    let mut it = db.prefix(b"b", false).unwrap();
    it.seek(b"a");
    assert_eq!(
        keys(it).len(),
        3,
        "seeking before the range starts at its start"
    );
    let mut it = db.prefix(b"b", true).unwrap();
    it.seek(b"b2");
    assert_eq!(keys(it), vec![b"b2".to_vec(), b"b1".to_vec()]);
    let mut it = db.prefix(b"b", true).unwrap();
    it.seek(b"z");
    assert_eq!(keys(it).len(), 3);
    let mut it = db.iter().unwrap();
    it.seek(b"b3");
    assert_eq!(it.next_key().unwrap().unwrap(), b"b3");
}

#[test]
fn scan_while_writing_and_merging_sees_stable_keys_exactly_once() {
    let dir = TempDir::new("scan-conc");
    let mut o = small_files();
    o.max_file_size = 16 << 10;
    let db = Arc::new(Bitcask::open(dir.path(), o).unwrap());
    // Stable keys exist throughout; churn keys come and go between them.
    let stable: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| format!("k{i:05}-s").into_bytes())
        .collect();
    for k in &stable {
        db.put(k, b"stable").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..2u64 {
        let (db, stop) = (db.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut rng = Rng(30 + t);
            while !stop.load(Ordering::Relaxed) {
                let k = format!("k{:05}-c", rng.below(2000)).into_bytes();
                if rng.below(2) == 0 {
                    db.put(&k, b"churn").unwrap();
                } else {
                    db.delete(&k).unwrap();
                }
                // Overwrite stable keys too: they stay present throughout.
                let s = format!("k{:05}-s", rng.below(2000)).into_bytes();
                db.put(&s, b"stable").unwrap();
            }
        }));
    }
    {
        let (db, stop) = (db.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.merge().unwrap();
            }
        }));
    }
    for round in 0..20 {
        let reverse = round % 2 == 1;
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for kv in db.range::<&[u8]>(.., reverse).unwrap() {
            let (k, v) = kv.unwrap();
            if k.ends_with(b"-s") {
                assert_eq!(v, b"stable");
            }
            seen.push(k);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        if reverse {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "keys out of order");
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "a key was yielded twice");
        let stable_seen = seen.iter().filter(|k| k.ends_with(b"-s")).count();
        assert_eq!(stable_seen, stable.len(), "a stable key was skipped");
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

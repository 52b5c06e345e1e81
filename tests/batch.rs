//! Atomic batches, sequence numbers and write merging (group commit).

mod common;

use bitcask::{BatchOp, Bitcask, Options, SyncPolicy, WriteBatch, WriteOptions};
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[test]
fn batch_cut_at_every_byte_is_all_or_nothing() {
    let dir = TempDir::new("batch-cut");
    let mut before = Model::new();
    let batch_start;
    {
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        for i in 0..10u32 {
            let (k, v) = (format!("k{i}").into_bytes(), vec![i as u8; 20]);
            db.put(&k, &v).unwrap();
            before.insert(k, v);
        }
        db.sync().unwrap();
        batch_start = std::fs::metadata(data_files(dir.path()).pop().unwrap())
            .unwrap()
            .len();
        let mut b = WriteBatch::new();
        b.put(b"k1", b"new one")
            .delete(b"k2")
            .put(b"fresh", b"")
            .put(b"k3", &[9; 40]);
        db.write(&b).unwrap();
    }
    let file = data_files(dir.path()).pop().unwrap();
    let pristine = std::fs::read(&file).unwrap();
    let mut after = before.clone();
    after.insert(b"k1".to_vec(), b"new one".to_vec());
    after.remove(&b"k2"[..]);
    after.insert(b"fresh".to_vec(), vec![]);
    after.insert(b"k3".to_vec(), vec![9; 40]);
    for cut in batch_start..=pristine.len() as u64 {
        std::fs::write(&file, &pristine[..cut as usize]).unwrap();
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        if cut == pristine.len() as u64 {
            assert_matches(&db, &after);
        } else {
            assert_matches(&db, &before);
            // Zeros that end a torn write cannot be told from preallocated
            // space: they are not counted as dropped.
            let torn = &pristine[batch_start as usize..cut as usize];
            let written = torn.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            assert_eq!(db.stats().unwrap().dropped_bytes_at_open, written as u64);
        }
    }
}

#[test]
fn every_write_takes_one_sequence_number_and_reopen_restores_it() {
    let dir = TempDir::new("seq");
    let last = {
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        let a = db.put(b"a", b"1").unwrap();
        let mut b = WriteBatch::new();
        b.put(b"b", b"2").put(b"c", b"3").delete(b"a");
        let batch = db.write(&b).unwrap();
        let d = db.delete(b"b").unwrap();
        assert_eq!(
            (batch, d),
            (a + 1, a + 2),
            "one number per write, batches included"
        );
        assert_eq!(
            db.write(&WriteBatch::new()).unwrap(),
            d,
            "an empty batch takes none"
        );
        d
    };
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.stats().unwrap().last_seq, Some(last));
    assert_eq!(db.put(b"x", b"y").unwrap(), last + 1);
}

#[test]
fn batch_ops_are_listed_in_order() {
    let mut b = WriteBatch::new();
    b.put(b"a", b"1").delete(b"b");
    let ops: Vec<BatchOp> = b.iter().collect();
    assert_eq!(ops, vec![BatchOp::Put(b"a", b"1"), BatchOp::Delete(b"b")]);
    assert_eq!(b.len(), 2);
    b.clear();
    assert!(b.is_empty());
}

#[test]
fn concurrent_puts_deletes_and_batches_match_the_model() {
    for merging in [true, false] {
        let dir = TempDir::new("batch-conc");
        let mut o = small_files();
        o.max_file_size = 64 << 10;
        o.write_merging = merging;
        let db = Arc::new(Bitcask::open(dir.path(), o.clone()).unwrap());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut model = Model::new();
                    let mut rng = Rng(40 + t);
                    for _ in 0..500 {
                        let key = |rng: &mut Rng| format!("t{t}-{:02}", rng.below(60)).into_bytes();
                        match rng.below(4) {
                            0 => {
                                let k = key(&mut rng);
                                db.delete(&k).unwrap();
                                model.remove(&k);
                            }
                            1 => {
                                let mut b = WriteBatch::new();
                                let mut staged = model.clone();
                                for _ in 0..rng.below(8) {
                                    let k = key(&mut rng);
                                    if rng.below(3) == 0 {
                                        b.delete(&k);
                                        staged.remove(&k);
                                    } else {
                                        let v = rng.next().to_le_bytes().to_vec();
                                        b.put(&k, &v);
                                        staged.insert(k, v);
                                    }
                                }
                                let sync = rng.below(4) == 0;
                                db.write_opt(&b, WriteOptions { sync }).unwrap();
                                model = staged;
                            }
                            _ => {
                                let (k, v) = (key(&mut rng), rng.next().to_le_bytes().to_vec());
                                db.put(&k, &v).unwrap();
                                model.insert(k, v);
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        let mut model = Model::new();
        for t in threads {
            model.extend(t.join().unwrap());
        }
        assert_matches(&db, &model);
        drop(db);
        let db = Bitcask::open(dir.path(), o).unwrap();
        assert_matches(&db, &model);
    }
}

#[test]
fn readers_never_observe_half_a_batch() {
    let dir = TempDir::new("batch-visible");
    let db = Arc::new(Bitcask::open(dir.path(), small_files()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for n in 0..2000u64 {
                    let g = (n + t) % 5;
                    let mut b = WriteBatch::new();
                    for j in 0..10 {
                        b.put(format!("g{g}-{j}").as_bytes(), &n.to_le_bytes());
                    }
                    db.write(&b).unwrap();
                }
            })
        })
        .collect();
    // A prefix scan of one group reads its ten entries under one keydir lock.
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checked = 0;
            while !stop.load(Ordering::Relaxed) {
                for g in 0..5 {
                    let vals: Vec<Vec<u8>> = db
                        .prefix(format!("g{g}-").as_bytes(), false)
                        .unwrap()
                        .map(|r| r.unwrap().1)
                        .collect();
                    assert!(vals.is_empty() || vals.len() == 10, "{} keys", vals.len());
                    assert!(vals.iter().all(|v| *v == vals[0]), "half a batch: {vals:?}");
                    checked += 1;
                }
            }
            checked
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn concurrent_durable_writers_share_fsyncs() {
    let dir = TempDir::new("group");
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    let db = Arc::new(Bitcask::open(dir.path(), o).unwrap());
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..100u32 {
                    db.put(format!("{t}-{i}").as_bytes(), &[0u8; 100]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = db.stats().unwrap();
    assert_eq!(st.writes, 1600);
    assert_eq!(
        st.syncs, st.write_groups,
        "one fdatasync per group under Always"
    );
    // Sixteen writers waiting on fsyncs of ~100 us queue up behind each leader;
    // a group of one per write would mean merging never happened.
    assert!(
        st.write_groups < st.writes,
        "{} groups for {} writes",
        st.write_groups,
        st.writes
    );
    assert_eq!(db.len().unwrap(), 1600);
}

#[test]
fn without_merging_every_write_is_its_own_group() {
    let dir = TempDir::new("nogroup");
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    o.write_merging = false;
    let db = Arc::new(Bitcask::open(dir.path(), o).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    db.put(format!("{t}-{i}").as_bytes(), b"v").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = db.stats().unwrap();
    assert_eq!((st.writes, st.write_groups, st.syncs), (200, 200, 200));
}

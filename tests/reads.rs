//! Read paths: mapped and `pread` reads against a model, borrowed values, values
//! held while a merge removes their file, keys-only iteration, corruption found
//! through a map.

mod common;

use bitcask::fs::memfs::MemFs;
use bitcask::{Bitcask, Error, SyncPolicy};
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every way to read the database, compared with the model.
fn check(db: &Bitcask, model: &Model) {
    assert_matches(db, model);
    for (k, v) in model {
        assert_eq!(db.get_with(k, |b| b.to_vec()).unwrap().as_ref(), Some(v));
    }
    // Borrowed steps, forwards and backwards.
    for reverse in [false, true] {
        let mut it = db.range::<&[u8]>(.., reverse).unwrap();
        let mut got = Vec::new();
        while let Some(kv) = it.next_ref() {
            let (k, v) = kv.unwrap();
            got.push((k.to_vec(), v.to_vec()));
        }
        let mut want: Vec<(Vec<u8>, Vec<u8>)> =
            model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if reverse {
            want.reverse();
        }
        assert_eq!(got, want, "next_ref, reverse {reverse}");
    }
    let keys: Vec<Vec<u8>> = db.iter().unwrap().keys().map(|k| k.unwrap()).collect();
    assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
    // Short scans cross the first, small chunks.
    let mid = model
        .keys()
        .nth(model.len() / 2)
        .cloned()
        .unwrap_or_default();
    for n in [1, 15, 16, 17, 49, 100] {
        let got: Vec<(Vec<u8>, Vec<u8>)> = db
            .range(mid.as_slice().., false)
            .unwrap()
            .take(n)
            .map(|r| r.unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model
            .range(mid.clone()..)
            .take(n)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "scan of {n}");
    }
}

/// Random puts and deletes with automatic merges running under every sync
/// policy and with a write buffer, read through maps or `pread`, checked along
/// the way and after a reopen.
#[test]
fn reads_match_the_model_with_mapping_on_and_off_and_auto_merge() {
    for mmap in [true, false] {
        for (i, sync) in [
            SyncPolicy::Never,
            SyncPolicy::EveryMs(5),
            SyncPolicy::Always,
        ]
        .into_iter()
        .enumerate()
        {
            for buffer in [0, 4096] {
                let dir = TempDir::new("reads-model");
                let mut o = auto_merge_opts();
                o.mmap = mmap;
                o.sync = sync;
                o.write_buffer_size = buffer;
                let mut model = Model::new();
                let mut rng = Rng(11 + i as u64 + buffer as u64);
                {
                    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
                    for round in 0..4 {
                        for _ in 0..400 {
                            let k = format!("k{:04}", rng.below(300)).into_bytes();
                            if rng.below(4) == 0 {
                                db.delete(&k).unwrap();
                                model.remove(&k);
                            } else {
                                let n = rng.below(300) as usize;
                                let v = rng.bytes(n);
                                db.put(&k, &v).unwrap();
                                model.insert(k, v);
                            }
                        }
                        check(&db, &model);
                        if round == 2 {
                            db.merge().unwrap();
                            check(&db, &model);
                        }
                    }
                }
                let db = Bitcask::open(dir.path(), o).unwrap();
                check(&db, &model);
            }
        }
    }
}

/// A database of 4 KiB files where every key but `key0000` (value: 40 zero
/// bytes) was overwritten (40 bytes of 1), so that a merge rewrites the file
/// holding `key0000` and removes it.
fn filled_for_merge(tag: &str, mmap: bool) -> (TempDir, Bitcask) {
    let dir = TempDir::new(tag);
    let mut o = merge_opts();
    o.max_file_size = 4096;
    o.mmap = mmap;
    let db = Bitcask::open(dir.path(), o).unwrap();
    for i in 0..400u32 {
        db.put(format!("key{i:04}").as_bytes(), &[i as u8; 40])
            .unwrap();
    }
    for i in 1..400u32 {
        db.put(format!("key{i:04}").as_bytes(), &[1; 40]).unwrap();
    }
    (dir, db)
}

#[test]
fn a_borrowed_value_stays_correct_while_a_merge_removes_its_file() {
    for mmap in [true, false] {
        let (dir, db) = filled_for_merge("reads-borrow", mmap);
        let first = data_files(dir.path())[0].clone();
        let got = db
            .get_with(b"key0000", |v| {
                // The merge rewrites the file `v` lies in and removes it.
                db.merge().unwrap();
                assert!(!first.exists(), "the merge removed {first:?}");
                v.to_vec()
            })
            .unwrap();
        assert_eq!(got, Some(vec![0u8; 40]));
        assert_eq!(db.get(b"key0000").unwrap(), Some(vec![0u8; 40]));
    }
}

#[test]
fn an_iterator_reads_values_of_files_a_merge_removed() {
    for mmap in [true, false] {
        let (_dir, db) = filled_for_merge("reads-iter-merge", mmap);
        let mut it = db.iter().unwrap();
        let first = it.next().unwrap().unwrap();
        assert_eq!(first, (b"key0000".to_vec(), vec![0u8; 40]));
        db.merge().unwrap();
        let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
        assert_eq!(rest.len(), 399);
        assert!(rest.iter().all(|(_, v)| *v == [1u8; 40]));
    }
}

#[test]
fn keys_only_iteration_reads_no_data_file() {
    let fs = MemFs::new();
    let mut o = small_files();
    o.sync = SyncPolicy::Never;
    let db = Bitcask::open_with_fs("/db", o, Arc::new(fs.clone())).unwrap();
    for i in 0..500u32 {
        db.put(format!("key{i:04}").as_bytes(), &[3; 30]).unwrap();
    }
    let files = data_files_in(&fs);
    assert!(files.len() > 3);
    // The background thread writes sealed files' hints by reading them: wait.
    let hints = || {
        let names = fs.names(std::path::Path::new("/db"));
        names.iter().filter(|n| n.ends_with(".hint")).count()
    };
    let t0 = std::time::Instant::now();
    while hints() < files.len() - 1 {
        assert!(t0.elapsed().as_secs() < 30, "hints not written");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    fs.reset_counts();
    assert_eq!(db.iter().unwrap().keys().count(), 500);
    assert_eq!(
        db.range(&b"key0100"[..]..&b"key0200"[..], true)
            .unwrap()
            .keys()
            .count(),
        100
    );
    for f in &files {
        assert_eq!(fs.bytes_read(f), 0, "{f:?} was read");
    }
    // Values are read: the same count reads every file.
    assert_eq!(db.iter().unwrap().count(), 500);
    assert!(files.iter().all(|f| fs.bytes_read(f) > 0));
}

fn data_files_in(fs: &MemFs) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new("/db");
    fs.names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".data"))
        .map(|n| dir.join(n))
        .collect()
}

/// A value damaged on disk after a clean close (so open reads only hints) is
/// found by the read, mapped or not, and named by file and offset.
#[test]
fn corruption_in_a_mapped_file_names_the_file_and_offset() {
    for mmap in [true, false] {
        let dir = TempDir::new("reads-flip");
        let mut o = small_files();
        o.mmap = mmap;
        {
            let db = Bitcask::open(dir.path(), o.clone()).unwrap();
            for i in 0..200u32 {
                db.put(format!("key{i:04}").as_bytes(), &[7u8; 50]).unwrap();
            }
        }
        let first = data_files(dir.path())[0].clone();
        let mut bytes = std::fs::read(&first).unwrap();
        // 8-byte headers, 7-byte keys, 50-byte values: the fourth record's value.
        const REC: usize = 8 + 7 + 50;
        bytes[16 + REC * 3 + 40] ^= 0x55;
        std::fs::write(&first, &bytes).unwrap();
        let db = Bitcask::open(dir.path(), o).unwrap();
        let expect = |r: Result<(), Error>| match r {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, first);
                assert_eq!(offset, (16 + REC * 3) as u64);
            }
            other => panic!("expected corruption, got {other:?}"),
        };
        expect(db.get(b"key0003").map(drop));
        expect(db.get_with(b"key0003", |_| ()).map(drop));
        expect(db.iter().unwrap().find_map(|r| r.err()).map_or(Ok(()), Err));
        // Everything else reads.
        assert_eq!(db.get(b"key0004").unwrap(), Some(vec![7u8; 50]));
    }
}

/// Readers on two threads while a writer with a write buffer flushes and a merge
/// runs: every read sees a value some write stored.
#[test]
fn reads_during_buffer_flushes_and_merges_see_written_values() {
    let dir = TempDir::new("reads-flush");
    let mut o = auto_merge_opts();
    o.write_buffer_size = 1024;
    let db = Arc::new(Bitcask::open(dir.path(), o).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(100 + t);
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("k{:03}", rng.below(100));
                    if let Some(v) = db.get(k.as_bytes()).unwrap() {
                        assert!(v.starts_with(k.as_bytes()), "{k}: {v:?}");
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    let mut rng = Rng(5);
    for i in 0..20_000u32 {
        let k = format!("k{:03}", rng.below(100));
        db.put(k.as_bytes(), format!("{k}-{i}").as_bytes()).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

/// Keys of a merge's outputs (the files it created), in file id order and file
/// order, and the number of its inputs (the files it removed).
fn merged_keys(dir: &std::path::Path, max_file_size: u64, mmap: bool) -> (Vec<Vec<u8>>, usize) {
    let mut o = merge_opts();
    o.max_file_size = max_file_size;
    o.mmap = mmap;
    let db = Bitcask::open(dir, o).unwrap();
    let mut rng = Rng(3);
    let mut model = Model::new();
    for _ in 0..3000 {
        // Keys drawn from 2000: most files hold some dead values.
        let k = format!("k{:06}", rng.below(2000) * 499 % 2000).into_bytes();
        db.put(&k, &[5; 60]).unwrap();
        model.insert(k, vec![5; 60]);
    }
    let before = data_files(dir);
    db.merge().unwrap();
    check(&db, &model);
    let after = data_files(dir);
    let inputs = before.iter().filter(|f| !after.contains(f)).count();
    let mut keys = Vec::new();
    for f in after.iter().filter(|f| !before.contains(f)) {
        let problems = bitcask::inspect::scan_data_file(f, |r| keys.push(r.key.to_vec())).unwrap();
        assert!(problems.is_empty());
    }
    (keys, inputs)
}

fn descents(keys: &[Vec<u8>]) -> usize {
    keys.windows(2).filter(|w| w[0] > w[1]).count()
}

/// A merge of mapped files copies each input's live records in key order: one
/// input gives a sorted output, n inputs at most n sorted runs. With mapping
/// off, records go in file order (here, write order: random keys).
#[test]
fn merge_of_mapped_files_writes_sorted_runs() {
    let dir = TempDir::new("reads-sorted-one");
    let (keys, inputs) = merged_keys(dir.path(), 1 << 20, true);
    assert_eq!(inputs, 1);
    assert!(keys.len() > 1000);
    assert_eq!(descents(&keys), 0, "one input, one sorted run");

    let dir = TempDir::new("reads-sorted-many");
    let (keys, inputs) = merged_keys(dir.path(), 32 << 10, true);
    assert!(inputs > 4 && keys.len() > 1000);
    assert!(
        descents(&keys) < inputs,
        "{} runs from {inputs} inputs",
        descents(&keys) + 1
    );

    let dir = TempDir::new("reads-unsorted");
    let (keys, _) = merged_keys(dir.path(), 1 << 20, false);
    assert!(descents(&keys) > 100);
}

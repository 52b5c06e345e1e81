//! Scenario tests of the core engine, checked against a `BTreeMap` model.

mod common;

use bitcask::{Bitcask, Error, Options, SyncPolicy, WriteBatch};
use common::*;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn random_ops(db: &Bitcask, model: &mut Model, rng: &mut Rng, n: usize, keyspace: u64) {
    for _ in 0..n {
        let k = format!("key-{:05}", rng.below(keyspace)).into_bytes();
        if rng.below(5) == 0 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let n = rng.below(200) as usize;
            let v = rng.bytes(n);
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
}

#[test]
fn reopen_persistence() {
    let dir = TempDir::new("reopen");
    let mut model = Model::new();
    let mut rng = Rng(1);
    for round in 0..3 {
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        assert_matches(&db, &model);
        random_ops(&db, &mut model, &mut rng, 500, 300);
        assert_matches(&db, &model);
        if round == 1 {
            db.close().unwrap();
        } // else: closed by drop
    }
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_matches(&db, &model);
}

#[test]
fn overwrite_and_delete() {
    let dir = TempDir::new("overwrite");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.put(b"a", b"2").unwrap();
    assert_eq!(db.get(b"a").unwrap().unwrap(), b"2");
    db.delete(b"a").unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert!(!db.contains(b"a").unwrap());
    db.delete(b"never-there").unwrap();
    db.put(b"a", b"3").unwrap();
    drop(db);
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap().unwrap(), b"3");
    assert_eq!(db.len().unwrap(), 1);
}

#[test]
fn empty_values_are_not_deletes() {
    let dir = TempDir::new("empty");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"").unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(vec![]));
    assert!(db.contains(b"k").unwrap());
    drop(db);
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(vec![]));
}

#[test]
fn size_limits_are_clear_errors() {
    let dir = TempDir::new("limits");
    let mut o = Options::default();
    o.max_key_size = 8;
    o.max_value_size = 16;
    let db = Bitcask::open(dir.path(), o).unwrap();
    assert!(matches!(db.put(b"", b"v"), Err(Error::EmptyKey)));
    assert!(matches!(
        db.put(b"123456789", b"v"),
        Err(Error::KeyTooLarge { len: 9, max: 8 })
    ));
    assert!(matches!(
        db.put(b"k", &[0u8; 17]),
        Err(Error::ValueTooLarge { len: 17, max: 16 })
    ));
    let mut b = WriteBatch::new();
    b.put(b"ok", b"fine").put(b"", b"bad");
    assert!(matches!(db.write(&b), Err(Error::EmptyKey)));
    assert_eq!(
        db.get(b"ok").unwrap(),
        None,
        "a rejected batch writes nothing"
    );
    db.put(b"12345678", &[1u8; 16]).unwrap();
}

#[test]
fn invalid_options_name_the_option() {
    let dir = TempDir::new("badopt");
    let mut o = Options::default();
    o.max_file_size = 10;
    match Bitcask::open(dir.path(), o) {
        Err(Error::InvalidOption { name, .. }) => assert_eq!(name, "max_file_size"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rotation_across_many_small_files() {
    let dir = TempDir::new("rotation");
    let mut model = Model::new();
    let mut rng = Rng(2);
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        random_ops(&db, &mut model, &mut rng, 3000, 400);
        assert_matches(&db, &model);
        let st = db.stats().unwrap();
        assert!(st.files.len() > 20, "only {} files", st.files.len());
        let live: u64 = st.files.iter().map(|f| f.live_bytes).sum();
        assert!(live > 0 && live < st.data_bytes);
    }
    let files = data_files(dir.path());
    assert!(files.len() > 20);
    assert_eq!(
        hint_files(dir.path()).len(),
        files.len(),
        "every file has a hint, the active one since close"
    );
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    assert_matches(&db, &model);
}

/// Writes `n` single-record puts and returns (model, offset of the last record).
fn fill_then_last_record(dir: &std::path::Path) -> (Model, u64, u64) {
    let db = Bitcask::open(dir, Options::default()).unwrap();
    let mut model = Model::new();
    for i in 0..20u32 {
        let k = format!("k{i}").into_bytes();
        let v = vec![i as u8; 30];
        db.put(&k, &v).unwrap();
        model.insert(k, v);
    }
    drop(db);
    let file = data_files(dir).pop().unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    let last_len = 8 + 3 + 30; // header (every varint one byte) + "k19" + value
    (model, len - last_len, len)
}

#[test]
fn recovery_torn_tail_at_every_offset() {
    let dir = TempDir::new("torn");
    let (mut model, last_start, len) = fill_then_last_record(dir.path());
    model.remove(&b"k19"[..]);
    let pristine = std::fs::read(data_files(dir.path()).pop().unwrap()).unwrap();
    for cut in last_start..len {
        let file = data_files(dir.path()).pop().unwrap();
        std::fs::write(&file, &pristine[..cut as usize]).unwrap();
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        assert_eq!(db.stats().unwrap().dropped_bytes_at_open, cut - last_start);
        assert_matches(&db, &model);
        drop(db);
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            last_start,
            "tail truncated"
        );
    }
}

#[test]
fn recovery_garbage_appended() {
    let dir = TempDir::new("garbage");
    let (model, _, len) = fill_then_last_record(dir.path());
    let file = data_files(dir.path()).pop().unwrap();
    let mut rng = Rng(3);
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(&rng.bytes(1000))
        .unwrap();
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.stats().unwrap().dropped_bytes_at_open, 1000);
    assert_matches(&db, &model);
    // Writing after recovery appends at the truncation point.
    db.put(b"after", b"garbage").unwrap();
    drop(db);
    assert!(std::fs::metadata(&file).unwrap().len() > len);
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"after").unwrap().unwrap(), b"garbage");
    assert_eq!(db.stats().unwrap().dropped_bytes_at_open, 0);
}

#[test]
fn corruption_in_immutable_file_fails_open_and_salvage_skips() {
    let dir = TempDir::new("flip");
    let mut model = Model::new();
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        for i in 0..200u32 {
            let k = format!("key{i:04}").into_bytes();
            db.put(&k, &[7u8; 50]).unwrap();
            model.insert(k, vec![7u8; 50]);
        }
    }
    let first = data_files(dir.path())[0].clone();
    for h in hint_files(dir.path()) {
        std::fs::remove_file(h).unwrap();
    }
    let mut bytes = std::fs::read(&first).unwrap();
    // Records of key0000.. (7 bytes) and 50-byte values, with sequence numbers
    // below 128: an 8-byte header, 65 bytes in all.
    const REC: usize = 8 + 7 + 50;
    let offset = 16 + REC * 3 + 40; // inside the value of the fourth record
    bytes[offset] ^= 0x55;
    std::fs::write(&first, &bytes).unwrap();
    match Bitcask::open(dir.path(), small_files()) {
        Err(Error::Corruption {
            file, offset: at, ..
        }) => {
            assert_eq!(file, first);
            assert_eq!(at, (16 + REC * 3) as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let mut o = small_files();
    o.salvage = true;
    let db = Bitcask::open(dir.path(), o).unwrap();
    let st = db.stats().unwrap();
    assert_eq!(st.salvaged_bytes_at_open, REC as u64);
    model.remove(&b"key0003"[..]);
    assert_matches(&db, &model);
}

#[test]
fn corruption_in_the_middle_of_the_last_file_is_not_a_torn_tail() {
    let dir = TempDir::new("midlast");
    let (_, _, _) = fill_then_last_record(dir.path());
    let file = data_files(dir.path()).pop().unwrap();
    // As after a crash: no hint written at close, so open scans the file.
    std::fs::remove_file(file.with_extension("hint")).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[16 + 30] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert!(matches!(
        Bitcask::open(dir.path(), Options::default()),
        Err(Error::Corruption { .. })
    ));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "a failed open changes nothing"
    );
}

#[test]
fn hint_file_deleted_or_corrupted_falls_back_to_scan() {
    let dir = TempDir::new("hint");
    let mut model = Model::new();
    let mut rng = Rng(4);
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        random_ops(&db, &mut model, &mut rng, 1500, 200);
    }
    let hints = hint_files(dir.path());
    assert!(hints.len() > 5);
    std::fs::remove_file(&hints[0]).unwrap();
    let mut b = std::fs::read(&hints[1]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xFF;
    std::fs::write(&hints[1], &b).unwrap();
    let b = std::fs::read(&hints[2]).unwrap();
    std::fs::write(&hints[2], &b[..b.len() - 7]).unwrap();
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        assert_matches(&db, &model);
    }
    // The fallback scan rewrote the hints; they load and agree.
    let again = std::fs::read(&hints[1]).unwrap();
    assert_ne!(again, b);
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    assert_matches(&db, &model);
}

#[test]
fn second_writer_in_this_process_is_locked() {
    let dir = TempDir::new("lock1");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        Bitcask::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
    db.close().unwrap();
    Bitcask::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn read_only_open() {
    let dir = TempDir::new("ro");
    {
        let db = Bitcask::open(dir.path(), Options::default()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let writer = Bitcask::open(dir.path(), Options::default()).unwrap();
    let mut o = Options::default();
    o.read_only = true;
    let ro = Bitcask::open(dir.path(), o.clone()).unwrap();
    assert_eq!(ro.get(b"k").unwrap().unwrap(), b"v");
    assert!(matches!(ro.put(b"k", b"w"), Err(Error::ReadOnly)));
    assert!(matches!(ro.delete(b"k"), Err(Error::ReadOnly)));
    drop(writer);
    let missing = dir.path().join("nope");
    assert!(matches!(Bitcask::open(&missing, o), Err(Error::Io { .. })));
    assert!(!missing.exists(), "read-only open creates nothing");
}

#[test]
fn closed_handle_refuses_everything() {
    let dir = TempDir::new("closed");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    let mut it = db.iter().unwrap();
    db.close().unwrap();
    db.close().unwrap();
    assert!(matches!(db.get(b"k"), Err(Error::Closed)));
    assert!(matches!(db.put(b"k", b"v"), Err(Error::Closed)));
    assert!(matches!(db.len(), Err(Error::Closed)));
    assert!(matches!(it.next(), Some(Err(Error::Closed))));
    assert!(it.next().is_none());
}

#[test]
fn foreign_file_is_refused_with_a_clear_error() {
    let dir = TempDir::new("foreign");
    std::fs::write(
        dir.path().join("0000000001.data"),
        b"definitely not a bitcask file",
    )
    .unwrap();
    match Bitcask::open(dir.path(), Options::default()) {
        Err(Error::BadFormat { reason, .. }) => assert!(reason.contains("magic")),
        other => panic!("{other:?}"),
    }
    // A version from the future is refused, naming the file and its version.
    let mut v3 = b"BCSKDATA".to_vec();
    v3.extend_from_slice(&3u32.to_le_bytes());
    v3.extend_from_slice(&[0; 4]);
    std::fs::write(dir.path().join("0000000001.data"), &v3).unwrap();
    match Bitcask::open(dir.path(), Options::default()) {
        Err(Error::BadFormat { file, reason }) => {
            assert!(reason.contains("version 3"), "{reason}");
            assert!(file.ends_with("0000000001.data"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_readers_and_writers() {
    let dir = TempDir::new("threads");
    let db = Arc::new(Bitcask::open(dir.path(), small_files()).unwrap());
    // Each writer owns a disjoint key range, so the final state is its own model.
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut model = Model::new();
                let mut rng = Rng(100 + t);
                for _ in 0..1500 {
                    let k = format!("t{t}-{:03}", rng.below(150)).into_bytes();
                    if rng.below(4) == 0 {
                        db.delete(&k).unwrap();
                        model.remove(&k);
                    } else {
                        let n = rng.below(64) as usize + 1;
                        let v = rng.bytes(n);
                        db.put(&k, &v).unwrap();
                        model.insert(k, v);
                    }
                }
                model
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(200 + t);
                for _ in 0..3000 {
                    let k = format!("t{}-{:03}", rng.below(4), rng.below(150)).into_bytes();
                    if let Some(v) = db.get(&k).unwrap() {
                        assert!(!v.is_empty());
                    }
                }
            })
        })
        .collect();
    let mut model = Model::new();
    for w in writers {
        model.extend(w.join().unwrap());
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_matches(&db, &model);
    drop(db);
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    assert_matches(&db, &model);
}

#[test]
fn write_buffer_reads_see_unflushed_writes_and_close_flushes() {
    let dir = TempDir::new("wbuf");
    let mut o = small_files();
    o.write_buffer_size = 1 << 16;
    o.max_file_size = 1 << 20;
    let mut model = Model::new();
    let mut rng = Rng(5);
    {
        let db = Bitcask::open(dir.path(), o.clone()).unwrap();
        random_ops(&db, &mut model, &mut rng, 2000, 300);
        assert_matches(&db, &model);
    }
    let db = Bitcask::open(dir.path(), o).unwrap();
    assert_matches(&db, &model);
}

#[test]
fn sync_policies_all_persist() {
    for sync in [
        SyncPolicy::Always,
        SyncPolicy::EveryMs(5),
        SyncPolicy::Never,
    ] {
        let dir = TempDir::new("sync");
        let mut o = Options::default();
        o.sync = sync;
        let db = Bitcask::open(dir.path(), o.clone()).unwrap();
        db.put(b"k", b"v").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        db.sync().unwrap();
        drop(db);
        let db = Bitcask::open(dir.path(), o).unwrap();
        assert_eq!(db.get(b"k").unwrap().unwrap(), b"v");
    }
}

#[test]
fn iteration_keys_fold_and_ranges() {
    let dir = TempDir::new("iter");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    for k in [&b"b"[..], b"a", b"c\xff", b"c", b"c\x00"] {
        db.put(k, k).unwrap();
    }
    assert_eq!(
        db.keys().unwrap(),
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"c\x00".to_vec(),
            b"c\xff".to_vec()
        ]
    );
    let total = db.fold(0usize, |n, k, v| {
        assert_eq!(k, v);
        n + v.len()
    });
    assert_eq!(total.unwrap(), 7);
    let r: Vec<Vec<u8>> = db
        .range(&b"b"[..]..&b"c\xff"[..], false)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(r, vec![b"b".to_vec(), b"c".to_vec(), b"c\x00".to_vec()]);
    let p: Vec<Vec<u8>> = db
        .prefix(b"c", true)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(p, vec![b"c\xff".to_vec(), b"c\x00".to_vec(), b"c".to_vec()]);
}

#[test]
fn hostile_hint_with_impossible_offsets_is_ignored() {
    let dir = TempDir::new("hint-hostile");
    let mut model = Model::new();
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        for i in 0..300u32 {
            let (k, v) = (format!("key{i:03}").into_bytes(), vec![i as u8; 40]);
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    // Rewrite the first hint entry's value offset to 0 and fix up the checksum, so
    // only the offset check can catch it.
    let hint = hint_files(dir.path())[0].clone();
    let mut b = std::fs::read(&hint).unwrap();
    b[16 + 20..16 + 24].copy_from_slice(&0u32.to_le_bytes());
    let n = b.len();
    let crc = crc32fast_hash(&b[..n - 8]);
    b[n - 8..n - 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&hint, &b).unwrap();
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    assert_matches(&db, &model);
}

/// CRC-32 (IEEE), bitwise: the tests need it without depending on crc32fast.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn close_racing_reads_never_reports_a_present_key_missing() {
    for round in 0..100 {
        let dir = TempDir::new("close-race");
        let db = Arc::new(Bitcask::open(dir.path(), Options::default()).unwrap());
        db.put(b"here", b"v").unwrap();
        let reader = {
            let db = db.clone();
            std::thread::spawn(move || loop {
                match db.get(b"here") {
                    Ok(Some(_)) => assert_eq!(db.len().map_err(|_| ()).unwrap_or(1), 1),
                    Err(Error::Closed) => return,
                    other => panic!("round {round}: present key read as {other:?}"),
                }
            })
        };
        std::thread::yield_now();
        db.close().unwrap();
        reader.join().unwrap();
    }
}

//! A database written in format 1 (tests/fixtures/format1, committed by the
//! build that wrote it) opens, reads, takes writes, merges into format 2 and
//! reopens, forever after. One written in format 2 before preallocation, and
//! left by a crash, opens and takes preallocated durable writes.

mod common;

use bitcask::{Bitcask, Options, SyncPolicy};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The fixture's contents and last sequence number, from `format1.expected`.
fn expected() -> (BTreeMap<Vec<u8>, Vec<u8>>, u64) {
    let text = include_str!("fixtures/format1.expected");
    let mut lines = text.lines();
    let seq = lines
        .next()
        .and_then(|l| l.strip_prefix("last_seq "))
        .unwrap()
        .parse()
        .unwrap();
    let model = lines
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (unhex(k), unhex(v))
        })
        .collect();
    (model, seq)
}

/// A copy of the fixture in a fresh directory (the fixture itself is never
/// opened writable).
fn fixture_copy(tag: &str) -> TempDir {
    fixture_copy_of("format1", tag)
}

fn fixture_copy_of(fixture: &str, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

/// Format version of each data file in `dir`, by file name. A file a running
/// merge deletes between the listing and the read is left out, as is one it
/// has created but not yet given its header.
fn versions(dir: &Path) -> BTreeMap<String, u32> {
    data_files(dir)
        .iter()
        .filter_map(|p| {
            let b = match std::fs::read(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                r => r.unwrap(),
            };
            if b.len() < 12 {
                return None;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            Some((name, u32::from_le_bytes(b[8..12].try_into().unwrap())))
        })
        .collect()
}

fn opts() -> Options {
    let mut o = small_files();
    o.auto_merge = false;
    o
}

#[test]
fn upgrade_format1_fixture_reads_writes_merges_and_reopens() {
    let (mut model, last_seq) = expected();
    assert!(model.len() > 100, "the fixture is not empty");
    let dir = fixture_copy("upgrade");
    assert!(versions(dir.path()).values().all(|&v| v == 1));

    // Read-only first: nothing may change on disk.
    let mut ro = opts();
    ro.read_only = true;
    let db = Bitcask::open(dir.path(), ro).unwrap();
    assert_matches(&db, &model);
    drop(db);
    assert!(versions(dir.path()).values().all(|&v| v == 1));

    // Writable: the format-1 files stay as they are; writes go to a new file
    // of format 2, and the sequence goes on from the fixture's.
    let db = Bitcask::open(dir.path(), opts()).unwrap();
    assert_matches(&db, &model);
    assert_eq!(db.put(b"key-150", b"after-upgrade").unwrap(), last_seq + 1);
    model.insert(b"key-150".to_vec(), b"after-upgrade".to_vec());
    db.delete(b"key-151").unwrap();
    model.remove(&b"key-151"[..]);
    db.put_with_ttl(b"fresh", b"ttl", std::time::Duration::from_secs(3600))
        .unwrap();
    model.insert(b"fresh".to_vec(), b"ttl".to_vec());
    assert_matches(&db, &model);
    let v = versions(dir.path());
    assert_eq!(v.values().filter(|&&x| x == 2).count(), 1, "{v:?}");
    drop(db);

    // Reopen with both formats side by side, then merge everything into format 2.
    let db = Bitcask::open(dir.path(), opts()).unwrap();
    assert_matches(&db, &model);
    let m = db.merge().unwrap();
    assert!(m.files_in >= 3, "{m:?}");
    assert_matches(&db, &model);
    drop(db);
    let v = versions(dir.path());
    assert!(v.values().all(|&x| x == 2), "format-1 files remain: {v:?}");
    let db = Bitcask::open(dir.path(), opts()).unwrap();
    assert_matches(&db, &model);
    assert!(db.ttl(b"fresh").unwrap().is_some());
    // Nothing older than the merge comes back, and the sequence survived.
    assert!(db.put(b"last", b"x").unwrap() > last_seq + 3);
}

#[test]
fn upgrade_format1_fixture_is_rewritten_by_the_automatic_merge() {
    let (model, _) = expected();
    let dir = fixture_copy("upgrade-auto");
    let mut o = small_files();
    o.auto_merge = true;
    o.merge_check_interval = std::time::Duration::from_millis(5);
    let db = Bitcask::open(dir.path(), o).unwrap();
    // The merge counter moves after the files are swapped: wait for both, or an
    // idle check below would see the tail of this very merge.
    let rewritten = |db: &Bitcask| {
        versions(dir.path()).values().all(|&x| x == 2) && db.stats().unwrap().merges >= 1
    };
    for _ in 0..400 {
        if rewritten(&db) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(rewritten(&db), "{:?}", versions(dir.path()));
    assert_matches(&db, &model);
    // ...and, once rewritten, an idle database stops merging.
    let merges = db.stats().unwrap().merges;
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(db.stats().unwrap().merges, merges);
    drop(db);
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    assert_matches(&db, &model);
}

/// The value the build before preallocation wrote for key `i` in the
/// `format2-no-prealloc` fixture (tests/fixtures/README.md).
fn prealloc_fixture_value(i: u64) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

#[test]
fn upgrade_format2_before_preallocation_opens_and_takes_preallocated_writes() {
    let dir = fixture_copy_of("format2-no-prealloc", "upgrade-prealloc");
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = (0..200)
        .map(|i| (format!("k{i:06}").into_bytes(), prealloc_fixture_value(i)))
        .collect();
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    o.max_file_size = 4096;
    o.auto_merge = false;
    for round in 0..2u64 {
        let db = Bitcask::open(dir.path(), o.clone()).unwrap();
        assert_eq!(
            db.stats().unwrap().dropped_bytes_at_open,
            0,
            "round {round}"
        );
        assert_matches(&db, &model);
        for i in 0..150 {
            let k = format!("n{round}-{i:04}").into_bytes();
            let v = prealloc_fixture_value(i * 7 + round);
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        assert!(db.stats().unwrap().preallocated_bytes > 0, "round {round}");
        // The first round ends as a crash does, the second with a close.
        if round == 0 {
            std::mem::forget(db);
            std::fs::remove_file(dir.path().join("LOCK")).unwrap();
        }
    }
    let db = Bitcask::open(dir.path(), o).unwrap();
    assert_matches(&db, &model);
}

//! Open: what it reads, that loading files on every core equals the model, that
//! a stale hint is never trusted, progress reports, and the open modes.

mod common;

use bitcask::fs::memfs::{Crash, MemFs};
use bitcask::{Bitcask, Error, OpenProgress, Options, Progress, SyncPolicy};
use common::{assert_matches, Rng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const DIR: &str = "/db";

fn opts() -> Options {
    let mut o = Options::default();
    o.max_file_size = 4096;
    o.auto_merge = false;
    o
}

fn open(fs: &MemFs, o: &Options) -> Bitcask {
    Bitcask::open_with_fs(DIR, o.clone(), Arc::new(fs.process())).unwrap()
}

fn data_files(fs: &MemFs) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs
        .names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".data"))
        .map(|n| Path::new(DIR).join(n))
        .collect();
    v.sort();
    v
}

/// Random puts (some with a TTL far off), overwrites, deletes and batches over
/// many small files; returns the model.
fn fill(db: &Bitcask, rng: &mut Rng, n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for _ in 0..n {
        let k = format!("key{:04}", rng.below(400)).into_bytes();
        match rng.below(10) {
            0..=5 => {
                let len = 1 + rng.below(100) as usize;
                let v = rng.bytes(len);
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
            6 => {
                let v = rng.bytes(20);
                db.put_with_ttl(&k, &v, std::time::Duration::from_secs(1 << 20))
                    .unwrap();
                model.insert(k, v);
            }
            7 | 8 => {
                db.delete(&k).unwrap();
                model.remove(&k);
            }
            _ => {
                let mut b = bitcask::WriteBatch::new();
                b.put(&k, b"batch").delete(b"key0000");
                db.write(&b).unwrap();
                model.insert(k, b"batch".to_vec());
                model.remove(&b"key0000"[..]);
            }
        }
    }
    model
}

/// A database filled by `fill` with options `o`, closed cleanly.
fn filled(o: &Options, seed: u64, n: usize) -> (MemFs, BTreeMap<Vec<u8>, Vec<u8>>) {
    let fs = MemFs::new();
    let db = open(&fs, o);
    let model = fill(&db, &mut Rng(seed), n);
    db.close().unwrap();
    drop(db);
    (fs, model)
}

#[test]
fn open_after_clean_close_reads_no_data_file_beyond_its_header() {
    let (fs, model) = filled(&opts(), 1, 3000);
    let files = data_files(&fs);
    assert!(files.len() > 10, "{}", files.len());
    fs.reset_counts();
    let db = open(&fs, &opts());
    for f in &files {
        assert_eq!(
            fs.bytes_read(f),
            16,
            "{} was read past its header",
            f.display()
        );
    }
    assert_matches(&db, &model);
}

#[test]
fn open_loads_files_in_parallel_and_equals_the_model_with_damaged_hints() {
    for seed in 1..=5 {
        damaged_hints_reopen_equals_the_model(&opts(), seed);
    }
}

/// The same with the defaults users run, automatic merging on (at 1 ms, with
/// low triggers), under every sync policy and the write buffer.
#[test]
fn open_with_damaged_hints_equals_the_model_with_auto_merge_under_every_sync_policy() {
    for (i, (sync, buffer)) in [
        (SyncPolicy::Always, 0),
        (SyncPolicy::EveryMs(2), 0),
        (SyncPolicy::Never, 0),
        (SyncPolicy::Never, 2048),
    ]
    .into_iter()
    .enumerate()
    {
        let mut o = opts();
        o.auto_merge = true;
        o.merge_check_interval = std::time::Duration::from_millis(1);
        o.merge_trigger_fragmentation = 30;
        o.merge_threshold_fragmentation = 10;
        o.sync = sync;
        o.write_buffer_size = buffer;
        damaged_hints_reopen_equals_the_model(&o, 20 + i as u64);
    }
}

/// Fills a database with `o`, flips a bit in about a third of its hint files,
/// and checks that a writable and then a read-only reopen equal the model.
fn damaged_hints_reopen_equals_the_model(o: &Options, seed: u64) {
    let (fs, model) = filled(o, seed, 2500);
    let mut rng = Rng(seed + 100);
    // Damage some hint files: each is ignored and its data file scanned.
    let hints: Vec<PathBuf> = fs
        .names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".hint"))
        .map(|n| Path::new(DIR).join(n))
        .collect();
    assert!(hints.len() > 2, "{} hints", hints.len());
    let damaged: Vec<&PathBuf> = hints.iter().filter(|_| rng.below(3) == 0).collect();
    for h in damaged {
        let mut b = fs.read_file(h).unwrap();
        let at = 16 + rng.below((b.len() - 16) as u64) as usize;
        b[at] ^= 1 << rng.below(8);
        fs.write_file(h, &b);
    }
    let db = open(&fs, o);
    assert_matches(&db, &model);
    // And again, read-only, with the hints the open above rewrote.
    drop(db);
    let mut ro = o.clone();
    ro.read_only = true;
    assert_matches(&open(&fs, &ro), &model);
}

#[test]
fn a_hint_of_the_active_file_that_no_longer_matches_it_is_ignored() {
    let (fs, mut model) = filled(&opts(), 9, 50);
    // Reopen (the active file's hint matches), write on, and crash: the hint
    // now describes a shorter file.
    let db = open(&fs, &opts());
    for i in 0..20u32 {
        let k = format!("after{i}").into_bytes();
        db.put(&k, b"v").unwrap();
        model.insert(k, b"v".to_vec());
    }
    db.delete(b"after3").unwrap();
    model.remove(&b"after3"[..]);
    fs.crash(Crash::ProcessOnly);
    drop(db);
    let active = data_files(&fs).pop().unwrap();
    let hint = active.with_extension("hint");
    assert!(
        fs.read_file(&hint).is_some(),
        "close wrote no hint for the active file"
    );
    let data_len = fs.read_file(&active).unwrap().len() as u64;
    fs.reset_counts();
    let db = open(&fs, &opts());
    assert_matches(&db, &model);
    // The stale hint was passed over and the file scanned to its end.
    assert!(
        fs.bytes_read(&active) >= data_len - 16,
        "{}",
        fs.bytes_read(&active)
    );
    drop(db);
    // Closing that open wrote a hint for the longer file, and the next open
    // trusts it.
    fs.reset_counts();
    let db = open(&fs, &opts());
    assert_eq!(fs.bytes_read(&active), 16);
    assert_matches(&db, &model);
}

#[test]
fn open_reports_progress_per_file() {
    let (fs, model) = filled(&opts(), 4, 1500);
    let files = data_files(&fs);
    let total: u64 = files
        .iter()
        .map(|f| fs.read_file(f).unwrap().len() as u64)
        .sum();
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let mut o = opts();
    let s = seen.clone();
    o.open_progress = Some(OpenProgress(Arc::new(move |p| s.lock().unwrap().push(p))));
    let db = open(&fs, &o);
    assert_matches(&db, &model);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), files.len());
    for (i, p) in seen.iter().enumerate() {
        assert_eq!(p.files_done, i as u64 + 1);
        assert_eq!(p.files_total, files.len() as u64);
        assert_eq!(p.bytes_total, total);
    }
    assert_eq!(seen.last().unwrap().bytes_done, total);
    assert!(seen.windows(2).all(|w| w[0].bytes_done < w[1].bytes_done));
}

/// Splits a version 2 hint file into its entries (as docs/format.md draws
/// them), so that a test can reorder them.
fn hint_entries(b: &[u8]) -> Vec<Vec<u8>> {
    fn varint(b: &[u8], at: &mut usize) -> u64 {
        let mut v = 0;
        for i in 0.. {
            let byte = b[*at];
            *at += 1;
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let end = b.len() - 24;
    let mut at = 16;
    let mut out = Vec::new();
    while at < end {
        let start = at;
        let flags = b[at];
        at += 1;
        varint(b, &mut at); // seq
        let key_len = varint(b, &mut at) as usize;
        varint(b, &mut at); // value_len
        if flags & 0x04 != 0 {
            at += 4; // expires
        }
        if flags & 0x01 != 0 {
            varint(b, &mut at); // target
        }
        varint(b, &mut at); // offset
        at += key_len;
        out.push(b[start..at].to_vec());
    }
    out
}

#[test]
fn a_hint_out_of_key_order_with_a_valid_checksum_is_ignored() {
    let (fs, model) = filled(&opts(), 12, 600);
    let data = data_files(&fs)[0].clone();
    let hint = data.with_extension("hint");
    let b = fs.read_file(&hint).unwrap();
    let mut entries = hint_entries(&b);
    assert!(entries.len() > 2);
    assert!(entries.windows(2).any(|w| w[0] != w[1]));
    // Last first: every entry is still there, the order is not.
    entries.rotate_right(1);
    let mut out = b[..16].to_vec();
    for e in &entries {
        out.extend_from_slice(e);
    }
    let t = &b[b.len() - 24..];
    out.extend_from_slice(&t[..16]);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&t[20..]);
    assert_eq!(out.len(), b.len());
    fs.write_file(&hint, &out);
    fs.reset_counts();
    let db = open(&fs, &opts());
    assert_matches(&db, &model);
    let len = fs.read_file(&data).unwrap().len() as u64;
    assert!(
        fs.bytes_read(&data) >= len - 16,
        "the data file was not scanned"
    );
    // The scan wrote the hint again, in order.
    drop(db);
    fs.reset_counts();
    let db = open(&fs, &opts());
    assert_eq!(fs.bytes_read(&data), 16);
    assert_matches(&db, &model);
}

/// Open modes: `create_if_missing = false` never makes a database where there
/// is none (a mistyped path is an error, not a new empty database), and
/// `error_if_exists` refuses a directory that holds one, changing nothing.
#[test]
fn open_modes_missing_and_existing_databases() {
    let root = common::TempDir::new("open-modes");
    let path = root.path().join("db");
    let mut no_create = Options::default();
    no_create.create_if_missing = false;
    let err = Bitcask::open(&path, no_create.clone()).unwrap_err();
    assert!(matches!(err, Error::DatabaseNotFound { .. }), "{err}");
    assert!(!path.exists(), "a refused open creates nothing");
    std::fs::create_dir(&path).unwrap();
    let err = Bitcask::open(&path, no_create.clone()).unwrap_err();
    assert!(
        matches!(err, Error::DatabaseNotFound { .. }),
        "an empty directory holds no database: {err}"
    );
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);

    let mut exclusive = Options::default();
    exclusive.error_if_exists = true;
    let db = Bitcask::open(&path, exclusive.clone()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let before: Vec<_> = common::data_files(&path)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let err = Bitcask::open(&path, exclusive).unwrap_err();
    assert!(matches!(err, Error::DatabaseExists { .. }), "{err}");
    let after: Vec<_> = common::data_files(&path)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after, "a refused open changes nothing");
    let db = Bitcask::open(&path, no_create).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

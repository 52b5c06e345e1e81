//! Online backup: consistent as of its sequence number while threads write,
//! delete and merge; hard links for immutable files; a refused destination; and
//! failures injected into every kind of file operation a backup makes.

mod common;

use bitcask::{Bitcask, Error, Options, SyncPolicy};
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// One acknowledged write: its sequence number, key, and value (None: a delete).
type Logged = (u64, Vec<u8>, Option<Vec<u8>>);

fn state(db: &Bitcask) -> Model {
    db.iter().unwrap().map(|kv| kv.unwrap()).collect()
}

/// The state after every write with a sequence number up to `seq`.
fn model_at(log: &[Logged], seq: u64) -> Model {
    let mut ops: Vec<&Logged> = log.iter().filter(|(s, _, _)| *s <= seq).collect();
    ops.sort_by_key(|(s, _, _)| *s);
    let mut m = Model::new();
    for (_, k, v) in ops {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
    m
}

#[test]
fn backup_during_writes_deletes_and_merges_equals_the_model_at_its_seq() {
    // Every sync policy, and the write buffer, whose acknowledged writes the
    // cut must flush into the copy.
    for (sync, buffer, writes) in [
        (SyncPolicy::Never, 0, 3000),
        (SyncPolicy::EveryMs(5), 0, 3000),
        (SyncPolicy::Never, 4096, 3000),
        (SyncPolicy::Always, 0, 400),
    ] {
        let mut o = auto_merge_opts();
        o.sync = sync;
        o.write_buffer_size = buffer;
        backups_beside_writers(o, writes);
    }
}

fn backups_beside_writers(o: Options, writes: u64) {
    let dir = TempDir::new("backup-live");
    let src = dir.path().join("db");
    let db = Arc::new(Bitcask::open(&src, o.clone()).unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let (db, log) = (db.clone(), log.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t + 1);
                for i in 0..writes {
                    let k = format!("k{:03}", rng.below(300)).into_bytes();
                    if rng.below(5) == 0 {
                        let seq = db.delete(&k).unwrap();
                        log.lock().unwrap().push((seq, k, None));
                    } else {
                        let v = format!("t{t}-{i}-{}", "x".repeat(rng.below(60) as usize));
                        let seq = db.put(&k, v.as_bytes()).unwrap();
                        log.lock().unwrap().push((seq, k, Some(v.into_bytes())));
                    }
                    if i % 200 == 0 {
                        db.merge().unwrap();
                    }
                }
            })
        })
        .collect();
    let backer = {
        let (db, stop, base) = (db.clone(), stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut taken: Vec<(u64, PathBuf)> = Vec::new();
            while !stop.load(Ordering::Relaxed) || taken.len() < 3 {
                let dest = base.join(format!("backup-{}", taken.len()));
                let seq = db.backup(&dest).unwrap();
                taken.push((seq, dest));
                std::thread::sleep(Duration::from_millis(10));
            }
            taken
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let taken = backer.join().unwrap();
    assert!(
        db.stats().unwrap().merges > 0,
        "no merge ran during the backups"
    );
    let log = log.lock().unwrap().clone();
    for (seq, dest) in &taken {
        let copy = Bitcask::open(dest, o.clone()).unwrap();
        assert_eq!(
            state(&copy),
            model_at(&log, *seq),
            "backup {} at seq {seq}",
            dest.display()
        );
        copy.close().unwrap();
    }
    // The source is untouched by all of it.
    let last = log.iter().map(|(s, _, _)| *s).max().unwrap();
    assert_eq!(state(&db), model_at(&log, last));
    eprintln!("{} backups checked", taken.len());
}

#[test]
fn backup_hard_links_immutable_files_and_copies_the_active_one() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("backup-link");
    let src = dir.path().join("db");
    let mut o = merge_opts();
    o.max_file_size = 4096;
    let db = Bitcask::open(&src, o.clone()).unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:03}").as_bytes(), &[i as u8; 50])
            .unwrap();
    }
    let dest = dir.path().join("copy");
    let seq = db.backup(&dest).unwrap();
    assert_eq!(Some(seq), db.stats().unwrap().last_seq);
    let files = data_files(&src);
    let first = files.first().unwrap();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(first),
        ino(&dest.join(first.file_name().unwrap())),
        "not linked"
    );
    let active = files.last().unwrap();
    assert_ne!(
        ino(active),
        ino(&dest.join(active.file_name().unwrap())),
        "active linked"
    );
    // Writes after the backup stay out of it; the copy is an ordinary database.
    db.put(b"after", b"x").unwrap();
    let copy = Bitcask::open(&dest, o).unwrap();
    assert_eq!(copy.len().unwrap(), 200);
    assert_eq!(copy.get(b"after").unwrap(), None);
    copy.put(b"own", b"write").unwrap();
    assert_eq!(db.get(b"own").unwrap(), None);
}

#[test]
fn backup_refuses_a_non_empty_destination() {
    let dir = TempDir::new("backup-refuse");
    let db = Bitcask::open(dir.path().join("db"), merge_opts()).unwrap();
    db.put(b"k", b"v").unwrap();
    let dest = dir.path().join("full");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("precious"), b"mine").unwrap();
    let e = db.backup(&dest).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(std::fs::read(dest.join("precious")).unwrap(), b"mine");
    // An existing empty directory is fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    db.backup(&empty).unwrap();
    assert_eq!(
        Bitcask::open(&empty, merge_opts())
            .unwrap()
            .get(b"k")
            .unwrap(),
        Some(b"v".to_vec())
    );
    // A closed handle refuses.
    db.close().unwrap();
    assert!(matches!(
        db.backup(dir.path().join("x")),
        Err(Error::Closed)
    ));
}

#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use bitcask::fs::memfs::{Fault, MemFs, Op, EIO, ENOSPC};

    /// Every operation of every kind a backup makes fails in turn: the backup
    /// reports it, the destination does not exist (no half backup that would open
    /// as if whole), and the source keeps its state and takes writes.
    #[test]
    fn backup_failure_leaves_the_source_untouched_and_no_half_backup() {
        let mut o = merge_opts();
        o.max_file_size = 1024;
        let mut runs = 0;
        for op in [
            Op::Create,
            Op::Write,
            Op::Sync,
            Op::SyncDir,
            Op::Rename,
            Op::Link,
            Op::Read,
        ] {
            for nth in 1..=12u64 {
                let fs = MemFs::new();
                let db = Bitcask::open_with_fs("/db", o.clone(), Arc::new(fs.process())).unwrap();
                let mut model = Model::new();
                for i in 0..60u32 {
                    let (k, v) = (format!("k{:02}", i % 40).into_bytes(), vec![i as u8; 40]);
                    db.put(&k, &v).unwrap();
                    model.insert(k, v);
                }
                fs.inject(Fault {
                    op,
                    nth,
                    errno: if nth % 2 == 0 { ENOSPC } else { EIO },
                    sticky: nth % 3 == 0,
                    short: true,
                });
                let res = db.backup("/backup");
                fs.clear_faults();
                runs += 1;
                let names = fs.names(Path::new("/"));
                match res {
                    Err(e) => {
                        assert!(
                            !names.iter().any(|n| n.contains("backup")),
                            "{op:?} #{nth} ({e}): left {names:?}"
                        );
                        assert!(fs.names(Path::new("/backup")).is_empty());
                    }
                    Ok(_) => {
                        let copy =
                            Bitcask::open_with_fs("/backup", o.clone(), Arc::new(fs.process()))
                                .unwrap();
                        assert_eq!(state(&copy), model, "{op:?} #{nth}");
                    }
                }
                // The source: the same state, and it still writes.
                assert_eq!(state(&db), model, "{op:?} #{nth}: source changed");
                db.put(b"after", b"ok").unwrap();
            }
        }
        eprintln!("backup fault runs: {runs}");
    }
}

/// Copies are paced like merge I/O: a lower bound on the time only, which a
/// loaded machine can only make longer.
#[test]
fn backup_copies_are_paced_by_merge_bytes_per_sec() {
    let dir = TempDir::new("backup-pace");
    let mut o = merge_opts();
    o.max_file_size = 64 << 20;
    o.merge_bytes_per_sec = 4 << 20;
    let db = Bitcask::open(dir.path().join("db"), o).unwrap();
    for i in 0..1024u32 {
        db.put(format!("k{i:04}").as_bytes(), &[7u8; 1000]).unwrap();
    }
    // About 1 MiB in the active file, read and written: 2 MiB at 4 MiB/s.
    let start = std::time::Instant::now();
    db.backup(dir.path().join("copy")).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "a paced backup took {:?}",
        start.elapsed()
    );
}

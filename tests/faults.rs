//! The engine on a filesystem that fails on purpose and loses power (`MemFs`).
//!
//! Each scenario runs a fixed workload (puts, deletes, batches, merges, reopens,
//! reads) once to count the filesystem operations it makes, then once per
//! operation with that one failing (EIO or ENOSPC, once or from then on, writes
//! cut short), then loses power, reopens and checks: the database opens, every
//! write acknowledged as durable is there, and nothing else is: the state is the
//! acknowledged one, or that plus the one write that failed (whole, never part).
//! `BITCASK_FAULT_SEEDS` scales the number of workloads.
#![cfg(feature = "fault-injection")]

mod common;

use bitcask::fs::memfs::{Crash, Fault, MemFs, Op, ALL_OPS, CHANGING_OPS, EIO, ENOSPC, EROFS};
use bitcask::{Bitcask, Error, Options, SyncPolicy, WriteBatch};
use common::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const DIR: &str = "/db";

#[derive(Clone, Debug)]
enum Action {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Merge,
    Reopen,
    Get(Vec<u8>),
}

impl Action {
    fn apply(&self, m: &mut Model) {
        let mut one = |k: &Vec<u8>, v: &Option<Vec<u8>>| match v {
            Some(v) => {
                m.insert(k.clone(), v.clone());
            }
            None => {
                m.remove(k);
            }
        };
        match self {
            Action::Put(k, v) => one(k, &Some(v.clone())),
            Action::Delete(k) => one(k, &None),
            Action::Batch(ops) => ops.iter().for_each(|(k, v)| one(k, v)),
            Action::Merge | Action::Reopen | Action::Get(_) => {}
        }
    }
}

fn workload(seed: u64, len: usize) -> Vec<Action> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let key = |rng: &mut Rng| format!("key{:02}", rng.below(24)).into_bytes();
    (0..len)
        .map(|_| match rng.below(20) {
            0..=8 => {
                let k = key(&mut rng);
                let n = rng.below(90) as usize;
                let v = rng.bytes(n);
                Action::Put(k, v)
            }
            9..=11 => Action::Delete(key(&mut rng)),
            12..=14 => Action::Batch(
                (0..1 + rng.below(5))
                    .map(|_| {
                        let k = key(&mut rng);
                        let n = rng.below(60) as usize;
                        let v = (rng.below(3) != 0).then(|| rng.bytes(n));
                        (k, v)
                    })
                    .collect(),
            ),
            15 | 16 => Action::Merge,
            17 => Action::Reopen,
            _ => Action::Get(key(&mut rng)),
        })
        .collect()
}

fn opts(sync: SyncPolicy) -> Options {
    let mut o = Options::default();
    // Small files: the workload rotates, seals and merges many times.
    o.max_file_size = 1024;
    o.auto_merge = false;
    o.sync = sync;
    o
}

/// The defaults' automatic merging, at an interval short enough that background
/// merges run between (and during) the workload's own operations.
fn opts_auto(sync: SyncPolicy) -> Options {
    let mut o = opts(sync);
    o.auto_merge = true;
    o.merge_check_interval = std::time::Duration::from_millis(1);
    o.merge_trigger_fragmentation = 30;
    o.merge_threshold_fragmentation = 10;
    o
}

fn open(fs: &MemFs, o: &Options) -> bitcask::Result<Bitcask> {
    Bitcask::open_with_fs(DIR, o.clone(), Arc::new(fs.process()))
}

fn state(db: &Bitcask) -> Model {
    db.iter().unwrap().map(|kv| kv.unwrap()).collect()
}

/// What a run did: the acknowledged state, and the write that failed, if one did.
struct Outcome {
    acked: Model,
    in_flight: Option<Action>,
    failed: bool,
}

/// Runs `actions` until a write fails (the engine refuses writes after that
/// anyway); a failed merge, read or reopen is reported and the run goes on where
/// it can. Reads must return the model's value or an error, never another value.
fn run(fs: &MemFs, o: &Options, actions: &[Action]) -> (Option<Bitcask>, Outcome) {
    let mut out = Outcome {
        acked: Model::new(),
        in_flight: None,
        failed: false,
    };
    let mut db = match open(fs, o) {
        Ok(db) => Some(db),
        Err(_) => {
            out.failed = true;
            return (None, out);
        }
    };
    for a in actions {
        let d = db.as_ref().expect("open");
        let res = match a {
            Action::Put(k, v) => d.put(k, v).map(drop),
            Action::Delete(k) => d.delete(k).map(drop),
            Action::Batch(ops) => {
                let mut b = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => b.put(k, v),
                        None => b.delete(k),
                    };
                }
                d.write(&b).map(drop)
            }
            Action::Merge => d.merge().map(drop),
            Action::Get(k) => match d.get(k) {
                Ok(got) => {
                    assert_eq!(got.as_ref(), out.acked.get(k), "read of {k:?}");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Action::Reopen => {
                let closed = db.take().expect("open").close();
                match closed.and_then(|_| open(fs, o)) {
                    Ok(d) => {
                        db = Some(d);
                        Ok(())
                    }
                    Err(_) => {
                        out.failed = true;
                        return (None, out);
                    }
                }
            }
        };
        match res {
            Ok(()) => a.apply(&mut out.acked),
            Err(e) => {
                out.failed = true;
                assert!(
                    !matches!(e, Error::Corruption { .. } | Error::BadFormat { .. }),
                    "an injected I/O failure reported as damage: {e}"
                );
                if !matches!(a, Action::Merge | Action::Get(_)) {
                    out.in_flight = Some(a.clone());
                    // A failed write or sync may have lost what the kernel held:
                    // nothing may report success on this handle from now on.
                    let d = db.as_ref().expect("open");
                    let synced = d.sync();
                    assert!(synced.is_err(), "sync() after a failed {a:?}: {synced:?}");
                    break;
                }
            }
        }
    }
    (db, out)
}

/// Power off, reboot (faults gone), reopen: the state must be what was
/// acknowledged, or that plus the failed write. Then the database takes writes.
fn check_after_crash(
    fs: &MemFs,
    o: &Options,
    db: Option<Bitcask>,
    out: &Outcome,
    how: Crash,
    what: &str,
) {
    fs.crash(how);
    fs.clear_faults();
    drop(db);
    let db = open(fs, o).unwrap_or_else(|e| panic!("reopen after {how:?} failed: {e}"));
    let got = state(&db);
    let mut with = out.acked.clone();
    if let Some(a) = &out.in_flight {
        a.apply(&mut with);
    }
    assert!(
        got == out.acked || got == with,
        "{what}, then {how:?}: state is neither the acknowledged one nor that plus {:?}\n got {:?}\nwant {:?}",
        out.in_flight,
        got.keys().collect::<Vec<_>>(),
        out.acked.keys().collect::<Vec<_>>()
    );
    db.put(b"after-reopen", b"ok").unwrap();
    db.close().unwrap();
    let db = open(fs, o).unwrap();
    assert_eq!(
        db.get(b"after-reopen").unwrap().as_deref(),
        Some(&b"ok"[..])
    );
}

fn seeds() -> u64 {
    std::env::var("BITCASK_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// For every operation of every kind the workload makes: fail it, crash, check.
/// Returns (runs, faults that fired).
fn fail_each_operation(sync: SyncPolicy, crash: fn(u64) -> Crash) -> (u64, u64) {
    fail_each_operation_with(opts(sync), crash, false)
}

/// `fail_each_operation` with the given options. With `close_first`, the handle
/// is closed before the crash: `close` must report an earlier failed write, and
/// leave no temporary file behind unless it was a removal that failed.
fn fail_each_operation_with(o: Options, crash: fn(u64) -> Crash, close_first: bool) -> (u64, u64) {
    let (mut runs, mut fired) = (0, 0);
    for seed in 0..seeds() {
        let actions = workload(seed, 60);
        let baseline = MemFs::new();
        let (db, out) = run(&baseline, &o, &actions);
        assert!(!out.failed, "the workload fails without faults");
        drop(db);
        for op in ALL_OPS {
            // Background hint writes make counts vary a little between runs.
            let n = baseline.count(op) + 2;
            for nth in 1..=n {
                let fs = MemFs::new();
                fs.inject(Fault {
                    op,
                    nth,
                    errno: if nth % 2 == 0 { ENOSPC } else { EIO },
                    sticky: nth % 3 == 0,
                    short: nth % 2 == 1,
                });
                let (mut db, out) = run(&fs, &o, &actions);
                fired += fs.fired();
                runs += 1;
                let what = format!("seed {seed}: {op:?} #{nth} failed");
                if close_first {
                    if let Some(d) = db.take() {
                        let closed = d.close();
                        assert!(
                            out.in_flight.is_none() || closed.is_err(),
                            "{what}: close() after a failed write: {closed:?}"
                        );
                    }
                    let names = fs.names(Path::new(DIR));
                    assert!(
                        op == Op::Remove || !names.iter().any(|n| n.ends_with(".tmp")),
                        "{what}: temporary files left: {names:?}"
                    );
                }
                check_after_crash(&fs, &o, db, &out, crash(seed * 1_000_003 + nth), &what);
            }
        }
    }
    (runs, fired)
}

#[test]
fn injected_fault_then_power_loss_keeps_every_acknowledged_write() {
    let (runs, fired) = fail_each_operation(SyncPolicy::Always, |_| Crash::DropUnsynced);
    eprintln!("fault+power loss (drop unsynced): {runs} runs, {fired} faults fired");
    assert!(fired > runs / 2, "faults rarely fired: {fired} of {runs}");
}

#[test]
fn injected_fault_then_torn_power_loss_keeps_every_acknowledged_write() {
    let (runs, fired) = fail_each_operation(SyncPolicy::Always, Crash::Torn);
    eprintln!("fault+power loss (torn): {runs} runs, {fired} faults fired");
}

#[test]
fn injected_fault_then_process_crash_keeps_every_acknowledged_write_under_never() {
    let (runs, fired) = fail_each_operation(SyncPolicy::Never, |_| Crash::ProcessOnly);
    eprintln!("fault+process crash (sync Never): {runs} runs, {fired} faults fired");
}

/// The same with automatic merges racing the workload (the default), under
/// `Always` and a power loss, and under `Never` and `EveryMs` and a process crash.
#[test]
fn injected_fault_with_auto_merge_then_power_loss_keeps_every_acknowledged_write() {
    let (runs, fired) =
        fail_each_operation_with(opts_auto(SyncPolicy::Always), |_| Crash::DropUnsynced, true);
    eprintln!("fault+power loss, auto-merge: {runs} runs, {fired} faults fired");
}

#[test]
fn injected_fault_with_auto_merge_then_process_crash_under_never_and_every_ms() {
    for sync in [SyncPolicy::Never, SyncPolicy::EveryMs(1)] {
        let (runs, fired) = fail_each_operation_with(opts_auto(sync), |_| Crash::ProcessOnly, true);
        eprintln!("fault+process crash, auto-merge, {sync:?}: {runs} runs, {fired} faults fired");
    }
}

/// No fault: power is lost after every step of the workload, in both models.
#[test]
fn power_loss_after_every_step_keeps_every_acknowledged_write() {
    let mut crashes = 0;
    for seed in 0..seeds() {
        let actions = workload(100 + seed, 50);
        let o = opts(SyncPolicy::Always);
        for upto in 0..=actions.len() {
            for how in [Crash::DropUnsynced, Crash::Torn(seed + upto as u64)] {
                let fs = MemFs::new();
                let (db, out) = run(&fs, &o, &actions[..upto]);
                assert!(!out.failed);
                check_after_crash(&fs, &o, db, &out, how, &format!("seed {seed} step {upto}"));
                crashes += 1;
            }
        }
    }
    eprintln!("power loss after every step: {crashes} crashes");
}

/// Power loss during recovery itself (it truncates torn tails, rewrites hint
/// files, removes temporary files): crash at every filesystem operation of an open.
#[test]
fn power_loss_during_open_after_power_loss() {
    let o = opts(SyncPolicy::Always);
    let actions = workload(7, 60);
    let mut runs = 0;
    for op in CHANGING_OPS.into_iter().filter(|&op| op != Op::Create) {
        for nth in 1..=6 {
            let fs = MemFs::new();
            let (db, out) = run(&fs, &o, &actions);
            fs.crash(Crash::Torn(nth));
            drop(db);
            // Open fails at the injected operation (sticky: the disk is dying)...
            fs.inject(Fault {
                op,
                nth,
                errno: EIO,
                sticky: true,
                short: true,
            });
            let db = open(&fs, &o).ok();
            // ...then the power goes again; the next open must still recover.
            let what = format!("open failing at {op:?} #{nth}");
            check_after_crash(&fs, &o, db, &out, Crash::Torn(nth + 99), &what);
            runs += 1;
        }
    }
    eprintln!("power loss during open: {runs} runs");
}

/// A database on a read-only filesystem: open for writing fails with a clear
/// error naming the cause; a read-only open works.
#[test]
fn read_only_filesystem_fails_open_clearly() {
    let fs = MemFs::new();
    let db = open(&fs, &opts(SyncPolicy::Always)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    fs.set_read_only(true);
    let err = open(&fs, &opts(SyncPolicy::Always)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EROFS), "{err}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    let mut ro = opts(SyncPolicy::Always);
    ro.read_only = true;
    let db = open(&fs, &ro).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // A fresh directory on a read-only filesystem cannot even be created.
    let err = Bitcask::open_with_fs("/other", opts(SyncPolicy::Always), Arc::new(fs.process()))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EROFS), "{err}");
}

/// A write that fails leaves the handle refusing writes, but reads go on.
#[test]
fn failed_fsync_refuses_writes_until_reopen() {
    let fs = MemFs::new();
    let o = opts(SyncPolicy::Always);
    let db = open(&fs, &o).unwrap();
    db.put(b"a", b"1").unwrap();
    // The first durable write has the background thread make the spare next
    // file, with a sync of its own: the fault is for the write's sync.
    while !db.spare_ready() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    fs.inject(Fault {
        op: Op::Sync,
        nth: 1,
        errno: EIO,
        sticky: false,
        short: false,
    });
    assert!(db.put(b"b", b"2").is_err());
    assert!(matches!(
        db.put(b"c", b"3"),
        Err(Error::WritesRefused { .. })
    ));
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    drop(db);
    let db = open(&fs, &o).unwrap();
    db.put(b"c", b"3").unwrap();
    assert!(Path::new(DIR).is_absolute());
}

/// A merge that fails after one of its outputs is committed, then a delete and a
/// second merge, then power loss: the deleted key must stay deleted.
fn merge_fails_then_delete_and_merge(fault: Fault) {
    let fs = MemFs::new();
    let o = opts(SyncPolicy::Always);
    let db = open(&fs, &o).unwrap();
    db.put(b"k", b"old").unwrap();
    for i in 0..40u32 {
        db.put(format!("filler{}", i % 5).as_bytes(), &[7u8; 60])
            .unwrap();
    }
    // Let the background thread finish the hints of the files sealed so far: its
    // directory syncs would otherwise shift the count the fault is aimed by.
    for _ in 0..500 {
        let names = fs.names(Path::new(DIR));
        let count = |ext: &str| names.iter().filter(|n| n.ends_with(ext)).count();
        if count(".hint") + 1 >= count(".data") && count(".tmp") == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    fs.inject(fault);
    assert!(
        db.merge().is_err(),
        "the injected fault must fail the merge"
    );
    assert!(fs.fired() > 0);
    fs.clear_faults();
    db.delete(b"k").unwrap();
    for i in 0..40u32 {
        db.put(format!("filler{}", i % 5).as_bytes(), &[8u8; 60])
            .unwrap();
    }
    db.merge().unwrap();
    fs.crash(Crash::DropUnsynced);
    drop(db);
    let db = open(&fs, &o).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None, "a deleted key came back");
}

/// Found by `injected_fault_then_power_loss_keeps_every_acknowledged_write`: an
/// output committed (renamed) but then a failure (here the directory sync) left it
/// on disk unknown to the index.
#[test]
fn merge_fails_after_commit_no_key_comes_back() {
    // SyncDir #1 is the seal's new active file, #2 the output's hint, #3 its data.
    merge_fails_then_delete_and_merge(Fault {
        op: Op::SyncDir,
        nth: 3,
        errno: EIO,
        sticky: false,
        short: false,
    });
}

/// Found by the same scenario: the index forgot every input before removing them,
/// so a failed removal left inputs on disk unknown to the index.
#[test]
fn merge_fails_removing_inputs_no_key_comes_back() {
    merge_fails_then_delete_and_merge(Fault {
        op: Op::Remove,
        nth: 1,
        errno: EIO,
        sticky: false,
        short: false,
    });
}

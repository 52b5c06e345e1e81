//! Tests that kill or spawn real processes. They run one at a time: a child forked
//! while another test of this process holds a database open inherits that
//! descriptor until it execs, and would hold the writer lock for that moment.
//! `BITCASK_CRASH_ITERATIONS` sets the number of kills (default 50; `make soak`
//! raises it).

mod common;

use bitcask::{Bitcask, Error, Options, SyncPolicy, WriteBatch, WriteOptions};
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn kills() -> u64 {
    std::env::var("BITCASK_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

/// Runs the test `name` of this binary as a child with `env`, and SIGKILLs it
/// after `after`.
fn run_and_kill(name: &str, env: &[(&str, &str)], after: Duration) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(after);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Appends one line with a single `write(2)`: `writeln!` on a `File` makes one call
/// per formatted piece, and a kill between them left "A 1" for "A 12" in the log
/// (`batch_kill9_acknowledged_batches_are_whole` misread it as an acknowledgement).
fn log_line(log: &mut std::fs::File, line: &str) {
    log.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The acknowledgement log a child appends to in `dir`.
fn ack_log(dir: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(Path::new(dir).join("acklog.txt"))
        .unwrap()
}

/// The lines of a log that were written whole (a kill may cut the last one).
fn complete_lines(log: &str) -> impl Iterator<Item = &str> {
    let end = log.rfind('\n').map_or(0, |i| i + 1);
    log[..end].lines()
}

/// Run as a child process by `second_writer_in_child_process_is_locked`.
#[test]
fn child_process_open() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_OPEN") else {
        return;
    };
    match Bitcask::open(&dir, Options::default()) {
        Err(Error::Locked { .. }) => std::process::exit(42),
        Ok(_) => std::process::exit(0),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn second_writer_in_child_process_is_locked() {
    let _serial = serial();
    let dir = TempDir::new("lock2");
    let child = |dir: &std::path::Path| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_open",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BITCASK_TEST_CHILD_OPEN", dir)
            .status()
            .unwrap()
            .code()
    };
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    assert_eq!(child(dir.path()), Some(42));
    drop(db);
    assert_eq!(child(dir.path()), Some(0));
}

/// Child side of the mixed kill -9 tests: writes puts, deletes and batches from
/// this thread while another merges in a loop, logging each write before ("I",
/// then key/value pairs, "-" for a delete) and after ("A") it is acknowledged,
/// until killed. `BITCASK_TEST_SYNC` is `always`, or `never` (no write buffer, so
/// the OS holds every acknowledged write).
#[test]
fn child_merge_under_load() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_MERGE") else {
        return;
    };
    let seed: u64 = std::env::var("BITCASK_TEST_SEED").unwrap().parse().unwrap();
    let mut o = auto_merge_opts();
    o.sync = match std::env::var("BITCASK_TEST_SYNC").as_deref() {
        Ok("never") => SyncPolicy::Never,
        _ => SyncPolicy::Always,
    };
    o.write_buffer_size = 0;
    let db = Arc::new(Bitcask::open(Path::new(&dir), o).unwrap());
    let merger = db.clone();
    std::thread::spawn(move || loop {
        merger.merge().unwrap();
    });
    let mut log = ack_log(&dir);
    let mut rng = Rng(seed);
    loop {
        let ops: Vec<(String, String)> = (0..if rng.below(5) == 0 {
            2 + rng.below(4)
        } else {
            1
        })
            .map(|_| {
                let k = format!("k{:03}", rng.below(150));
                let v = if rng.below(4) == 0 {
                    "-".to_string()
                } else {
                    format!("v{}", rng.next())
                };
                (k, v)
            })
            .collect();
        let line: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        log_line(&mut log, &format!("I {}", line.join(" ")));
        if let [(k, v)] = &ops[..] {
            if v == "-" {
                db.delete(k.as_bytes()).unwrap();
            } else {
                db.put(k.as_bytes(), v.as_bytes()).unwrap();
            }
        } else {
            let mut b = WriteBatch::new();
            for (k, v) in &ops {
                if v == "-" {
                    b.delete(k.as_bytes());
                } else {
                    b.put(k.as_bytes(), v.as_bytes());
                }
            }
            db.write(&b).unwrap();
        }
        log_line(&mut log, "A");
    }
}

/// Applies a write's key/value pairs ("-" deletes) to the model.
fn apply_ops(model: &mut BTreeMap<String, String>, ops: &[(String, String)]) {
    for (k, v) in ops {
        if v == "-" {
            model.remove(k);
        } else {
            model.insert(k.clone(), v.clone());
        }
    }
}

#[test]
fn merge_crash_kill9_loses_nothing_acknowledged() {
    let _serial = serial();
    mixed_kill9("always");
}

#[test]
fn mixed_kill9_sync_never_loses_nothing_acknowledged() {
    let _serial = serial();
    mixed_kill9("never");
}

/// Kills the mixed child at random moments and checks the database against the
/// acknowledged log after each kill.
fn mixed_kill9(sync: &str) {
    let dir = TempDir::new(&format!("mixed-crash-{sync}"));
    let log_path = dir.path().join("acklog.txt");
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut consumed = 0usize;
    let (mut acked, mut max_id) = (0usize, 0u32);
    let mut rng = Rng(99);
    let kills = kills();
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
            .env("BITCASK_TEST_SYNC", sync)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(120)));
        child.kill().unwrap();
        child.wait().unwrap();

        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = complete_lines(&log).collect();
        let mut in_flight: Option<Vec<(String, String)>> = None;
        let start = consumed;
        for line in &lines[consumed..] {
            if *line == "A" {
                let ops = in_flight.take().expect("ack follows intent");
                apply_ops(&mut model, &ops);
            } else if let Some(rest) = line.strip_prefix("I ") {
                let words: Vec<&str> = rest.split(' ').collect();
                in_flight = Some(
                    words
                        .chunks_exact(2)
                        .map(|p| (p[0].to_string(), p[1].to_string()))
                        .collect(),
                );
            }
        }
        consumed = lines.len();
        let db = Bitcask::open(dir.path(), auto_merge_opts()).unwrap();
        if let Some(ops) = in_flight {
            // Not acknowledged: all of it or none of it may be there; adopt that.
            let mut with = model.clone();
            apply_ops(&mut with, &ops);
            let got: Vec<Option<String>> = ops
                .iter()
                .map(|(k, _)| {
                    db.get(k.as_bytes())
                        .unwrap()
                        .map(|b| String::from_utf8(b).unwrap())
                })
                .collect();
            let old: Vec<Option<String>> = ops.iter().map(|(k, _)| model.get(k).cloned()).collect();
            let new: Vec<Option<String>> = ops.iter().map(|(k, _)| with.get(k).cloned()).collect();
            assert!(
                got == old || got == new,
                "iteration {iter}: in-flight write {ops:?} half applied: {got:?}"
            );
            if got == new {
                model = with;
            }
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
        acked += lines[start..].iter().filter(|l| **l == "A").count();
        max_id = max_id.max(
            data_files(dir.path())
                .iter()
                .filter_map(|p| p.file_stem()?.to_str()?.parse::<u32>().ok())
                .max()
                .unwrap_or(0),
        );
        drop(db);
        // End a torn last line so the next child's lines start fresh.
        if !log.is_empty() && !log.ends_with('\n') {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .unwrap();
            writeln!(f).unwrap();
        }
    }
    eprintln!(
        "sync {sync}: {kills} kills, {acked} acknowledged writes checked, newest file id {max_id}"
    );
    assert!(acked > kills as usize * 5, "children barely wrote: {acked}");
    // Merges leave id gaps: a file id far beyond the number of rotations shows
    // that merges ran and committed while the children were killed.
    assert!(
        max_id > 1000,
        "no merge committed (newest file id {max_id})"
    );
}

/// Child side of `batch_kill9_acknowledged_batches_are_whole`: four threads write
/// synced batches, each setting all ten keys of one of its slots to the batch
/// number, and log each batch before ("I") and after ("A") it is acknowledged.
#[test]
fn child_batches_under_load() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_BATCH") else {
        return;
    };
    let mut o = auto_merge_opts();
    o.max_file_size = 64 << 10;
    let db = Arc::new(Bitcask::open(Path::new(&dir), o).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (db, dir) = (db.clone(), dir.clone());
            std::thread::spawn(move || {
                let mut log = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(Path::new(&dir).join(format!("batchlog-{t}.txt")))
                    .unwrap();
                let start: u64 = std::fs::read_to_string(Path::new(&dir).join(format!("next-{t}")))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                for n in start.. {
                    let slot = n % 8;
                    let mut b = WriteBatch::new();
                    for j in 0..10 {
                        b.put(
                            format!("t{t}-s{slot}-k{j}").as_bytes(),
                            n.to_string().as_bytes(),
                        );
                    }
                    // A delete in the batch too: it must land with the puts.
                    b.delete(format!("t{t}-gone-{}", n % 3).as_bytes());
                    b.put(format!("t{t}-gone-{}", (n + 1) % 3).as_bytes(), b"x");
                    log_line(&mut log, &format!("I {n}"));
                    db.write_opt(&b, WriteOptions { sync: true }).unwrap();
                    log_line(&mut log, &format!("A {n}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn batch_kill9_acknowledged_batches_are_whole() {
    let _serial = serial();
    let dir = TempDir::new("batch-crash");
    let mut rng = Rng(5);
    let mut total_acked = 0;
    let mut resolved: BTreeMap<(u64, u64), Option<u64>> = BTreeMap::new();
    for iter in 0..kills() {
        run_and_kill(
            "child_batches_under_load",
            &[("BITCASK_TEST_CHILD_BATCH", dir.path().to_str().unwrap())],
            Duration::from_millis(40 + rng.below(100)),
        );
        let db = Bitcask::open(dir.path(), auto_merge_opts()).unwrap();
        for t in 0..4u64 {
            let log = std::fs::read_to_string(dir.path().join(format!("batchlog-{t}.txt")))
                .unwrap_or_default();
            let (mut acked, mut last_intent) = (Vec::new(), 0u64);
            for line in complete_lines(&log) {
                match line.split_once(' ') {
                    // A torn "A " (killed mid-line) still acknowledges the intent.
                    Some(("A", n)) => acked.push(n.parse::<u64>().unwrap_or(last_intent)),
                    Some(("I", n)) => last_intent = n.parse().unwrap_or(last_intent),
                    _ => {}
                }
            }
            total_acked += acked.len();
            for slot in 0..8u64 {
                let vals: Vec<Option<u64>> = (0..10)
                    .map(|j| {
                        db.get(format!("t{t}-s{slot}-k{j}").as_bytes())
                            .unwrap()
                            .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
                    })
                    .collect();
                assert!(
                    vals.iter().all(|v| *v == vals[0]),
                    "iteration {iter}: thread {t} slot {slot} holds half a batch: {vals:?}"
                );
                // The slot must hold its newest durable batch: the newest acknowledged
                // one or the one seen at the last check (an unacknowledged batch that
                // did land), whichever is newer; or the batch in flight at the kill.
                let newest_acked = acked.iter().rev().find(|&&n| n % 8 == slot).copied();
                let seen = resolved.get(&(t, slot)).copied().flatten();
                let base = newest_acked.max(seen);
                let got = vals[0];
                let in_flight = last_intent % 8 == slot && Some(last_intent) > base;
                assert!(
                    got == base || (in_flight && got == Some(last_intent)),
                    "iteration {iter}: thread {t} slot {slot}: want {base:?}, got {got:?}"
                );
                resolved.insert((t, slot), got);
            }
            // The next child continues after the newest batch that may be on disk.
            std::fs::write(
                dir.path().join(format!("next-{t}")),
                (last_intent + 1).to_string(),
            )
            .unwrap();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.path().join(format!("batchlog-{t}.txt")))
                .unwrap();
            if !log.is_empty() && !log.ends_with('\n') {
                writeln!(f).unwrap();
            }
        }
        drop(db);
    }
    assert!(total_acked > 0, "children never acknowledged a batch");
}

/// Child side of `close_during_merge_then_reopen_in_another_process`: fills the
/// database, starts a slow merge on another thread, closes the handle in the
/// middle of it, says so, and stays alive, so that anything the merge still did
/// after `close` returned would happen while the parent has the database open.
#[test]
fn child_close_during_merge() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_CLOSE") else {
        return;
    };
    let mut o = auto_merge_opts();
    o.auto_merge = false;
    o.merge_bytes_per_sec = 2 << 20;
    let db = Arc::new(Bitcask::open(Path::new(&dir), o).unwrap());
    for round in 0..4u32 {
        for i in 0..2000u32 {
            db.put(
                format!("k{i:04}").as_bytes(),
                format!("v{round}-{i}").as_bytes(),
            )
            .unwrap();
        }
    }
    let merger = db.clone();
    std::thread::spawn(move || merger.merge());
    std::thread::sleep(Duration::from_millis(60));
    db.close().unwrap();
    std::fs::write(Path::new(&dir).join("closed"), b"").unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn close_during_merge_then_reopen_in_another_process() {
    let _serial = serial();
    let dir = TempDir::new("close-merge");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_close_during_merge",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BITCASK_TEST_CHILD_CLOSE", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = dir.path().join("closed");
    for _ in 0..3000 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(marker.exists(), "the child never closed");
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "LOCK")
            .collect();
        v.sort();
        v
    };
    // The lock is free the moment close returns, and nothing moves afterwards.
    let db = Bitcask::open(dir.path(), merge_opts()).expect("reopen while the child lives");
    let before = listing();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        listing(),
        before,
        "files changed after the child's close returned"
    );
    assert_eq!(db.len().unwrap(), 2000);
    for i in 0..2000u32 {
        let want = format!("v3-{i}").into_bytes();
        assert_eq!(db.get(format!("k{i:04}").as_bytes()).unwrap(), Some(want));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Child side of `backup_kill9_every_finished_backup_equals_the_model`: one thread
/// writes (logging "I key value" before each write, "-" for a delete, and
/// "A seq" after it), one merges in a loop, automatic merging runs at 5 ms, and
/// one takes backups into `backups/N`, logging "B seq N" after each.
#[test]
fn child_backups_under_load() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_BACKUP") else {
        return;
    };
    let dir = Path::new(&dir).to_path_buf();
    let db = Arc::new(Bitcask::open(dir.join("db"), auto_merge_opts()).unwrap());
    let merger = db.clone();
    std::thread::spawn(move || loop {
        let _ = merger.merge();
        std::thread::sleep(Duration::from_millis(3));
    });
    let backer = db.clone();
    let bdir = dir.clone();
    std::thread::spawn(move || {
        let mut log = std::fs::File::create(bdir.join("backups.log")).unwrap();
        std::fs::create_dir_all(bdir.join("backups")).unwrap();
        for n in 0.. {
            let seq = backer
                .backup(bdir.join("backups").join(n.to_string()))
                .unwrap();
            log_line(&mut log, &format!("B {seq} {n}"));
        }
    });
    let mut log = std::fs::File::create(dir.join("writes.log")).unwrap();
    let mut rng = Rng(std::process::id() as u64);
    loop {
        let k = format!("k{:03}", rng.below(200));
        let v = if rng.below(5) == 0 {
            "-".to_string()
        } else {
            format!("v{}", rng.next())
        };
        log_line(&mut log, &format!("I {k} {v}"));
        let seq = if v == "-" {
            db.delete(k.as_bytes()).unwrap()
        } else {
            db.put(k.as_bytes(), v.as_bytes()).unwrap()
        };
        log_line(&mut log, &format!("A {seq}"));
    }
}

#[test]
fn backup_kill9_every_finished_backup_equals_the_model() {
    let _serial = serial();
    let mut rng = Rng(77);
    let (mut checked, rounds) = (0, (kills() / 5).max(2));
    for round in 0..rounds {
        let dir = TempDir::new(&format!("backup-kill-{round}"));
        run_and_kill(
            "child_backups_under_load",
            &[("BITCASK_TEST_CHILD_BACKUP", dir.path().to_str().unwrap())],
            Duration::from_millis(150 + rng.below(200)),
        );
        // One writer: sequence numbers are consecutive, so the write in flight at
        // the kill, if it landed, has the number after the last acknowledged one.
        let writes = std::fs::read_to_string(dir.path().join("writes.log")).unwrap();
        let mut log: Vec<(u64, String, String)> = Vec::new();
        let mut intent: Option<(String, String)> = None;
        for line in complete_lines(&writes) {
            let w: Vec<&str> = line.split(' ').collect();
            match w[..] {
                ["I", k, v] => intent = Some((k.to_string(), v.to_string())),
                ["A", seq] => {
                    let (k, v) = intent.take().expect("ack after intent");
                    log.push((seq.parse().unwrap(), k, v));
                }
                _ => {}
            }
        }
        let next = log.last().map_or(1, |(s, _, _)| s + 1);
        if let Some((k, v)) = intent {
            log.push((next, k, v));
        }
        let backups = std::fs::read_to_string(dir.path().join("backups.log")).unwrap_or_default();
        for line in complete_lines(&backups) {
            let w: Vec<&str> = line.split(' ').collect();
            let (seq, n): (u64, &str) = (w[1].parse().unwrap(), w[2]);
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for (_, k, v) in log.iter().filter(|(s, _, _)| *s <= seq) {
                apply_ops(&mut model, &[(k.clone(), v.clone())]);
            }
            let copy = Bitcask::open(dir.path().join("backups").join(n), merge_opts())
                .unwrap_or_else(|e| panic!("round {round}: backup {n} does not open: {e}"));
            let got: BTreeMap<String, String> = copy
                .iter()
                .unwrap()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
                })
                .collect();
            assert_eq!(got, model, "round {round}: backup {n} at seq {seq}");
            checked += 1;
        }
    }
    eprintln!("{rounds} kills, {checked} finished backups checked against the model");
    assert!(
        checked >= rounds,
        "children barely finished a backup: {checked}"
    );
}

/// The clock of the TTL crash tests: `BITCASK_TEST_CLOCK_MS` plus the time
/// since this process started it, so that each child's time runs on from a
/// point the parent chose.
fn test_clock(base_ms: u64) -> bitcask::Clock {
    let start = std::time::Instant::now();
    bitcask::Clock(Arc::new(move || {
        base_ms + start.elapsed().as_millis() as u64
    }))
}

/// Child side of `ttl_kill9_expired_keys_never_return_unexpired_never_lost`:
/// puts with a short TTL (gone by the time the parent looks), a long TTL or
/// none, and deletes, over 200 keys, with auto-merge on, logging each write
/// before ("I key kind", kind s/l/n/d) and after ("A") it is acknowledged.
#[test]
fn child_ttl_writes() {
    let Ok(dir) = std::env::var("BITCASK_TEST_CHILD_TTL") else {
        return;
    };
    let base: u64 = std::env::var("BITCASK_TEST_CLOCK_MS")
        .unwrap()
        .parse()
        .unwrap();
    let seed: u64 = std::env::var("BITCASK_TEST_SEED").unwrap().parse().unwrap();
    let mut o = auto_merge_opts();
    o.clock = Some(test_clock(base));
    let db = Bitcask::open(Path::new(&dir), o).unwrap();
    let mut log = ack_log(&dir);
    let mut rng = Rng(seed);
    let value = vec![b'v'; 300];
    loop {
        let key = format!("t{:03}", rng.below(200));
        let kind = ["s", "l", "n", "d"][rng.below(4) as usize];
        log_line(&mut log, &format!("I {key} {kind}"));
        match kind {
            "s" => db.put_with_ttl(key.as_bytes(), &value, Duration::from_secs(2)),
            "l" => db.put_with_ttl(key.as_bytes(), &value, Duration::from_secs(864_000)),
            "n" => db.put(key.as_bytes(), &value),
            _ => db.delete(key.as_bytes()),
        }
        .unwrap();
        log_line(&mut log, "A");
    }
}

/// kill -9 while writing with and without TTLs, then reopen with the clock far
/// enough on that every short TTL has passed, merge, and check: an expired key
/// never comes back (not after the crash, not after the merge, not after the
/// next reopen), and an acknowledged key that has not expired is never lost.
#[test]
fn ttl_kill9_expired_keys_never_return_unexpired_never_lost() {
    let _serial = serial();
    let dir = TempDir::new("ttl-crash");
    let log_path = dir.path().join("acklog.txt");
    // key -> whether it must be visible once short TTLs have passed.
    let mut model: BTreeMap<String, bool> = BTreeMap::new();
    let mut consumed = 0usize;
    let mut rng = Rng(5);
    let base = 1_800_000_000_000u64;
    for iter in 0..kills().div_ceil(5) {
        // Each round's child starts after the previous parent's look.
        let child_base = base + iter * 200_000;
        run_and_kill(
            "child_ttl_writes",
            &[
                ("BITCASK_TEST_CHILD_TTL", dir.path().to_str().unwrap()),
                ("BITCASK_TEST_CLOCK_MS", &child_base.to_string()),
                ("BITCASK_TEST_SEED", &(700 + iter).to_string()),
            ],
            Duration::from_millis(50 + rng.below(150)),
        );
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = complete_lines(&log).collect();
        let mut in_flight = None;
        for line in &lines[consumed..] {
            if *line == "A" {
                let (k, kind): (String, String) = in_flight.take().expect("ack follows intent");
                model.insert(k, kind == "l" || kind == "n");
            } else if let Some(rest) = line.strip_prefix("I ") {
                let (k, kind) = rest.split_once(' ').unwrap();
                in_flight = Some((k.to_string(), kind.to_string()));
            }
        }
        consumed = lines.len();
        let mut o = auto_merge_opts();
        o.clock = Some(test_clock(child_base + 100_000));
        for round in 0..2 {
            let db = Bitcask::open(dir.path(), o.clone()).unwrap();
            if let Some((k, kind)) = &in_flight {
                // Not acknowledged: either outcome; adopt what is there.
                let there = db.contains(k.as_bytes()).unwrap();
                let old = model.get(k).copied().unwrap_or(false);
                let new = kind == "l" || kind == "n";
                assert!(
                    there == old || there == new,
                    "iteration {iter}: in-flight write of {k} ({kind}): {there}"
                );
                model.insert(k.clone(), there);
            }
            for (k, &live) in &model {
                assert_eq!(
                    db.contains(k.as_bytes()).unwrap(),
                    live,
                    "iteration {iter} round {round}: {k}"
                );
            }
            assert_eq!(
                db.len().unwrap(),
                model.values().filter(|&&l| l).count(),
                "iteration {iter} round {round}: len"
            );
            db.merge().unwrap();
            assert_eq!(db.len().unwrap(), model.values().filter(|&&l| l).count());
        }
    }
}

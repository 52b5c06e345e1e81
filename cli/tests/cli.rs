//! The `bitcask` binary run as a process on fixture databases made here: a clean
//! one, one with a flipped byte in an immutable file, one with a torn tail, one
//! with a damaged hint, and one locked by a writer in this process.

// The engine's own test helpers: temporary directories aside, the same files.
#[path = "../../tests/common/mod.rs"]
mod common;

use bitcask::{Bitcask, Options, WriteBatch};
use common::data_files;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The tests run one at a time: a child this process forks inherits every open
/// descriptor until it execs, the LOCK file's of another test's database too, and
/// would hold that writer lock for the moment (see tests/crash.rs).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitcask"))
}

/// Runs the tool with `args` (and `stdin`), returning its output.
fn run_in(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bitcask");
    // Written from a thread, while the output is read: a large input cannot
    // deadlock, and a tool that exits without reading it (a refused `load`) is
    // not an error here (the pipe breaks).
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn run(args: &[&str]) -> Output {
    run_in(args, b"")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}, stderr: {}",
        o.status,
        stderr(o)
    );
    stdout(o)
}

/// Asserts a failure with exit status `code` and one line on stderr containing `want`.
#[track_caller]
fn fails(o: &Output, code: i32, want: &str) {
    assert_eq!(o.status.code(), Some(code), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains(want), "stderr {err:?} lacks {want:?}");
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn small_files() -> Options {
    let mut o = Options::default();
    o.max_file_size = 1024;
    o.auto_merge = false;
    o
}

/// A database over several files (the early ones immutable, with hint files
/// after a merge) holding text keys, binary keys and empty values.
fn fixture(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = Bitcask::open(dir, small_files()).unwrap();
    put_values(&db, 0..60);
    for i in 0..20u32 {
        db.put(format!("key{i:03}").as_bytes(), b"overwritten")
            .unwrap();
    }
    db.delete(b"key059").unwrap();
    db.merge().unwrap();
    db.put(b"\x00\xff\n\tbin", b"\x00\x01\x02").unwrap();
    db.put(b"empty", b"").unwrap();
    let mut b = WriteBatch::new();
    b.put(b"batch1", b"one")
        .put(b"batch2", b"")
        .delete(b"key058");
    db.write(&b).unwrap();
    put_values(&db, 60..90);
    let state = contents(&db);
    db.close().unwrap();
    state
}

/// Puts `key{i:03}` = `value {i}` for every `i` in `range`.
fn put_values(db: &Bitcask, range: std::ops::Range<u32>) {
    for i in range {
        let (k, v) = (format!("key{i:03}"), format!("value {i}"));
        db.put(k.as_bytes(), v.as_bytes()).unwrap();
    }
}

/// Every key and value, in key order.
fn contents(db: &Bitcask) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.iter().unwrap().map(|kv| kv.unwrap()).collect()
}

/// Flips a byte inside the first hint file found in `dir`; returns its path.
fn damage_a_hint(dir: &Path) -> PathBuf {
    let hint = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hint"))
        .unwrap();
    let mut b = std::fs::read(&hint).unwrap();
    b[20] ^= 1;
    std::fs::write(&hint, b).unwrap();
    hint
}

fn state(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut o = Options::default();
    o.read_only = true;
    let db = Bitcask::open(dir, o).unwrap();
    let v = contents(&db);
    db.close().unwrap();
    v
}

/// Flips one byte in the middle of the first data file (an immutable one).
fn flip_byte(dir: &Path) -> (PathBuf, u64) {
    let files = data_files(dir);
    assert!(files.len() >= 3, "the fixture spans several files");
    let path = files[0].clone();
    let mut b = std::fs::read(&path).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    std::fs::write(&path, b).unwrap();
    (path, at as u64)
}

/// Appends half a record to the active (last) data file.
fn tear_tail(dir: &Path) -> PathBuf {
    let path = data_files(dir).pop().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0x55; 20]).unwrap();
    path
}

#[test]
fn help_lists_every_subcommand() {
    let _serial = serial();
    let out = ok(&run(&["--help"]));
    for c in [
        "stats", "get", "put", "delete", "scan", "merge", "verify", "dump", "load", "backup",
        "repair", "ttl",
    ] {
        assert!(out.contains(c), "{c} missing from --help");
    }
    let o = run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn put_get_delete_text_hex_and_stdin() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let d = s(&db);
    ok(&run(&["put", d, "greeting", "hello world"]));
    assert_eq!(ok(&run(&["get", d, "greeting"])), "hello world\n");
    // Value from stdin with `-`, and binary through --hex.
    ok(&run_in(&["put", d, "--hex", "00ff", "-"], b"\x00\x01\nraw"));
    assert_eq!(ok(&run(&["get", d, "--hex", "00ff"])), "00010a726177\n");
    ok(&run(&["put", "--hex", d, "0a0b", "ff00"]));
    assert_eq!(ok(&run(&["get", "--hex", d, "0a0b"])), "ff00\n");
    ok(&run(&["put", d, "empty", ""]));
    assert_eq!(ok(&run(&["get", d, "empty"])), "\n");
    ok(&run(&["delete", d, "greeting"]));
    fails(&run(&["get", d, "greeting"]), 1, "key not found");
    fails(&run(&["put", d, "--hex", "zz", "v"]), 2, "KEY is not hex");
    fails(
        &run(&["get", s(&t.path().join("missing")), "k"]),
        2,
        "no such database directory",
    );
    assert_eq!(
        state(&db),
        vec![
            (b"\x00\xff".to_vec(), b"\x00\x01\nraw".to_vec()),
            (b"\x0a\x0b".to_vec(), b"\xff\x00".to_vec()),
            (b"empty".to_vec(), b"".to_vec()),
        ]
    );
}

#[test]
fn stats_text_and_json() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let out = ok(&run(&["stats", s(t.path())]));
    assert!(
        out.contains(&format!("keys          {}", want.len())),
        "{out}"
    );
    let last = data_files(t.path()).pop().unwrap();
    let last = last.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(last), "{out}");
    let j = json_lines(&ok(&run(&["stats", "--json", s(t.path())])));
    assert_eq!(j.len(), 1);
    let j = &j[0];
    assert_eq!(j["keys"], want.len() as u64);
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), data_files(t.path()).len());
    let (live, dead): (u64, u64) = files.iter().fold((0, 0), |(l, d), f| {
        (
            l + f["live_bytes"].as_u64().unwrap(),
            d + f["dead_bytes"].as_u64().unwrap(),
        )
    });
    assert_eq!(j["live_bytes"], live);
    assert_eq!(j["dead_bytes"], dead);
    assert!(live > 0 && dead > 0);
    assert_eq!(j["merge_failures"], 0);
    assert!(j.get("last_merge").is_some());
}

#[test]
fn scan_prefix_range_reverse_limit_keys_only_json() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let d = s(t.path());
    let all = ok(&run(&["scan", d, "--json", "--hex"]));
    let got: Vec<(Vec<u8>, Vec<u8>)> = json_lines(&all)
        .iter()
        .map(|o| {
            let h = |k: &str| hex_decode(o[k].as_str().unwrap());
            (h("key_hex"), h("value_hex"))
        })
        .collect();
    assert_eq!(got, want);
    let out = ok(&run(&["scan", d, "--prefix", "key00", "--keys-only"]));
    let keys: Vec<String> = (0..10).map(|i| format!("key{i:03}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), keys);
    let out = ok(&run(&[
        "scan",
        d,
        "--start",
        "key010",
        "--end",
        "key013",
        "--reverse",
    ]));
    assert_eq!(
        out,
        "key012\toverwritten\nkey011\toverwritten\nkey010\toverwritten\n"
    );
    let out = ok(&run(&[
        "scan", d, "--limit", "2", "--json", "--prefix", "key08",
    ]));
    let j = json_lines(&out);
    assert_eq!(j.len(), 2);
    assert_eq!(j[0]["key"], "key080");
    assert_eq!(j[0]["value"], "value 80");
    // Binary keys in text mode are escaped, one line each.
    let out = ok(&run(&["scan", d, "--limit", "1"]));
    assert_eq!(out, "\\x00\\xff\\n\\tbin\t\\x00\\x01\\x02\n");
    let o = run(&["scan", d, "--prefix", "a", "--start", "b"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn merge_reclaims_and_reports() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = Bitcask::open(t.path(), small_files()).unwrap();
    for round in 0..5 {
        for i in 0..40u32 {
            db.put(
                format!("k{i}").as_bytes(),
                format!("round {round}").as_bytes(),
            )
            .unwrap();
        }
    }
    let want = contents(&db);
    db.close().unwrap();
    let j = json_lines(&ok(&run(&["merge", "--json", s(t.path())])));
    assert!(j[0]["files_in"].as_u64().unwrap() > 0, "{j:?}");
    assert!(j[0]["bytes_reclaimed"].as_u64().unwrap() > 0);
    assert_eq!(state(t.path()), want);
    assert_eq!(ok(&run(&["merge", s(t.path())])), "nothing to merge\n");
    ok(&run(&["verify", s(t.path())]));
}

#[test]
fn verify_clean_database_finds_nothing() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    assert!(std::fs::read_dir(t.path()).unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|e| e == "hint")));
    let out = ok(&run(&["verify", s(t.path())]));
    assert!(out.ends_with(" 0 problems\n"), "{out}");
    assert_eq!(out.lines().count(), 1);
    let j = json_lines(&ok(&run(&["verify", "--json", s(t.path())])));
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["problems"], 0);
}

#[test]
fn flipped_byte_in_an_immutable_file() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let (path, at) = flip_byte(t.path());
    let d = s(t.path());
    let o = run(&["verify", "--json", d]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json_lines(&stdout(&o));
    let (problems, summary) = j.split_at(j.len() - 1);
    assert!(summary[0]["problems"].as_u64().unwrap() >= 1);
    let p = problems
        .iter()
        .find(|p| p["file"] == s(&path))
        .expect("a problem in the damaged file");
    // The record holding the flipped byte starts at or before it.
    assert!(p["offset"].as_u64().unwrap() <= at, "{p:?}");
    // Text output names the file and offset.
    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&format!("{}: offset ", s(&path))));
    // Open trusts the file's hint; reading the damaged value fails, naming the
    // file. Without the hint, open scans the file and refuses the damage.
    ok(&run(&["stats", d]));
    fails(&run(&["scan", d]), 2, s(&path));
    std::fs::remove_file(path.with_extension("hint")).unwrap();
    fails(&run(&["stats", d]), 2, s(&path));
    // dump prints what is valid and reports the damage.
    let o = run(&["dump", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(s(&path)));
    assert!(stdout(&o).lines().count() > 10);
}

#[test]
fn damaged_hint_file() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let hint = damage_a_hint(t.path());
    let o = run(&["verify", s(t.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&format!("{}: offset 0: checksum mismatch", s(&hint))),
        "{}",
        stdout(&o)
    );
    // A hint from another version is named as such.
    let mut b = std::fs::read(&hint).unwrap();
    b[8] = 9;
    std::fs::write(&hint, b).unwrap();
    let o = run(&["verify", s(t.path())]);
    assert!(stdout(&o).contains("format version 9"), "{}", stdout(&o));
}

#[test]
fn torn_tail() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let path = tear_tail(t.path());
    let d = s(t.path());
    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains(s(&path)) && out.contains("torn tail"), "{out}");
    // Read-only commands see every complete write.
    let j = json_lines(&ok(&run(&["stats", "--json", d])));
    assert_eq!(j[0]["keys"], want.len() as u64);
    assert_eq!(j[0]["dropped_bytes_at_open"], 20);
    assert_eq!(ok(&run(&["get", d, "key089"])), "value 89\n");
    // A write truncates the tail; then the database verifies clean.
    ok(&run(&["put", d, "after", "tear"]));
    ok(&run(&["verify", d]));
}

#[test]
fn locked_by_another_handle() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let d = s(t.path());
    let writer = Bitcask::open(t.path(), small_files()).unwrap();
    // Read-only commands work beside the writer.
    let j = json_lines(&ok(&run(&["stats", "--json", d])));
    assert_eq!(j[0]["keys"], want.len() as u64);
    assert_eq!(ok(&run(&["get", d, "batch1"])), "one\n");
    assert_eq!(
        ok(&run(&["scan", d, "--keys-only"])).lines().count(),
        want.len()
    );
    ok(&run(&["verify", d]));
    ok(&run(&["dump", d]));
    let bk = t.path().join("backup");
    ok(&run(&["backup", d, s(&bk)]));
    // Writing commands fail with a clear message.
    for args in [
        vec!["put", d, "k", "v"],
        vec!["delete", d, "key000"],
        vec!["merge", d],
    ] {
        fails(&run(&args), 2, "locked by another writer");
    }
    writer.close().unwrap();
    assert_eq!(state(&bk), want);
}

#[test]
fn backup_copies_and_refuses_a_non_empty_destination() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path().join("db").as_path());
    let (d, bk) = (t.path().join("db"), t.path().join("bk"));
    let j = json_lines(&ok(&run(&["backup", "--json", s(&d), s(&bk)])));
    assert!(j[0]["seq"].as_u64().unwrap() > 0);
    assert_eq!(state(&bk), want);
    ok(&run(&["verify", s(&bk)]));
    fails(&run(&["backup", s(&d), s(&bk)]), 2, s(&bk));
}

#[test]
fn dump_load_round_trips_binary_keys_and_empty_values() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let want = fixture(&src);
    assert!(want.iter().any(|(_, v)| v.is_empty()));
    assert!(want.iter().any(|(k, _)| std::str::from_utf8(k).is_err()));
    let dump = ok(&run(&["dump", "--json", s(&src)]));
    let lines = json_lines(&dump);
    assert!(lines.iter().any(|r| r["tombstone"] == true));
    assert!(lines.iter().any(|r| r["write_end"] == false), "a batch");
    for r in &lines {
        assert!(r["file"].as_str().unwrap().ends_with(".data"));
        assert!(r["offset"].as_u64().unwrap() >= 16);
        assert!(r["seq"].as_u64().unwrap() > 0);
    }
    let dst = t.path().join("dst");
    let o = run_in(&["load", s(&dst)], dump.as_bytes());
    ok(&o);
    assert_eq!(state(&dst), want);
    // Into an existing database: refused.
    fails(&run_in(&["load", s(&dst)], dump.as_bytes()), 2, "not empty");
    // Bad input names the line.
    let t2 = t.path().join("bad");
    fails(
        &run_in(&["load", s(&t2)], b"{\"nope\": 1}\n"),
        2,
        "stdin line 1",
    );
    // Text dump: one line per record with file, offset, seq and flags.
    let text = ok(&run(&["dump", s(&src)]));
    assert_eq!(text.lines().count(), lines.len());
    assert!(text.contains("flags=TOMBSTONE|WRITE_END"));
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn keep_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect()
}

#[test]
fn repair_a_flipped_byte_keeps_the_original() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let (path, _) = flip_byte(t.path());
    let damaged = std::fs::read(&path).unwrap();
    let d = s(t.path());
    let out = ok(&run(&["repair", d]));
    assert!(out.contains(&format!("{}: dropped ", s(&path))), "{out}");
    assert!(out.contains("opens with"), "{out}");
    ok(&run(&["verify", d]));
    // The original, damage and all, is in the keep directory.
    let keep = keep_dirs(t.path());
    assert_eq!(keep.len(), 1);
    assert_eq!(
        std::fs::read(keep[0].join(path.file_name().unwrap())).unwrap(),
        damaged
    );
    // Only the damaged record's key lost its value (to an older one or none).
    let got = state(t.path());
    let lost = want.iter().filter(|kv| !got.contains(kv)).count();
    assert_eq!(lost, 1, "{got:?}");
    assert_eq!(
        ok(&run(&["repair", d])),
        format!("{d}: nothing to repair\n")
    );
}

#[test]
fn repair_a_torn_tail_and_a_damaged_hint() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let want = fixture(t.path());
    let path = tear_tail(t.path());
    let hint = damage_a_hint(t.path());
    let d = s(t.path());
    let out = ok(&run(&["repair", d]));
    assert!(
        out.contains(&format!("{}: dropped 20 bytes (0 records)", s(&path))),
        "{out}"
    );
    assert!(out.contains(&format!("{}: set aside", s(&hint))), "{out}");
    ok(&run(&["verify", d]));
    assert_eq!(state(t.path()), want);
}

#[test]
fn repair_refuses_a_locked_database() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    flip_byte(t.path());
    let _writer = {
        let mut o = small_files();
        o.salvage = true;
        Bitcask::open(t.path(), o).unwrap()
    };
    fails(
        &run(&["repair", s(t.path())]),
        2,
        "locked by another writer",
    );
    assert!(keep_dirs(t.path()).is_empty());
}

#[test]
fn put_with_ttl_then_ttl_dump_and_load_carry_the_expiry() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let d = s(&db);
    ok(&run(&["put", d, "--ttl", "3600", "session", "abc"]));
    ok(&run(&["put", d, "plain", "xyz"]));
    let left: f64 = ok(&run(&["ttl", d, "session"])).trim().parse().unwrap();
    assert!(left > 3590.0 && left <= 3601.0, "{left}");
    assert_eq!(ok(&run(&["ttl", d, "plain"])).trim(), "none");
    assert_eq!(run(&["ttl", d, "absent"]).status.code(), Some(1));
    for bad in ["0", "-1", "nan"] {
        assert_eq!(
            run(&["put", d, "--ttl", bad, "k", "v"]).status.code(),
            Some(2)
        );
    }
    // A short TTL runs out.
    ok(&run(&["put", d, "--ttl", "0.2", "brief", "v"]));
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(run(&["get", d, "brief"]).status.code(), Some(1));
    // dump shows the expiry; load keeps it, and loads an expired value as
    // the delete it has become.
    let dump = ok(&run(&["dump", d]));
    assert!(
        dump.contains("expires=") && dump.contains("EXPIRES"),
        "{dump}"
    );
    let json = ok(&run(&["dump", "--json", d]));
    assert!(json.contains("\"expires\""), "{json}");
    ok(&run(&["delete", d, "plain"]));
    let json = ok(&run(&["dump", "--json", d]));
    assert!(
        json.contains("\"target\""),
        "a tombstone names its file: {json}"
    );
    let copy = t.path().join("copy");
    ok(&run_in(&["load", s(&copy)], json.as_bytes()));
    let left: f64 = ok(&run(&["ttl", s(&copy), "session"]))
        .trim()
        .parse()
        .unwrap();
    assert!(left > 3590.0 && left <= 3601.0, "{left}");
    assert_eq!(run(&["get", s(&copy), "brief"]).status.code(), Some(1));
    assert_eq!(run(&["get", s(&copy), "plain"]).status.code(), Some(1));
    let j = json_lines(&ok(&run(&["stats", "--json", d])));
    assert_eq!(j[0]["keys"], 1);
    assert_eq!(j[0]["tombstones"], 1);
}

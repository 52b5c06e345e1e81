//! Hostile files and hostile surroundings: corrupt lengths, random bytes, the
//! committed fuzz seeds and crashes (replayed on stable Rust), file modes,
//! symlinks and a read-only mount.
#![cfg(feature = "fault-injection")]

mod common;

use bitcask::{fuzzing, Bitcask, Error, Options};
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Records the largest single allocation, so tests can show that a length read
/// from disk was never allocated.
struct Watch;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        unsafe { System.realloc(p, l, size) }
    }
}

#[global_allocator]
static WATCH: Watch = Watch;

const NO_BIG_ALLOC: usize = 64 << 20;

fn hostile_record(key_len: u32, value_len: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    // Format 2: crc (left zero) | flags WRITE_END | seq 1 | key_len | value_len.
    let mut r = vec![0u8; 4];
    r.push(2);
    varint(&mut r, 1);
    varint(&mut r, key_len as u64);
    varint(&mut r, value_len as u64);
    r.extend_from_slice(b"short");
    r
}

fn db_with_two_files(dir: &Path) {
    let mut o = small_files();
    o.max_file_size = 1024;
    let db = Bitcask::open(dir, o).unwrap();
    for i in 0..40u32 {
        db.put(format!("k{i}").as_bytes(), &[1u8; 40]).unwrap();
    }
    db.close().unwrap();
    for h in hint_files(dir) {
        std::fs::remove_file(h).unwrap();
    }
}

#[test]
fn corrupt_header_claiming_4gib_key_is_not_allocated() {
    for (key_len, value_len) in [(u32::MAX, 0), (65_535, 1 << 30), (1, u32::MAX)] {
        // In an immutable file: a clear error (or skipped with salvage).
        let dir = TempDir::new("hostile-mid");
        db_with_two_files(dir.path());
        let files = data_files(dir.path());
        let mut first = std::fs::read(&files[0]).unwrap();
        let at = first.len() - 20;
        first.splice(at.., hostile_record(key_len, value_len));
        std::fs::write(&files[0], &first).unwrap();
        match Bitcask::open(dir.path(), small_files()) {
            Err(Error::Corruption { .. }) => {}
            other => panic!("{key_len}/{value_len}: {other:?}"),
        }
        let mut o = small_files();
        o.salvage = true;
        Bitcask::open(dir.path(), o).unwrap();
        // At the end of the last file: a torn tail, truncated.
        let dir = TempDir::new("hostile-tail");
        db_with_two_files(dir.path());
        let last = data_files(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&hostile_record(key_len, value_len));
        std::fs::write(&last, &bytes).unwrap();
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        assert_eq!(db.len().unwrap(), 40);
        assert!(db.stats().unwrap().dropped_bytes_at_open > 0);
        drop(db);
        assert_eq!(std::fs::metadata(&last).unwrap().len() as usize, good);
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < NO_BIG_ALLOC, "allocated {largest} bytes");
}

/// The fuzz targets' committed seeds and every crash they found, on stable Rust.
#[test]
fn fuzz_seeds_and_crashes_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for target in ["record_decode", "hint_decode", "open_dir", "ops_model"] {
        for sub in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(sub).join(target)) else {
                continue;
            };
            for e in entries {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                match target {
                    "record_decode" => drop(fuzzing::decode_records(&data)),
                    "hint_decode" => drop(fuzzing::decode_hint(&data)),
                    "open_dir" => fuzzing::open_dir(&data),
                    _ => fuzzing::ops_model(&data),
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 8, "only {replayed} seeds found under fuzz/");
    assert!(LARGEST.load(Ordering::Relaxed) < NO_BIG_ALLOC);
}

/// Random directories and random operation sequences: the fuzz targets' bodies
/// with this crate's own random numbers (the stable-Rust stand-in for libFuzzer).
#[test]
fn random_bytes_directories_and_operations_never_panic() {
    let mut rng = Rng(0x0B17_CA5C);
    // Random damage to a real directory's bytes finds more than pure noise.
    let seed = open_dir_seed();
    for _ in 0..300 {
        let mut d = seed.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(d.len() as u64) as usize;
            d[at] = rng.next() as u8;
        }
        fuzzing::open_dir(&d);
        let n = 4 + rng.below(200) as usize;
        fuzzing::ops_model(&rng.bytes(n));
    }
    assert!(LARGEST.load(Ordering::Relaxed) < NO_BIG_ALLOC);
}

/// A real two-file directory with hint files, in `open_dir`'s input format.
fn open_dir_seed() -> Vec<u8> {
    let dir = TempDir::new("seed");
    let mut o = small_files();
    o.max_file_size = 1024;
    let db = Bitcask::open(dir.path(), o).unwrap();
    for i in 0..30u32 {
        let k = format!("k{}", i % 12);
        if i % 3 == 0 {
            // Records with an expiry, far in the future.
            db.put_with_ttl(k.as_bytes(), &[i as u8; 30], Duration::from_secs(1 << 30))
                .unwrap();
        } else {
            db.put(k.as_bytes(), &[i as u8; 30]).unwrap();
        }
        if i % 5 == 0 {
            db.delete(format!("k{}", i % 7).as_bytes()).unwrap();
        }
    }
    db.close().unwrap();
    let mut out = Vec::new();
    for name in fuzzing::OPEN_DIR_NAMES {
        let b = std::fs::read(dir.path().join(name)).unwrap_or_default();
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// Writes the fuzz seeds from real files: `BITCASK_WRITE_FUZZ_SEEDS=1 cargo test
/// --features fault-injection --test hostile write_fuzz_seeds`.
#[test]
fn write_fuzz_seeds() {
    if std::env::var_os("BITCASK_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let put = |target: &str, name: &str, data: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), data).unwrap();
    };
    // Format 1 seeds were written by the build before format 2 and stay as
    // they are; these are format 2.
    let dirbytes = open_dir_seed();
    put("open_dir", "v2-two-files-with-hints", &dirbytes);
    // Split the seed back into its files for the decoders.
    let mut files = Vec::new();
    let mut rest = &dirbytes[..];
    while rest.len() >= 2 {
        let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        files.push(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    put("record_decode", "v2-data-file-records", &files[0][16..]);
    put(
        "record_decode",
        "v2-claims-4gib-key",
        &hostile_record(u32::MAX, 0),
    );
    let mut hint = (files[0].len() as u64).to_le_bytes().to_vec();
    hint.extend_from_slice(&files[1]);
    put("hint_decode", "v2-hint-of-first-file", &hint);
    put("hint_decode", "v2-wrong-length", &hint[..hint.len() - 3]);
    put(
        "ops_model",
        "puts-and-merges",
        b"\x02\x05\x00\x00\x00a\x10\x01b\x20\x05\x00\x00\x02c\x30\x06\x00\x00\x05\x00\x00",
    );
    put(
        "ops_model",
        "torn-sticky-writes",
        b"\x02\x09\x0e\x07\x04a\x10\x04b\x20\x03a\x00\x05\x00\x00\x00c\x30",
    );
}

/// Data files, hint files and the lock file are created 0644 less the umask.
#[test]
fn files_are_created_0644_masked_by_umask() {
    let dir = TempDir::new("modes");
    #[allow(unsafe_code)]
    let old = unsafe { libc::umask(0o027) };
    let mut o = small_files();
    o.max_file_size = 1024;
    let db = Bitcask::open(dir.path(), o).unwrap();
    for i in 0..40u32 {
        db.put(format!("k{}", i % 4).as_bytes(), &[1u8; 40])
            .unwrap();
    }
    db.merge().unwrap();
    db.close().unwrap();
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(old)
    };
    use std::os::unix::fs::PermissionsExt;
    let mut seen = 0;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", p.display());
        seen += 1;
    }
    assert!(seen >= 4);
}

/// A merged data file that is a symlink to a file outside the directory: the
/// merge removes the link, never the file it points to.
#[test]
fn merge_never_deletes_through_a_symlink() {
    let dir = TempDir::new("symlink");
    let outside = TempDir::new("symlink-target");
    db_with_two_files(dir.path());
    let first = data_files(dir.path()).remove(0);
    let target = outside.path().join("precious.data");
    std::fs::rename(&first, &target).unwrap();
    std::os::unix::fs::symlink(&target, &first).unwrap();
    let db = Bitcask::open(dir.path(), small_files()).unwrap();
    // Overwrite everything: every old file is dead and gets merged away.
    for i in 0..40u32 {
        db.put(format!("k{i}").as_bytes(), b"new").unwrap();
    }
    db.merge().unwrap();
    assert_eq!(db.get(b"k0").unwrap().as_deref(), Some(&b"new"[..]));
    drop(db);
    assert!(
        target.exists(),
        "the merge deleted a file outside the database"
    );
    assert!(
        std::fs::symlink_metadata(&first).is_err(),
        "the merged link should be gone"
    );
}

/// Child side of `read_only_mount_fails_open_clearly`: runs inside a private
/// mount namespace where `BITCASK_TEST_RO_DIR` is a read-only bind mount.
#[test]
fn child_read_only_mount() {
    let Ok(dir) = std::env::var("BITCASK_TEST_RO_DIR") else {
        return;
    };
    let err = Bitcask::open(&dir, Options::default()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    let mut o = Options::default();
    o.read_only = true;
    let db = Bitcask::open(&dir, o).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    println!("read-only mount checked");
}

/// Root ignores a directory's permission bits, so the read-only case is a real
/// read-only bind mount, made in a private mount namespace (`unshare -m`) so that
/// nothing outlives the test. Where that is not allowed the test says so and the
/// error path is covered by `faults::read_only_filesystem_fails_open_clearly`.
#[test]
fn read_only_mount_fails_open_clearly() {
    let dir = TempDir::new("ro");
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let d = dir.path().display().to_string();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount --bind '{d}' '{d}' && mount -o remount,ro,bind '{d}' || exit 77; \
         exec '{}' --exact child_read_only_mount --nocapture --test-threads=1",
        exe.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("BITCASK_TEST_RO_DIR", &d)
        .output();
    match out {
        Ok(o) if o.status.code() == Some(77) || (!o.status.success() && o.stdout.is_empty()) => {
            eprintln!(
                "read-only mount not possible here (not root?): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && stdout.contains("read-only mount checked"),
                "{stdout}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Err(e) => eprintln!("unshare not available: {e}"),
    }
}

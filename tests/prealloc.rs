//! Preallocation (`Options::preallocate`, docs/format.md *Preallocation*): the
//! active file is zero-filled ahead of durable writes, the next file is made
//! ahead, and open tells the written end from the zeros exactly.

mod common;

use bitcask::{Bitcask, CommitTrace, CommitTracer, Options, SyncPolicy, WriteBatch, WriteOptions};
use common::{assert_matches, data_files, Rng, TempDir};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn durable() -> Options {
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    o
}

fn put_many(db: &Bitcask, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let k = format!("key{:05}", rng.below(5000)).into_bytes();
        // Values of every length, some ending in zeros like the preallocated
        // space after them.
        let len = rng.below(300) as usize;
        let mut v = rng.bytes(len);
        if rng.below(4) == 0 {
            v.extend_from_slice(&[0; 17]);
        }
        db.put(&k, &v).unwrap();
        model.insert(k, v);
    }
}

fn tmp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Length on disk of the last data file, and the length of its data.
fn last_file(db: &Bitcask, dir: &Path) -> (u64, u64) {
    let path = data_files(dir).pop().unwrap();
    let data = db.stats().unwrap().files.last().unwrap().total_bytes;
    (fs::metadata(path).unwrap().len(), data)
}

#[test]
fn prealloc_durable_writes_run_ahead_and_close_trims_to_the_data() {
    let dir = TempDir::new("prealloc-trim");
    let mut model = BTreeMap::new();
    let mut rng = Rng(7);
    {
        let db = Bitcask::open(dir.path(), durable()).unwrap();
        put_many(&db, &mut model, &mut rng, 500);
        let (on_disk, data) = last_file(&db, dir.path());
        assert!(
            on_disk >= data + (512 << 10),
            "zero-filled ahead: {on_disk} on disk for {data} of data"
        );
        let st = db.stats().unwrap();
        assert!(st.preallocated_bytes >= on_disk - data, "{st:?}");
        assert_eq!(st.data_bytes, data, "disk use counts written bytes");
        db.close().unwrap();
    }
    assert_eq!(
        tmp_files(dir.path()),
        Vec::<String>::new(),
        "the spare goes at close"
    );
    let db = Bitcask::open(dir.path(), durable()).unwrap();
    let (on_disk, data) = last_file(&db, dir.path());
    assert_eq!(on_disk, data, "a closed file is exactly its data");
    assert_eq!(db.stats().unwrap().dropped_bytes_at_open, 0);
    assert_matches(&db, &model);
}

#[test]
fn prealloc_waits_for_a_durable_write() {
    let dir = TempDir::new("prealloc-lazy");
    let mut model = BTreeMap::new();
    let db = Bitcask::open(dir.path(), Options::default()).unwrap();
    put_many(&db, &mut model, &mut Rng(3), 300);
    let (on_disk, data) = last_file(&db, dir.path());
    assert_eq!(
        on_disk, data,
        "writes that are not durable do not pay for zeros"
    );
    assert_eq!(db.stats().unwrap().preallocated_bytes, 0);
    let mut b = WriteBatch::new();
    b.put(b"now", b"durable");
    db.write_opt(&b, WriteOptions { sync: true }).unwrap();
    model.insert(b"now".to_vec(), b"durable".to_vec());
    // The zeros are written by the background thread.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (on_disk, data) = last_file(&db, dir.path());
        if on_disk > data {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one durable write starts preallocation"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_matches(&db, &model);
}

#[test]
fn prealloc_off_keeps_files_at_their_data() {
    let dir = TempDir::new("prealloc-off");
    let mut o = durable();
    o.preallocate = false;
    let db = Bitcask::open(dir.path(), o).unwrap();
    let mut model = BTreeMap::new();
    put_many(&db, &mut model, &mut Rng(5), 200);
    let (on_disk, data) = last_file(&db, dir.path());
    assert_eq!(on_disk, data);
    assert_eq!(db.stats().unwrap().preallocated_bytes, 0);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(tmp_files(dir.path()), Vec::<String>::new(), "no spare");
}

/// A crash leaves the zeros; open keeps them as space, drops nothing, and the
/// writes after it go into them.
#[test]
fn prealloc_tail_after_a_crash_is_reused_not_dropped() {
    let dir = TempDir::new("prealloc-crash");
    let mut model = BTreeMap::new();
    let mut rng = Rng(11);
    for round in 0..3 {
        let db = Bitcask::open(dir.path(), durable()).unwrap();
        assert_eq!(
            db.stats().unwrap().dropped_bytes_at_open,
            0,
            "round {round}: preallocated zeros are not dropped bytes"
        );
        assert_matches(&db, &model);
        put_many(&db, &mut model, &mut rng, 200);
        // As kill -9 would leave it: no close, no trim.
        std::mem::forget(db);
        let bytes = fs::read(data_files(dir.path()).pop().unwrap()).unwrap();
        assert_eq!(
            *bytes.last().unwrap(),
            0,
            "round {round}: a zero tail is left"
        );
        // Release the lock the forgotten handle holds, as a dead process would.
        fs::remove_file(dir.path().join("LOCK")).unwrap();
    }
    let db = Bitcask::open(dir.path(), durable()).unwrap();
    assert_matches(&db, &model);
}

/// Damage in the zeros: a torn record at the written end, or stray bytes after
/// a zero page. Nothing valid follows either, so both are a torn tail, cut at
/// open: never corruption, never a lost acknowledged write.
#[test]
fn prealloc_torn_write_into_the_zeros_is_a_torn_tail() {
    for (case, stray_at) in [("torn record", 0usize), ("stray page", 4096)] {
        let dir = TempDir::new("prealloc-torn");
        let mut model = BTreeMap::new();
        {
            let db = Bitcask::open(dir.path(), durable()).unwrap();
            put_many(&db, &mut model, &mut Rng(13), 100);
            std::mem::forget(db);
        }
        fs::remove_file(dir.path().join("LOCK")).unwrap();
        let path = data_files(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        // Find the data's end by opening a copy read-only: the last record may
        // end in zero bytes of its own.
        let data_end = {
            let db = Bitcask::open(dir.path(), {
                let mut o = durable();
                o.read_only = true;
                o
            })
            .unwrap();
            db.stats().unwrap().files.last().unwrap().total_bytes as usize
        };
        assert!(data_end >= end - 17 && data_end <= bytes.len());
        let garbage = [0xA5u8, 0x3C, 0x01, 0x09, 0x7F, 0xEE, 0x42];
        let at = data_end + stray_at;
        bytes[at..at + garbage.len()].copy_from_slice(&garbage);
        fs::write(&path, &bytes).unwrap();
        let db = Bitcask::open(dir.path(), durable())
            .unwrap_or_else(|e| panic!("{case}: open failed: {e}"));
        assert_matches(&db, &model);
        assert_eq!(
            db.stats().unwrap().dropped_bytes_at_open,
            (stray_at + garbage.len()) as u64,
            "{case}: the bytes up to the last stray one are dropped"
        );
        db.put(b"after", b"ok").unwrap();
        model.insert(b"after".to_vec(), b"ok".to_vec());
        drop(db);
        let db = Bitcask::open(dir.path(), durable()).unwrap();
        assert_matches(&db, &model);
    }
}

/// Under durable load with small files, a rotation renames the spare in: no
/// put waits for a file to be created, written and synced (the commit trace
/// says which way each rotation went).
#[test]
fn prealloc_rotation_under_durable_load_takes_the_spare() {
    let dir = TempDir::new("prealloc-rotate");
    let traces: Arc<Mutex<Vec<CommitTrace>>> = Default::default();
    let mut o = durable();
    o.max_file_size = 64 << 10;
    o.auto_merge = false;
    let t = traces.clone();
    o.commit_trace = Some(CommitTracer(Arc::new(move |c: &CommitTrace| {
        t.lock().unwrap().push(c.clone())
    })));
    let db = Bitcask::open(dir.path(), o).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng(17);
    // The first durable write asks for the spare.
    put_many(&db, &mut model, &mut rng, 1);
    let mut rotations = 0;
    while rotations < 8 {
        // Before the file fills, the background thread has had its chance to
        // make the spare: wait until it has, so the test does not race it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !db.spare_ready() {
            assert!(Instant::now() < deadline, "no spare was made");
            std::thread::sleep(Duration::from_millis(1));
        }
        let files = db.stats().unwrap().files.len();
        while db.stats().unwrap().files.len() == files {
            put_many(&db, &mut model, &mut rng, 10);
        }
        rotations += 1;
    }
    let traces = traces.lock().unwrap();
    let rotated: Vec<bool> = traces.iter().filter_map(|c| c.rotated_to_spare).collect();
    assert_eq!(rotated.len(), 8, "one trace per rotation");
    assert!(
        rotated.iter().all(|&s| s),
        "every rotation took the spare: {rotated:?}"
    );
    assert_matches(&db, &model);
    for f in &data_files(dir.path())[..data_files(dir.path()).len() - 1] {
        let bytes = fs::read(f).unwrap();
        let st = db.stats().unwrap();
        let id: u32 = f.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let total = st.files.iter().find(|s| s.id == id).unwrap().total_bytes;
        assert_eq!(
            bytes.len() as u64,
            total,
            "sealed file {id} is trimmed to its data"
        );
    }
    drop(db);
    let db = Bitcask::open(dir.path(), durable()).unwrap();
    assert_matches(&db, &model);
}

/// The same under every sync policy, with the defaults on (automatic merges
/// included) and a write buffer: one durable write starts preallocation, the
/// writes after it land in the zeros, and a process crash (the OS keeps every
/// byte it was handed) leaves a zero tail that open neither drops nor reports.
#[cfg(feature = "fault-injection")]
#[test]
fn prealloc_tail_after_a_process_crash_under_every_sync_policy() {
    use bitcask::fs::memfs::{Crash, MemFs};
    use std::path::Path;
    let policies = [
        (SyncPolicy::Always, 0),
        (SyncPolicy::EveryMs(5), 0),
        (SyncPolicy::Never, 0),
        (SyncPolicy::Never, 64 << 10),
    ];
    for (sync, buffer) in policies {
        let what = format!("{sync:?}, write buffer {buffer}");
        let fs = MemFs::new();
        let mut o = Options::default();
        assert!(o.auto_merge && o.preallocate);
        o.sync = sync;
        o.write_buffer_size = buffer;
        let mut model = BTreeMap::new();
        let mut rng = Rng(23);
        for round in 0..3 {
            let db = Bitcask::open_with_fs("/db", o.clone(), Arc::new(fs.process())).unwrap();
            assert_eq!(
                db.stats().unwrap().dropped_bytes_at_open,
                0,
                "{what}, round {round}: preallocated zeros are not dropped bytes"
            );
            assert_matches(&db, &model);
            let mut b = WriteBatch::new();
            b.put(b"durable", format!("round {round}").as_bytes());
            db.write_opt(&b, WriteOptions { sync: true }).unwrap();
            model.insert(b"durable".to_vec(), format!("round {round}").into_bytes());
            put_many(&db, &mut model, &mut rng, 200);
            // The buffer's bytes reach the OS before the crash.
            db.sync().unwrap();
            fs.crash(Crash::ProcessOnly);
            drop(db);
            let mut names = fs.names(Path::new("/db"));
            names.retain(|n| n.ends_with(".data"));
            names.sort();
            let last = fs
                .read_file(&Path::new("/db").join(names.last().unwrap()))
                .unwrap();
            assert_eq!(
                *last.last().unwrap(),
                0,
                "{what}, round {round}: a zero tail is left"
            );
        }
        let db = Bitcask::open_with_fs("/db", o, Arc::new(fs.process())).unwrap();
        assert_eq!(db.stats().unwrap().dropped_bytes_at_open, 0, "{what}");
        assert_matches(&db, &model);
    }
}

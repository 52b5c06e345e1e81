//! Events: background work and recovery are visible, through the listener and
//! through the `log` facade, with their fields.
#![cfg(feature = "fault-injection")]

mod common;

use bitcask::fs::memfs::{Fault, MemFs, Op, EIO};
use bitcask::{Bitcask, Error, Event, EventKind, EventListener, Options, SyncPolicy};
use common::*;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Options with a listener that keeps every event.
fn listening(mut o: Options) -> (Options, Arc<Mutex<Vec<Event>>>) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let s = seen.clone();
    o.event_listener = Some(EventListener(Arc::new(move |e: &Event| {
        s.lock().unwrap().push(e.clone())
    })));
    (o, seen)
}

/// Waits (bounded) for an event of `kind`: delivery is asynchronous.
fn wait_for(seen: &Mutex<Vec<Event>>, kind: EventKind) -> Event {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(e) = seen.lock().unwrap().iter().find(|e| e.kind == kind) {
            return e.clone();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no {kind:?} event; saw {:?}", seen.lock().unwrap());
}

fn fault(op: Op, sticky: bool) -> Fault {
    Fault {
        op,
        nth: 1,
        errno: EIO,
        sticky,
        short: false,
    }
}

#[test]
fn events_dropped_at_open_names_the_file_offset_and_bytes() {
    let dir = TempDir::new("ev-dropped");
    let mut o = small_files();
    o.max_file_size = 1 << 20;
    {
        let db = Bitcask::open(dir.path(), o.clone()).unwrap();
        db.put(b"a", b"1").unwrap();
        db.put(b"b", b"2").unwrap();
    }
    let last = data_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(b"torn write!");
    std::fs::write(&last, &bytes).unwrap();
    std::fs::remove_file(last.with_extension("hint")).ok();
    let (o, seen) = listening(o);
    let db = Bitcask::open(dir.path(), o).unwrap();
    let e = wait_for(&seen, EventKind::DroppedAtOpen);
    assert_eq!(e.file.as_deref(), Some(last.as_path()));
    assert_eq!(e.offset, Some(len));
    assert_eq!(e.bytes, Some(11));
    assert_eq!(db.stats().unwrap().dropped_bytes_at_open, 11);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn events_salvaged_at_open_on_a_salvage_open() {
    let dir = TempDir::new("ev-salvage");
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        for i in 0..200u32 {
            db.put(format!("k{i:04}").as_bytes(), &[b'v'; 40]).unwrap();
        }
    }
    let first = data_files(dir.path())[0].clone();
    std::fs::remove_file(first.with_extension("hint")).ok();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[200] ^= 0xFF;
    std::fs::write(&first, &bytes).unwrap();
    let (mut o, seen) = listening(small_files());
    assert!(matches!(
        Bitcask::open(dir.path(), o.clone()),
        Err(Error::Corruption { .. })
    ));
    o.salvage = true;
    let db = Bitcask::open(dir.path(), o).unwrap();
    let e = wait_for(&seen, EventKind::SalvagedAtOpen);
    assert_eq!(e.file.as_deref(), Some(first.as_path()));
    assert!(e.offset.unwrap() <= 200);
    assert!(e.bytes.unwrap() > 0);
    assert_eq!(e.bytes, Some(db.stats().unwrap().salvaged_bytes_at_open));
}

#[test]
fn events_merge_completed_and_failed() {
    let fs = MemFs::new();
    let mut o = merge_opts();
    o.max_file_size = 4096;
    let (o, seen) = listening(o);
    let db = Bitcask::open_with_fs("/db", o, Arc::new(fs.clone())).unwrap();
    for round in 0..3 {
        for i in 0..100u32 {
            db.put(format!("k{i:03}").as_bytes(), format!("{round}").as_bytes())
                .unwrap();
        }
    }
    fs.inject(fault(Op::Rename, true));
    let err = db.merge().unwrap_err();
    let e = wait_for(&seen, EventKind::MergeFailed);
    assert_eq!(
        e.error.as_ref().map(|e| e.to_string()),
        Some(err.to_string())
    );
    assert!(e.file.is_some(), "{e}");
    fs.clear_faults();
    let m = db.merge().unwrap();
    let e = wait_for(&seen, EventKind::MergeCompleted);
    assert_eq!(e.bytes, Some(m.bytes_reclaimed));
    assert_eq!(e.duration, Some(m.duration));
}

#[test]
fn events_writes_refused_after_a_failed_sync_once() {
    let fs = MemFs::new();
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    let (o, seen) = listening(o);
    let db = Bitcask::open_with_fs("/db", o, Arc::new(fs.clone())).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.inject(fault(Op::Sync, true));
    assert!(db.put(b"b", b"2").is_err());
    assert!(matches!(
        db.put(b"c", b"3"),
        Err(Error::WritesRefused { .. })
    ));
    let e = wait_for(&seen, EventKind::WritesRefused);
    assert!(matches!(e.error, Some(Error::Io { .. })), "{e}");
    assert!(e.file.as_deref().is_some_and(|p| p.starts_with("/db")));
    std::thread::sleep(Duration::from_millis(50));
    let n = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::WritesRefused)
        .count();
    assert_eq!(n, 1, "reported once, not per refused write");
}

#[test]
fn events_slow_sync_reports_the_duration() {
    let dir = TempDir::new("ev-slow");
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    // Every sync is "slow" at a zero threshold; none is with no threshold.
    o.slow_sync_threshold = None;
    let (quiet, quiet_seen) = listening(o.clone());
    {
        let db = Bitcask::open(dir.path(), quiet).unwrap();
        db.put(b"a", b"1").unwrap();
    }
    o.slow_sync_threshold = Some(Duration::ZERO);
    let (o, seen) = listening(o);
    let db = Bitcask::open(dir.path(), o).unwrap();
    db.put(b"a", b"2").unwrap();
    let e = wait_for(&seen, EventKind::SlowSync);
    assert!(e.duration.is_some());
    assert!(e.file.as_deref().is_some_and(|p| p.starts_with(dir.path())));
    assert!(quiet_seen.lock().unwrap().is_empty());
}

/// A record as logged: level, message, fields.
type Logged = (log::Level, String, Vec<(String, String)>);

/// A `log` logger keeping the records of target `bitcask` with their fields.
struct Keep(Mutex<Vec<Logged>>);

impl log::Log for Keep {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target() == "bitcask"
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        struct Kv(Vec<(String, String)>);
        impl<'k> log::kv::VisitSource<'k> for Kv {
            fn visit_pair(
                &mut self,
                k: log::kv::Key<'k>,
                v: log::kv::Value<'k>,
            ) -> Result<(), log::kv::Error> {
                self.0.push((k.to_string(), v.to_string()));
                Ok(())
            }
        }
        let mut kv = Kv(Vec::new());
        r.key_values().visit(&mut kv).unwrap();
        self.0
            .lock()
            .unwrap()
            .push((r.level(), r.args().to_string(), kv.0));
    }

    fn flush(&self) {}
}

#[test]
fn events_reach_the_log_facade_with_structured_fields() {
    static LOGGER: OnceLock<&'static Keep> = OnceLock::new();
    let logger = *LOGGER.get_or_init(|| Box::leak(Box::new(Keep(Mutex::new(Vec::new())))));
    log::set_logger(logger).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let dir = TempDir::new("ev-log");
    {
        let db = Bitcask::open(dir.path(), small_files()).unwrap();
        db.put(b"a", b"1").unwrap();
    }
    let last = data_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(b"xyz");
    std::fs::write(&last, &bytes).unwrap();
    std::fs::remove_file(last.with_extension("hint")).ok();
    // No listener: the log alone.
    let _db = Bitcask::open(dir.path(), small_files()).unwrap();
    let t = Instant::now();
    let rec = loop {
        // Other tests of this binary log too: take this one's record.
        let mine = |r: &&Logged| {
            r.2.iter()
                .any(|(_, v)| v.contains(&*dir.path().to_string_lossy()))
        };
        let got = logger.0.lock().unwrap().iter().find(mine).cloned();
        if let Some(r) = got {
            break r;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "nothing logged");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(rec.0, log::Level::Warn);
    assert!(rec.1.starts_with("dropped_at_open"), "{}", rec.1);
    let field = |k: &str| rec.2.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("event").as_deref(), Some("dropped_at_open"));
    assert_eq!(field("bytes").as_deref(), Some("3"));
    assert_eq!(
        field("file").as_deref(),
        Some(last.display().to_string().as_str())
    );
    assert!(field("offset").is_some());
}

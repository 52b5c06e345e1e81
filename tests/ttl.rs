//! Per-key expiry, checked against a model under a model clock: random puts with
//! and without TTL, batches, deletes, clock steps, merges (manual and
//! automatic) and reopens; the database equals the model at every step.

mod common;

use bitcask::{Bitcask, Clock, Error, KeyTtl, Options, WriteBatch};
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A clock the test moves by hand, in ms since the epoch.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> TestClock {
        // Mid-second, so that rounding up to whole seconds shows.
        TestClock(Arc::new(AtomicU64::new(1_800_000_000_500)))
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    fn opts(&self, base: Options) -> Options {
        let mut o = base;
        let c = self.0.clone();
        o.clock = Some(Clock(Arc::new(move || c.load(Ordering::SeqCst))));
        o
    }
}

/// What the model holds per key: the value and its expiry (ms), if any.
type TtlModel = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

/// The expiry the engine gives a write made at `now` with `ttl_ms`: whole
/// seconds, rounded up.
fn expiry(now: u64, ttl_ms: u64) -> u64 {
    (now + ttl_ms).div_ceil(1000) * 1000
}

fn visible(model: &TtlModel, now: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    model
        .iter()
        .filter(|(_, (_, e))| e.is_none_or(|e| now < e))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

/// Everything a reader can ask agrees with the model at `now`.
fn check(db: &Bitcask, model: &TtlModel, now: u64, step: usize) {
    let want = visible(model, now);
    assert_matches(db, &want);
    assert_eq!(db.len().unwrap(), want.len(), "step {step}: len");
    assert_eq!(db.stats().unwrap().keys, want.len() as u64, "step {step}");
    assert_eq!(
        db.keys().unwrap(),
        want.keys().cloned().collect::<Vec<_>>(),
        "step {step}: keys"
    );
    let rev: Vec<Vec<u8>> = db
        .range::<&[u8]>(.., true)
        .unwrap()
        .map(|kv| kv.unwrap().0)
        .collect();
    assert_eq!(rev.len(), want.len(), "step {step}: reverse iteration");
    let pre: Vec<_> = db
        .prefix(b"k1", false)
        .unwrap()
        .map(|kv| kv.unwrap())
        .collect();
    let want_pre: Vec<_> = want
        .iter()
        .filter(|(k, _)| k.starts_with(b"k1"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(pre, want_pre, "step {step}: prefix scan");
    for (k, (_, e)) in model {
        let got = db.key_ttl(k).unwrap();
        let expect = match e {
            None => KeyTtl::Persistent,
            Some(e) if now < *e => KeyTtl::Remaining(Duration::from_millis(e - now)),
            Some(_) => KeyTtl::Missing,
        };
        assert_eq!(
            got,
            expect,
            "step {step}: ttl of {:?}",
            String::from_utf8_lossy(k)
        );
        assert_eq!(db.contains(k).unwrap(), expect != KeyTtl::Missing);
    }
}

fn model_run(seed: u64, base: Options) {
    let clock = TestClock::new();
    let dir = TempDir::new("ttl-model");
    let opts = clock.opts(base);
    let mut db = Bitcask::open(dir.path(), opts.clone()).unwrap();
    let mut model = TtlModel::new();
    let mut rng = Rng(seed);
    for step in 0..1500 {
        let now = clock.now();
        let key = format!("k{}", rng.below(60)).into_bytes();
        match rng.below(100) {
            0..=29 => {
                let n = 1 + rng.below(40) as usize;
                let v = rng.bytes(n);
                db.put(&key, &v).unwrap();
                model.insert(key, (v, None));
            }
            30..=59 => {
                let n = 1 + rng.below(40) as usize;
                let v = rng.bytes(n);
                let ttl = 1 + rng.below(4000);
                db.put_with_ttl(&key, &v, Duration::from_millis(ttl))
                    .unwrap();
                model.insert(key, (v, Some(expiry(now, ttl))));
            }
            60..=69 => {
                db.delete(&key).unwrap();
                model.remove(&key);
            }
            70..=74 => {
                let mut b = WriteBatch::new();
                for _ in 0..1 + rng.below(4) {
                    let k = format!("k{}", rng.below(60)).into_bytes();
                    match rng.below(3) {
                        0 => {
                            b.put(&k, b"batch");
                            model.insert(k, (b"batch".to_vec(), None));
                        }
                        1 => {
                            let ttl = 1 + rng.below(3000);
                            b.put_with_ttl(&k, b"batch-ttl", Duration::from_millis(ttl));
                            model.insert(k, (b"batch-ttl".to_vec(), Some(expiry(now, ttl))));
                        }
                        _ => {
                            b.delete(&k);
                            model.remove(&k);
                        }
                    }
                }
                db.write(&b).unwrap();
            }
            75..=89 => clock.advance(rng.below(1500)),
            90..=95 => {
                db.merge().unwrap();
            }
            _ => {
                db.close().unwrap();
                drop(db);
                db = Bitcask::open(dir.path(), opts.clone()).unwrap();
            }
        }
        if step % 10 == 0 {
            check(&db, &model, clock.now(), step);
        }
    }
    // Far past every expiry: after a merge, nothing that expired is on disk.
    clock.advance(10_000);
    db.merge().unwrap();
    check(&db, &model, clock.now(), usize::MAX);
    drop(db);
    let db = Bitcask::open(dir.path(), opts).unwrap();
    check(&db, &model, clock.now(), usize::MAX);
    let mut ttl_values = 0;
    for f in data_files(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        ttl_values += bytes.windows(9).filter(|w| w == b"batch-ttl").count();
    }
    let live_batch_ttl = visible(&model, clock.now())
        .values()
        .filter(|v| v.as_slice() == b"batch-ttl")
        .count();
    assert_eq!(ttl_values, live_batch_ttl, "expired values left on disk");
}

#[test]
fn ttl_model_manual_merges() {
    for seed in 1..=3 {
        model_run(seed, small_files());
    }
}

#[test]
fn ttl_model_automatic_merges_and_defaults() {
    let mut o = auto_merge_opts();
    o.merge_trigger_fragmentation = 1;
    model_run(7, o);
}

#[test]
fn ttl_rounds_up_to_whole_seconds_and_rewrite_without_ttl_persists() {
    let clock = TestClock::new();
    let dir = TempDir::new("ttl-round");
    let db = Bitcask::open(dir.path(), clock.opts(small_files())).unwrap();
    let now = clock.now();
    db.put_with_ttl(b"a", b"1", Duration::from_millis(1))
        .unwrap();
    // Mid-second plus 1 ms: lives to the end of this second.
    assert_eq!(
        db.ttl(b"a").unwrap(),
        Some(Duration::from_millis(expiry(now, 1) - now))
    );
    clock.advance(499);
    assert!(db.contains(b"a").unwrap());
    clock.advance(1);
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.key_ttl(b"a").unwrap(), KeyTtl::Missing);
    db.put_with_ttl(b"b", b"2", Duration::from_secs(10))
        .unwrap();
    db.put(b"b", b"3").unwrap();
    clock.advance(20_000);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(db.key_ttl(b"b").unwrap(), KeyTtl::Persistent);
    assert_eq!(db.ttl(b"b").unwrap(), None);
    for bad in [Duration::ZERO, Duration::from_secs(u32::MAX as u64)] {
        match db.put_with_ttl(b"c", b"x", bad) {
            Err(Error::InvalidOption { name: "ttl", .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(db.get(b"c").unwrap(), None);
}

#[test]
fn ttl_default_applies_to_puts_that_name_none() {
    let clock = TestClock::new();
    let dir = TempDir::new("ttl-default");
    let mut o = clock.opts(small_files());
    o.default_ttl = Some(Duration::from_secs(5));
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    db.put(b"d", b"default").unwrap();
    db.put_with_ttl(b"e", b"own", Duration::from_secs(60))
        .unwrap();
    clock.advance(6_000);
    assert_eq!(db.get(b"d").unwrap(), None);
    assert!(db.get(b"e").unwrap().is_some());
    drop(db);
    // Under a millisecond rounds up, never down to "no expiry".
    o.default_ttl = Some(Duration::from_micros(400));
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    db.put(b"f", b"brief").unwrap();
    assert!(db.ttl(b"f").unwrap().is_some());
    drop(db);
    o.default_ttl = Some(Duration::ZERO);
    assert!(matches!(
        Bitcask::open(dir.path(), o),
        Err(Error::InvalidOption {
            name: "default_ttl",
            ..
        })
    ));
}

#[test]
fn ttl_clock_set_back_keeps_expired_keys_expired_while_open() {
    let clock = TestClock::new();
    let dir = TempDir::new("ttl-clock");
    let db = Bitcask::open(dir.path(), clock.opts(small_files())).unwrap();
    let t0 = clock.now();
    db.put_with_ttl(b"k", b"v", Duration::from_secs(2)).unwrap();
    clock.advance(3_000);
    assert_eq!(db.get(b"k").unwrap(), None);
    clock.set(t0);
    assert_eq!(
        db.get(b"k").unwrap(),
        None,
        "came back when the clock went back"
    );
    assert_eq!(db.len().unwrap(), 0);
}

/// A merge may drop an expired value only where nothing older outside the merge
/// holds its key: else a tombstone takes its place, and the old value stays
/// hidden. The automatic merge leaves the old files out (little garbage each).
#[test]
fn ttl_expired_value_over_an_older_file_stays_hidden_after_merges() {
    let clock = TestClock::new();
    let dir = TempDir::new("ttl-hide");
    let mut o = clock.opts(merge_opts());
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    // Three full files of persistent values...
    let big = vec![7u8; 1000];
    for i in 0..48u32 {
        db.put(format!("old{i:02}").as_bytes(), &big).unwrap();
    }
    // ...then one key of each rewritten with a TTL, among short-lived fillers,
    // in newer files.
    let ttl = Duration::from_secs(5);
    for i in 0..20u32 {
        if i % 7 == 0 {
            db.put_with_ttl(format!("old{:02}", i / 7 * 16).as_bytes(), &big, ttl)
                .unwrap();
        }
        db.put_with_ttl(format!("tmp{i:02}").as_bytes(), &big, ttl)
            .unwrap();
    }
    assert_eq!(db.len().unwrap(), 68);
    drop(db);
    clock.advance(10_000);
    o.auto_merge = true;
    o.merge_check_interval = Duration::from_millis(5);
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    for _ in 0..500 {
        if db
            .stats()
            .unwrap()
            .last_merge
            .is_some_and(|m| m.expired_dropped > 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = db.stats().unwrap();
    let m = st.last_merge.clone().expect("an automatic merge ran");
    assert_eq!(m.expired_dropped, 23, "{m:?}");
    // Which keys the old files hold is not known without reading them: every
    // expired value leaves a tombstone while they stay.
    assert_eq!(m.tombstones_kept, 23, "{m:?}");
    assert_eq!(db.len().unwrap(), 45);
    drop(db);
    o.auto_merge = false;
    let db = Bitcask::open(dir.path(), o.clone()).unwrap();
    assert_eq!(db.len().unwrap(), 45);
    for i in 0..48u32 {
        let got = db.get(format!("old{i:02}").as_bytes()).unwrap();
        assert_eq!(got.is_some(), i % 16 != 0, "old{i:02}");
    }
    // Once the old files are merged away too, the tombstones go with them.
    db.put(b"newest", b"x").unwrap();
    db.merge().unwrap();
    assert_eq!(db.stats().unwrap().tombstones, 0);
    drop(db);
    let db = Bitcask::open(dir.path(), o).unwrap();
    assert_eq!(db.len().unwrap(), 46);
    for i in 0..48u32 {
        let got = db.get(format!("old{i:02}").as_bytes()).unwrap();
        assert_eq!(got.is_some(), i % 16 != 0, "old{i:02}");
    }
}

/// Tombstones name the file of the value they delete: once every file up to
/// that one is merged away, a merge drops them, even while other older files
/// that hold none of their keys stay.
#[test]
fn tombstones_are_dropped_once_the_files_they_name_are_gone() {
    let dir = TempDir::new("tomb-target");
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    let v = vec![1u8; 200];
    for i in 0..300u32 {
        db.put(format!("gone{i:03}").as_bytes(), &v).unwrap();
    }
    for i in 0..300u32 {
        db.put(format!("stay{i:03}").as_bytes(), &v).unwrap();
    }
    for i in 0..300u32 {
        db.delete(format!("gone{i:03}").as_bytes()).unwrap();
    }
    // A last write so that no tombstone carries the newest sequence number.
    db.put(b"last", b"x").unwrap();
    assert_eq!(db.stats().unwrap().tombstones, 300);
    db.merge().unwrap();
    db.merge().unwrap();
    let st = db.stats().unwrap();
    assert_eq!(st.tombstones, 0, "{:?}", st.last_merge);
    assert_eq!(db.len().unwrap(), 301);
    drop(db);
    let db = Bitcask::open(dir.path(), merge_opts()).unwrap();
    assert_eq!(db.stats().unwrap().tombstones, 0);
    assert_eq!(db.len().unwrap(), 301);
    for i in 0..300u32 {
        assert_eq!(db.get(format!("gone{i:03}").as_bytes()).unwrap(), None);
    }
}

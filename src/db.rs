//! The engine: ties the log, the keydir, the writer and the background thread
//! together behind [`Bitcask`].
//!
//! Locks, in the order they may be taken: the write queue's leadership, then
//! `writer`, then the write buffer's `flushing`, then `index` or the buffer's
//! `state` (never both at once by one thread). Reads take only `index` (shared)
//! and, with a write buffer, its `state` briefly; no lock a read takes is ever
//! held across I/O.

use crate::batch::WriteBatch;
use crate::datafile::{self, DataFile, Reads, ScanEnd};
use crate::error::{Error, Result};
use crate::event::{deliver, Event, EventKind};
use crate::format::*;
use crate::fs::{Fs, RealFs};
use crate::hint::HintWriter;
use crate::keydir::{KeyChunk, KeyDir, Loc};
use crate::lock::DirLock;
use crate::merge::{MergeStats, Selection};
use crate::options::{Options, SyncPolicy};
use crate::prealloc::{self, Prealloc};
use crate::record;
use crate::recovery;
use crate::snapshot::{Old, Pin, Snapshot, Versions};
use crate::stats::{FileStats, Stats};
use crate::write::{Request, WriteQueue};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A data file and what the keydir says of its bytes.
pub(crate) struct FileInfo {
    pub file: Arc<DataFile>,
    /// File length, header included.
    pub total: u64,
    /// Bytes of records the keydir points at.
    pub live: u64,
    /// Bytes of tombstones. What is neither live nor tombstone (nor the header)
    /// is garbage: overwritten and deleted values, which a merge always drops.
    pub tomb: u64,
    /// Number of tombstones.
    pub tombs: u64,
    /// The highest file id a tombstone here names as holding what it deleted
    /// (its own id for a version 1 tombstone); 0 without tombstones. Once every
    /// file up to it is merged away, none of them hides anything.
    pub max_target: u32,
}

impl FileInfo {
    pub fn new(file: Arc<DataFile>, total: u64) -> FileInfo {
        FileInfo {
            file,
            total,
            live: 0,
            tomb: 0,
            tombs: 0,
            max_target: 0,
        }
    }

    /// Overwritten and deleted values: what merging this file surely reclaims.
    pub fn garbage(&self) -> u64 {
        self.total
            .saturating_sub(FILE_HEADER_LEN as u64 + self.live + self.tomb)
    }
}

/// The record that carries the newest sequence number. While no newer write
/// exists, a merge must keep it (or a copy): open restores the next sequence
/// number from the highest one on disk. A tombstone kept only for that is not
/// reclaimable, so it never triggers a merge by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Newest {
    pub file_id: u32,
    pub seq: u64,
    /// Record length, when the record is a tombstone (0 for a value).
    pub tomb_len: u64,
}

/// The keydir and the files it points into, under one lock so that a reader always
/// finds the file of the location it looked up.
#[derive(Default)]
pub(crate) struct Index {
    pub keydir: KeyDir,
    pub files: BTreeMap<u32, FileInfo>,
    pub newest: Option<Newest>,
    /// Keydir entries that expire, counted by (expiry second, file): how many,
    /// and their record bytes. Keys without expiry are not here, so they cost
    /// nothing; with it, `len` is exact and a merge knows what expiry reclaims.
    pub expiring: BTreeMap<(u32, u32), (u64, u64)>,
    /// The sequence number of the last write the keydir holds.
    pub seq: u64,
    /// Open snapshots and the versions they may still read.
    pub versions: Versions,
}

/// Whether a value with this expiry (0: never) is gone at `now_ms`.
pub(crate) fn expired(expires: u32, now_ms: u64) -> bool {
    expires != 0 && u64::from(expires) * 1000 <= now_ms
}

impl Index {
    /// Points `key` at `loc`; returns what it replaced.
    pub fn apply_put(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        let old = self.keydir.insert(key, loc);
        if let Some(old) = &old {
            self.unlive(old);
        }
        self.note_live(&loc);
        old
    }

    /// Removes `key`; returns what it held.
    pub fn apply_delete(&mut self, key: &[u8]) -> Option<Loc> {
        let old = self.keydir.remove(key);
        if let Some(old) = &old {
            self.unlive(old);
        }
        old
    }

    /// Counts a location the keydir now holds.
    pub fn note_live(&mut self, loc: &Loc) {
        if let Some(f) = self.files.get_mut(&loc.file_id) {
            f.live += loc.rec_len as u64;
        }
        note_expiring(&mut self.expiring, loc);
    }

    pub fn unlive(&mut self, old: &Loc) {
        if let Some(f) = self.files.get_mut(&old.file_id) {
            f.live = f.live.saturating_sub(old.rec_len as u64);
        }
        if old.expires != 0 {
            let k = (old.expires, old.file_id);
            if let Some(e) = self.expiring.get_mut(&k) {
                e.0 -= 1;
                e.1 -= old.rec_len as u64;
                if e.0 == 0 {
                    self.expiring.remove(&k);
                }
            }
        }
    }

    /// Keys visible at `now_ms`: the keydir's entries less the expired ones.
    pub fn live_keys(&self, now_ms: u64) -> u64 {
        let expired: u64 = self
            .expiring
            .range(..=(expired_through(now_ms), u32::MAX))
            .map(|(_, (n, _))| n)
            .sum();
        self.keydir.len() as u64 - expired
    }

    /// Record bytes of expired values per file at `now_ms`.
    pub fn expired_bytes(&self, now_ms: u64) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for (&(_, file), &(_, bytes)) in self.expiring.range(..=(expired_through(now_ms), u32::MAX))
        {
            *out.entry(file).or_default() += bytes;
        }
        out
    }

    /// Tombstone bytes of file `id` that a merge must keep whatever it selects.
    pub fn pinned(&self, id: u32) -> u64 {
        match self.newest {
            Some(n) if n.file_id == id => n.tomb_len,
            _ => 0,
        }
    }

    /// The location of `key`, unless it has expired by `now()` (asked only of a
    /// key that expires), and the file holding it; as of sequence number `at`
    /// when given (a snapshot's), else now.
    fn locate(
        &self,
        key: &[u8],
        at: Option<u64>,
        now: impl Fn() -> u64,
    ) -> Option<(Loc, Arc<DataFile>)> {
        if let Some(old) = at.and_then(|seq| self.versions.at(key, seq)) {
            let (loc, file) = old.as_ref()?;
            if loc.expires != 0 && expired(loc.expires, now()) {
                return None;
            }
            return Some((*loc, file.clone()));
        }
        let loc = self.keydir.get(key)?;
        if loc.expires != 0 && expired(loc.expires, now()) {
            return None;
        }
        let file = self.files.get(&loc.file_id)?.file.clone();
        Some((loc, file))
    }
}

/// A location the keydir held, with its file: still in the index, as a merge
/// removes a file only once no keydir entry points into it.
fn with_file(files: &BTreeMap<u32, FileInfo>, loc: Option<Loc>) -> Old {
    let loc = loc?;
    Some((loc, files.get(&loc.file_id)?.file.clone()))
}

/// Whether no key lies between `lower` and `upper`.
pub(crate) fn empty_range(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
            l >= u
        }
        _ => false,
    }
}

/// The last expiry second that has passed at `now_ms`.
fn expired_through(now_ms: u64) -> u32 {
    (now_ms / 1000).min(u32::MAX as u64) as u32
}

/// What a key's expiry is, as [`Bitcask::key_ttl`] reports it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key, or it expired.
    Missing,
    /// The key never expires.
    Persistent,
    /// The key expires after this much more time.
    Remaining(Duration),
}

/// A data file of a backup's cut: id, handle, and the length to copy.
pub(crate) type CutFile = (u32, Arc<DataFile>, u64);

/// Writes not yet handed to the OS (only with `write_buffer_size > 0`). Readers
/// take `state` only to look for a value, never across I/O: a flush moves the
/// bytes it writes to `in_flight`, writes them under `flushing` alone, and only
/// then moves `start` past them.
struct WriteBuf {
    /// Serialises flushes (a write leader and `sync`); readers never take it.
    flushing: Mutex<()>,
    state: Mutex<Buffered>,
}

struct Buffered {
    file_id: u32,
    /// File offset of the first byte not yet written: of `in_flight`, or of
    /// `data` when nothing is in flight.
    start: u64,
    /// Bytes a flush is writing at `start`.
    in_flight: Option<Arc<Vec<u8>>>,
    /// Bytes after those, not yet handed to a flush.
    data: Vec<u8>,
}

impl Buffered {
    /// The value of a record still held here, if it is. The buffer holds records
    /// this process encoded, so its headers are trusted.
    fn value(&self, loc: &Loc) -> Option<Vec<u8>> {
        if loc.file_id != self.file_id || (loc.offset as u64) < self.start {
            return None;
        }
        let mut at = (loc.offset as u64 - self.start) as usize;
        let mut held = &self.data[..];
        if let Some(f) = &self.in_flight {
            if at < f.len() {
                held = &f[..];
            } else {
                at -= f.len();
            }
        }
        let rec = held.get(at..at + loc.rec_len as usize)?;
        let h = record::parse_header(FORMAT_VERSION, rec).ok()?;
        Some(record::key_value(&h, rec).1.to_vec())
    }
}

impl WriteBuf {
    /// Hands every buffered byte of `file` to the OS. On failure the bytes stay
    /// buffered (reads still find them; writes are refused from then on).
    fn flush(&self, file: &DataFile) -> Result<()> {
        let _one = self.flushing.lock();
        let (bytes, at) = {
            let mut b = self.state.lock();
            if b.file_id != file.id || b.data.is_empty() {
                return Ok(());
            }
            let bytes = Arc::new(std::mem::take(&mut b.data));
            b.in_flight = Some(bytes.clone());
            (bytes, b.start)
        };
        let res = append_or_cut(file, at, &bytes);
        let mut b = self.state.lock();
        b.in_flight = None;
        let mut bytes = Arc::try_unwrap(bytes).unwrap_or_else(|a| a.to_vec());
        if res.is_ok() {
            b.start += bytes.len() as u64;
            if b.data.is_empty() {
                // Keep the allocation for the next writes.
                bytes.clear();
                b.data = bytes;
            }
        } else {
            bytes.extend_from_slice(&b.data);
            b.data = bytes;
        }
        res
    }

    /// Appends `bytes` to `file` directly, after every buffered byte.
    fn write_through(&self, file: &DataFile, bytes: &[u8]) -> Result<()> {
        self.flush(file)?;
        let _one = self.flushing.lock();
        let at = self.state.lock().start;
        append_or_cut(file, at, bytes)?;
        self.state.lock().start += bytes.len() as u64;
        Ok(())
    }
}

/// Writes `bytes` at `len`, the end of `file`'s data. A failed write may have
/// written part of them: the file is cut there again, so that nothing is ever
/// written after bytes of unknown state (writes are refused after the failure
/// anyway); a preallocated tail goes with them.
fn append_or_cut(file: &DataFile, len: u64, bytes: &[u8]) -> Result<()> {
    file.file.write_at(bytes, len).map_err(|e| {
        let _ = file.file.set_len(len);
        Error::io("appending to", &file.path, e)
    })
}

/// Times the phases of a commit for `Options::commit_trace`; reads no clock
/// when there is no tracer.
struct Lap {
    at: Option<Instant>,
    trace: crate::options::CommitTrace,
}

impl Lap {
    fn new(on: bool) -> Lap {
        Lap {
            at: on.then(Instant::now),
            trace: Default::default(),
        }
    }

    /// Time since the last lap.
    fn lap(&mut self) -> Duration {
        match &mut self.at {
            Some(t) => {
                let now = Instant::now();
                let d = now - *t;
                *t = now;
                d
            }
            None => Duration::ZERO,
        }
    }
}

/// State only the write leader touches.
struct Writer {
    active: Arc<DataFile>,
    /// Logical length of the active file, buffered bytes included.
    len: u64,
    /// Length of the file itself: past `len` it holds only zeros, preallocated.
    alloc: u64,
    /// A zero-fill of this file failed: it grows with its writes from then on.
    prealloc_failed: bool,
    /// The last rotation renamed the spare in (for the commit trace).
    rotated_to_spare: bool,
    /// A zero-fill of the active file from this offset on is in flight.
    filling: Option<u64>,
    next_seq: u64,
    scratch: Vec<u8>,
}

enum Job {
    /// Write the hint file of a data file that just became immutable.
    Hint(u32),
    /// Hand an event to the log and the listener.
    Event(Box<Event>),
    Stop,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) opts: Options,
    pub(crate) index: RwLock<Index>,
    writer: Mutex<Option<Writer>>,
    queue: WriteQueue,
    buffer: Option<WriteBuf>,
    /// How values are read, from `Options::mmap`.
    pub(crate) reads: Reads,
    pub(crate) active_id: AtomicU32,
    closed: AtomicBool,
    /// Held for the whole of a merge: one at a time.
    pub(crate) merge_lock: Mutex<()>,
    /// Expiry's time source (the wall clock unless a test gives one), and the
    /// latest time it has shown: expiry never runs backwards.
    clock: Option<crate::options::Clock>,
    clock_ms: AtomicU64,
    /// While a merge runs: the highest id its outputs may take. A tombstone
    /// names at least this file, since a copy of the value it deletes may be in
    /// an output (copied before the delete, never moved to).
    tombstone_floor: AtomicU32,
    /// Outcomes of merges since open, and the automatic merge's backoff.
    pub(crate) merge_state: Mutex<crate::merge::MergeState>,
    /// The automatic merge in progress, if any.
    merge_thread: Mutex<Option<JoinHandle<()>>>,
    /// Unsynced writes exist (for `SyncPolicy::EveryMs`).
    dirty: AtomicBool,
    /// Zeros ahead of the active file's data and the spare next file.
    prealloc: Arc<Prealloc>,
    /// Counters for `Stats`: fdatasyncs of data files, writes committed, and the
    /// groups (appends) they were committed in.
    syncs: AtomicU64,
    writes: AtomicU64,
    write_groups: AtomicU64,
    refused: Mutex<Option<String>>,
    lock: Mutex<Option<DirLock>>,
    background: Mutex<Option<(mpsc::Sender<Job>, JoinHandle<()>)>>,
    dropped_bytes: u64,
    salvaged_bytes: u64,
}

/// An open database. `Send + Sync`: share it between threads (behind an `Arc` or by
/// reference); reads run in parallel, writes are merged into group commits.
pub struct Bitcask {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Bitcask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitcask")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Per-write options.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// fdatasync before returning, whatever the database's sync policy.
    pub sync: bool,
}

/// The wall clock, in milliseconds since the epoch.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Bitcask {
    /// Opens the database in `dir`, creating the directory if it is missing. A
    /// writable open takes the directory's writer lock or fails with `Locked`.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Bitcask> {
        Self::open_with_fs(dir, opts, Arc::new(RealFs))
    }

    /// `open` on another file layer: the fault-injecting one of the reliability
    /// tests. Not a stable API.
    #[doc(hidden)]
    pub fn open_with_fs(dir: impl AsRef<Path>, opts: Options, fs: Arc<dyn Fs>) -> Result<Bitcask> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !opts.create_if_missing && !holds_database(&*fs, &dir) {
            return Err(Error::DatabaseNotFound { path: dir });
        }
        if !opts.read_only && fs.list(&dir).is_err() {
            fs.create_dir_all(&dir)
                .map_err(|e| Error::io("creating", &dir, e))?;
            // The new directory's name must survive a power loss along with the
            // first write acknowledged inside it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                datafile::sync_dir(&*fs, parent)?;
            }
        }
        let lock = if opts.read_only {
            None
        } else {
            Some(DirLock::acquire(&*fs, &dir)?)
        };
        // Under the lock, so that no other writer creates it meanwhile.
        if opts.error_if_exists && holds_database(&*fs, &dir) {
            return Err(Error::DatabaseExists { path: dir });
        }
        let rec = recovery::recover(&fs, &dir, &opts)?;
        let unhinted = rec.unhinted;
        let events = rec.events;
        let mut index = rec.index;
        index.seq = rec.next_seq.saturating_sub(1);
        let mut writer = None;
        let mut active_id = rec.last_id.unwrap_or(0);
        if !opts.read_only {
            // Appends go to a file of the current format: a last file of an
            // older one stays as it is (merges rewrite it) and a new file starts.
            let last = rec
                .last_id
                .filter(|id| index.files[id].file.version == FORMAT_VERSION);
            let (active, len) = match last {
                Some(id) => {
                    let f = &index.files[&id];
                    (f.file.clone(), f.total)
                }
                None => {
                    let id = match rec.last_id {
                        Some(id) => id.checked_add(1).ok_or_else(|| ids_exhausted(&dir))?,
                        None => 1,
                    };
                    active_id = id;
                    let f = Arc::new(DataFile::create(&*fs, &dir, id)?);
                    index
                        .files
                        .insert(id, FileInfo::new(f.clone(), FILE_HEADER_LEN as u64));
                    (f, FILE_HEADER_LEN as u64)
                }
            };
            // A preallocated tail left by a crash is reused.
            let alloc = active.len()?.max(len);
            writer = Some(Writer {
                active,
                len,
                alloc,
                prealloc_failed: false,
                rotated_to_spare: false,
                filling: None,
                next_seq: rec.next_seq,
                scratch: Vec::new(),
            });
        }
        let buffer = (opts.write_buffer_size > 0 && !opts.read_only).then(|| {
            let w = writer.as_ref().expect("writable");
            WriteBuf {
                flushing: Mutex::new(()),
                state: Mutex::new(Buffered {
                    file_id: w.active.id,
                    start: w.len,
                    in_flight: None,
                    data: Vec::with_capacity(opts.write_buffer_size),
                }),
            }
        });
        let clock = opts.clock.clone();
        let prealloc = Prealloc::new(fs.clone(), dir.clone(), opts.max_file_size);
        let inner = Arc::new(Inner {
            queue: WriteQueue::new(opts.write_merging),
            clock,
            clock_ms: AtomicU64::new(0),
            tombstone_floor: AtomicU32::new(0),
            dir,
            fs,
            index: RwLock::new(index),
            writer: Mutex::new(writer),
            buffer,
            reads: if opts.mmap {
                // A write group may run past `max_file_size`; what lies beyond
                // the map is read with pread.
                Reads::Map {
                    reserve: opts.max_file_size + (1 << 20),
                }
            } else {
                Reads::Pread
            },
            active_id: AtomicU32::new(active_id),
            closed: AtomicBool::new(false),
            merge_lock: Mutex::new(()),
            merge_state: Mutex::new(Default::default()),
            merge_thread: Mutex::new(None),
            dirty: AtomicBool::new(false),
            prealloc,
            syncs: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            write_groups: AtomicU64::new(0),
            refused: Mutex::new(None),
            lock: Mutex::new(lock),
            background: Mutex::new(None),
            dropped_bytes: rec.dropped_bytes,
            salvaged_bytes: rec.salvaged_bytes,
            opts,
        });
        if !inner.opts.read_only {
            Inner::start_background(&inner)?;
            if let Some((tx, _)) = inner.background.lock().as_ref() {
                for id in unhinted {
                    let _ = tx.send(Job::Hint(id));
                }
            }
        }
        for e in events {
            inner.emit(e);
        }
        Ok(Bitcask { inner })
    }

    /// The value of `key`, or `None`. One keydir lookup and one positioned read, with
    /// the record's checksum verified.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some((loc, file)) = self.inner.locate(key, None)? else {
            return Ok(None);
        };
        self.inner.read_value(key, &loc, &file).map(Some)
    }

    /// Calls `f` with the value of `key`, borrowed where it lies (the data file's
    /// map, or a buffer of one `pread` when mapping is off): no copy is made for
    /// `f`. `None`, without calling `f`, when the key has no value. The checksum is
    /// verified first, as by [`Bitcask::get`]; the file stays open while `f` runs,
    /// whatever a merge does meanwhile.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let Some((loc, file)) = self.inner.locate(key, None)? else {
            return Ok(None);
        };
        self.inner.value_with(key, &loc, &file, f).map(Some)
    }

    /// Whether `key` has a value (that has not expired). No I/O.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.inner.locate(key, None)?.is_some())
    }

    /// A consistent read view as of the last write made: see [`Snapshot`]. O(1):
    /// it copies nothing.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            pin: Pin::take(&self.inner)?,
        })
    }

    /// Number of keys, expired ones not counted (exactly, whether or not a merge
    /// has dropped them yet).
    pub fn len(&self) -> Result<usize> {
        let now = self.inner.now_ms();
        Ok(self.inner.open_index()?.live_keys(now) as usize)
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Stores `value` under `key`. Returns the write's sequence number. The value
    /// takes the default TTL, if the database has one.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.inner.submit(b, WriteOptions::default())
    }

    /// Stores `value` under `key` until `ttl` from now (rounded up to a whole
    /// second of the wall clock); from then on the key reads as absent everywhere.
    /// Writing the key again without a TTL makes it persistent again.
    pub fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<u64> {
        let mut b = WriteBatch::new();
        b.put_with_ttl(key, value, ttl);
        self.inner.submit(b, WriteOptions::default())
    }

    /// Time left before `key` expires: `None` for a key without expiry, and for
    /// one that is absent or expired ([`Bitcask::key_ttl`] tells these apart).
    pub fn ttl(&self, key: &[u8]) -> Result<Option<Duration>> {
        Ok(match self.key_ttl(key)? {
            KeyTtl::Remaining(d) => Some(d),
            _ => None,
        })
    }

    /// Whether `key` exists and when it expires. No I/O.
    pub fn key_ttl(&self, key: &[u8]) -> Result<KeyTtl> {
        let now = self.inner.now_ms();
        Ok(match self.inner.open_index()?.locate(key, None, || now) {
            None => KeyTtl::Missing,
            Some((loc, _)) if loc.expires == 0 => KeyTtl::Persistent,
            Some((loc, _)) => {
                KeyTtl::Remaining(Duration::from_millis(u64::from(loc.expires) * 1000 - now))
            }
        })
    }

    /// Removes `key` (writing a tombstone). Deleting a missing key is not an error.
    pub fn delete(&self, key: &[u8]) -> Result<u64> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.inner.submit(b, WriteOptions::default())
    }

    /// Applies every operation of `batch`, or none of them, even across a crash.
    /// Returns the batch's sequence number (one for the whole batch).
    pub fn write(&self, batch: &WriteBatch) -> Result<u64> {
        self.inner.submit(batch.clone(), WriteOptions::default())
    }

    /// `write` with per-write options (durability on top of the sync policy).
    pub fn write_opt(&self, batch: &WriteBatch, wo: WriteOptions) -> Result<u64> {
        self.inner.submit(batch.clone(), wo)
    }

    /// Whether the spare next file (see `Options::preallocate`) is ready. For
    /// tests; not a stable API.
    #[doc(hidden)]
    pub fn spare_ready(&self) -> bool {
        self.inner.prealloc.spare_ready()
    }

    /// Flushes buffered writes and fdatasyncs the active file.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_open()?;
        if self.inner.opts.read_only {
            return Ok(());
        }
        self.inner.sync_active()
    }

    /// Iterates over all keys and values in key order, as of its creation: see
    /// [`Iter`].
    pub fn iter(&self) -> Result<Iter> {
        self.range::<&[u8]>(.., false)
    }

    /// Iterates over keys in `range`, ascending, or descending when `reverse`.
    pub fn range<K: AsRef<[u8]>>(
        &self,
        range: impl std::ops::RangeBounds<K>,
        reverse: bool,
    ) -> Result<Iter> {
        self.snapshot()?.range(range, reverse)
    }

    /// Iterates over keys that start with `prefix`.
    pub fn prefix(&self, prefix: &[u8], reverse: bool) -> Result<Iter> {
        self.snapshot()?.prefix(prefix, reverse)
    }

    /// All keys, in key order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let now = self.inner.now_ms();
        let mut keys = Vec::new();
        self.inner.open_index()?.keydir.for_each(|k, l| {
            if !expired(l.expires, now) {
                keys.push(k.to_vec())
            }
        });
        Ok(keys)
    }

    /// Folds over every key and value in key order.
    pub fn fold<A>(&self, init: A, mut f: impl FnMut(A, &[u8], &[u8]) -> A) -> Result<A> {
        let mut acc = init;
        for kv in self.iter()? {
            let (k, v) = kv?;
            acc = f(acc, &k, &v);
        }
        Ok(acc)
    }

    /// Rewrites every immutable data file with dead bytes into files of live
    /// records, with hint files, and removes the old files. Reads and writes go on
    /// meanwhile; a write that lands during the merge always wins. One merge runs at
    /// a time; a second call waits for the first.
    pub fn merge(&self) -> Result<MergeStats> {
        self.inner.merge(Selection::All)
    }

    /// Writes a consistent copy of the database, as of one sequence number, into
    /// the new directory `dest`, while reads, writes and merges go on; returns
    /// that sequence number. Immutable files are hard-linked when `dest` is on the
    /// same filesystem and copied otherwise; the active file is copied up to the
    /// end of its last complete write. The copy is built beside `dest` and renamed
    /// into place once every file and directory in it is synced, so `dest` either
    /// holds a whole backup or does not exist. Copies are paced by
    /// `merge_bytes_per_sec`. A `dest` that exists and is not empty is refused.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<u64> {
        self.inner.backup(dest.as_ref())
    }

    /// Counters and per-file space use.
    pub fn stats(&self) -> Result<Stats> {
        self.inner.check_open()?;
        self.inner.stats()
    }

    /// Flushes and syncs outstanding writes, stops background work and releases the
    /// writer lock. Later calls on this handle return `Error::Closed`. Idempotent;
    /// also done on drop (where an error cannot be reported).
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }
}

impl Drop for Bitcask {
    fn drop(&mut self) {
        let _ = self.inner.close();
    }
}

/// The smallest key greater than every key starting with `p`, if there is one.
pub(crate) fn prefix_successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last != 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

impl Inner {
    /// The index, read-locked, if the database is open. `close` sets its flag
    /// before it empties the index under the write lock, so a reader that finds the
    /// flag clear under the read lock sees the whole index, never an emptied one.
    pub(crate) fn open_index(&self) -> Result<parking_lot::RwLockReadGuard<'_, Index>> {
        let ix = self.index.read();
        self.check_open()?;
        Ok(ix)
    }

    /// The time expiry is judged by: the clock, held from running backwards. A
    /// clock set back does not bring expired keys back while the database is
    /// open; one set forward expires keys early, as it says.
    pub(crate) fn now_ms(&self) -> u64 {
        let t = match &self.clock {
            Some(c) => (c.0)(),
            None => wall_ms(),
        };
        // A plain load first: readers on many threads would otherwise all
        // write the one shared cache line.
        let seen = self.clock_ms.load(Ordering::Acquire);
        if t <= seen {
            return seen;
        }
        self.clock_ms.fetch_max(t, Ordering::AcqRel).max(t)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.opts.read_only {
            return Err(Error::ReadOnly);
        }
        if let Some(cause) = self.refused.lock().as_ref() {
            return Err(Error::WritesRefused {
                cause: cause.clone(),
            });
        }
        Ok(())
    }

    /// After a failed write or sync the file's state is unknown: refuse writes.
    fn refuse(&self, e: &Error) {
        let first = {
            let mut r = self.refused.lock();
            let first = r.is_none();
            r.get_or_insert_with(|| e.to_string());
            first
        };
        if first {
            let mut ev = Event::new(EventKind::WritesRefused).error(e.clone());
            if let Some(p) = e.path() {
                ev = ev.file(p);
            }
            self.emit(ev);
        }
    }

    /// Reports an event from the background thread, which holds no lock of the
    /// engine when it delivers. A read-only database has no such thread: its
    /// events come from open, which holds no lock then, and are delivered right
    /// here. Once `close` has stopped the thread, an event (a write failing
    /// under the writer lock meanwhile, say) is dropped rather than delivered
    /// under a lock; the caller gets the error itself.
    pub(crate) fn emit(&self, e: Event) {
        if self.opts.event_listener.is_none()
            && !log::log_enabled!(target: "bitcask", e.kind.level())
        {
            return;
        }
        if let Some((tx, _)) = self.background.lock().as_ref() {
            let _ = tx.send(Job::Event(Box::new(e)));
            return;
        }
        if self.opts.read_only {
            deliver(self.opts.event_listener.as_ref(), &e);
        }
    }

    /// fdatasyncs the active file, reporting a slow one.
    fn sync_file(&self, file: &DataFile) -> Result<()> {
        let t = Instant::now();
        file.sync()?;
        let took = t.elapsed();
        if self.opts.slow_sync_threshold.is_some_and(|s| took >= s) {
            self.emit(
                Event::new(EventKind::SlowSync)
                    .file(&file.path)
                    .duration(took),
            );
        }
        Ok(())
    }

    /// A copy of the value at `loc` while it is still in the write buffer.
    fn buffered(&self, loc: &Loc) -> Option<Vec<u8>> {
        self.buffer.as_ref()?.state.lock().value(loc)
    }

    /// Where `key`'s value is, as of sequence number `at` (a snapshot's) or now.
    pub(crate) fn locate(&self, key: &[u8], at: Option<u64>) -> Result<Old> {
        Ok(self.open_index()?.locate(key, at, || self.now_ms()))
    }

    /// Calls `f` with the value at `loc`, borrowed where it lies.
    pub(crate) fn value_with<R>(
        &self,
        key: &[u8],
        loc: &Loc,
        file: &DataFile,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        // Copied out first: `f` runs with no lock held.
        if let Some(v) = self.buffered(loc) {
            return Ok(f(&v));
        }
        file.with_value(key, loc.offset, loc.rec_len, self.reads, f)
    }

    pub(crate) fn read_value(&self, key: &[u8], loc: &Loc, file: &DataFile) -> Result<Vec<u8>> {
        if let Some(v) = self.buffered(loc) {
            return Ok(v);
        }
        file.read_value(key, loc.offset, loc.rec_len, self.reads)
    }

    fn validate(&self, batch: &WriteBatch) -> Result<()> {
        if let Some(e) = &batch.oversize {
            return Err(e.clone());
        }
        if batch.encoded_len() > MAX_WRITE_LEN {
            return Err(Error::BatchTooLarge {
                len: batch.encoded_len(),
                max: MAX_WRITE_LEN,
            });
        }
        for op in batch.ops() {
            let (key, value) = (op.key, op.value);
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            if key.len() > self.opts.max_key_size {
                return Err(Error::KeyTooLarge {
                    len: key.len(),
                    max: self.opts.max_key_size,
                });
            }
            if value.len() > self.opts.max_value_size {
                return Err(Error::ValueTooLarge {
                    len: value.len(),
                    max: self.opts.max_value_size,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn submit(&self, batch: WriteBatch, wo: WriteOptions) -> Result<u64> {
        self.check_writable()?;
        self.validate(&batch)?;
        let req = Request {
            batch,
            sync: wo.sync,
        };
        self.queue.submit(req, |group| self.commit(group))
    }

    /// Commits a group of writes: one append, at most one fdatasync, one keydir
    /// update. Runs on the leader's thread with the writer locked.
    fn commit(&self, group: &[&Request]) -> Result<Vec<u64>> {
        let mut lap = Lap::new(self.opts.commit_trace.is_some());
        let mut guard = self.writer.lock();
        lap.trace.lock = lap.lap();
        lap.trace.writes = group.len();
        let w = guard.as_mut().ok_or(Error::Closed)?;
        self.check_writable()?;
        // Rotate on a bound of the encoded length (headers at their longest).
        let bound: u64 = group.iter().map(|r| r.batch.encoded_len() as u64).sum();
        if w.len > FILE_HEADER_LEN as u64 && w.len + bound > self.opts.max_file_size {
            let next = w
                .active
                .id
                .checked_add(1)
                .ok_or_else(|| ids_exhausted(&self.dir))?;
            self.rotate(w, next, true).inspect_err(|e| self.refuse(e))?;
            lap.trace.rotate = lap.lap();
            lap.trace.rotated_to_spare = Some(w.rotated_to_spare);
        }
        let base = w.len;
        // Asked at most once, and only of a write that expires.
        let mut now = None;
        let default_ttl = self
            .opts
            .default_ttl
            .map_or(0, |d| d.as_nanos().div_ceil(1_000_000) as u64);
        let file_id = w.active.id;
        let floor = self.tombstone_floor.load(Ordering::Acquire);
        let mut scratch = std::mem::take(&mut w.scratch);
        scratch.clear();
        let mut seqs = Vec::with_capacity(group.len());
        // Each record as the keydir will see it: where its key is in `scratch`
        // and how long, its location, and for a tombstone the file it names.
        let mut applied: Vec<(usize, usize, Loc, Option<u32>, u64)> =
            Vec::with_capacity(group.len());
        // A tombstone names the file of the value it deletes: a merge may drop it
        // once no file that old remains (see merge.rs).
        let deletes = group
            .iter()
            .any(|r| r.batch.ops().any(|op| op.flags & FLAG_TOMBSTONE != 0));
        let ix = deletes.then(|| self.index.read());
        for req in group {
            if req.batch.is_empty() {
                seqs.push(w.next_seq - 1);
                continue;
            }
            let seq = w.next_seq;
            w.next_seq += 1;
            seqs.push(seq);
            let n = req.batch.len();
            for (i, op) in req.batch.ops().enumerate() {
                let tomb = op.flags & FLAG_TOMBSTONE != 0;
                let ttl = if op.ttl_ms != 0 {
                    op.ttl_ms
                } else {
                    default_ttl
                };
                let mut f = record::Fields {
                    seq,
                    flags: op.flags,
                    expires: 0,
                    target: 0,
                };
                if i + 1 == n {
                    f.flags |= FLAG_WRITE_END;
                }
                if tomb {
                    let held = ix.as_ref().and_then(|ix| ix.keydir.get(op.key));
                    f.target = held.map_or(file_id, |l| l.file_id).max(floor);
                } else if ttl != 0 {
                    let now = *now.get_or_insert_with(|| self.now_ms());
                    f.expires = (now + ttl).div_ceil(1000).min(u32::MAX as u64) as u32;
                }
                let at = scratch.len();
                record::encode(&mut scratch, &f, op.key, op.value);
                let loc = Loc {
                    file_id,
                    offset: (base + at as u64) as u32,
                    rec_len: (scratch.len() - at) as u32,
                    expires: f.expires,
                };
                let key_at = scratch.len() - op.value.len() - op.key.len();
                applied.push((key_at, op.key.len(), loc, tomb.then_some(f.target), seq));
            }
        }
        drop(ix);
        lap.trace.encode = lap.lap();
        let total = scratch.len() as u64;
        if w.filling.is_some_and(|from| w.len + total > from) {
            self.await_fill(w);
        }
        let sync = self.opts.sync == SyncPolicy::Always || group.iter().any(|r| r.sync);
        let res = self.append(w, &scratch, sync, &mut lap);
        if let Err(e) = res {
            self.refuse(&e);
            w.scratch = scratch;
            return Err(e);
        }
        {
            let mut ix = self.index.write();
            let (mut tomb, mut tombs, mut max_target) = (0, 0, 0);
            let mut newest = None;
            for &(key_at, key_len, loc, target, seq) in &applied {
                let key = &scratch[key_at..key_at + key_len];
                newest = Some(Newest {
                    file_id,
                    seq: w.next_seq - 1,
                    tomb_len: if target.is_some() {
                        loc.rec_len as u64
                    } else {
                        0
                    },
                });
                let old = match target {
                    Some(t) => {
                        tomb += loc.rec_len as u64;
                        tombs += 1;
                        max_target = max_target.max(t);
                        ix.apply_delete(key)
                    }
                    None => ix.apply_put(key, loc),
                };
                if ix.versions.active() {
                    let ix = &mut *ix;
                    let files = &ix.files;
                    ix.versions.note(key, seq, || with_file(files, old));
                }
            }
            ix.seq = w.next_seq - 1;
            if let Some(f) = ix.files.get_mut(&file_id) {
                f.total += total;
                f.tomb += tomb;
                f.tombs += tombs;
                f.max_target = f.max_target.max(max_target);
            }
            if newest.is_some() {
                ix.newest = newest;
            }
        }
        lap.trace.index = lap.lap();
        w.len += total;
        w.scratch = scratch;
        self.writes.fetch_add(group.len() as u64, Ordering::Relaxed);
        self.write_groups.fetch_add(1, Ordering::Relaxed);
        if sync && self.opts.preallocate {
            self.preallocate(w);
            lap.trace.prealloc = lap.lap();
        }
        if let Some(t) = &self.opts.commit_trace {
            (t.0)(&lap.trace);
        }
        Ok(seqs)
    }

    /// After a durable write: keeps the active file zero-filled at least half a
    /// step ahead of its data, and asks for a spare next file. A failed zero-fill
    /// only turns preallocation off for this file; zeros it wrote past the data
    /// are preallocated space all the same.
    fn preallocate(&self, w: &mut Writer) {
        if w.prealloc_failed {
            return;
        }
        self.prealloc.ask_spare();
        if w.filling.is_some() {
            // One fill at a time: take its outcome if it is done.
            if !self.prealloc.fill_finished() {
                return;
            }
            self.await_fill(w);
        }
        let step = (w.len / 4).clamp(prealloc::STEP_MIN, prealloc::STEP_MAX);
        if w.alloc >= w.len + step / 2 {
            return;
        }
        let from = w.alloc.max(w.len);
        let to = (from + step).min(self.opts.max_file_size);
        if to <= from {
            return;
        }
        // Off the write path: writes go on below `from` meanwhile
        // (`await_fill` keeps them there).
        self.prealloc.fill(&w.active, from, to);
        w.filling = Some(from);
    }

    /// Waits for the zero-fill in flight, if any, and takes its outcome: called
    /// before a write reaches the range being filled, and before the file is
    /// trimmed or sealed, so that zeros never land on data.
    fn await_fill(&self, w: &mut Writer) {
        if w.filling.take().is_none() {
            return;
        }
        match self.prealloc.await_fill(w.active.id) {
            Some(to) => w.alloc = w.alloc.max(to),
            None => w.prealloc_failed = true,
        }
    }

    /// Cuts the active file's preallocated tail: a sealed or closed file is
    /// exactly its data (what hints and earlier builds expect).
    fn trim(&self, w: &mut Writer) -> Result<()> {
        self.await_fill(w);
        if w.alloc > w.len {
            w.active
                .file
                .set_len(w.len)
                .map_err(|e| Error::io("trimming", &w.active.path, e))?;
        }
        w.alloc = w.len;
        Ok(())
    }

    /// Hands `bytes` to the OS (or the write buffer), then syncs if asked.
    fn append(&self, w: &Writer, bytes: &[u8], sync: bool, lap: &mut Lap) -> Result<()> {
        match &self.buffer {
            Some(buf) => {
                let size = self.opts.write_buffer_size;
                if bytes.len() >= size {
                    buf.write_through(&w.active, bytes)?;
                } else {
                    // Only the leader appends, so the room seen here stays.
                    let full = buf.state.lock().data.len() + bytes.len() > size;
                    if full {
                        buf.flush(&w.active)?;
                    }
                    buf.state.lock().data.extend_from_slice(bytes);
                }
                if sync {
                    buf.flush(&w.active)?;
                }
            }
            None => append_or_cut(&w.active, w.len, bytes)?,
        }
        lap.trace.write = lap.lap();
        if sync {
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.sync_file(&w.active)?;
            lap.trace.sync = lap.lap();
        } else {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Seals the active file and starts data file `next_id`. Merge passes an id
    /// beyond the next one to leave room for its output files, and writes the
    /// sealed file's hint itself (only if it does not rewrite the file anyway), so
    /// it asks for no background hint.
    fn rotate(&self, w: &mut Writer, next_id: u32, background_hint: bool) -> Result<u32> {
        if let Some(buf) = &self.buffer {
            buf.flush(&w.active)?;
        }
        self.trim(w)?;
        w.active.sync()?;
        let spare = self.prealloc.take_spare(next_id)?;
        w.rotated_to_spare = spare.is_some();
        let (file, alloc) = match spare {
            Some(s) => s,
            None => (
                DataFile::create(&*self.fs, &self.dir, next_id)?,
                FILE_HEADER_LEN as u64,
            ),
        };
        let file = Arc::new(file);
        self.index
            .write()
            .files
            .insert(next_id, FileInfo::new(file.clone(), FILE_HEADER_LEN as u64));
        let sealed = w.active.id;
        w.active = file;
        w.len = FILE_HEADER_LEN as u64;
        w.alloc = alloc;
        w.prealloc_failed = false;
        if let Some(buf) = &self.buffer {
            let mut b = buf.state.lock();
            b.file_id = next_id;
            b.start = w.len;
        }
        self.active_id.store(next_id, Ordering::Release);
        if background_hint {
            if let Some((tx, _)) = self.background.lock().as_ref() {
                let _ = tx.send(Job::Hint(sealed));
            }
        }
        Ok(sealed)
    }

    /// Seals the active file and starts the next one far enough on to leave the
    /// ids between for the outputs of a merge that writes at most `keep_bytes`,
    /// plus, when the merge planned to take the active file `planned_active`, the
    /// bytes of that file and of any a rotation has started since (the planned one
    /// is an input all the same). Returns (sealed, new active).
    pub(crate) fn seal_for_merge(
        &self,
        keep_bytes: u64,
        planned_active: Option<u32>,
    ) -> Result<(u32, u32)> {
        let mut guard = self.writer.lock();
        let w = guard.as_mut().ok_or(Error::Closed)?;
        self.check_writable()?;
        let mut bytes = keep_bytes;
        if let Some(p) = planned_active {
            bytes += w.len;
            let ix = self.index.read();
            bytes += ix
                .files
                .range(p..w.active.id)
                .map(|(_, f)| f.total)
                .sum::<u64>();
        }
        let reserve = crate::merge::outputs_bound(bytes, self.opts.max_file_size);
        let next = w
            .active
            .id
            .checked_add(1 + reserve)
            .ok_or_else(|| ids_exhausted(&self.dir))?;
        let sealed = self
            .rotate(w, next, false)
            .inspect_err(|e| self.refuse(e))?;
        Ok((sealed, next))
    }

    /// A consistent cut for a backup: the sequence number of the newest write and
    /// every data file with the length that holds exactly the writes up to it.
    pub(crate) fn cut(&self) -> Result<(u64, Vec<CutFile>)> {
        let guard = self.writer.lock();
        if let Some(w) = guard.as_ref() {
            // Buffered writes are acknowledged: they belong in the copy.
            if let Some(buf) = &self.buffer {
                buf.flush(&w.active).inspect_err(|e| self.refuse(e))?;
            }
        }
        let ix = self.open_index()?;
        let seq = match guard.as_ref() {
            Some(w) => w.next_seq - 1,
            None => ix.newest.map_or(0, |n| n.seq),
        };
        let files = ix
            .files
            .iter()
            .map(|(&id, f)| {
                let len = match guard.as_ref() {
                    Some(w) if w.active.id == id => w.len,
                    _ => f.total,
                };
                (id, f.file.clone(), len)
            })
            .collect();
        Ok((seq, files))
    }

    /// Makes tombstones written from now until the guard drops name at least file
    /// `id`. Taken under the writer lock, so that no write is between encoding
    /// its tombstones and applying them to the keydir while the floor rises: a
    /// merge that then finds a key live in the keydir copies it only if every
    /// later delete of it names the copy's file or a later one.
    pub(crate) fn raise_tombstone_floor(&self, id: u32) -> FloorGuard<'_> {
        let _w = self.writer.lock();
        self.tombstone_floor.store(id, Ordering::Release);
        FloorGuard(self)
    }

    /// Starts an automatic merge on its own thread if the triggers fire and none
    /// is running.
    fn maybe_auto_merge(this: &Arc<Inner>) {
        let mut slot = this.merge_thread.lock();
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // After a failure, retries back off (the error is in `Stats`).
        let not_before = this.merge_state.lock().not_before;
        if not_before.is_some_and(|t| Instant::now() < t) || !this.merge_triggered() {
            return;
        }
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        let db = this.clone();
        *slot = std::thread::Builder::new()
            .name("bitcask-merge".into())
            .spawn(move || {
                let _ = db.merge(Selection::Thresholds);
            })
            .ok();
    }

    /// Flushes the write buffer and fdatasyncs the active file. After a failed
    /// write or sync it reports the refusal: a retried fdatasync that succeeds
    /// proves nothing, the kernel may have dropped the dirty pages.
    pub(crate) fn sync_active(&self) -> Result<()> {
        self.check_writable()?;
        // Cleared before the active file is looked up: a write to a file rotated in
        // after this sets it again, so it is never cleared for a write not synced.
        self.dirty.store(false, Ordering::Release);
        let file = {
            let ix = self.index.read();
            match ix.files.get(&self.active_id.load(Ordering::Acquire)) {
                Some(f) => f.file.clone(),
                None => return Ok(()),
            }
        };
        let res = (|| {
            if let Some(buf) = &self.buffer {
                buf.flush(&file)?;
            }
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.sync_file(&file)
        })();
        res.inspect_err(|e| self.refuse(e))
    }

    /// Writes the hint file of an immutable data file by scanning it.
    pub(crate) fn write_hint(&self, id: u32) -> Result<()> {
        let Some(file) = self.index.read().files.get(&id).map(|f| f.file.clone()) else {
            return Ok(());
        };
        // Hints are written in the current format only; a file of an older one
        // is scanned until a merge rewrites it.
        if file.version != FORMAT_VERSION {
            return Ok(());
        }
        let len = file.len()?;
        let mut h = HintWriter::create(&self.fs, &self.dir, id)?;
        let end = datafile::scan(
            &*file.file,
            file.version,
            FILE_HEADER_LEN as u64,
            len,
            |r| {
                h.add_header(&r.header, r.key, r.offset);
                Ok(())
            },
            &file.path,
        )?;
        if end != ScanEnd::Clean {
            return Ok(());
        }
        // Merge may have removed the file meanwhile: then the hint must not appear.
        if !self.index.read().files.contains_key(&id) {
            return Ok(());
        }
        h.finish(len)
    }

    fn start_background(this: &Arc<Inner>) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(this);
        let handle = std::thread::Builder::new()
            .name("bitcask-bg".into())
            .spawn(move || background(weak, rx))
            .map_err(|e| Error::io("starting background thread for", &this.dir, e))?;
        *this.background.lock() = Some((tx, handle));
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let me = std::thread::current().id();
        // Take each handle out before joining, so no lock is held while waiting.
        let background = self.background.lock().take();
        if let Some((tx, handle)) = background {
            let _ = tx.send(Job::Stop);
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
        // A running merge sees the close at its next step and stops; one started
        // by a caller's `merge()` on another thread holds `merge_lock` until then.
        // Nothing may touch the directory once the lock below is released.
        let merge_thread = self.merge_thread.lock().take();
        if let Some(handle) = merge_thread {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
        let _no_merge = self.merge_lock.lock();
        // Fills in flight finish first; an unused spare goes.
        self.prealloc.stop();
        let mut res = Ok(());
        if let Some(w) = self.writer.lock().take() {
            if let Some(cause) = self.refused.lock().clone() {
                res = Err(Error::WritesRefused { cause });
            } else {
                if let Some(buf) = &self.buffer {
                    res = buf.flush(&w.active);
                }
                let mut w = w;
                if res.is_ok() {
                    res = self.trim(&mut w);
                }
                if res.is_ok() {
                    res = w.active.sync();
                }
                if res.is_ok() {
                    // The active file gets its hint too, so that the next open
                    // reads no data file. Best effort: without it, open scans.
                    // Appends after a reopen make it stale (its length no
                    // longer matches), and then it is ignored.
                    let _ = self.write_hint(w.active.id);
                }
            }
        }
        *self.index.write() = Index::default();
        self.lock.lock().take();
        res
    }

    fn stats(&self) -> Result<Stats> {
        // Lock order is writer before index: read the sequence first.
        let (next_seq, mut preallocated_bytes) = match self.writer.lock().as_ref() {
            Some(w) => (Some(w.next_seq), w.alloc.saturating_sub(w.len)),
            None => (None, 0),
        };
        preallocated_bytes += self.prealloc.spare_len();
        let now = self.now_ms();
        let (keys, keydir_bytes, tombstones, files, snapshots) = {
            let ix = self.index.read();
            let tombstones = ix.files.values().map(|f| f.tombs).sum();
            let files: Vec<FileStats> = ix
                .files
                .iter()
                .map(|(&id, f)| FileStats {
                    id,
                    total_bytes: f.total,
                    live_bytes: f.live,
                    dead_bytes: f.total.saturating_sub(f.live),
                })
                .collect();
            (
                ix.live_keys(now),
                ix.keydir.heap_bytes() as u64,
                tombstones,
                files,
                ix.versions.counts(),
            )
        };
        let data_bytes = files.iter().map(|f| f.total_bytes).sum();
        let hint_bytes = files
            .iter()
            .filter_map(|f| self.fs.size(&self.dir.join(hint_file_name(f.id))).ok())
            .sum();
        let ms = self.merge_state.lock();
        Ok(Stats {
            keys,
            keydir_bytes,
            tombstones,
            data_bytes,
            hint_bytes,
            disk_bytes: data_bytes + hint_bytes,
            preallocated_bytes,
            files,
            dropped_bytes_at_open: self.dropped_bytes,
            salvaged_bytes_at_open: self.salvaged_bytes,
            last_seq: next_seq.map(|s| s - 1),
            last_merge: ms.last.clone(),
            merges: ms.merges,
            merge_failures: ms.failures,
            last_merge_error: ms.last_error.clone(),
            syncs: self.syncs.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            write_groups: self.write_groups.load(Ordering::Relaxed),
            snapshots: snapshots.0,
            snapshot_versions: snapshots.1,
        })
    }
}

/// Lowers the tombstone floor when a merge ends. Outputs stay below the active
/// file, whose id only grows, so later tombstones name a file at least as new
/// as the keydir's, which is where any copy was moved.
pub(crate) struct FloorGuard<'a>(&'a Inner);

impl Drop for FloorGuard<'_> {
    fn drop(&mut self) {
        let _w = self.0.writer.lock();
        self.0.tombstone_floor.store(0, Ordering::Release);
    }
}

/// Whether `dir` holds a database: a data file (a directory that cannot be
/// listed holds none).
fn holds_database(fs: &dyn Fs, dir: &Path) -> bool {
    fs.list(dir)
        .is_ok_and(|names| names.iter().any(|n| parse_file_name(n, DATA_EXT).is_some()))
}

/// Data file ids are u32; a database that used them all up cannot rotate.
pub(crate) fn ids_exhausted(dir: &Path) -> Error {
    Error::io(
        "choosing the next data file id in",
        dir,
        std::io::Error::other("data file ids exhausted"),
    )
}

fn background(inner: Weak<Inner>, rx: mpsc::Receiver<Job>) {
    let sync_every = match inner.upgrade().map(|i| i.opts.sync) {
        Some(SyncPolicy::EveryMs(ms)) => Some(Duration::from_millis(ms)),
        _ => None,
    };
    let merge_every = match inner.upgrade() {
        Some(i) if i.opts.auto_merge => Some(i.opts.merge_check_interval),
        _ => None,
    };
    let tick = [sync_every, merge_every]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_millis(500));
    let (mut last_sync, mut last_merge_check) = (Instant::now(), Instant::now());
    loop {
        let job = rx.recv_timeout(tick);
        let Some(db) = inner.upgrade() else { return };
        match job {
            Ok(Job::Hint(id)) => {
                let _ = db.write_hint(id);
            }
            Ok(Job::Event(e)) => deliver(db.opts.event_listener.as_ref(), &e),
            Ok(Job::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(every) = sync_every {
            if last_sync.elapsed() >= every && db.dirty.load(Ordering::Acquire) {
                let _ = db.sync_active();
                last_sync = Instant::now();
            }
        }
        if let Some(every) = merge_every {
            if last_merge_check.elapsed() >= every {
                Inner::maybe_auto_merge(&db);
                last_merge_check = Instant::now();
            }
        }
    }
}

/// Counts a live value that expires in `expiring` (see `Index::expiring`).
pub(crate) fn note_expiring(expiring: &mut BTreeMap<(u32, u32), (u64, u64)>, loc: &Loc) {
    if loc.expires != 0 {
        let e = expiring.entry((loc.expires, loc.file_id)).or_default();
        e.0 += 1;
        e.1 += loc.rec_len as u64;
    }
}

/// Iterator over keys and values in key order (descending when reversed).
///
/// It reads from a [`Snapshot`]: the one it was made from, or one of its own
/// taken when it was made on the database, so it sees the database exactly as of
/// that moment, whatever writes and merges happen while it runs, and keeps what
/// it reads alive as a snapshot does (see [`Snapshot`]) until it is dropped.
/// It reads the keydir in chunks under its lock, so it never blocks writers for
/// long: 16 keys first, so that a short scan reads little, then twice as many
/// each time up to 512. The values of a chunk are read together, in file order.
/// [`Iter::keys`] reads no data file.
///
/// A clone continues independently from the same position, in the same view.
#[derive(Clone)]
pub struct Iter {
    inner: Arc<Inner>,
    pin: Arc<Pin>,
    /// The bounds the iterator was made with; `lower`/`upper` narrow as it moves.
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    /// Whether a refill reads the values of its keys. Keys-only iterators (and
    /// the C iterator, which reads a value when asked for it) read no data file.
    values: bool,
    /// Keys the next refill takes: few at first, so that a short scan reads
    /// little, doubling up to `ITER_CHUNK`.
    chunk: usize,
    buf: Chunk,
    done: bool,
    /// A failure was reported: the iterator ends (until a seek).
    failed: bool,
}

const ITER_CHUNK_MIN: usize = 16;
const ITER_CHUNK: usize = 512;

/// One refill: keys packed in one buffer, the files their values are in, and
/// the values once read (borrowed from the maps, or copied into `held`).
/// Reused from one refill to the next.
#[derive(Clone, Default)]
struct Chunk {
    keys: KeyChunk,
    /// Per entry: its file, as an index into `files`.
    file: Vec<u32>,
    files: Vec<Arc<DataFile>>,
    vals: Vec<Val>,
    held: Vec<u8>,
    /// Entries to yield, in order (expired ones left out), and the next one.
    live: Vec<u32>,
    next: usize,
}

#[derive(Clone)]
enum Val {
    Unread,
    /// Checked, in the file's map: the value's offset in the file and length.
    Mapped(u64, usize),
    /// Checked, copied into `held`: start and length there.
    Held(usize, usize),
    Failed(Error),
}

impl Chunk {
    fn clear(&mut self) {
        self.keys.clear();
        self.file.clear();
        self.files.clear();
        self.vals.clear();
        self.held.clear();
        self.live.clear();
        self.next = 0;
    }

    fn is_drained(&self) -> bool {
        self.next == self.live.len()
    }

    /// The value of entry `i` once read.
    fn value(&self, i: usize) -> Option<Result<&[u8]>> {
        match &self.vals[i] {
            Val::Unread => None,
            Val::Mapped(at, n) => {
                let f = &self.files[self.file[i] as usize];
                Some(Ok(f
                    .mapped_bytes(*at, *n)
                    .expect("a checked value is in the map")))
            }
            Val::Held(at, n) => Some(Ok(&self.held[*at..*at + *n])),
            Val::Failed(e) => Some(Err(e.clone())),
        }
    }

    /// Reads and checks the value of entry `i`.
    fn load(&mut self, inner: &Inner, i: usize) {
        let key = self.keys.key(i);
        let loc = self.keys.locs[i];
        let file = &self.files[self.file[i] as usize];
        if let Some(v) = inner.buffered(&loc) {
            let at = self.held.len();
            self.held.extend_from_slice(&v);
            self.vals[i] = Val::Held(at, v.len());
            return;
        }
        self.vals[i] = match file.mapped_value(key, loc.offset, loc.rec_len, inner.reads) {
            Some(Ok((at, n))) => Val::Mapped(at, n),
            Some(Err(e)) => Val::Failed(e),
            None => {
                let at = self.held.len();
                let held = &mut self.held;
                match file.with_value(key, loc.offset, loc.rec_len, inner.reads, |v| {
                    held.extend_from_slice(v);
                    v.len()
                }) {
                    Ok(n) => Val::Held(at, n),
                    Err(e) => Val::Failed(e),
                }
            }
        };
    }
}

/// A key, where its value was, and the file kept open for reading it.
pub(crate) struct IterEntry {
    pub key: Vec<u8>,
    loc: Loc,
    file: Arc<DataFile>,
}

/// Whether `key` satisfies `lower` as a lower bound.
fn above(lower: Bound<&[u8]>, key: &[u8]) -> bool {
    match lower {
        Bound::Included(l) => key >= l,
        Bound::Excluded(l) => key > l,
        Bound::Unbounded => true,
    }
}

/// Whether `key` satisfies `upper` as an upper bound.
fn below(upper: Bound<&[u8]>, key: &[u8]) -> bool {
    match upper {
        Bound::Included(u) => key <= u,
        Bound::Excluded(u) => key < u,
        Bound::Unbounded => true,
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Iter {
    pub(crate) fn new<K: AsRef<[u8]>>(
        pin: Arc<Pin>,
        range: impl std::ops::RangeBounds<K>,
        reverse: bool,
    ) -> Result<Iter> {
        let inner = pin.inner().clone();
        inner.check_open()?;
        let own = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (lower, upper) = (own(range.start_bound()), own(range.end_bound()));
        Ok(Iter {
            inner,
            pin,
            range: (lower.clone(), upper.clone()),
            lower,
            upper,
            reverse,
            values: true,
            chunk: ITER_CHUNK_MIN,
            buf: Chunk::default(),
            done: false,
            failed: false,
        })
    }

    /// The sequence number of the view it reads.
    pub fn seq(&self) -> u64 {
        self.pin.seq
    }

    fn refill(&mut self) -> Result<()> {
        let now = self.inner.now_ms();
        let c = &mut self.buf;
        c.clear();
        {
            let ix = self.inner.open_index()?;
            let (lower, upper) = (bound_ref(&self.lower), bound_ref(&self.upper));
            ix.keydir
                .scan(lower, upper, self.reverse, self.chunk, &mut c.keys);
            let changed = ix
                .versions
                .changed(lower, upper, self.reverse, self.pin.seq, self.chunk);
            // Each entry's file: from the index, or kept with a version.
            let mut olds: Vec<Option<Arc<DataFile>>> = Vec::new();
            // Where this chunk ends: past it, keys of the keydir or of the
            // versions not taken this time may lie. None: the range is done.
            let mut end = None;
            if changed.is_empty() {
                if c.keys.len() == self.chunk {
                    end = Some(c.keys.key(self.chunk - 1).to_vec());
                }
            } else {
                // Keys changed since the snapshot read as they were then.
                let scanned = std::mem::take(&mut c.keys);
                let n = scanned.len();
                let before = |a: &[u8], b: &[u8]| if self.reverse { a > b } else { a < b };
                let last_k = (n == self.chunk).then(|| scanned.key(n - 1));
                let last_v = (changed.len() == self.chunk).then(|| changed[changed.len() - 1].0);
                let cut = match (last_k, last_v) {
                    (Some(k), Some(v)) => Some(if before(k, v) { k } else { v }),
                    (k, v) => k.or(v),
                };
                let within = |k: &[u8]| cut.is_none_or(|cut| !before(cut, k));
                let (mut i, mut j) = (0, 0);
                loop {
                    let k = (i < n).then(|| scanned.key(i)).filter(|k| within(k));
                    let v = changed.get(j).filter(|v| within(v.0));
                    match (k, v) {
                        (None, None) => break,
                        (Some(k), v) if v.is_none_or(|v| before(k, v.0)) => {
                            c.keys.push(k, scanned.locs[i]);
                            olds.push(None);
                            i += 1;
                        }
                        (k, Some(&(key, old))) => {
                            if k == Some(key) {
                                i += 1;
                            }
                            j += 1;
                            if let Some((loc, file)) = old {
                                c.keys.push(key, *loc);
                                olds.push(Some(file.clone()));
                            }
                        }
                        (Some(_), None) => unreachable!(),
                    }
                }
                end = cut.map(<[u8]>::to_vec);
            }
            // The bound moves past every key considered, kept or expired.
            match end {
                None => self.done = true,
                Some(last) => {
                    if self.reverse {
                        self.upper = Bound::Excluded(last);
                    } else {
                        self.lower = Bound::Excluded(last);
                    }
                }
            }
            // A version's file may share its id with a newer one (a merge can
            // hand a removed file's id out again): told apart by pointer then.
            let mixed = olds.iter().any(Option::is_some);
            for i in 0..c.keys.len() {
                let loc = c.keys.locs[i];
                let old = olds.get_mut(i).and_then(Option::take);
                let seen = match &old {
                    Some(f) => c.files.iter().rposition(|g| Arc::ptr_eq(f, g)),
                    None if !mixed => c.files.iter().rposition(|f| f.id == loc.file_id),
                    None => ix
                        .files
                        .get(&loc.file_id)
                        .and_then(|f| c.files.iter().rposition(|g| Arc::ptr_eq(&f.file, g))),
                };
                let at = match seen {
                    Some(at) => at,
                    None => match old.or_else(|| Some(ix.files.get(&loc.file_id)?.file.clone())) {
                        Some(f) => {
                            c.files.push(f);
                            c.files.len() - 1
                        }
                        None => {
                            c.file.push(u32::MAX);
                            continue;
                        }
                    },
                };
                c.file.push(at as u32);
                if !expired(loc.expires, now) {
                    c.live.push(i as u32);
                }
            }
        }
        c.vals.resize(c.keys.len(), Val::Unread);
        self.chunk = (self.chunk * 2).min(ITER_CHUNK);
        if self.values {
            // In file order: neighbouring records are read together (one page
            // fault, one readahead window) whatever order their keys are in.
            let mut order = c.live.clone();
            let at = |i: &u32| {
                let l = &c.keys.locs[*i as usize];
                (l.file_id, l.offset)
            };
            if !order.is_sorted_by_key(at) {
                order.sort_unstable_by_key(at);
            }
            // Cache misses overlap: each record is asked for a few ahead of its read.
            const AHEAD: usize = 8;
            let reads = self.inner.reads;
            let prefetch = |c: &Chunk, i: u32| {
                let l = &c.keys.locs[i as usize];
                c.files[c.file[i as usize] as usize].prefetch(l.offset, l.rec_len, reads);
            };
            for &i in order.iter().take(AHEAD) {
                prefetch(c, i);
            }
            for (n, &i) in order.iter().enumerate() {
                if let Some(&j) = order.get(n + AHEAD) {
                    prefetch(c, j);
                }
                c.load(&self.inner, i as usize);
            }
        }
        Ok(())
    }

    /// Repositions: the next item is the first key at or after `key` (at or before,
    /// when reversed), never leaving the range the iterator was made for.
    pub fn seek(&mut self, key: &[u8]) {
        self.buf.clear();
        self.done = false;
        self.failed = false;
        self.chunk = ITER_CHUNK_MIN;
        self.lower = self.range.0.clone();
        self.upper = self.range.1.clone();
        // A key outside the range on the side the iterator starts from leaves it
        // at that end of the range; one past the other end leaves it empty.
        if self.reverse {
            if below(bound_ref(&self.range.1), key) {
                self.upper = Bound::Included(key.to_vec());
            }
        } else if above(bound_ref(&self.range.0), key) {
            self.lower = Bound::Included(key.to_vec());
        }
    }

    /// The next key without reading its value.
    pub fn next_key(&mut self) -> Option<Result<Vec<u8>>> {
        Some(self.step()?.map(|i| self.buf.keys.key(i).to_vec()))
    }

    /// This iterator over keys only: it reads no data file.
    pub fn keys(mut self) -> Keys {
        self.values = false;
        Keys(self)
    }

    /// The next key and value, borrowed from the iterator until its next move:
    /// no copy of either (values lie in the data files' maps, or in one buffer per
    /// chunk when a value was read with `pread`). The same entries as
    /// [`Iterator::next`], which copies both out.
    #[allow(clippy::should_implement_trait)]
    pub fn next_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let i = match self.step()? {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        if matches!(self.buf.vals[i], Val::Unread) {
            self.buf.load(&self.inner, i);
        }
        let c = &self.buf;
        Some(c.value(i).expect("loaded").map(|v| (c.keys.key(i), v)))
    }

    /// Stops (or restarts) reading values ahead of the caller.
    pub(crate) fn set_values(&mut self, values: bool) {
        self.values = values;
    }

    /// Moves to the next live entry of the chunk, refilling it when drained.
    fn step(&mut self) -> Option<Result<usize>> {
        let mut res = self.inner.check_open();
        while res.is_ok() && self.buf.is_drained() && !self.done {
            res = self.refill();
        }
        if let Err(e) = res {
            // Report the failure once, then end.
            let first = !self.failed;
            self.failed = true;
            self.done = true;
            self.buf.clear();
            return first.then_some(Err(e));
        }
        if self.buf.is_drained() {
            return None;
        }
        let i = self.buf.live[self.buf.next] as usize;
        self.buf.next += 1;
        Some(Ok(i))
    }

    /// The next entry, without its value (for iterators made with
    /// `set_values(false)`: a value read ahead would be read again by `read`).
    pub(crate) fn advance(&mut self) -> Option<Result<IterEntry>> {
        let i = match self.step()? {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        let c = &self.buf;
        Some(Ok(IterEntry {
            key: c.keys.key(i).to_vec(),
            loc: c.keys.locs[i],
            file: c.files[c.file[i] as usize].clone(),
        }))
    }

    /// Reads the value of an entry of an iterator over the same database.
    pub(crate) fn read(&self, e: &IterEntry) -> Result<Vec<u8>> {
        self.inner.read_value(&e.key, &e.loc, &e.file)
    }
}

impl Iterator for Iter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_ref()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}

/// Keys in order, from [`Iter::keys`]: no data file is read.
#[derive(Clone)]
pub struct Keys(Iter);

impl Iterator for Keys {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_key()
    }
}

//! Open: rebuild the keydir from the directory. Files are replayed in id order, so
//! the newest write of a key wins; each file from its hint file when a whole one
//! exists for exactly its length, else by scanning its records.
//!
//! Damage is judged by where it is. In the last file, bytes after which no valid
//! record follows are a torn tail (a crash mid-append): they are truncated and
//! counted. Anywhere else a bad record fails the open with `Corruption`, unless the
//! caller asked for a salvage open, which skips to the next valid record.

use crate::datafile::{self, DataFile, RecordRef, ScanEnd};
use crate::db::{FileInfo, Index, Newest};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::format::*;
use crate::fs::Fs;
use crate::hint;
use crate::keydir::{Loc, SortedBuilder};
use crate::options::Options;
use std::path::Path;
use std::sync::Arc;

/// What open found.
pub(crate) struct Recovered {
    pub index: Index,
    /// Next sequence number to hand out.
    pub next_seq: u64,
    /// Id of the newest data file, if any.
    pub last_id: Option<u32>,
    /// Bytes of torn tail dropped from the last file.
    pub dropped_bytes: u64,
    /// Bytes skipped by a salvage open.
    pub salvaged_bytes: u64,
    /// What open dropped or salvaged, where.
    pub events: Vec<Event>,
    /// Immutable files that need a hint written.
    pub unhinted: Vec<u32>,
}

/// One entry of a file's log: a key (in `FileLog::bytes`) and where its value is.
#[derive(Clone, Copy)]
struct Ent {
    /// The key's first 8 bytes, big-endian, zero-padded: comparing heads orders
    /// keys without touching their bytes, except when the heads tie.
    head: u64,
    key_at: u32,
    key_len: u16,
    tombstone: bool,
    loc: Loc,
}

/// The committed writes of one data file, in file order. Keys stay where they were
/// read (the hint file's own bytes, or copied from a scan), so building it costs
/// no allocation per key.
struct FileLog {
    bytes: Vec<u8>,
    ents: Vec<Ent>,
    /// The file's highest sequence number, and the length of the last record
    /// carrying it if that record is a tombstone (0 for a value).
    newest: Option<(u64, u64)>,
    /// See `FileInfo::max_target`.
    max_target: u32,
}

fn head(key: &[u8]) -> u64 {
    let mut h = [0u8; 8];
    let n = key.len().min(8);
    h[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(h)
}

impl FileLog {
    fn key(&self, e: &Ent) -> &[u8] {
        &self.bytes[e.key_at as usize..e.key_at as usize + e.key_len as usize]
    }

    /// Bytes and number of the tombstone records in the file (before
    /// `sort_keep_last`).
    fn tombs(&self) -> (u64, u64) {
        self.ents
            .iter()
            .filter(|e| e.tombstone)
            .fold((0, 0), |(b, n), e| (b + e.loc.rec_len as u64, n + 1))
    }
}

/// Notes a record that ends a write: the newest one so far if its sequence
/// number is the highest (ties: the later record, as replay order has it).
fn note_newest(newest: &mut Option<(u64, u64)>, seq: u64, tomb: bool, rec_len: u32) {
    if newest.is_none_or(|(s, _)| seq >= s) {
        *newest = Some((seq, if tomb { rec_len as u64 } else { 0 }));
    }
}

/// Collects a scanned file's records, holding back each write until its last record.
struct Collect {
    id: u32,
    log: FileLog,
    /// Where the pending (unfinished) write starts: entry index, byte length, and
    /// file offset of its first record.
    pending: Option<(usize, usize, u64)>,
    /// Sequence number of the pending write, and of the last finished one.
    pending_seq: Option<u64>,
    done_seq: Option<u64>,
    max_seq: u64,
}

impl Collect {
    fn new(id: u32) -> Collect {
        Collect {
            id,
            log: FileLog {
                bytes: Vec::new(),
                ents: Vec::new(),
                newest: None,
                max_target: 0,
            },
            pending: None,
            pending_seq: None,
            done_seq: None,
            max_seq: 0,
        }
    }

    fn record(&mut self, r: &RecordRef<'_>) {
        if self.pending.is_none() {
            self.pending = Some((self.log.ents.len(), self.log.bytes.len(), r.offset));
            self.pending_seq = Some(r.header.seq);
        }
        let key_at = self.log.bytes.len() as u32;
        self.log.bytes.extend_from_slice(r.key);
        self.log.ents.push(Ent {
            head: head(r.key),
            key_at,
            key_len: r.key.len() as u16,
            tombstone: r.header.is_tombstone(),
            loc: Loc {
                file_id: self.id,
                offset: r.offset as u32,
                rec_len: r.header.record_len() as u32,
                expires: r.header.expires,
            },
        });
        if r.header.is_tombstone() {
            // A version 1 tombstone does not name a file: its own stands in.
            let target = if r.header.target == 0 {
                self.id
            } else {
                r.header.target
            };
            self.log.max_target = self.log.max_target.max(target);
        }
        if r.header.flags & FLAG_WRITE_END != 0 {
            self.pending = None;
            self.pending_seq = None;
            self.done_seq = Some(r.header.seq);
            self.max_seq = self.max_seq.max(r.header.seq);
            note_newest(
                &mut self.log.newest,
                r.header.seq,
                r.header.is_tombstone(),
                r.header.record_len() as u32,
            );
        }
    }

    /// Drops an unfinished write; returns the file offset where it began.
    fn drop_pending(&mut self) -> Option<u64> {
        let (ents, bytes, offset) = self.pending.take()?;
        self.log.ents.truncate(ents);
        self.log.bytes.truncate(bytes);
        Some(offset)
    }
}

/// The log of a verified version 1 hint file (in file order, as a scan gives).
fn hint_log(id: u32, hint: hint::Hint) -> FileLog {
    let ents = hint
        .entries()
        .map(|(at, h)| Ent {
            head: head(h.key),
            key_at: at as u32,
            key_len: h.key.len() as u16,
            tombstone: h.flags & FLAG_TOMBSTONE != 0,
            loc: Loc {
                file_id: id,
                offset: h.offset as u32,
                rec_len: h.rec_len,
                expires: h.expires,
            },
        })
        .collect();
    FileLog {
        bytes: hint.bytes,
        ents,
        newest: hint.summary.newest,
        max_target: hint.summary.max_target,
    }
}

/// Builds the keydir from every file's entries, newest file winning and
/// deletes removing: the logs held in memory are sorted by key (on every core),
/// version 2 hints already are, and all are merged into one ascending stream that
/// fills the keydir leaf by leaf, which is many times faster than replaying in
/// file order, where every insert lands somewhere random. A hint is read through
/// a small window, so the memory open needs beyond the keydir is the logs of the
/// files that had no usable hint. A large keydir is built in key ranges, one per
/// core, split at sampled keys, and the parts joined.
fn build(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    mut sources: Vec<(u32, Source)>,
    index: &mut Index,
) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let queue = parking_lot::Mutex::new(
        sources
            .iter_mut()
            .filter_map(|(_, s)| match s {
                Source::Log(l) => Some(l),
                Source::Hint(_) => None,
            })
            .collect::<Vec<_>>(),
    );
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(log) = queue.lock().pop() else {
                    return;
                };
                sort_keep_last(log);
            });
        }
    });
    drop(queue);

    let specs: Vec<Spec<'_>> = sources
        .iter()
        .map(|(id, source)| Spec {
            id: *id,
            len: index.files.get(id).expect("listed").total,
            source,
        })
        .collect();
    // Split points: quantiles of the keys sampled from every run.
    let mut samples: Vec<&[u8]> = Vec::new();
    for (_, source) in &sources {
        match source {
            Source::Log(log) => samples.extend(
                log.ents
                    .iter()
                    .step_by(hint::SAMPLE_EVERY as usize)
                    .map(|e| log.key(e)),
            ),
            Source::Hint(s) => samples.extend(s.iter().map(|(k, _)| &k[..])),
        }
    }
    samples.sort_unstable();
    let parts = if samples.len() as u64 * hint::SAMPLE_EVERY >= PART_MIN_ENTRIES {
        threads
    } else {
        1
    };
    let mut splits: Vec<&[u8]> = (1..parts)
        .map(|p| samples[samples.len() * p / parts])
        .collect();
    splits.dedup();
    let bounds: Vec<Bounds<'_>> = (0..=splits.len())
        .map(|p| {
            let lo = p.checked_sub(1).map(|q| splits[q]);
            (lo, splits.get(p).copied())
        })
        .collect();
    let built: Vec<Result<(SortedBuilder, Tally)>> = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|&(lo, hi)| {
                let specs = &specs;
                s.spawn(move || build_part(fs, dir, specs, lo, hi))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a keydir part panicked"))
            .collect()
    });
    let mut keys = SortedBuilder::default();
    for part in built {
        let (b, tally) = part?;
        keys.append(b);
        for (spec, live) in specs.iter().zip(tally.live) {
            if let Some(f) = index.files.get_mut(&spec.id) {
                f.live += live;
            }
        }
        for (k, (n, bytes)) in tally.expiring {
            let e = index.expiring.entry(k).or_default();
            e.0 += n;
            e.1 += bytes;
        }
    }
    index.keydir = keys.finish();
    Ok(())
}

/// Below this many entries the keydir is built on one core: threads would
/// cost more than they save (the test build splits small ones too).
const PART_MIN_ENTRIES: u64 = if cfg!(feature = "fault-injection") {
    64
} else {
    1 << 20
};

/// A part's key range, `[lo, hi)`, unbounded where `None`.
type Bounds<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One file as the keydir build sees it.
struct Spec<'a> {
    id: u32,
    len: u64,
    source: &'a Source,
}

/// What a part of the build found live, added to the index once all are done.
struct Tally {
    /// Live bytes by run (the files in id order).
    live: Vec<u64>,
    expiring: std::collections::BTreeMap<(u32, u32), (u64, u64)>,
}

/// Builds the keydir for the keys in `[lo, hi)` (unbounded where `None`).
fn build_part(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    specs: &[Spec<'_>],
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
) -> Result<(SortedBuilder, Tally)> {
    let mut runs = Vec::with_capacity(specs.len());
    for spec in specs {
        let src = match spec.source {
            Source::Log(log) => {
                let at = lo.map_or(0, |lo| log.ents.partition_point(|e| log.key(e) < lo));
                RunSource::Log { log, at }
            }
            Source::Hint(samples) => {
                // From the last sample before `lo`: the entries of `lo` follow it.
                let from = lo
                    .and_then(|lo| {
                        let i = samples.partition_point(|(k, _)| &k[..] < lo);
                        i.checked_sub(1).map(|i| samples[i].1)
                    })
                    .unwrap_or(FILE_HEADER_LEN as u64);
                let stream = hint::HintStream::reopen(&**fs, dir, spec.id, spec.len, from)?;
                RunSource::Hint {
                    stream,
                    id: spec.id,
                }
            }
        };
        let mut run = Run {
            head: None,
            hi,
            src,
        };
        run.start()?;
        while let Some(lo) = lo.filter(|_| run.head.is_some()) {
            if run.key() >= lo {
                break;
            }
            run.advance()?;
        }
        runs.push(run);
    }
    let mut heap = RunHeap::default();
    for i in 0..runs.len() {
        if runs[i].head.is_some() {
            heap.push(&runs, i);
        }
    }
    let mut keys = SortedBuilder::default();
    let mut tally = Tally {
        live: vec![0; runs.len()],
        expiring: Default::default(),
    };
    let mut key = Vec::new();
    // The top of the heap is the smallest key, from the newest file holding it;
    // in that file the key's last entry is the newest write of it. The other
    // files' entries of the key are passed over.
    while let Some(i) = heap.peek() {
        let h = runs[i].head;
        key.clear();
        key.extend_from_slice(runs[i].key());
        let mut won = runs[i].entry();
        runs[i].advance()?;
        while runs[i].is_at(h, &key) {
            won = runs[i].entry();
            runs[i].advance()?;
        }
        heap.top_moved(&runs);
        while let Some(j) = heap.peek().filter(|&j| runs[j].is_at(h, &key)) {
            while runs[j].is_at(h, &key) {
                runs[j].advance()?;
            }
            heap.top_moved(&runs);
        }
        let (tombstone, loc) = won;
        if !tombstone {
            tally.live[i] += loc.rec_len as u64;
            crate::db::note_expiring(&mut tally.expiring, &loc);
            keys.push(&key, loc);
        }
    }
    Ok((keys, tally))
}

/// One file's entries in key order, as the keydir build reads them, with the
/// current key's head cached: comparing heads orders most keys without
/// touching their bytes.
struct Run<'a> {
    /// The current key's head; `None` once the run is spent (or past `hi`).
    head: Option<u64>,
    /// Where this part of the build ends.
    hi: Option<&'a [u8]>,
    src: RunSource<'a>,
}

enum RunSource<'a> {
    /// A sorted log: one entry per key.
    Log { log: &'a FileLog, at: usize },
    /// A version 2 hint: a key written twice in the file has an entry per write.
    Hint { stream: hint::HintStream, id: u32 },
}

impl Run<'_> {
    fn start(&mut self) -> Result<()> {
        if let RunSource::Hint { stream, .. } = &mut self.src {
            stream.advance()?;
        }
        self.set_head();
        Ok(())
    }

    fn set_head(&mut self) {
        let hi = self.hi;
        self.head = self
            .current_key()
            .filter(|k| hi.is_none_or(|hi| *k < hi))
            .map(head);
    }

    fn current_key(&self) -> Option<&[u8]> {
        match &self.src {
            RunSource::Log { log, at } => log.ents.get(*at).map(|e| log.key(e)),
            RunSource::Hint { stream, .. } => stream.current().map(|h| h.key),
        }
    }

    /// The current entry's key; the run is not spent.
    fn key(&self) -> &[u8] {
        self.current_key().expect("not spent")
    }

    /// Whether the current key is `key`, whose head is `h`.
    fn is_at(&self, h: Option<u64>, key: &[u8]) -> bool {
        self.head == h && self.current_key() == Some(key)
    }

    /// The current entry: whether it is a tombstone, and where its record is.
    fn entry(&self) -> (bool, Loc) {
        match &self.src {
            RunSource::Log { log, at } => {
                let e = &log.ents[*at];
                (e.tombstone, e.loc)
            }
            RunSource::Hint { stream, id } => {
                let h = stream.current().expect("not spent");
                let loc = Loc {
                    file_id: *id,
                    offset: h.offset as u32,
                    rec_len: h.rec_len,
                    expires: h.expires,
                };
                (h.flags & FLAG_TOMBSTONE != 0, loc)
            }
        }
    }

    fn advance(&mut self) -> Result<()> {
        match &mut self.src {
            RunSource::Log { at, .. } => *at += 1,
            RunSource::Hint { stream, .. } => {
                stream.advance()?;
            }
        }
        self.set_head();
        Ok(())
    }
}

/// A binary min-heap of run numbers, ordered by each run's current key, and
/// for equal keys the newest file (the higher run number) first. Each slot
/// carries its run's head, so that most comparisons touch only the heap; the
/// runs are passed in, as the heap holds no borrow of them between calls. A
/// spent run leaves the heap when it reaches the top.
#[derive(Default)]
struct RunHeap(Vec<(u64, usize)>);

impl RunHeap {
    fn before(runs: &[Run], a: (u64, usize), b: (u64, usize)) -> bool {
        match a.0.cmp(&b.0) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => match runs[a.1].key().cmp(runs[b.1].key()) {
                std::cmp::Ordering::Equal => a.1 > b.1,
                o => o == std::cmp::Ordering::Less,
            },
        }
    }

    fn peek(&self) -> Option<usize> {
        self.0.first().map(|&(_, i)| i)
    }

    fn push(&mut self, runs: &[Run], i: usize) {
        let h = &mut self.0;
        h.push((runs[i].head.expect("not spent"), i));
        let mut c = h.len() - 1;
        while c > 0 {
            let p = (c - 1) / 2;
            if !Self::before(runs, h[c], h[p]) {
                break;
            }
            h.swap(c, p);
            c = p;
        }
    }

    /// Restores the order after the top run moved on: it sinks to its place,
    /// or leaves when spent.
    fn top_moved(&mut self, runs: &[Run]) {
        let h = &mut self.0;
        match runs[h[0].1].head {
            Some(head) => h[0].0 = head,
            None => {
                let last = h.pop().expect("not empty");
                if h.is_empty() {
                    return;
                }
                h[0] = last;
            }
        }
        let mut p = 0;
        loop {
            let (l, r) = (2 * p + 1, 2 * p + 2);
            let mut m = p;
            if l < h.len() && Self::before(runs, h[l], h[m]) {
                m = l;
            }
            if r < h.len() && Self::before(runs, h[r], h[m]) {
                m = r;
            }
            if m == p {
                return;
            }
            h.swap(p, m);
            p = m;
        }
    }
}

/// Sorts a log by key, keeping for each key only its last write in the file.
fn sort_keep_last(log: &mut FileLog) {
    let FileLog { bytes, ents, .. } = log;
    let key = |e: &Ent| &bytes[e.key_at as usize..e.key_at as usize + e.key_len as usize];
    // Stable: equal keys stay in file order, so the last is the newest.
    ents.sort_by(|a, b| a.head.cmp(&b.head).then_with(|| key(a).cmp(key(b))));
    let mut w = 0;
    for r in 0..ents.len() {
        let (a, b) = (&ents[r], ents.get(r + 1));
        if b.is_some_and(|b| a.head == b.head && key(a) == key(b)) {
            continue;
        }
        ents[w] = ents[r];
        w += 1;
    }
    ents.truncate(w);
    // Lay the keys out in sorted order too, so that the merge, which runs on one
    // core, reads them sequentially instead of missing the cache on every key.
    let mut sorted = Vec::with_capacity(ents.iter().map(|e| e.key_len as usize).sum());
    for e in ents.iter_mut() {
        let at = sorted.len();
        sorted.extend_from_slice(key(e));
        e.key_at = at as u32;
    }
    *bytes = sorted;
}

/// Data file ids in the directory, ascending. Removes leftover temporary files of an
/// interrupted hint write or merge when `writable`.
pub(crate) fn list_data_files(fs: &dyn Fs, dir: &Path, writable: bool) -> Result<Vec<u32>> {
    let (mut ids, mut hints) = (Vec::new(), Vec::new());
    let names = fs.list(dir).map_err(|e| Error::io("listing", dir, e))?;
    for name in names {
        if let Some(id) = parse_file_name(&name, DATA_EXT) {
            ids.push(id);
        } else if let Some(id) = parse_file_name(&name, HINT_EXT) {
            hints.push(id);
        } else if writable && name.ends_with(&format!(".{TMP_EXT}")) {
            remove(fs, &dir.join(name))?;
        }
    }
    ids.sort_unstable();
    if writable {
        // A hint whose data file is gone (a merge removed it, or a crash came
        // between removing the two) would only waste a lookup at every open.
        for id in hints {
            if ids.binary_search(&id).is_err() {
                remove(fs, &dir.join(hint_file_name(id)))?;
            }
        }
    }
    Ok(ids)
}

fn remove(fs: &dyn Fs, p: &Path) -> Result<()> {
    match fs.remove(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", p, e)),
        _ => Ok(()),
    }
}

/// One data file read at open.
struct Loaded {
    file: Arc<DataFile>,
    /// Where its valid records end (its length, less a torn tail).
    end: u64,
    source: Source,
    totals: Totals,
    /// What the last file needs once every file has loaded.
    repair: Option<Repair>,
    /// An immutable file of the current format that had no usable hint and
    /// scanned clean.
    wants_hint: bool,
    dropped: u64,
    salvaged: u64,
    events: Vec<Event>,
}

/// A change to the last file that open makes only once every file has loaded,
/// so that an open failing on damage elsewhere changes nothing.
enum Repair {
    /// Shorter than its header (a crash right after it was created): a header.
    Header,
    /// A torn tail: cut at this length.
    Truncate(u64),
}

impl Repair {
    fn apply(&self, df: &DataFile) -> Result<()> {
        let f = &df.file;
        match self {
            Repair::Header => f
                .set_len(0)
                .and_then(|_| f.append(&file_header(&DATA_MAGIC)))
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io("rewriting header of", &df.path, e)),
            Repair::Truncate(cut) => f
                .set_len(*cut)
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io("truncating torn tail of", &df.path, e)),
        }
    }
}

/// Where a loaded file's entries come from when the keydir is built.
enum Source {
    /// Held in memory: a scan's records, or a version 1 hint's (file order).
    Log(FileLog),
    /// A version 2 hint that passed every check: read again, in key order,
    /// while the keydir is built, and never held whole; with its samples.
    Hint(Vec<(Vec<u8>, u64)>),
}

/// What the index needs of a file as a whole.
struct Totals {
    tomb: u64,
    tombs: u64,
    max_target: u32,
    /// See `FileLog::newest`.
    newest: Option<(u64, u64)>,
    max_seq: u64,
}

impl Totals {
    fn of_log(log: &FileLog, max_seq: u64) -> Totals {
        let (tomb, tombs) = log.tombs();
        Totals {
            tomb,
            tombs,
            max_target: log.max_target,
            newest: log.newest,
            max_seq,
        }
    }
}

/// Reads one data file's committed writes: from its hint file when a whole one
/// exists for exactly its length, else by a scan (which truncates a torn tail
/// of the `last` file, skips damage under salvage, and leaves a hint behind for
/// an immutable file).
fn load_file(fs: &Arc<dyn Fs>, dir: &Path, opts: &Options, id: u32, last: bool) -> Result<Loaded> {
    let writable = !opts.read_only;
    let mut df = DataFile::open(&**fs, dir, id, writable && last)?;
    let mut len = df.len()?;
    let (mut dropped, mut salvaged) = (0u64, 0u64);
    let mut events = Vec::new();
    let mut repair = None;
    if !df.read_header()? {
        // Shorter than a header: a crash right after the file was created.
        if !last && !opts.salvage {
            return Err(Error::corruption(
                &df.path,
                0,
                "file shorter than its header",
            ));
        }
        dropped += len;
        if len > 0 {
            let e = Event::new(EventKind::DroppedAtOpen).file(&df.path);
            events.push(e.offset(0).bytes(len));
        }
        if writable && last {
            repair = Some(Repair::Header);
        }
        len = FILE_HEADER_LEN as u64;
    }
    let df = Arc::new(df);
    if df.version == FORMAT_VERSION {
        if let Some(mut h) = hint::HintStream::check(&**fs, dir, id, len) {
            return Ok(Loaded {
                file: df,
                end: len,
                source: Source::Hint(std::mem::take(&mut h.samples)),
                repair,
                wants_hint: false,
                totals: Totals {
                    tomb: h.tomb_bytes,
                    tombs: h.tombs,
                    max_target: h.max_target,
                    newest: h.newest,
                    max_seq: h.max_seq,
                },
                dropped,
                salvaged,
                events,
            });
        }
    } else if let Some(hint) = hint::load(&**fs, dir, id, df.version, len)? {
        let max_seq = hint.summary.max_seq;
        let log = hint_log(id, hint);
        return Ok(Loaded {
            file: df,
            end: len,
            totals: Totals::of_log(&log, max_seq),
            source: Source::Log(log),
            repair,
            wants_hint: false,
            dropped,
            salvaged,
            events,
        });
    }
    // No usable hint: scan. An immutable file scanned clean gets its hint once
    // the database is open, from the background thread, off the open's path.
    let mut rp = Collect::new(id);
    let mut wants_hint = writable && !last && df.version == FORMAT_VERSION;
    let mut from = FILE_HEADER_LEN as u64;
    let end = loop {
        let ended = datafile::scan(
            &*df.file,
            df.version,
            from,
            len,
            |r| {
                rp.record(&r);
                Ok(())
            },
            &df.path,
        )?;
        // `bad_at` is the first byte that is not part of a valid record; an
        // unfinished write before it is dropped with it, from `cut` on.
        // Zeros to the end of the file after the last record are preallocated
        // space: the data ends there, nothing is dropped.
        let unfinished = crate::record::Bad::Invalid("write without its end");
        let (bad_at, bad) = match ended {
            ScanEnd::Clean if rp.pending.is_none() => break len,
            ScanEnd::Zeros { offset } if rp.pending.is_none() => break offset,
            ScanEnd::Clean => (len, unfinished),
            ScanEnd::Zeros { offset } => (offset, unfinished),
            ScanEnd::Bad { offset, bad } => (offset, bad),
        };
        wants_hint = false;
        let torn_seq = rp.pending_seq;
        let cut = rp.drop_pending().unwrap_or(bad_at);
        let next = datafile::find_next_valid(&*df.file, df.version, bad_at, len, &df.path)?;
        match next {
            None if last => {
                // Only bytes that were written count as dropped, not the
                // preallocated zeros after them.
                let n = datafile::zeros_to(&*df.file, cut, len, &df.path)? - cut;
                if n > 0 {
                    events.push(
                        Event::new(EventKind::DroppedAtOpen)
                            .file(&df.path)
                            .offset(cut)
                            .bytes(n),
                    );
                }
                dropped += n;
                if writable {
                    repair = Some(Repair::Truncate(cut));
                }
                break cut;
            }
            _ if opts.salvage => {
                let resume = match next {
                    Some(at) => skip_damaged_write(&df, at, len, torn_seq, rp.done_seq)?,
                    None => len,
                };
                salvaged += resume - cut;
                events.push(
                    Event::new(EventKind::SalvagedAtOpen)
                        .file(&df.path)
                        .offset(cut)
                        .bytes(resume - cut),
                );
                from = resume;
            }
            _ => {
                return Err(Error::corruption(
                    &df.path,
                    bad_at,
                    datafile::bad_reason(bad),
                ))
            }
        }
    };
    Ok(Loaded {
        file: df,
        end,
        totals: Totals::of_log(&rp.log, rp.max_seq),
        source: Source::Log(rp.log),
        repair,
        wants_hint,
        dropped,
        salvaged,
        events,
    })
}

/// Loads every file on every core, the last one first (it is the one most
/// likely to need a scan). Changes to the last file (`Repair`) wait until every
/// file has loaded, so that an open failing on damage elsewhere changes nothing.
fn load_all(fs: &Arc<dyn Fs>, dir: &Path, opts: &Options, ids: &[u32]) -> Result<Vec<Loaded>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let last = ids.len() - 1;
    // Progress: files and bytes loaded, reported under a lock so that calls
    // never overlap.
    let sizes: Vec<u64> = ids
        .iter()
        .map(|&id| fs.size(&dir.join(data_file_name(id))).unwrap_or(0))
        .collect();
    let progress = parking_lot::Mutex::new(crate::options::Progress {
        files_total: ids.len() as u64,
        bytes_total: sizes.iter().sum(),
        ..Default::default()
    });
    let done = |i: usize| {
        if let Some(cb) = &opts.open_progress {
            let mut p = progress.lock();
            p.files_done += 1;
            p.bytes_done += sizes[i];
            (cb.0)(*p);
        }
    };
    let order: Vec<usize> = std::iter::once(last).chain(0..last).collect();
    let slots: Vec<parking_lot::Mutex<Option<Result<Loaded>>>> =
        ids.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(ids.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = order.get(n) else { return };
                let r = load_file(fs, dir, opts, ids[i], i == last);
                // After a failure the rest is not needed.
                if r.is_err() {
                    next.store(order.len(), std::sync::atomic::Ordering::Relaxed);
                } else {
                    done(i);
                }
                *slots[i].lock() = Some(r);
            });
        }
    });
    let loaded: Vec<Option<Result<Loaded>>> = slots.into_iter().map(|s| s.into_inner()).collect();
    // Files in id order: the first failure found is the one reported (files
    // not loaded after it are passed over).
    if loaded.iter().any(|r| !matches!(r, Some(Ok(_)))) {
        let first = loaded.into_iter().flatten().find_map(|r| r.err());
        return Err(first.expect("a failure stopped the loading"));
    }
    let out: Vec<Loaded> = loaded
        .into_iter()
        .map(|r| r.expect("checked").expect("checked"))
        .collect();
    if let Some(r) = &out[last].repair {
        r.apply(&out[last].file)?;
    }
    Ok(out)
}

pub(crate) fn recover(fs: &Arc<dyn Fs>, dir: &Path, opts: &Options) -> Result<Recovered> {
    let writable = !opts.read_only;
    let ids = list_data_files(&**fs, dir, writable)?;
    let mut index = Index::default();
    let mut sources: Vec<(u32, Source)> = Vec::with_capacity(ids.len());
    let mut max_seq = 0u64;
    let (mut dropped, mut salvaged) = (0u64, 0u64);
    let mut unhinted = Vec::new();
    let mut events = Vec::new();
    for (&id, mut l) in ids.iter().zip(load_all(fs, dir, opts, &ids)?) {
        events.append(&mut l.events);
        if l.wants_hint {
            unhinted.push(id);
        }
        let mut f = FileInfo::new(l.file, l.end);
        let t = l.totals;
        (f.tomb, f.tombs, f.max_target) = (t.tomb, t.tombs, t.max_target);
        index.files.insert(id, f);
        // Over all files: where the newest record is.
        if let Some((seq, tomb_len)) = t.newest {
            if index.newest.is_none_or(|n| seq >= n.seq) {
                index.newest = Some(Newest {
                    file_id: id,
                    seq,
                    tomb_len,
                });
            }
        }
        max_seq = max_seq.max(t.max_seq);
        dropped += l.dropped;
        salvaged += l.salvaged;
        sources.push((id, l.source));
    }
    build(fs, dir, sources, &mut index)?;
    Ok(Recovered {
        next_seq: max_seq + 1,
        index,
        last_id: ids.last().copied(),
        dropped_bytes: dropped,
        salvaged_bytes: salvaged,
        unhinted,
        events,
    })
}

/// Where salvage resumes once damage ends at `at`, the first valid record after
/// it: never inside a write. The record at `at` may be the tail of a write whose
/// head was damaged; its records all carry one sequence number `s`, so it is
/// skipped whole when `s` is the unfinished write's number, or the number right
/// after the last finished write's (the damage began where write `s` began), or
/// when nothing before the damage tells.
fn skip_damaged_write(
    df: &DataFile,
    at: u64,
    len: u64,
    torn_seq: Option<u64>,
    done_seq: Option<u64>,
) -> Result<u64> {
    let Some((first, _)) = datafile::read_record_at(&*df.file, df.version, at, len, &df.path)?
    else {
        return Ok(at);
    };
    let s = first.seq;
    let tail = torn_seq == Some(s) || done_seq.is_none_or(|d| d.checked_add(1) == Some(s));
    if !tail {
        return Ok(at);
    }
    let mut pos = at;
    while let Some((h, _)) = datafile::read_record_at(&*df.file, df.version, pos, len, &df.path)? {
        if h.seq != s {
            break;
        }
        pos += h.record_len();
        if h.flags & FLAG_WRITE_END != 0 {
            break;
        }
    }
    Ok(pos)
}

//! Merge: rewrite immutable data files into files holding only live records (plus
//! the tombstones still needed), each with its hint file, then remove the inputs.
//!
//! A merge runs only when it will reclaim something: garbage (overwritten and
//! deleted values) or tombstones that no older file needs. The tombstone that
//! carries the newest sequence number is never counted, so a database left idle
//! after a merge is never merged again (`merge_idle_database_does_no_io`).
//!
//! Ordering is what keeps it correct. Outputs take ids above every immutable file
//! and below the active file: in the gap a previous merge left there, or past a
//! reserved gap that sealing the active file opens. So at open an output replays
//! after every input and before every write made during or after the merge, and
//! replaying by id stays "newest wins". (Every record of the active file is newer
//! than every record of an immutable file, outputs included.)
//!
//! Crash safety follows from four facts. An output holds only copies of records
//! that were live when read, so an output alone, or beside its inputs, replays to the
//! same state. Each output appears under its real name only once complete and
//! synced (written as `.tmp`, then renamed, then the directory synced). Before any
//! input is removed, the active file is flushed and fdatasynced: the keep decisions
//! relied on the keydir, whose newer writes may have been in the page cache only
//! (the durability point). Inputs are deleted oldest first, so a crash midway leaves
//! only newer inputs, and nothing in an older file can come back over them.
//!
//! A merge reads only what it copies: with a hint file, only the live records
//! (checksums verified) and no tombstone at all, so damage in dead records cannot
//! block it; without one (the file sealed by this merge) it scans.

use crate::datafile::{self, sync_dir, DataFile, RecordRef, ScanEnd};
use crate::db::{FileInfo, Index, Inner, Newest};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::format::*;
use crate::fs::Appender;
use crate::hint::{self, HintWriter};
use crate::keydir::Loc;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The outcome of a merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Data files merged and removed.
    pub files_in: u32,
    /// Data files written.
    pub files_out: u32,
    /// Bytes of the input data files.
    pub bytes_in: u64,
    /// Bytes of the output data files.
    pub bytes_out: u64,
    /// `bytes_in - bytes_out`.
    pub bytes_reclaimed: u64,
    /// Live records copied.
    pub records_copied: u64,
    /// Tombstones kept because an older file outside the merge may hold their key.
    pub tombstones_kept: u64,
    /// Expired values dropped (each replaced by a tombstone when an older file
    /// outside the merge may hold a value of its key).
    pub expired_dropped: u64,
    /// Wall time.
    pub duration: Duration,
}

/// What the engine remembers of its merges: for `Stats`, and for the automatic
/// merge's backoff after failures.
#[derive(Debug, Default)]
pub(crate) struct MergeState {
    pub last: Option<MergeStats>,
    pub merges: u64,
    pub failures: u64,
    pub last_error: Option<Error>,
    /// No automatic merge starts before this instant (backoff after a failure).
    pub not_before: Option<Instant>,
}

/// Which immutable files a merge takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every immutable file with something to reclaim (a manual `merge()`).
    All,
    /// Files past the inclusion thresholds (automatic merging).
    Thresholds,
}

/// What merging file `id` would reclaim: its garbage and expired values, plus
/// its tombstones when every file up to the highest one they name is merged
/// along or gone (`first_outside`, the oldest file not taken, is past it), less
/// the one that carries the newest sequence number. A file of an older format
/// counts whole: a merge rewrites it in the current one.
fn reclaimable(
    ix: &Index,
    id: u32,
    f: &FileInfo,
    first_outside: Option<u32>,
    expired: &BTreeMap<u32, u64>,
) -> u64 {
    if f.file.version != FORMAT_VERSION {
        return f.total;
    }
    let mut r = f.garbage() + expired.get(&id).copied().unwrap_or(0);
    if first_outside.is_none_or(|o| o > f.max_target) {
        r += f.tomb.saturating_sub(ix.pinned(id));
    }
    r
}

fn percent(part: u64, of: u64) -> u64 {
    part * 100 / of.max(1)
}

/// An upper bound on the output files for `bytes` of records: each output but the
/// last is more than half full (a record that does not fit starts the next one),
/// headers included, so twice the bytes in file-size units, plus slack.
pub(crate) fn outputs_bound(bytes: u64, max_file_size: u64) -> u32 {
    let room = max_file_size
        .saturating_sub(4 * FILE_HEADER_LEN as u64)
        .max(1);
    (2 * bytes.div_ceil(room) + 4).min(1 << 24) as u32
}

/// The files a merge takes, oldest first.
struct Plan {
    inputs: Vec<u32>,
    /// The active file is among them: it is sealed first.
    with_active: bool,
    /// Live and tombstone bytes of the immutable inputs: at most what is written.
    keep_bytes: u64,
}

/// One input, once chosen.
struct Input {
    id: u32,
    file: Arc<DataFile>,
    total: u64,
}

impl Inner {
    /// Whether the automatic merge triggers fire (Riak's rules: one file's
    /// fragmentation or dead bytes, or the total dead bytes of immutable files),
    /// counting only what a merge would reclaim.
    pub(crate) fn merge_triggered(&self) -> bool {
        let o = &self.opts;
        let now = self.now_ms();
        let ix = self.index.read();
        let expired = ix.expired_bytes(now);
        let active = self.active_id.load(Ordering::Acquire);
        let (mut total, mut first_outside) = (0, None);
        for (&id, f) in ix.files.range(..active) {
            let r = reclaimable(&ix, id, f, first_outside, &expired);
            if r == 0 && f.total > FILE_HEADER_LEN as u64 {
                first_outside.get_or_insert(id);
            }
            total += r;
            if r > 0
                && (percent(r, f.total) >= o.merge_trigger_fragmentation as u64
                    || r >= o.merge_trigger_dead_bytes)
            {
                return true;
            }
        }
        total > 0 && total >= o.merge_trigger_total_dead_bytes
    }

    /// Chooses the inputs without I/O; `None` when the merge would reclaim nothing.
    fn plan(&self, selection: Selection) -> Option<Plan> {
        let o = &self.opts;
        let now = self.now_ms();
        let ix = self.index.read();
        let expired = ix.expired_bytes(now);
        let active = self.active_id.load(Ordering::Acquire);
        let mut plan = Plan {
            inputs: Vec::new(),
            with_active: false,
            keep_bytes: 0,
        };
        let (mut reclaim, mut first_outside) = (0, None);
        for (&id, f) in &ix.files {
            let r = reclaimable(&ix, id, f, first_outside, &expired);
            let take = if f.total <= FILE_HEADER_LEN as u64 {
                // An empty file goes with any merge; the active one stays.
                id != active
            } else {
                r > 0
                    && match selection {
                        Selection::All => true,
                        Selection::Thresholds => {
                            percent(r, f.total) >= o.merge_threshold_fragmentation as u64
                                || r >= o.merge_threshold_dead_bytes
                        }
                    }
            };
            if !take {
                first_outside.get_or_insert(id);
                continue;
            }
            plan.inputs.push(id);
            reclaim += r;
            if id == active {
                plan.with_active = true;
            } else {
                plan.keep_bytes += f.live + f.tomb;
            }
        }
        (reclaim > 0).then_some(plan)
    }

    /// Runs a merge and records its outcome for `Stats` (and the backoff).
    pub(crate) fn merge(&self, selection: Selection) -> Result<MergeStats> {
        self.check_open()?;
        if self.opts.read_only {
            return Err(Error::ReadOnly);
        }
        let _one_at_a_time = self.merge_lock.lock();
        let res = self.merge_locked(selection);
        let mut st = self.merge_state.lock();
        match &res {
            Ok(m) if m.files_in == 0 => {}
            Ok(m) => {
                self.emit(
                    Event::new(EventKind::MergeCompleted)
                        .bytes(m.bytes_reclaimed)
                        .duration(m.duration),
                );
                st.last = Some(m.clone());
                st.merges += 1;
                st.failures = 0;
                st.last_error = None;
                st.not_before = None;
            }
            Err(Error::Closed) => {}
            Err(e) => {
                let mut ev = Event::new(EventKind::MergeFailed).error(e.clone());
                if let Some(p) = e.path() {
                    ev = ev.file(p);
                }
                self.emit(ev);
                st.failures += 1;
                st.last_error = Some(e.clone());
                // Exponential backoff from the check interval, capped at an hour.
                let interval = self.opts.merge_check_interval;
                let backoff = interval
                    .saturating_mul(1u32 << st.failures.min(16))
                    .min(Duration::from_secs(3600));
                st.not_before = Some(Instant::now() + backoff);
            }
        }
        res
    }

    fn merge_locked(&self, selection: Selection) -> Result<MergeStats> {
        // `close` may have run while this merge waited for the lock.
        self.check_open()?;
        let started = Instant::now();
        let mut stats = MergeStats::default();
        let Some(mut plan) = self.plan(selection) else {
            stats.duration = started.elapsed();
            return Ok(stats);
        };
        let (first_out, limit) = self.output_ids(&mut plan)?;
        // From here until it ends, a copy of any value may land in an output, whose
        // id is below `limit`: a tombstone written meanwhile must name at least
        // that id (see `Inner::tombstone_floor`).
        let _ceiling = self.raise_tombstone_floor(limit - 1);
        let inputs: Vec<Input> = {
            let ix = self.index.read();
            plan.inputs
                .iter()
                .filter_map(|id| {
                    let f = ix.files.get(id)?;
                    Some(Input {
                        id: *id,
                        file: f.file.clone(),
                        total: f.total,
                    })
                })
                .collect()
        };
        let mut out = Output::new(first_out, limit);
        let mut done = 0;
        let res = self
            .copy_live(&inputs, &mut out, &mut stats, &mut done)
            .and_then(|_| out.finish_file(self));
        if let Err(e) = res {
            out.abandon(self);
            if !matches!(e, Error::Closed) {
                // Inputs whose every kept record is in a committed output are
                // done with: removing them keeps a retry from copying them again.
                let mut covered = out.covered(done);
                // ...but not the one holding the newest record, unless a copy of
                // it was committed: the sequence number must survive.
                if let Some(n) = self.index.read().newest {
                    if out.newest.is_none_or(|o| o.seq < n.seq) {
                        if let Some(at) = inputs[..covered].iter().position(|i| i.id == n.file_id) {
                            covered = at;
                        }
                    }
                }
                let _ = self.remove_inputs(&inputs[..covered], &out, &mut MergeStats::default());
                // The active file this merge sealed stays: give it the hint it
                // would have had, or every open scans it.
                if plan.with_active && covered < inputs.len() {
                    let _ = self.write_hint(inputs[inputs.len() - 1].id);
                }
            }
            return Err(e);
        }
        stats.files_out = out.files_out;
        stats.bytes_out = out.bytes_out;
        self.remove_inputs(&inputs, &out, &mut stats)?;
        stats.bytes_reclaimed = stats.bytes_in.saturating_sub(stats.bytes_out);
        stats.duration = started.elapsed();
        Ok(stats)
    }

    /// Ids for the outputs: above every immutable file, below the active one. The
    /// gap an earlier merge left there serves when it is large enough and the active
    /// file is not an input; else the active file is sealed, past a fresh gap.
    fn output_ids(&self, plan: &mut Plan) -> Result<(u32, u32)> {
        if !plan.with_active {
            let ix = self.index.read();
            let active = self.active_id.load(Ordering::Acquire);
            let below = ix
                .files
                .range(..active)
                .next_back()
                .map_or(0, |(&id, _)| id);
            let need = outputs_bound(plan.keep_bytes, self.opts.max_file_size);
            if active - below > need {
                return Ok((below + 1, active));
            }
        }
        let planned = plan.inputs.last().copied().filter(|_| plan.with_active);
        let (sealed, next_active) = self.seal_for_merge(plan.keep_bytes, planned)?;
        // A write may have rotated the planned active file out since the plan: it
        // was sealed (its hint written) like any other, and the file sealed here
        // is a newer one, which this merge does not read.
        if planned.is_some_and(|p| p != sealed) {
            plan.with_active = false;
        }
        let empty = self
            .index
            .read()
            .files
            .get(&sealed)
            .is_some_and(|f| f.total <= FILE_HEADER_LEN as u64);
        if plan.with_active {
            // The file sealed is the one planned; it is an input in any case.
            debug_assert_eq!(plan.inputs.last(), Some(&sealed));
        } else if empty {
            // An empty file sealed only to make room goes with this merge.
            plan.inputs.push(sealed);
        } else {
            // Best effort, as in the background: a missing hint costs a scan at open.
            let _ = self.write_hint(sealed);
        }
        Ok((sealed + 1, next_active))
    }

    /// The durability point, then the inputs' removal, oldest first. An input
    /// leaves the index only once its data file is gone: one that failed to go stays
    /// known, so a later merge still counts it among the older files that a
    /// tombstone must hide (`merge_fails_removing_inputs_no_key_comes_back`).
    fn remove_inputs(&self, inputs: &[Input], out: &Output, stats: &mut MergeStats) -> Result<()> {
        if inputs.is_empty() {
            return Ok(());
        }
        // Every write the keep decisions saw must be on disk before the records
        // they dropped are: flush the buffer and fdatasync the active file.
        self.sync_active()?;
        let ids: HashSet<u32> = inputs.iter().map(|i| i.id).collect();
        {
            let mut ix = self.index.write();
            if ix.newest.is_some_and(|n| ids.contains(&n.file_id)) {
                ix.newest = out.newest;
            }
        }
        for input in inputs {
            stats.files_in += 1;
            stats.bytes_in += input.total;
            for p in [
                self.dir.join(data_file_name(input.id)),
                self.dir.join(hint_file_name(input.id)),
            ] {
                match self.fs.remove(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("removing merged file", &p, e)),
                }
                self.index.write().files.remove(&input.id);
            }
        }
        sync_dir(&*self.fs, &self.dir)
    }

    fn copy_live(
        &self,
        inputs: &[Input],
        out: &mut Output,
        stats: &mut MergeStats,
        done: &mut usize,
    ) -> Result<()> {
        let mut pacer = Pacer::new(self.opts.merge_bytes_per_sec);
        // Keys whose tombstone this merge already kept, with the file it names:
        // one per key is enough to hide values, as every output replays after
        // every input, but a newer tombstone that names a newer file is kept too,
        // or a later merge could drop the older one too early.
        let mut tombstoned: HashMap<Vec<u8>, u32> = HashMap::new();
        // The newest record of the inputs must survive, or reopening would hand out
        // its sequence number again. If it is a dropped tombstone, it is written last.
        let (mut max_kept, mut newest_dropped) = (0u64, None::<Rec>);
        let now = self.now_ms();
        for (i, input) in inputs.iter().enumerate() {
            // Files that stay when this input goes: all but the older inputs,
            // which a failed merge removes first (and this one).
            let outside: Vec<u32> = {
                let ix = self.index.read();
                ix.files
                    .keys()
                    .copied()
                    .filter(|&f| f != input.id && !inputs[..i].iter().any(|x| x.id == f))
                    .collect()
            };
            // Whether a file that stays may hold a value of a key whose newest
            // record, here, is a tombstone naming `target` or an expired value:
            // values older than it sit in files up to that one.
            let hides = |target: u32| outside.first().is_some_and(|&f| f <= target);
            let mut each = |mut rec: Rec, value: Option<&[u8]>| -> Result<()> {
                self.check_open()?;
                if rec.tombstone() && rec.target == 0 {
                    // A version 1 tombstone names no file: its own stands in.
                    rec.target = input.id;
                }
                let mut value = value;
                if value.is_some() && crate::db::expired(rec.expires, now) {
                    // Expired: the keydir lets go of it, and it is not copied. It
                    // may still hide an older value in a file that stays; then a
                    // tombstone takes its place.
                    let from = rec.loc(input.id);
                    {
                        let mut ix = self.index.write();
                        if ix.keydir.get(&rec.key) == Some(from) {
                            ix.apply_delete(&rec.key);
                        }
                    }
                    stats.expired_dropped += 1;
                    value = None;
                    if !hides(input.id) || tombstoned.get(&rec.key) >= Some(&input.id) {
                        return Ok(());
                    }
                    rec.flags = FLAG_TOMBSTONE;
                    rec.expires = 0;
                    rec.target = input.id;
                    rec.value_len = 0;
                }
                let keep = if rec.tombstone() {
                    let absent = self.index.read().keydir.get(&rec.key).is_none();
                    absent && hides(rec.target) && tombstoned.get(&rec.key) < Some(&rec.target)
                } else {
                    value.is_some()
                };
                if !keep {
                    if rec.tombstone() && newest_dropped.as_ref().is_none_or(|d| rec.seq > d.seq) {
                        newest_dropped = Some(rec);
                    }
                    return Ok(());
                }
                max_kept = max_kept.max(rec.seq);
                if rec.tombstone() {
                    stats.tombstones_kept += 1;
                    tombstoned.insert(rec.key.clone(), rec.target);
                } else {
                    stats.records_copied += 1;
                }
                let n = out.add(self, i, input.id, rec, value.unwrap_or(&[]))?;
                pacer.pace(2 * n);
                Ok(())
            };
            self.each_record(input, &mut each)?;
            *done = i + 1;
        }
        if let Some(rec) = newest_dropped {
            // Needed only while no newer write exists; safe to keep while the key
            // is still absent, as a tombstone then changes nothing.
            let newer = self.last_seq().is_some_and(|s| s > rec.seq);
            if rec.seq > max_kept && !newer && self.index.read().keydir.get(&rec.key).is_none() {
                let from = inputs.len() - 1;
                out.add(self, from, inputs[from].id, rec, &[])?;
                stats.tombstones_kept += 1;
            }
        }
        Ok(())
    }

    /// Calls `f` with each record of `input`: a put with its value when the
    /// keydir still points at it (a dead one, unread, only on a scan), a tombstone
    /// always. Mapped, in key order: from the hint file when there is one, else
    /// from a scan of the file's headers, values read from the map. With pread, in
    /// file order: from the hint, reading only the live values, else by a scan.
    fn each_record(&self, input: &Input, f: &mut RecordFn<'_>) -> Result<()> {
        let is_live = |key: &[u8], offset: u64| {
            self.index
                .read()
                .keydir
                .get(key)
                .is_some_and(|l| l.file_id == input.id && l.offset as u64 == offset)
        };
        let version = input.file.version;
        let mapped = input.file.will_read_all(self.reads);
        let hint = hint::load(&*self.fs, &self.dir, input.id, version, input.total)?;
        let mut recs: Vec<Rec> = match &hint {
            Some(hint) => hint
                .entries()
                .map(|(_, h)| Rec {
                    seq: h.seq,
                    flags: h.flags,
                    key: h.key.to_vec(),
                    offset: h.offset,
                    rec_len: h.rec_len,
                    value_len: h.value_len,
                    expires: h.expires,
                    target: h.target,
                })
                .collect(),
            None if mapped => {
                let mut recs = Vec::new();
                self.scan(input, |r| {
                    recs.push(Rec::of(&r));
                    Ok(())
                })?;
                // Stable: the records of one key stay in file order.
                recs.sort_by(|a, b| a.key.cmp(&b.key));
                recs
            }
            None => {
                return self.scan(input, |r| {
                    let rec = Rec::of(&r);
                    let (_, value) = crate::record::key_value(&r.header, r.raw);
                    let live = !rec.tombstone() && is_live(r.key, r.offset);
                    f(rec, live.then_some(value))
                })
            }
        };
        if mapped {
            // Key order (hints are sorted runs), values read at random from the
            // map: every input's live records go out as a sorted run, so a range
            // scan of merged data reads neighbouring bytes.
            for rec in recs {
                if rec.tombstone() {
                    f(rec, None)?;
                } else if is_live(&rec.key, rec.offset) {
                    let (key, at, len) = (rec.key.clone(), rec.offset as u32, rec.rec_len);
                    input
                        .file
                        .with_value(&key, at, len, self.reads, |v| f(rec, Some(v)))??;
                }
            }
            return Ok(());
        }
        // With pread: file order, nearby live records read together.
        recs.sort_unstable_by_key(|r| r.offset);
        let mut span = Span::default();
        for rec in recs {
            if rec.tombstone() {
                // In file order: what is pending goes first.
                span.flush(input, f)?;
                f(rec, None)?;
                continue;
            }
            if !is_live(&rec.key, rec.offset) {
                // Dead: never read, nothing to decide.
                continue;
            }
            if !span.fits(&rec) {
                span.flush(input, f)?;
            }
            span.recs.push(rec);
        }
        span.flush(input, f)
    }

    /// Scans every record of `input`, which must all be valid.
    fn scan(&self, input: &Input, f: impl FnMut(RecordRef<'_>) -> Result<()>) -> Result<()> {
        let path = &input.file.path;
        let ended = datafile::scan(
            &*input.file.file,
            input.file.version,
            FILE_HEADER_LEN as u64,
            input.total,
            f,
            path,
        )?;
        match ended {
            ScanEnd::Clean => Ok(()),
            ScanEnd::Zeros { offset } => Err(Error::corruption(
                path,
                offset,
                "zeros where the file's records should be",
            )),
            ScanEnd::Bad { offset, bad } => {
                Err(Error::corruption(path, offset, datafile::bad_reason(bad)))
            }
        }
    }

    /// The sequence number of the newest write.
    fn last_seq(&self) -> Option<u64> {
        self.index.read().newest.map(|n| n.seq)
    }
}

/// What a merge does with each record of an input: the record, and its value when
/// the record is a live put.
type RecordFn<'a> = dyn FnMut(Rec, Option<&[u8]>) -> Result<()> + 'a;

/// A record of an input, without its value.
#[derive(Clone, Debug)]
struct Rec {
    seq: u64,
    flags: u8,
    key: Vec<u8>,
    /// Offset of the record in its file, and its length there.
    offset: u64,
    rec_len: u32,
    value_len: u32,
    expires: u32,
    target: u32,
}

impl Rec {
    fn of(r: &RecordRef<'_>) -> Rec {
        Rec {
            seq: r.header.seq,
            flags: r.header.flags,
            key: r.key.to_vec(),
            offset: r.offset,
            rec_len: r.header.record_len() as u32,
            value_len: r.header.value_len,
            expires: r.header.expires,
            target: r.header.target,
        }
    }

    fn tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// Length in its input file.
    fn len(&self) -> u64 {
        self.rec_len as u64
    }

    /// Where the keydir finds it in its input file.
    fn loc(&self, file_id: u32) -> Loc {
        Loc {
            file_id,
            offset: self.offset as u32,
            rec_len: self.rec_len,
            expires: self.expires,
        }
    }

    /// The fields of its copy: each copied record stands alone (its write was
    /// complete, and its batch companions may not be copied), so it carries the
    /// write-end flag itself.
    fn fields(&self) -> crate::record::Fields {
        crate::record::Fields {
            seq: self.seq,
            flags: self.flags | FLAG_WRITE_END,
            expires: self.expires,
            target: self.target,
        }
    }
}

/// Live records close together, read with one positioned read.
#[derive(Default)]
struct Span {
    recs: Vec<Rec>,
    /// Reused between reads.
    buf: Vec<u8>,
}

impl Span {
    /// Reads are coalesced over gaps of dead bytes up to this size...
    const MAX_GAP: u64 = 64 << 10;
    /// ...into reads of up to this size (one larger record is read alone).
    const MAX_READ: u64 = 1 << 20;

    fn fits(&self, r: &Rec) -> bool {
        match (self.recs.first(), self.recs.last()) {
            (Some(first), Some(last)) => {
                let end = last.offset + last.len();
                r.offset >= end
                    && r.offset - end <= Self::MAX_GAP
                    && r.offset + r.len() - first.offset <= Self::MAX_READ
            }
            _ => true,
        }
    }

    /// Reads the span and hands each record, checksum verified, to `f`.
    fn flush(&mut self, input: &Input, f: &mut RecordFn<'_>) -> Result<()> {
        let (Some(first), Some(last)) = (self.recs.first(), self.recs.last()) else {
            return Ok(());
        };
        let start = first.offset;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize((last.offset + last.len() - start) as usize, 0);
        let df = &input.file;
        df.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| Error::io("reading", &df.path, e))?;
        for rec in self.recs.drain(..) {
            let at = (rec.offset - start) as usize;
            let raw = &buf[at..at + rec.len() as usize];
            let h = crate::record::decode(df.version, raw).map_err(|b| df.bad(rec.offset, b))?;
            let (key, value) = crate::record::key_value(&h, raw);
            if key != rec.key.as_slice() || h.value_len != rec.value_len {
                return Err(Error::corruption(
                    &df.path,
                    rec.offset,
                    "record differs from its hint",
                ));
            }
            f(rec, Some(value))?;
        }
        self.buf = buf;
        Ok(())
    }
}

/// Holds merge I/O under `merge_bytes_per_sec`.
pub(crate) struct Pacer {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    pub(crate) fn new(rate: u64) -> Pacer {
        Pacer {
            rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    pub(crate) fn pace(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(100)));
        }
    }
}

/// A keydir move to make once the output file holding it is durable.
struct Moved {
    key: Vec<u8>,
    from: Loc,
    to: Loc,
}

/// The output file being written, and the ids it may use.
struct Output {
    next_id: u32,
    limit: u32,
    cur: Option<OutFile>,
    files_out: u32,
    bytes_out: u64,
    /// The record with the highest sequence number in a committed output.
    newest: Option<Newest>,
    /// Index of the first input with a record in an output not yet committed.
    uncommitted_from: Option<usize>,
    /// The record being written, reused between records.
    scratch: Vec<u8>,
}

struct OutFile {
    id: u32,
    tmp: PathBuf,
    data: BufWriter<Appender>,
    hint: HintWriter,
    len: u64,
    tomb: u64,
    tombs: u64,
    max_target: u32,
    moved: Vec<Moved>,
    /// The record with the highest sequence number in this file.
    newest: Option<Newest>,
}

impl Output {
    fn new(first_id: u32, limit: u32) -> Output {
        Output {
            next_id: first_id,
            limit,
            cur: None,
            files_out: 0,
            bytes_out: 0,
            newest: None,
            uncommitted_from: None,
            scratch: Vec::new(),
        }
    }

    /// How many inputs, from the first, have every kept record in a committed
    /// output, given that the first `done` were read to the end.
    fn covered(&self, done: usize) -> usize {
        self.uncommitted_from.map_or(done, |u| u.min(done))
    }

    /// Writes one record of input number `input` (file `input_id`); returns its
    /// length.
    fn add(
        &mut self,
        db: &Inner,
        input: usize,
        input_id: u32,
        r: Rec,
        value: &[u8],
    ) -> Result<u64> {
        let fields = r.fields();
        let rec_len = crate::record::record_len(&fields, r.key.len(), value.len()) as u64;
        if let Some(c) = &self.cur {
            if c.len > FILE_HEADER_LEN as u64 && c.len + rec_len > db.opts.max_file_size {
                self.finish_file(db)?;
            }
        }
        if self.cur.is_none() {
            self.open_file(db)?;
        }
        self.uncommitted_from.get_or_insert(input);
        let c = self.cur.as_mut().expect("opened above");
        let rec = &mut self.scratch;
        rec.clear();
        crate::record::encode(rec, &fields, &r.key, value);
        debug_assert_eq!(rec.len() as u64, rec_len);
        c.data
            .write_all(rec)
            .map_err(|e| Error::io("writing", &c.tmp, e))?;
        c.hint.add(&fields, &r.key, value.len(), c.len);
        if c.newest.is_none_or(|n| r.seq >= n.seq) {
            c.newest = Some(Newest {
                file_id: c.id,
                seq: r.seq,
                tomb_len: if r.tombstone() { rec_len } else { 0 },
            });
        }
        if r.tombstone() {
            c.tomb += rec_len;
            c.tombs += 1;
            c.max_target = c.max_target.max(r.target);
        } else {
            c.moved.push(Moved {
                from: r.loc(input_id),
                to: Loc {
                    file_id: c.id,
                    offset: c.len as u32,
                    rec_len: rec_len as u32,
                    expires: r.expires,
                },
                key: r.key,
            });
        }
        c.len += rec_len;
        Ok(rec_len)
    }

    fn open_file(&mut self, db: &Inner) -> Result<()> {
        if self.next_id >= self.limit {
            return Err(Error::io(
                "allocating a merge output id in",
                &db.dir,
                std::io::Error::other("merge output exceeded its reserved id range"),
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        let tmp = db.dir.join(format!("{}.{TMP_EXT}", data_file_name(id)));
        let file = db
            .fs
            .create(&tmp, true)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        let mut data = BufWriter::with_capacity(1 << 20, Appender(file));
        let hint = HintWriter::create(&db.fs, &db.dir, id);
        let started = data
            .write_all(&file_header(&DATA_MAGIC))
            .map_err(|e| Error::io("writing", &tmp, e))
            .and(hint);
        let hint = match started {
            Ok(h) => h,
            Err(e) => {
                drop(data);
                let _ = db.fs.remove(&tmp);
                return Err(e);
            }
        };
        self.cur = Some(OutFile {
            id,
            tmp,
            data,
            hint,
            len: FILE_HEADER_LEN as u64,
            tomb: 0,
            tombs: 0,
            max_target: 0,
            moved: Vec::new(),
            newest: None,
        });
        Ok(())
    }

    /// Makes the current output durable under its real name, then points the keydir
    /// at it for every key still where the merge found it.
    fn finish_file(&mut self, db: &Inner) -> Result<()> {
        let Some(c) = self.cur.take() else {
            return Ok(());
        };
        let tmp = c.tmp.clone();
        let newest = c.newest;
        let (tombs, max_target) = (c.tombs, c.max_target);
        let committed = Self::commit_file(db, c);
        if committed.is_err() {
            // Not renamed: the unfinished output goes (its hint went with `c`).
            let _ = db.fs.remove(&tmp);
        }
        let (id, len, tomb, file, moved, synced) = committed?;
        let path = db.dir.join(data_file_name(id));
        // From the rename on, the output is in the directory and will replay at the
        // next open: the index must know it even if what follows fails, or a later
        // merge would drop a tombstone that hides one of its values, not knowing an
        // older file outside that merge holds it (`merge_fails_after_commit_no_key_comes_back`).
        // Its own handle serves reads: opening it again could fail here.
        let df = Arc::new(DataFile::new(id, path, file, FORMAT_VERSION, false));
        let mut info = FileInfo::new(df, len);
        info.tomb = tomb;
        info.tombs = tombs;
        info.max_target = max_target;
        db.index.write().files.insert(id, info);
        // Keys move only once the output's name is durable, a few thousand per
        // hold of the lock, so that writers never wait long behind a merge.
        if synced.is_ok() {
            for chunk in moved.chunks(4096) {
                let mut ix = db.index.write();
                for m in chunk {
                    // A write that landed during the merge wins: move only what is unchanged.
                    if ix.keydir.get(&m.key) == Some(m.from) {
                        ix.apply_put(&m.key, m.to);
                    }
                }
            }
        }
        synced?;
        if let Some(n) = newest.filter(|n| self.newest.is_none_or(|o| n.seq >= o.seq)) {
            self.newest = Some(n);
        }
        self.uncommitted_from = None;
        self.files_out += 1;
        self.bytes_out += len;
        Ok(())
    }

    /// Syncs, finishes the hint and renames an output into place. Returns what the
    /// index needs, and whether the directory sync that makes the name durable
    /// succeeded; an error means the output is not under its real name.
    #[allow(clippy::type_complexity)]
    fn commit_file(
        db: &Inner,
        c: OutFile,
    ) -> Result<(
        u32,
        u64,
        u64,
        Box<dyn crate::fs::FileHandle>,
        Vec<Moved>,
        Result<()>,
    )> {
        let file = c
            .data
            .into_inner()
            .map_err(|e| Error::io("writing", &c.tmp, e.into_error()))?;
        file.0
            .sync_data()
            .map_err(|e| Error::io("syncing", &c.tmp, e))?;
        c.hint.finish(c.len)?;
        let path = db.dir.join(data_file_name(c.id));
        db.fs
            .rename(&c.tmp, &path)
            .map_err(|e| Error::io("renaming", &c.tmp, e))?;
        let synced = sync_dir(&*db.fs, &db.dir);
        Ok((c.id, c.len, c.tomb, file.0, c.moved, synced))
    }

    /// After a failure: remove the unfinished output. Committed outputs stay; they
    /// hold copies of live records and replay harmlessly.
    fn abandon(&mut self, db: &Inner) {
        if let Some(c) = self.cur.take() {
            let OutFile {
                tmp, data, hint, ..
            } = c;
            drop(data);
            drop(hint);
            let _ = db.fs.remove(&tmp);
        }
    }
}

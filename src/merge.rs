//! Merge: rewrite immutable data files into files holding only live records (plus
//! the tombstones still needed), each with its hint file, then remove the inputs.
//!
//! Ordering is what keeps it correct. A merge first seals the active file and starts
//! the next active file at an id past a reserved gap; its outputs take ids inside the
//! gap. So at open an output replays after every input and before every write made
//! during or after the merge, and replaying by id stays "newest wins".
//!
//! Crash safety follows from three facts. An output holds only copies of records
//! that were live when read, so an output alone, or beside its inputs, replays to the
//! same state. Each output appears under its real name only once complete and
//! synced (written as `.tmp`, then renamed, then the directory synced). Inputs are
//! deleted oldest first, so a crash midway leaves only newer inputs, and nothing in
//! an older file can come back over them.

use crate::datafile::{self, sync_dir, DataFile, RecordRef, ScanEnd};
use crate::db::{FileInfo, Inner};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::Appender;
use crate::hint::HintWriter;
use crate::keydir::Loc;
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

/// A file worth including: it has dead bytes beyond its header.
fn reclaimable(f: &FileInfo) -> bool {
    f.total.saturating_sub(f.live) > FILE_HEADER_LEN as u64
}

fn fragmentation(f: &FileInfo) -> u64 {
    f.total.saturating_sub(f.live) * 100 / f.total.max(1)
}

impl Inner {
    /// Whether the automatic merge triggers fire (Riak's rules: one file's
    /// fragmentation or dead bytes, or the total dead bytes of immutable files).
    pub(crate) fn merge_triggered(&self) -> bool {
        let o = &self.opts;
        let ix = self.index.read();
        let active = self.active_id.load(Ordering::Acquire);
        let mut total_dead = 0;
        for (&id, f) in &ix.files {
            if id >= active || !reclaimable(f) {
                continue;
            }
            let dead = f.total - f.live;
            total_dead += dead;
            if fragmentation(f) >= o.merge_trigger_fragmentation as u64
                || dead >= o.merge_trigger_dead_bytes
            {
                return true;
            }
        }
        total_dead >= o.merge_trigger_total_dead_bytes
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
                st.last = Some(m.clone());
                st.merges += 1;
                st.failures = 0;
                st.last_error = None;
                st.not_before = None;
            }
            Err(Error::Closed) => {}
            Err(e) => {
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
        let started = Instant::now();

        // Size the id gap for the outputs: each output but the last is at least half
        // full (a record that does not fit starts a new file), so twice the live
        // bytes in file-size units, plus slack, always suffices.
        let live: u64 = self.index.read().files.values().map(|f| f.live).sum();
        let reserve = (2 * live.div_ceil(self.opts.max_file_size) + 4).min(1 << 20) as u32;
        let (sealed, next_active) = self.seal_for_merge(reserve)?;

        let inputs: Vec<(u32, Arc<DataFile>, u64)> = {
            let ix = self.index.read();
            ix.files
                .iter()
                .filter(|(&id, f)| {
                    id <= sealed
                        && match selection {
                            Selection::All => reclaimable(f) || f.total <= FILE_HEADER_LEN as u64,
                            Selection::Thresholds => {
                                f.total <= FILE_HEADER_LEN as u64
                                    || (reclaimable(f)
                                        && (fragmentation(f)
                                            >= self.opts.merge_threshold_fragmentation as u64
                                            || f.total - f.live
                                                >= self.opts.merge_threshold_dead_bytes))
                            }
                        }
                })
                .map(|(&id, f)| (id, f.file.clone(), f.total))
                .collect()
        };
        if !inputs.iter().any(|(id, _, _)| *id == sealed) {
            // Best effort, as in the background: a missing hint costs a scan at open.
            let _ = self.write_hint(sealed);
        }
        let mut stats = MergeStats::default();
        if inputs.is_empty() {
            stats.duration = started.elapsed();
            return Ok(stats);
        }
        let mut out = Output::new(sealed + 1, next_active);
        let res = self.copy_live(&inputs, &mut out, &mut stats);
        let res = res.and_then(|_| out.finish_file(self));
        if let Err(e) = res {
            out.abandon(self);
            return Err(e);
        }
        stats.files_out = out.files_out;
        stats.bytes_out = out.bytes_out;

        // Every live record of the inputs now has a copy the keydir points at (or a
        // newer write replaced it): no location names an input any more. An input
        // leaves the index only once its data file is gone: one that failed to go
        // stays known, so a later merge still counts it among the older files that a
        // tombstone must hide (`merge_fails_removing_inputs_no_key_comes_back`).
        for (id, _, total) in &inputs {
            stats.files_in += 1;
            stats.bytes_in += total;
            for p in [
                self.dir.join(data_file_name(*id)),
                self.dir.join(hint_file_name(*id)),
            ] {
                match self.fs.remove(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("removing merged file", &p, e)),
                }
                self.index.write().files.remove(id);
            }
        }
        drop(inputs);
        sync_dir(&*self.fs, &self.dir)?;
        stats.bytes_reclaimed = stats.bytes_in.saturating_sub(stats.bytes_out);
        stats.duration = started.elapsed();
        Ok(stats)
    }

    fn copy_live(
        &self,
        inputs: &[(u32, Arc<DataFile>, u64)],
        out: &mut Output,
        stats: &mut MergeStats,
    ) -> Result<()> {
        let pacer_start = Instant::now();
        let mut paced_bytes = 0u64;
        // The newest record of the inputs must survive, or reopening would hand out
        // its sequence number again. If it is a dropped tombstone, it is written last.
        let (mut max_kept, mut newest_dropped) = (0u64, None::<(u32, u64, Vec<u8>)>);
        for (i, (id, file, total)) in inputs.iter().enumerate() {
            // Any file outside the merge older than this one may hold an older value
            // of a key this file deletes: then its tombstones must survive.
            let older_outside = {
                let ix = self.index.read();
                ix.files
                    .keys()
                    .take_while(|&&f| f < *id)
                    .any(|f| !inputs[..i].iter().any(|(x, _, _)| x == f))
            };
            let ended = datafile::scan(
                &*file.file,
                FILE_HEADER_LEN as u64,
                *total,
                |r| {
                    self.check_open()?;
                    if !self.keep(*id, &r, older_outside) {
                        let newer = newest_dropped.as_ref().is_none_or(|d| r.header.seq > d.1);
                        if r.header.is_tombstone() && newer {
                            newest_dropped = Some((*id, r.header.seq, r.raw.to_vec()));
                        }
                    } else {
                        max_kept = max_kept.max(r.header.seq);
                        if r.header.is_tombstone() {
                            stats.tombstones_kept += 1;
                        } else {
                            stats.records_copied += 1;
                        }
                        out.add(self, *id, &r)?;
                        paced_bytes += 2 * r.raw.len() as u64;
                        self.pace(pacer_start, paced_bytes);
                    }
                    Ok(())
                },
                &file.path,
            )?;
            if let ScanEnd::Bad { offset, bad } = ended {
                return Err(Error::corruption(
                    &file.path,
                    offset,
                    datafile::bad_reason(bad),
                ));
            }
        }
        if let Some((id, seq, raw)) = newest_dropped {
            let h = crate::record::decode(&raw).expect("copied from a verified record");
            let key = &raw[RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.key_len as usize];
            // Safe to keep: the key is still absent, so a tombstone changes nothing.
            if seq > max_kept && self.index.read().keydir.get(key).is_none() {
                let r = RecordRef {
                    offset: 0,
                    header: h,
                    key,
                    raw: &raw,
                };
                out.add(self, id, &r)?;
                stats.tombstones_kept += 1;
            }
        }
        Ok(())
    }

    /// Whether a record of input file `id` belongs in the output.
    fn keep(&self, id: u32, r: &RecordRef<'_>, older_outside: bool) -> bool {
        let value_offset = r.offset + (RECORD_HEADER_LEN + r.key.len()) as u64;
        let current = self.index.read().keydir.get(r.key);
        if !r.header.is_tombstone() {
            return current.is_some_and(|l| l.file_id == id && l.offset as u64 == value_offset);
        }
        // A tombstone of a key that exists again is stale. One of a deleted key is
        // kept while an older value may survive in a file outside the merge.
        current.is_none() && older_outside
    }

    /// Sleeps as needed to hold merge I/O under `merge_bytes_per_sec`.
    fn pace(&self, start: Instant, bytes: u64) {
        let rate = self.opts.merge_bytes_per_sec;
        if rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
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
}

struct OutFile {
    id: u32,
    tmp: PathBuf,
    data: BufWriter<Appender>,
    hint: HintWriter,
    len: u64,
    moved: Vec<Moved>,
}

impl Output {
    fn new(first_id: u32, limit: u32) -> Output {
        Output {
            next_id: first_id,
            limit,
            cur: None,
            files_out: 0,
            bytes_out: 0,
        }
    }

    fn add(&mut self, db: &Inner, input_id: u32, r: &RecordRef<'_>) -> Result<()> {
        let rec_len = r.raw.len() as u64;
        if let Some(c) = &self.cur {
            if c.len > FILE_HEADER_LEN as u64 && c.len + rec_len > db.opts.max_file_size {
                self.finish_file(db)?;
            }
        }
        if self.cur.is_none() {
            self.open_file(db)?;
        }
        let c = self.cur.as_mut().expect("opened above");
        // Each copied record stands alone: its write was complete, and its batch
        // companions may not be copied, so it carries the write-end flag itself.
        let mut rec = r.raw.to_vec();
        rec[REC_FLAGS] |= FLAG_WRITE_END;
        let crc = crc32fast::hash(&rec[4..]);
        rec[..4].copy_from_slice(&crc.to_le_bytes());
        c.data
            .write_all(&rec)
            .map_err(|e| Error::io("writing", &c.tmp, e))?;
        let value_offset = c.len + (RECORD_HEADER_LEN + r.key.len()) as u64;
        c.hint.add(
            r.header.seq,
            r.header.tstamp,
            rec[REC_FLAGS],
            r.key,
            value_offset as u32,
            r.header.value_len,
        )?;
        if !r.header.is_tombstone() {
            let old_offset = r.offset + (RECORD_HEADER_LEN + r.key.len()) as u64;
            c.moved.push(Moved {
                key: r.key.to_vec(),
                from: Loc {
                    file_id: input_id,
                    offset: old_offset as u32,
                    len: r.header.value_len,
                    tstamp: r.header.tstamp,
                },
                to: Loc {
                    file_id: c.id,
                    offset: value_offset as u32,
                    len: r.header.value_len,
                    tstamp: r.header.tstamp,
                },
            });
        }
        c.len += rec_len;
        Ok(())
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
        data.write_all(&file_header(&DATA_MAGIC))
            .map_err(|e| Error::io("writing", &tmp, e))?;
        self.cur = Some(OutFile {
            id,
            tmp,
            data,
            hint: HintWriter::create(&db.fs, &db.dir, id)?,
            len: FILE_HEADER_LEN as u64,
            moved: Vec::new(),
        });
        Ok(())
    }

    /// Makes the current output durable under its real name, then points the keydir
    /// at it for every key still where the merge found it.
    fn finish_file(&mut self, db: &Inner) -> Result<()> {
        let Some(c) = self.cur.take() else {
            return Ok(());
        };
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
        // From the rename on, the output is in the directory and will replay at the
        // next open: the index must know it even if what follows fails, or a later
        // merge would drop a tombstone that hides one of its values, not knowing an
        // older file outside that merge holds it (`merge_fails_after_commit_no_key_comes_back`).
        // Its own handle serves reads: opening it again could fail here.
        let df = Arc::new(DataFile {
            id: c.id,
            path,
            file: file.0,
        });
        let synced = sync_dir(&*db.fs, &db.dir);
        let mut ix = db.index.write();
        ix.files.insert(
            c.id,
            FileInfo {
                file: df,
                total: c.len,
                live: 0,
            },
        );
        // Keys move only once the output's name is durable.
        if synced.is_ok() {
            for m in &c.moved {
                // A write that landed during the merge wins: move only what is unchanged.
                if ix.keydir.get(&m.key) == Some(m.from) {
                    ix.apply_put(&m.key, m.to);
                }
            }
        }
        drop(ix);
        synced?;
        self.files_out += 1;
        self.bytes_out += c.len;
        Ok(())
    }

    /// After a failure: remove the unfinished output. Finished outputs stay; they
    /// hold copies of live records and replay harmlessly.
    fn abandon(&mut self, db: &Inner) {
        if let Some(c) = self.cur.take() {
            let _ = db.fs.remove(&c.tmp);
            c.hint.discard();
        }
    }
}

//! Open: rebuild the keydir from the directory. Files are replayed in id order, so
//! the newest write of a key wins; each file from its hint file when a whole one
//! exists for exactly its length, else by scanning its records.
//!
//! Damage is judged by where it is. In the last file, bytes after which no valid
//! record follows are a torn tail (a crash mid-append): they are truncated and
//! counted. Anywhere else a bad record fails the open with `Corruption`, unless the
//! caller asked for a salvage open, which skips to the next valid record.

use crate::datafile::{self, check_header, DataFile, RecordRef, ScanEnd};
use crate::db::{FileInfo, Index};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::Fs;
use crate::hint::{self, HintWriter};
use crate::keydir::Loc;
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
}

/// An operation of a write whose end has not been seen yet.
struct PendingOp {
    key: Vec<u8>,
    loc: Loc,
    tombstone: bool,
}

/// Replays records into the index, holding back each write until its last record.
struct Replay {
    index: Index,
    pending: Vec<PendingOp>,
    /// Offset of the first record of the pending write.
    pending_start: u64,
    max_seq: u64,
}

impl Replay {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        file_id: u32,
        record_offset: u64,
        seq: u64,
        tstamp: u32,
        flags: u8,
        key: &[u8],
        value_offset: u32,
        value_len: u32,
    ) {
        if self.pending.is_empty() {
            self.pending_start = record_offset;
        }
        self.max_seq = self.max_seq.max(seq);
        self.pending.push(PendingOp {
            key: key.to_vec(),
            loc: Loc {
                file_id,
                offset: value_offset,
                len: value_len,
                tstamp,
            },
            tombstone: flags & FLAG_TOMBSTONE != 0,
        });
        if flags & FLAG_WRITE_END != 0 {
            for op in self.pending.drain(..) {
                if op.tombstone {
                    self.index.apply_delete(&op.key);
                } else {
                    self.index.apply_put(&op.key, op.loc);
                }
            }
        }
    }

    fn scanned(&mut self, file_id: u32, r: &RecordRef<'_>) {
        let value_offset = r.offset + (RECORD_HEADER_LEN + r.key.len()) as u64;
        self.record(
            file_id,
            r.offset,
            r.header.seq,
            r.header.tstamp,
            r.header.flags,
            r.key,
            value_offset as u32,
            r.header.value_len,
        );
    }
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

pub(crate) fn recover(fs: &Arc<dyn Fs>, dir: &Path, opts: &Options) -> Result<Recovered> {
    let writable = !opts.read_only;
    let ids = list_data_files(&**fs, dir, writable)?;
    let mut rp = Replay {
        index: Index::default(),
        pending: Vec::new(),
        pending_start: 0,
        max_seq: 0,
    };
    let (mut dropped, mut salvaged) = (0u64, 0u64);
    for (i, &id) in ids.iter().enumerate() {
        let last = i + 1 == ids.len();
        let df = DataFile::open(&**fs, dir, id, writable && last)?;
        let mut len = df.len()?;
        let mut head = [0u8; FILE_HEADER_LEN];
        let got = read_prefix(&df, &mut head)?;
        if !check_header(&df.path, &head[..got], &DATA_MAGIC)? {
            // Shorter than a header: a crash right after the file was created.
            if !last && !opts.salvage {
                return Err(Error::corruption(
                    &df.path,
                    0,
                    "file shorter than its header",
                ));
            }
            dropped += len;
            if writable && last {
                let f = &df.file;
                f.set_len(0)
                    .and_then(|_| f.append(&file_header(&DATA_MAGIC)))
                    .and_then(|_| f.sync_data())
                    .map_err(|e| Error::io("rewriting header of", &df.path, e))?;
            }
            len = FILE_HEADER_LEN as u64;
        }
        let df = Arc::new(df);
        rp.index.files.insert(
            id,
            FileInfo {
                file: df.clone(),
                total: len,
                live: 0,
            },
        );
        let hinted = hint::load(&**fs, dir, id, len, |h| {
            let record_offset =
                (h.value_offset as u64).saturating_sub((RECORD_HEADER_LEN + h.key.len()) as u64);
            rp.record(
                id,
                record_offset,
                h.seq,
                h.tstamp,
                h.flags,
                h.key,
                h.value_offset,
                h.value_len,
            );
            Ok(())
        })?;
        if hinted && rp.pending.is_empty() {
            continue;
        }
        // No usable hint: scan. A clean scan of an immutable file leaves a hint behind.
        rp.pending.clear();
        let mut hint_out = if writable && !last {
            HintWriter::create(fs, dir, id).ok()
        } else {
            None
        };
        let mut from = FILE_HEADER_LEN as u64;
        let end = loop {
            let ended = datafile::scan(
                &*df.file,
                from,
                len,
                |r| {
                    if let Some(h) = hint_out.as_mut() {
                        let vo = r.offset as u32 + (RECORD_HEADER_LEN + r.key.len()) as u32;
                        h.add(
                            r.header.seq,
                            r.header.tstamp,
                            r.header.flags,
                            r.key,
                            vo,
                            r.header.value_len,
                        )?;
                    }
                    rp.scanned(id, &r);
                    Ok(())
                },
                &df.path,
            )?;
            // `bad_at` is the first byte that is not part of a valid record; an
            // unfinished write before it is dropped with it, from `cut` on.
            let (bad_at, bad) = match ended {
                ScanEnd::Clean if rp.pending.is_empty() => break len,
                ScanEnd::Clean => (len, crate::record::Bad::Invalid("write without its end")),
                ScanEnd::Bad { offset, bad } => (offset, bad),
            };
            hint_out = None;
            let cut = if rp.pending.is_empty() {
                bad_at
            } else {
                rp.pending_start
            };
            rp.pending.clear();
            let next = datafile::find_next_valid(&*df.file, bad_at, len, &df.path)?;
            match next {
                None if last => {
                    dropped += len - cut;
                    if writable {
                        df.file
                            .set_len(cut)
                            .and_then(|_| df.file.sync_data())
                            .map_err(|e| Error::io("truncating torn tail of", &df.path, e))?;
                    }
                    break cut;
                }
                _ if opts.salvage => {
                    let resume = next.unwrap_or(len);
                    salvaged += resume - cut;
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
        rp.index.files.get_mut(&id).expect("inserted above").total = end;
        if let Some(h) = hint_out {
            // Best effort: a failed hint write only costs the next open a scan.
            let _ = h.finish(end);
        }
    }
    Ok(Recovered {
        next_seq: rp.max_seq + 1,
        index: rp.index,
        last_id: ids.last().copied(),
        dropped_bytes: dropped,
        salvaged_bytes: salvaged,
    })
}

fn read_prefix(df: &DataFile, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match df.file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading header of", &df.path, e)),
        }
    }
    Ok(got)
}

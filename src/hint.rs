//! Hint files: for an immutable data file, every record's key and location without
//! its value, so that open builds the keydir without reading values. A hint file is
//! only an accelerator: one that is missing, damaged or written for another length of
//! its data file is ignored and the data file is scanned instead.

use crate::datafile::{check_header, sync_dir};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{Appender, FileHandle, Fs};
use crate::record::{self, Fields, Header};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One hint entry, borrowed from the loaded file.
#[derive(Debug)]
pub struct HintRef<'a> {
    pub seq: u64,
    pub flags: u8,
    pub key: &'a [u8],
    /// Offset of the record in the data file, and its whole length.
    pub offset: u64,
    pub rec_len: u32,
    pub value_len: u32,
    pub expires: u32,
    pub target: u32,
}

/// A hint file whose every check passed, of one format version.
pub struct Hint {
    pub bytes: Vec<u8>,
    pub version: u32,
    pub summary: Summary,
}

/// What open needs to know of a data file as a whole, gathered while its hint
/// is checked, before any entry reaches the keydir.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub count: u64,
    /// Every `SAMPLE_EVERY`th entry's key and file offset (version 2, from
    /// `HintStream::check`): where a stream may start to read from a key on.
    pub samples: Vec<(Vec<u8>, u64)>,
    /// Bytes and number of its tombstone records.
    pub tomb_bytes: u64,
    pub tombs: u64,
    /// The highest file a tombstone names (a version 1 tombstone names its own).
    pub max_target: u32,
    pub max_seq: u64,
    /// The newest finished write: its sequence number, and the length of its
    /// record when that is a tombstone (0 for a value).
    pub newest: Option<(u64, u64)>,
    /// Offset of the newest finished write's record (ties in `newest` go to
    /// the later record, as in file order).
    newest_at: u64,
}

/// One entry in its bytes: where the key starts and what the entry says.
struct Parsed {
    key_at: usize,
    key_len: usize,
    seq: u64,
    flags: u8,
    offset: u64,
    rec_len: u32,
    value_len: u32,
    expires: u32,
    target: u32,
}

impl Parsed {
    fn view<'a>(&self, bytes: &'a [u8]) -> HintRef<'a> {
        HintRef {
            seq: self.seq,
            flags: self.flags,
            key: &bytes[self.key_at..self.key_at + self.key_len],
            offset: self.offset,
            rec_len: self.rec_len,
            value_len: self.value_len,
            expires: self.expires,
            target: self.target,
        }
    }

    fn end(&self) -> usize {
        self.key_at + self.key_len
    }
}

/// One entry being buffered by a `HintWriter`: where it is in `HintWriter::buf`
/// and where its key is.
struct Pending {
    start: u32,
    key_at: u32,
    end: u32,
}

/// Writes a hint file under a temporary name and renames it into place when
/// finished, so a crash never leaves a partial file under the real name.
/// Version 2 entries are gathered in memory and written in key order at
/// `finish`, so that every hint is a sorted run that open merges without a sort.
pub struct HintWriter {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    /// Taken by `finish`.
    out: Option<BufWriter<Appender>>,
    crc: crc32fast::Hasher,
    /// The encoded entries, in the order they were added.
    buf: Vec<u8>,
    pending: Vec<Pending>,
    /// Renamed into place: nothing to clean up.
    done: bool,
}

impl Drop for HintWriter {
    /// An unfinished hint file (an error, an early return) leaves no `.tmp`.
    fn drop(&mut self) {
        if !self.done {
            let _ = self.fs.remove(&self.tmp);
        }
    }
}

impl HintWriter {
    pub fn create(fs: &Arc<dyn Fs>, dir: &Path, id: u32) -> Result<HintWriter> {
        let path = dir.join(hint_file_name(id));
        let tmp = dir.join(format!("{}.{TMP_EXT}", hint_file_name(id)));
        let file = fs
            .create(&tmp, false)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        let mut w = HintWriter {
            tmp,
            path,
            dir: dir.to_path_buf(),
            fs: fs.clone(),
            out: Some(BufWriter::with_capacity(1 << 20, Appender(file))),
            crc: crc32fast::Hasher::new(),
            buf: Vec::new(),
            pending: Vec::new(),
            done: false,
        };
        w.put(&file_header(&HINT_MAGIC))?;
        Ok(w)
    }

    /// Adds the entry of the record at `offset` whose header is `h`.
    pub fn add_header(&mut self, h: &Header, key: &[u8], offset: u64) {
        self.add(&Fields::of(h), key, h.value_len as usize, offset);
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.crc.update(b);
        self.out
            .as_mut()
            .expect("not finished")
            .write_all(b)
            .map_err(|e| Error::io("writing", &self.tmp, e))
    }

    /// Adds the entry of a version 2 record at `offset`: its header without the
    /// crc, the offset, then its key.
    pub fn add(&mut self, f: &Fields, key: &[u8], value_len: usize, offset: u64) {
        let start = self.buf.len();
        record::encode_fields(&mut self.buf, f, key.len(), value_len);
        put_varint(&mut self.buf, offset);
        let key_at = self.buf.len();
        self.buf.extend_from_slice(key);
        self.pending.push(Pending {
            start: start as u32,
            key_at: key_at as u32,
            end: self.buf.len() as u32,
        });
    }

    /// Writes the entries in key order (a key written twice keeps its records in
    /// file order), then seals the file for a data file of `data_len` bytes and
    /// makes it durable.
    pub fn finish(mut self, data_len: u64) -> Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let buf = std::mem::take(&mut self.buf);
        let key = |p: &Pending| &buf[p.key_at as usize..p.end as usize];
        pending.sort_by(|a, b| key(a).cmp(key(b)));
        for p in &pending {
            self.put(&buf[p.start as usize..p.end as usize])?;
        }
        let mut t = [0u8; HINT_TRAILER_LEN];
        t[0..8].copy_from_slice(&(pending.len() as u64).to_le_bytes());
        t[8..16].copy_from_slice(&data_len.to_le_bytes());
        self.crc.update(&t[..16]);
        let crc = self.crc.clone().finalize();
        t[16..20].copy_from_slice(&crc.to_le_bytes());
        t[20..24].copy_from_slice(&HINT_TRAILER_MAGIC);
        let mut out = self.out.take().expect("finished once");
        out.write_all(&t)
            .map_err(|e| Error::io("writing", &self.tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("writing", &self.tmp, e.into_error()))?;
        file.0
            .sync_data()
            .map_err(|e| Error::io("syncing", &self.tmp, e))?;
        self.fs
            .rename(&self.tmp, &self.path)
            .map_err(|e| Error::io("renaming", &self.tmp, e))?;
        self.done = true;
        sync_dir(&*self.fs, &self.dir)
    }
}

/// Reads the hint file of data file `id` if it is whole, of the data file's
/// `version`, and was written for a data file of exactly `data_len` bytes.
/// `None` when the hint cannot be used.
pub fn load(fs: &dyn Fs, dir: &Path, id: u32, version: u32, data_len: u64) -> Result<Option<Hint>> {
    let path = dir.join(hint_file_name(id));
    let Ok(file) = fs.open(&path, false) else {
        return Ok(None);
    };
    // A hint file is smaller than its data file; a longer one is not ours.
    let len = file.len().unwrap_or(u64::MAX);
    if len > data_len + (HINT_TRAILER_LEN + FILE_HEADER_LEN) as u64 {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    if file.read_exact_at(&mut bytes, 0).is_err() {
        return Ok(None);
    }
    Ok(parse(bytes, id, data_len).filter(|h| h.version == version))
}

/// The hint held in `bytes`, for data file `id` of `data_len` bytes, if every
/// check passes.
pub(crate) fn parse(bytes: Vec<u8>, id: u32, data_len: u64) -> Option<Hint> {
    let (version, summary) = verify(&bytes, id, data_len)?;
    Some(Hint {
        bytes,
        version,
        summary,
    })
}

impl Hint {
    /// The entries, each with the offset of its key in `bytes`.
    pub fn entries(&self) -> impl Iterator<Item = (usize, HintRef<'_>)> {
        let (bytes, version) = (&self.bytes[..], self.version);
        let end = bytes.len() - HINT_TRAILER_LEN;
        let mut at = FILE_HEADER_LEN;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let p = entry_at(&bytes[..end], at, version).expect("verified");
            at = p.end();
            Some((p.key_at, p.view(bytes)))
        })
    }
}

/// Parses the entry at `at`. A version 1 entry names its value's offset (the
/// record starts a fixed header and the key before); a version 2 entry names
/// its record's.
fn entry_at(bytes: &[u8], at: usize, version: u32) -> Option<Parsed> {
    let e = bytes.get(at..)?;
    let p = if version == 1 {
        if e.len() < V1_HINT_ENTRY_HEADER_LEN {
            return None;
        }
        let key_len = le_u32(e, 12);
        let value_len = le_u32(e, 16);
        let value_offset = le_u32(e, 20) as u64;
        let flags = e[24];
        let offset = value_offset.checked_sub(V1_RECORD_HEADER_LEN as u64 + key_len as u64)?;
        if flags & !V1_KNOWN_FLAGS != 0
            || key_len == 0
            || key_len as usize > MAX_KEY_LEN_LIMIT
            || (flags & FLAG_TOMBSTONE != 0 && value_len != 0)
        {
            return None;
        }
        Parsed {
            key_at: at + V1_HINT_ENTRY_HEADER_LEN,
            key_len: key_len as usize,
            seq: le_u64(e, 0),
            flags,
            offset,
            rec_len: (V1_RECORD_HEADER_LEN as u64 + key_len as u64 + value_len as u64)
                .try_into()
                .ok()?,
            value_len,
            expires: 0,
            target: 0,
        }
    } else {
        let h = record::parse_fields(e).ok()?;
        let mut key_at = h.header_len as usize - REC_CRC_LEN;
        let offset = get_varint(e, &mut key_at)?.ok()?;
        Parsed {
            key_at: at + key_at,
            key_len: h.key_len as usize,
            seq: h.seq,
            flags: h.flags,
            offset,
            rec_len: h.record_len().try_into().ok()?,
            value_len: h.value_len,
            expires: h.expires,
            target: h.target,
        }
    };
    (p.end() <= bytes.len()).then_some(p)
}

/// Decodes a version 2 entry of a hint that passed `HintStream::check`: the
/// framing only, which is what the keydir build pays per entry.
fn entry_checked(b: &[u8], start: usize) -> Option<Parsed> {
    let mut at = start;
    let flags = *b.get(at)?;
    at += 1;
    let mut next = || get_varint(b, &mut at)?.ok();
    let seq = next()?;
    let key_len = next()? as usize;
    let value_len = next()? as u32;
    let mut expires = 0;
    if flags & FLAG_EXPIRES != 0 {
        expires = le_u32(b.get(at..at + 4)?, 0);
        at += 4;
    }
    let mut target = 0;
    if flags & FLAG_TOMBSTONE != 0 {
        target = get_varint(b, &mut at)?.ok()? as u32;
    }
    let header_len = REC_CRC_LEN + at - start;
    let offset = get_varint(b, &mut at)?.ok()?;
    let p = Parsed {
        key_at: at,
        key_len,
        seq,
        flags,
        offset,
        rec_len: (header_len + key_len) as u32 + value_len,
        value_len,
        expires,
        target,
    };
    (p.end() <= b.len()).then_some(p)
}

/// The checks on a hint's entries, one at a time, and what they add up to.
/// Version 2 entries must be in key order and describe records that, summed,
/// fill the data file; in either version the record written last in the file
/// must end a write (a hint is written for whole files only).
struct Checker {
    version: u32,
    id: u32,
    data_len: u64,
    /// Bytes of the records the entries describe.
    covered: u64,
    prev_key: Vec<u8>,
    /// The flags of the entry for the record that ends the data file.
    last_flags: Option<u8>,
    /// Version 1: where the last entry's record ends (entries are in file order).
    v1_end: u64,
    summary: Summary,
}

impl Checker {
    fn new(version: u32, id: u32, data_len: u64) -> Checker {
        Checker {
            version,
            id,
            data_len,
            covered: 0,
            prev_key: Vec::new(),
            last_flags: None,
            v1_end: 0,
            summary: Summary::default(),
        }
    }

    fn entry(&mut self, e: &HintRef<'_>) -> Option<()> {
        let end = e.offset.checked_add(e.rec_len as u64)?;
        // The record must lie inside the data file, after its header.
        if e.offset < FILE_HEADER_LEN as u64 || end > self.data_len {
            return None;
        }
        if self.version == 1 {
            self.last_flags = Some(e.flags);
            self.v1_end = end;
        } else {
            if e.key < &self.prev_key[..] {
                return None;
            }
            self.prev_key.clear();
            self.prev_key.extend_from_slice(e.key);
            if end == self.data_len {
                self.last_flags = Some(e.flags);
            }
        }
        self.covered += e.rec_len as u64;
        let s = &mut self.summary;
        s.count += 1;
        s.max_seq = s.max_seq.max(e.seq);
        if e.flags & FLAG_TOMBSTONE != 0 {
            s.tomb_bytes += e.rec_len as u64;
            s.tombs += 1;
            let target = if e.target == 0 { self.id } else { e.target };
            s.max_target = s.max_target.max(target);
        }
        if e.flags & FLAG_WRITE_END != 0
            && s.newest
                .is_none_or(|(seq, _)| (e.seq, e.offset) >= (seq, s.newest_at))
        {
            let tomb = if e.flags & FLAG_TOMBSTONE != 0 {
                e.rec_len as u64
            } else {
                0
            };
            s.newest = Some((e.seq, tomb));
            s.newest_at = e.offset;
        }
        Some(())
    }

    fn finish(self, count: u64) -> Option<Summary> {
        if count != self.summary.count {
            return None;
        }
        let body = self.data_len - FILE_HEADER_LEN as u64;
        if self.version != 1 && self.covered != body {
            return None;
        }
        // An unfinished write at the end of the file: the hint is not to be
        // trusted (none is written for such a file).
        if self.last_flags.is_some_and(|f| f & FLAG_WRITE_END == 0) {
            return None;
        }
        if self.version != 1 && body > 0 && self.last_flags.is_none() {
            return None;
        }
        Some(self.summary)
    }
}

/// Checks the trailer at the end of `bytes` for a data file of `data_len`
/// bytes: the entry count it gives, if it is ours.
fn trailer(t: &[u8], data_len: u64) -> Option<u64> {
    (t[20..24] == HINT_TRAILER_MAGIC && le_u64(t, 8) == data_len).then(|| le_u64(t, 0))
}

/// Checks header, trailer, checksum and every entry of a hint file held in
/// `bytes` for data file `id` of `data_len` bytes; its version and summary when
/// all hold.
fn verify(bytes: &[u8], id: u32, data_len: u64) -> Option<(u32, Summary)> {
    if bytes.len() < FILE_HEADER_LEN + HINT_TRAILER_LEN || data_len < FILE_HEADER_LEN as u64 {
        return None;
    }
    let version = check_header(Path::new("hint"), bytes, &HINT_MAGIC).ok()??;
    let t = &bytes[bytes.len() - HINT_TRAILER_LEN..];
    let count = trailer(t, data_len)?;
    let covered = bytes.len() - HINT_TRAILER_LEN + 16;
    if crc32fast::hash(&bytes[..covered]) != le_u32(t, 16) {
        return None;
    }
    let end = bytes.len() - HINT_TRAILER_LEN;
    let mut check = Checker::new(version, id, data_len);
    let mut at = FILE_HEADER_LEN;
    while at < end {
        let p = entry_at(&bytes[..end], at, version)?;
        check.entry(&p.view(bytes))?;
        at = p.end();
    }
    Some((version, check.finish(count)?))
}

/// The number of entries of a hint file held in `bytes`, if it would be used.
pub(crate) fn count_verified(bytes: &[u8], data_len: u64) -> Option<usize> {
    verify(bytes, 1, data_len).map(|(_, s)| s.count as usize)
}

/// How often `HintStream::check` samples an entry: often enough that a stream
/// started at a sample reads few entries it does not need, rarely enough that
/// samples cost little memory. The test build samples densely, so that small
/// databases exercise builds in parts.
pub const SAMPLE_EVERY: u64 = if cfg!(feature = "fault-injection") {
    8
} else {
    4096
};

/// The longest entry: a version 2 header without its crc, an offset, a key.
const MAX_ENTRY_LEN: usize = MAX_RECORD_HEADER_LEN - REC_CRC_LEN + 10 + MAX_KEY_LEN_LIMIT;

/// Reads a version 2 hint file's entries in order through a window of bounded
/// size, so that open can merge every file's sorted entries without holding
/// any file whole.
pub struct HintStream {
    file: Box<dyn FileHandle>,
    path: PathBuf,
    /// Where the entries end: the trailer's offset.
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
    /// The current entry, if any, its file offset, and where the next one
    /// starts in `buf`.
    cur: Option<Parsed>,
    cur_at: u64,
    pos: usize,
    /// Hashes what is read, on the checking pass.
    crc: Option<crc32fast::Hasher>,
    /// The file passed `check`: entries are decoded without checking them again.
    checked: bool,
}

impl HintStream {
    /// Bytes read at a time: large enough that a read costs little per entry,
    /// small enough that a file per run costs little memory.
    const CHUNK: usize = 256 << 10;

    /// Opens the hint file of data file `id` and checks its header and trailer
    /// for a data file of `version` and `data_len` bytes; the stream and the
    /// entry count the trailer gives. Not yet checked: the checksum and the
    /// entries (`check`).
    fn open(
        fs: &dyn Fs,
        dir: &Path,
        id: u32,
        version: u32,
        data_len: u64,
    ) -> Option<(HintStream, u64, [u8; HINT_TRAILER_LEN])> {
        let path = dir.join(hint_file_name(id));
        let file = fs.open(&path, false).ok()?;
        let len = file.len().ok()?;
        if len < (FILE_HEADER_LEN + HINT_TRAILER_LEN) as u64
            || len > data_len + (HINT_TRAILER_LEN + FILE_HEADER_LEN) as u64
        {
            return None;
        }
        let mut t = [0u8; HINT_TRAILER_LEN];
        file.read_exact_at(&mut t, len - HINT_TRAILER_LEN as u64)
            .ok()?;
        let count = trailer(&t, data_len)?;
        let mut head = [0u8; FILE_HEADER_LEN];
        file.read_exact_at(&mut head, 0).ok()?;
        if check_header(&path, &head, &HINT_MAGIC).ok()?? != version {
            return None;
        }
        let s = HintStream {
            file,
            path,
            end: len - HINT_TRAILER_LEN as u64,
            buf: head.to_vec(),
            buf_at: 0,
            cur: None,
            cur_at: 0,
            pos: FILE_HEADER_LEN,
            crc: None,
            checked: false,
        };
        Some((s, count, t))
    }

    /// Checks a version 2 hint file whole, reading it once through the window:
    /// what `load` and `parse` check, without holding it. The summary when it
    /// can be used.
    pub fn check(fs: &dyn Fs, dir: &Path, id: u32, data_len: u64) -> Option<Summary> {
        let (mut s, count, t) = HintStream::open(fs, dir, id, FORMAT_VERSION, data_len)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&s.buf);
        s.crc = Some(crc);
        let mut check = Checker::new(FORMAT_VERSION, id, data_len);
        let mut samples = Vec::new();
        while s.advance().ok()? {
            let e = s.current().expect("advanced");
            if check.summary.count.is_multiple_of(SAMPLE_EVERY) {
                samples.push((e.key.to_vec(), s.cur_at));
            }
            check.entry(&e)?;
        }
        let mut crc = s.crc.take().expect("set above");
        crc.update(&t[..16]);
        if crc.finalize() != le_u32(&t, 16) {
            return None;
        }
        let mut summary = check.finish(count)?;
        summary.samples = samples;
        Some(summary)
    }

    /// A stream over the entries of a hint file that `check` passed, from the
    /// entry at file offset `at` (the first entry's, or one of the samples').
    pub fn reopen(fs: &dyn Fs, dir: &Path, id: u32, data_len: u64, at: u64) -> Result<HintStream> {
        let opened = HintStream::open(fs, dir, id, FORMAT_VERSION, data_len);
        opened
            .map(|(mut s, _, _)| {
                s.checked = true;
                if at > FILE_HEADER_LEN as u64 {
                    s.buf.clear();
                    (s.buf_at, s.pos) = (at, 0);
                }
                s
            })
            .ok_or_else(|| {
                Error::corruption(
                    dir.join(hint_file_name(id)),
                    0,
                    "hint file changed while the database was opening",
                )
            })
    }

    /// Moves to the next entry: false at the end.
    pub fn advance(&mut self) -> Result<bool> {
        self.cur = None;
        let read_to = self.buf_at + self.buf.len() as u64;
        if self.buf.len() - self.pos < MAX_ENTRY_LEN && read_to < self.end {
            self.buf.drain(..self.pos);
            self.buf_at += self.pos as u64;
            self.pos = 0;
            let n = (Self::CHUNK.max(MAX_ENTRY_LEN) as u64).min(self.end - read_to) as usize;
            let old = self.buf.len();
            self.buf.resize(old + n, 0);
            self.file
                .read_exact_at(&mut self.buf[old..], read_to)
                .map_err(|e| Error::io("reading", &self.path, e))?;
            if let Some(c) = &mut self.crc {
                c.update(&self.buf[old..]);
            }
        }
        if self.pos >= self.buf.len() {
            return Ok(false);
        }
        let at = self.buf_at + self.pos as u64;
        let p = if self.checked {
            entry_checked(&self.buf, self.pos)
        } else {
            entry_at(&self.buf, self.pos, FORMAT_VERSION)
        };
        let p = p.ok_or_else(|| Error::corruption(&self.path, at, "malformed hint entry"))?;
        self.cur_at = at;
        self.pos = p.end();
        self.cur = Some(p);
        Ok(true)
    }

    /// The entry `advance` moved to.
    pub fn current(&self) -> Option<HintRef<'_>> {
        self.cur.as_ref().map(|p| p.view(&self.buf))
    }
}

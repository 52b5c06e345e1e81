//! Hint files: for an immutable data file, every record's key and location without
//! its value, so that open builds the keydir without reading values. A hint file is
//! only an accelerator: one that is missing, damaged or written for another length of
//! its data file is ignored and the data file is scanned instead.

use crate::datafile::{check_header, sync_dir};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{Appender, Fs};
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
}

/// Writes a hint file under a temporary name and renames it into place when
/// finished, so a crash never leaves a partial file under the real name.
pub struct HintWriter {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    /// Taken by `finish`.
    out: Option<BufWriter<Appender>>,
    crc: crc32fast::Hasher,
    count: u64,
    /// The entry being encoded, reused.
    entry: Vec<u8>,
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
            count: 0,
            entry: Vec::new(),
            done: false,
        };
        w.put(&file_header(&HINT_MAGIC))?;
        Ok(w)
    }

    /// Adds the entry of the record whose header is `h`.
    pub fn add_header(&mut self, h: &Header, key: &[u8]) -> Result<()> {
        self.add(&Fields::of(h), key, h.value_len as usize)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.crc.update(b);
        self.out
            .as_mut()
            .expect("not finished")
            .write_all(b)
            .map_err(|e| Error::io("writing", &self.tmp, e))
    }

    /// Adds the entry of a version 2 record: its header without the crc, then its
    /// key. Entries go in file order, one per record.
    pub fn add(&mut self, f: &Fields, key: &[u8], value_len: usize) -> Result<()> {
        let mut e = std::mem::take(&mut self.entry);
        e.clear();
        record::encode_fields(&mut e, f, key.len(), value_len);
        e.extend_from_slice(key);
        let res = self.put(&e);
        self.entry = e;
        res?;
        self.count += 1;
        Ok(())
    }

    /// Seals the file for a data file of `data_len` bytes and makes it durable.
    pub fn finish(mut self, data_len: u64) -> Result<()> {
        let mut t = [0u8; HINT_TRAILER_LEN];
        t[0..8].copy_from_slice(&self.count.to_le_bytes());
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
    Ok(parse(bytes, data_len).filter(|h| h.version == version))
}

/// The hint held in `bytes`, if every check passes for a data file of
/// `data_len` bytes.
pub(crate) fn parse(bytes: Vec<u8>, data_len: u64) -> Option<Hint> {
    verify(&bytes, data_len).map(|version| Hint { bytes, version })
}

impl Hint {
    /// The entries, each with the offset of its key in `bytes`.
    pub fn entries(&self) -> impl Iterator<Item = (usize, HintRef<'_>)> {
        entries(&self.bytes, self.version)
    }
}

/// The entries of a hint file of `version` whose framing [`verify`] checked.
fn entries(bytes: &[u8], version: u32) -> impl Iterator<Item = (usize, HintRef<'_>)> {
    let end = bytes.len() - HINT_TRAILER_LEN;
    let mut at = FILE_HEADER_LEN;
    let mut offset = FILE_HEADER_LEN as u64;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let (key_at, h) = entry_at(bytes, at, version).expect("verified");
        let key_len = h.key_len as usize;
        let e = HintRef {
            seq: h.seq,
            flags: h.flags,
            key: &bytes[key_at..key_at + key_len],
            offset: if version == 1 { h.crc as u64 } else { offset },
            rec_len: h.record_len() as u32,
            value_len: h.value_len,
            expires: h.expires,
            target: h.target,
        };
        at = key_at + key_len;
        offset = e.offset + e.rec_len as u64;
        Some((key_at, e))
    })
}

/// Parses the entry at `at`: where its key starts, and the record header it
/// describes. In version 1 the record's offset comes back in `crc` (the entry
/// names its value's offset; the record starts a fixed header and the key
/// before). Framing only: the caller checks that the key fits.
fn entry_at(bytes: &[u8], at: usize, version: u32) -> Option<(usize, Header)> {
    let e = bytes.get(at..)?;
    if version == 1 {
        if e.len() < V1_HINT_ENTRY_HEADER_LEN {
            return None;
        }
        let key_len = le_u32(e, 12);
        let value_offset = le_u32(e, 20) as u64;
        let start = value_offset.checked_sub(V1_RECORD_HEADER_LEN as u64 + key_len as u64)?;
        let h = Header {
            crc: start as u32,
            seq: le_u64(e, 0),
            tstamp: le_u32(e, 8),
            key_len,
            value_len: le_u32(e, 16),
            flags: e[24],
            expires: 0,
            target: 0,
            header_len: V1_RECORD_HEADER_LEN as u32,
        };
        if h.flags & !V1_KNOWN_FLAGS != 0
            || key_len == 0
            || key_len as usize > MAX_KEY_LEN_LIMIT
            || (h.flags & FLAG_TOMBSTONE != 0 && h.value_len != 0)
        {
            return None;
        }
        return Some((at + V1_HINT_ENTRY_HEADER_LEN, h));
    }
    let h = record::parse_fields(e).ok()?;
    Some((at + h.header_len as usize - REC_CRC_LEN, h))
}

/// Checks header, trailer, checksum and the framing of every entry, and that
/// the entries describe records that tile the data file exactly; the version
/// when all hold.
fn verify(bytes: &[u8], data_len: u64) -> Option<u32> {
    if bytes.len() < FILE_HEADER_LEN + HINT_TRAILER_LEN {
        return None;
    }
    let version = check_header(Path::new("hint"), bytes, &HINT_MAGIC).ok()??;
    let t = &bytes[bytes.len() - HINT_TRAILER_LEN..];
    if t[20..24] != HINT_TRAILER_MAGIC || le_u64(t, 8) != data_len {
        return None;
    }
    let covered = bytes.len() - HINT_TRAILER_LEN + 16;
    if crc32fast::hash(&bytes[..covered]) != le_u32(t, 16) {
        return None;
    }
    let end = bytes.len() - HINT_TRAILER_LEN;
    let (mut at, mut count) = (FILE_HEADER_LEN, 0u64);
    let mut offset = FILE_HEADER_LEN as u64;
    while at < end {
        let (key_at, h) = entry_at(&bytes[..end], at, version)?;
        let key_end = key_at.checked_add(h.key_len as usize)?;
        if key_end > end {
            return None;
        }
        let start = if version == 1 { h.crc as u64 } else { offset };
        // The record must lie inside the data file, after its header.
        if start < FILE_HEADER_LEN as u64 || start.checked_add(h.record_len())? > data_len {
            return None;
        }
        offset = start + h.record_len();
        at = key_end;
        count += 1;
    }
    // Version 2 hints describe every record: they must cover the file exactly.
    if version != 1 && offset != data_len {
        return None;
    }
    (count == le_u64(t, 0)).then_some(version)
}

/// The number of entries of a hint file held in `bytes`, if it would be used.
pub(crate) fn count_verified(bytes: &[u8], data_len: u64) -> Option<usize> {
    let version = verify(bytes, data_len)?;
    Some(entries(bytes, version).count())
}

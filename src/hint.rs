//! Hint files: for an immutable data file, every record's key and location without
//! its value, so that open builds the keydir without reading values. A hint file is
//! only an accelerator: one that is missing, damaged or written for another length of
//! its data file is ignored and the data file is scanned instead.

use crate::datafile::{check_header, sync_dir};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{Appender, Fs};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One hint entry, borrowed from the loaded file.
#[derive(Debug)]
pub struct HintRef<'a> {
    pub seq: u64,
    pub tstamp: u32,
    pub flags: u8,
    pub key: &'a [u8],
    pub value_offset: u32,
    pub value_len: u32,
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
            done: false,
        };
        w.put(&file_header(&HINT_MAGIC))?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.crc.update(b);
        self.out
            .as_mut()
            .expect("not finished")
            .write_all(b)
            .map_err(|e| Error::io("writing", &self.tmp, e))
    }

    pub fn add(
        &mut self,
        seq: u64,
        tstamp: u32,
        flags: u8,
        key: &[u8],
        value_offset: u32,
        value_len: u32,
    ) -> Result<()> {
        let mut h = [0u8; HINT_ENTRY_HEADER_LEN];
        h[0..8].copy_from_slice(&seq.to_le_bytes());
        h[8..12].copy_from_slice(&tstamp.to_le_bytes());
        h[12..16].copy_from_slice(&(key.len() as u32).to_le_bytes());
        h[16..20].copy_from_slice(&value_len.to_le_bytes());
        h[20..24].copy_from_slice(&value_offset.to_le_bytes());
        h[24] = flags;
        self.put(&h)?;
        self.put(key)?;
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

/// Reads the hint file of data file `id` if it is whole and was written for a data
/// file of exactly `data_len` bytes: the verified bytes, for [`for_each_entry`].
/// `None` when the hint cannot be used.
pub fn load(fs: &dyn Fs, dir: &Path, id: u32, data_len: u64) -> Result<Option<Vec<u8>>> {
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
    Ok(verified_entries(&path, &bytes, data_len)
        .is_some()
        .then_some(bytes))
}

/// Calls `f` with each entry of a hint file verified by [`load`], and the offset of
/// the entry's key in `bytes`.
pub fn for_each_entry(bytes: &[u8], mut f: impl FnMut(usize, HintRef<'_>)) {
    for (at, h) in entries(bytes) {
        f(at, h);
    }
}

/// The entries of a hint file verified by [`load`], each with the offset of its
/// key in `bytes`.
pub fn entries(bytes: &[u8]) -> impl Iterator<Item = (usize, HintRef<'_>)> {
    let end = bytes.len() - HINT_TRAILER_LEN;
    let mut at = FILE_HEADER_LEN;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let e = &bytes[at..];
        let key_len = le_u32(e, 12) as usize;
        let key_at = at + HINT_ENTRY_HEADER_LEN;
        at = key_at + key_len;
        Some((
            key_at,
            HintRef {
                seq: le_u64(e, 0),
                tstamp: le_u32(e, 8),
                value_len: le_u32(e, 16),
                value_offset: le_u32(e, 20),
                flags: e[24],
                key: &bytes[key_at..key_at + key_len],
            },
        ))
    })
}

/// Checks header, trailer, checksum and the framing of every entry; returns the
/// entry bytes when all hold.
fn verified_entries<'a>(path: &Path, bytes: &'a [u8], data_len: u64) -> Option<&'a [u8]> {
    if bytes.len() < FILE_HEADER_LEN + HINT_TRAILER_LEN {
        return None;
    }
    if !check_header(path, bytes, &HINT_MAGIC).ok()? {
        return None;
    }
    let t = &bytes[bytes.len() - HINT_TRAILER_LEN..];
    if t[20..24] != HINT_TRAILER_MAGIC || le_u64(t, 8) != data_len {
        return None;
    }
    let covered = bytes.len() - HINT_TRAILER_LEN + 16;
    if crc32fast::hash(&bytes[..covered]) != le_u32(t, 16) {
        return None;
    }
    let entries = &bytes[FILE_HEADER_LEN..bytes.len() - HINT_TRAILER_LEN];
    let (mut at, mut count) = (0usize, 0u64);
    while at < entries.len() {
        let e = &entries[at..];
        if e.len() < HINT_ENTRY_HEADER_LEN {
            return None;
        }
        let key_len = le_u32(e, 12) as usize;
        let value_offset = le_u32(e, 20) as u64;
        let end = value_offset.checked_add(le_u32(e, 16) as u64)?;
        // The record (header and key) must fit between the file header and the value.
        let record_start = value_offset.checked_sub((RECORD_HEADER_LEN + key_len) as u64)?;
        if record_start < FILE_HEADER_LEN as u64
            || key_len == 0
            || key_len > MAX_KEY_LEN_LIMIT
            || e.len() < HINT_ENTRY_HEADER_LEN + key_len
            || end > data_len
            || e[24] & !KNOWN_FLAGS != 0
        {
            return None;
        }
        at += HINT_ENTRY_HEADER_LEN + key_len;
        count += 1;
    }
    (count == le_u64(t, 0)).then_some(entries)
}

/// The number of entries of a hint file held in `bytes`, if it would be used.
pub(crate) fn count_verified(bytes: &[u8], data_len: u64) -> Option<usize> {
    let entries = verified_entries(Path::new("fuzz"), bytes, data_len)?;
    let (mut at, mut n) = (0, 0);
    while at < entries.len() {
        at += HINT_ENTRY_HEADER_LEN + le_u32(&entries[at..], 12) as usize;
        n += 1;
    }
    Some(n)
}

//! A data file: a header, then records, append-only while active and immutable after.
//! Reads go through a read-only memory map (`src/map.rs`), or are positioned
//! (`pread`) when mapping is off or a record lies past the map, so any number of
//! readers share one descriptor with the appending writer and never move a file
//! cursor.

use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{FileHandle, Fs};
use crate::map::Map;
use crate::record::{self, Bad, Header};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How values are read from data files.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reads {
    /// `pread` only.
    Pread,
    /// Through a map made at a file's first read: of its whole length when it is
    /// immutable, and `reserve` bytes (or its length, if more) when it may still
    /// grow, so that appends made after it show through it.
    Map { reserve: u64 },
}

/// An open data file. Shared behind `Arc` by readers, merge and the writer: the
/// descriptor closes when the last user drops it, so a merge can unlink a file
/// while a read of it is still in flight.
#[derive(Debug)]
pub struct DataFile {
    pub id: u32,
    pub path: PathBuf,
    pub(crate) file: Box<dyn FileHandle>,
    /// Format version of its records, from its header. Only the current version
    /// is ever appended to.
    pub version: u32,
    /// Whether it was opened to be appended to: its map then reaches ahead.
    grows: bool,
    /// Made at the first read that wants it; `None` inside when mapping failed
    /// (reads then use `pread`). Unmapped with the last `Arc` of the file, so a
    /// merge that removes the file never unmaps it under a reader.
    map: OnceLock<Option<Map>>,
}

impl DataFile {
    /// Opens an existing data file for reading (and appending, when `writable`).
    /// Its version is taken as current until [`DataFile::read_header`] says.
    pub fn open(fs: &dyn Fs, dir: &Path, id: u32, writable: bool) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = fs
            .open(&path, writable)
            .map_err(|e| Error::io("opening", &path, e))?;
        Ok(DataFile::new(id, path, file, FORMAT_VERSION, writable))
    }

    /// A data file over an open handle.
    pub(crate) fn new(
        id: u32,
        path: PathBuf,
        file: Box<dyn FileHandle>,
        version: u32,
        grows: bool,
    ) -> DataFile {
        DataFile {
            id,
            path,
            file,
            version,
            grows,
            map: OnceLock::new(),
        }
    }

    /// Reads and checks the header, setting `version`. `Ok(false)` when the file
    /// is shorter than a header (a crash right after creation).
    pub fn read_header(&mut self) -> Result<bool> {
        let mut head = [0u8; FILE_HEADER_LEN];
        let got = read_up_to(&*self.file, &mut head, 0, &self.path)?;
        match check_header(&self.path, &head[..got], &DATA_MAGIC)? {
            Some(v) => {
                self.version = v;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Creates a new data file with its header, fsynced along with the directory so
    /// that the file survives a power loss once a write into it is acknowledged.
    pub fn create(fs: &dyn Fs, dir: &Path, id: u32) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = fs
            .create(&path, true)
            .map_err(|e| Error::io("creating", &path, e))?;
        file.append(&file_header(&DATA_MAGIC))
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io("writing header of", &path, e))?;
        sync_dir(fs, dir)?;
        Ok(DataFile::new(id, path, file, FORMAT_VERSION, true))
    }

    pub fn len(&self) -> Result<u64> {
        self.file
            .len()
            .map_err(|e| Error::io("reading size of", &self.path, e))
    }

    /// The file's map, made at the first call that asks for one.
    fn mapped(&self, reads: Reads) -> Option<&Map> {
        let Reads::Map { reserve } = reads else {
            return None;
        };
        self.map
            .get_or_init(|| {
                let len = self.file.len().ok()?;
                let len = if self.grows { len.max(reserve) } else { len };
                if len == 0 {
                    return None;
                }
                self.file.map(len).ok().flatten()
            })
            .as_ref()
    }

    /// Whether reads of this file go through a map: then the kernel is also told
    /// that the whole file will be read soon (a merge reads it in key order, at
    /// random, and should not wait for each page).
    pub fn will_read_all(&self, reads: Reads) -> bool {
        match self.mapped(reads) {
            Some(m) => {
                m.will_need();
                true
            }
            None => false,
        }
    }

    /// Starts loading the record of `rec_len` bytes at `offset` into the CPU's
    /// cache, when the file is mapped.
    pub fn prefetch(&self, offset: u32, rec_len: u32, reads: Reads) {
        if let Some(m) = self.mapped(reads) {
            m.prefetch(offset as u64, rec_len as usize);
        }
    }

    /// The bytes of the record of `rec_len` bytes at `offset`, when the map holds
    /// them.
    fn mapped_record(&self, offset: u32, rec_len: u32, reads: Reads) -> Option<&[u8]> {
        self.mapped(reads)?.get(offset as u64, rec_len as usize)
    }

    /// Reads the record of `rec_len` bytes at `offset`, checks its checksum and
    /// that it belongs to `key`, and returns the value: one allocation, the value's.
    pub fn read_value(
        &self,
        key: &[u8],
        offset: u32,
        rec_len: u32,
        reads: Reads,
    ) -> Result<Vec<u8>> {
        if let Some(rec) = self.mapped_record(offset, rec_len, reads) {
            return self.value_of(key, offset, rec).map(<[u8]>::to_vec);
        }
        let mut buf = self.pread(offset, rec_len)?;
        let skip = self.value_of(key, offset, &buf)?.as_ptr() as usize - buf.as_ptr() as usize;
        buf.drain(..skip);
        Ok(buf)
    }

    /// Where the value of the record of `rec_len` bytes at `offset` lies in the
    /// file's map (its offset and length), once checked as by
    /// [`DataFile::read_value`]; `None` when the record is not in a map.
    pub fn mapped_value(
        &self,
        key: &[u8],
        offset: u32,
        rec_len: u32,
        reads: Reads,
    ) -> Option<Result<(u64, usize)>> {
        let rec = self.mapped_record(offset, rec_len, reads)?;
        Some(self.value_of(key, offset, rec).map(|v| {
            let skip = v.as_ptr() as usize - rec.as_ptr() as usize;
            (offset as u64 + skip as u64, v.len())
        }))
    }

    /// Bytes of the file's map, if it has one that holds them.
    pub fn mapped_bytes(&self, at: u64, n: usize) -> Option<&[u8]> {
        self.map.get()?.as_ref()?.get(at, n)
    }

    /// Calls `f` with the value of the record of `rec_len` bytes at `offset`,
    /// checked as [`DataFile::read_value`] does, borrowed from the map (no copy)
    /// or from a buffer read with `pread`.
    pub fn with_value<R>(
        &self,
        key: &[u8],
        offset: u32,
        rec_len: u32,
        reads: Reads,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        if let Some(rec) = self.mapped_record(offset, rec_len, reads) {
            return self.value_of(key, offset, rec).map(f);
        }
        let buf = self.pread(offset, rec_len)?;
        self.value_of(key, offset, &buf).map(f)
    }

    fn pread(&self, offset: u32, rec_len: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; rec_len as usize];
        self.file
            .read_exact_at(&mut buf, offset as u64)
            .map_err(|e| Error::io("reading", &self.path, e))?;
        Ok(buf)
    }

    /// The value in `rec`, the whole record at `offset`, once its checksum holds
    /// and it is a value of `key`.
    fn value_of<'a>(&self, key: &[u8], offset: u32, rec: &'a [u8]) -> Result<&'a [u8]> {
        let start = offset as u64;
        let h = record::decode(self.version, rec).map_err(|b| self.bad(start, b))?;
        let (k, v) = record::key_value(&h, rec);
        if k != key || h.record_len() != rec.len() as u64 || h.is_tombstone() {
            return Err(Error::corruption(
                &self.path,
                start,
                "record is not the key's",
            ));
        }
        Ok(v)
    }

    /// Flushes file data to the device.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    pub(crate) fn bad(&self, offset: u64, bad: Bad) -> Error {
        Error::corruption(&self.path, offset, bad_reason(bad))
    }
}

pub(crate) fn bad_reason(bad: Bad) -> &'static str {
    match bad {
        Bad::Truncated => "record runs past the end of the file",
        Bad::Invalid(why) => why,
    }
}

/// fsyncs a directory, making created, renamed and removed names durable.
pub fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Reads into `buf` from `at` until it is full or the file ends; the bytes read.
pub(crate) fn read_up_to(
    file: &dyn FileHandle,
    buf: &mut [u8],
    at: u64,
    path: &Path,
) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", path, e)),
        }
    }
    Ok(got)
}

/// Checks a file header read from `path`: its version, or `None` when the file
/// is shorter than a header (a crash right after creation). Anything else wrong,
/// a version this build does not read included, is `BadFormat`.
pub fn check_header(path: &Path, head: &[u8], magic: &[u8; 8]) -> Result<Option<u32>> {
    if head.len() < FILE_HEADER_LEN {
        return Ok(None);
    }
    if &head[..8] != magic {
        return Err(Error::BadFormat {
            file: path.to_path_buf(),
            reason: "wrong magic".into(),
        });
    }
    let version = le_u32(head, 8);
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::BadFormat {
            file: path.to_path_buf(),
            reason: format!(
                "format version {version}; this build reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"
            ),
        });
    }
    Ok(Some(version))
}

/// A record met during a scan; slices borrow the scan buffer.
pub struct RecordRef<'a> {
    /// Offset of the record's first byte in the file.
    pub offset: u64,
    pub header: Header,
    pub key: &'a [u8],
    /// The whole record: header, key and value.
    pub raw: &'a [u8],
}

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte up to the end was a valid record.
    Clean,
    /// The records end at `offset`, and every byte from there to the end is
    /// zero: preallocated space, not data (docs/format.md, *Preallocation*).
    Zeros { offset: u64 },
    /// The bytes at `offset` are not a valid record.
    Bad { offset: u64, bad: Bad },
}

/// Reads records of a file of `version` from `from` up to `end`, calling `f` for
/// each valid one, and stops at the first byte that is not a record: the end of
/// the data when only zeros follow it. Reads in large sequential chunks with
/// positioned reads, so scans of one file may run at once (merge, hint writing).
pub fn scan(
    file: &dyn FileHandle,
    version: u32,
    from: u64,
    end: u64,
    f: impl FnMut(RecordRef<'_>) -> Result<()>,
    path: &Path,
) -> Result<ScanEnd> {
    match scan_records(file, version, from, end, f, path)? {
        ScanEnd::Bad { offset, .. } if zeros_to(file, offset, end, path)? == offset => {
            Ok(ScanEnd::Zeros { offset })
        }
        ended => Ok(ended),
    }
}

/// Where the zero bytes that run to `end` begin, at `from` or later: `from`
/// when every byte from it to `end` is zero, `end` when the last one is not.
/// Reads backwards from `end` in bounded chunks.
pub fn zeros_to(file: &dyn FileHandle, from: u64, end: u64, path: &Path) -> Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut at = end;
    while at > from {
        let n = (at - from).min(CHUNK);
        buf.resize(n as usize, 0);
        file.read_exact_at(&mut buf, at - n)
            .map_err(|e| Error::io("reading", path, e))?;
        if let Some(i) = buf.iter().rposition(|&b| b != 0) {
            return Ok(at - n + i as u64 + 1);
        }
        at -= n;
    }
    Ok(from)
}

/// Writes zeros over `from..to` of `file`: preallocated space.
pub(crate) fn zero_fill(file: &dyn FileHandle, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 256 << 10] = [0; 256 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        file.write_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

fn scan_records(
    file: &dyn FileHandle,
    version: u32,
    from: u64,
    end: u64,
    mut f: impl FnMut(RecordRef<'_>) -> Result<()>,
    path: &Path,
) -> Result<ScanEnd> {
    const CHUNK: usize = 1 << 20;
    let max_header = record::max_header_len(version) as u64;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    // File offset of buf[0], and how far into buf the next record starts.
    let mut base = from;
    let mut at = 0usize;
    loop {
        let pos = base + at as u64;
        if pos == end {
            return Ok(ScanEnd::Clean);
        }
        let have = buf.len() - at;
        let header = record::parse_header(version, &buf[at..]);
        let need = match header {
            Ok(h) => h.record_len(),
            // A header may be shorter than the longest one: ask only for what
            // the file has.
            Err(Bad::Truncated) if (have as u64) < max_header.min(end - pos) => {
                max_header.min(end - pos)
            }
            Err(Bad::Truncated) => {
                return Ok(ScanEnd::Bad {
                    offset: pos,
                    bad: Bad::Truncated,
                })
            }
            Err(bad) => return Ok(ScanEnd::Bad { offset: pos, bad }),
        };
        if pos + need > end {
            return Ok(ScanEnd::Bad {
                offset: pos,
                bad: Bad::Truncated,
            });
        }
        if (have as u64) < need {
            // Refill: keep the partial record, read at least what it needs.
            buf.drain(..at);
            base = pos;
            at = 0;
            let want = (need as usize).max(CHUNK).min((end - base) as usize);
            let old = buf.len();
            buf.resize(want, 0);
            file.read_exact_at(&mut buf[old..], base + old as u64)
                .map_err(|e| Error::io("reading", path, e))?;
            continue;
        }
        let h = header.expect("a full header is buffered");
        let rec = &buf[at..at + need as usize];
        if let Err(bad) = record::verify(&h, rec) {
            return Ok(ScanEnd::Bad { offset: pos, bad });
        }
        let (key, _) = record::key_value(&h, rec);
        f(RecordRef {
            offset: pos,
            header: h,
            key,
            raw: rec,
        })?;
        at += need as usize;
    }
}

/// Finds the first offset in `(from, end)` where a whole valid record begins.
/// Used to tell a torn tail (nothing valid follows) from damage in the middle of a
/// file, and by salvage to resume after damage. Reads in bounded chunks: the rest
/// of a file may be gigabytes.
pub fn find_next_valid(
    file: &dyn FileHandle,
    version: u32,
    from: u64,
    end: u64,
    path: &Path,
) -> Result<Option<u64>> {
    const CHUNK: u64 = 1 << 20;
    let max_header = record::max_header_len(version) as u64;
    let mut buf = Vec::new();
    let mut base = from + 1;
    while base < end {
        // Each chunk overlaps the next by a header, so every position is judged
        // with its whole header in view.
        let n = (end - base).min(CHUNK + max_header) as usize;
        buf.resize(n, 0);
        file.read_exact_at(&mut buf, base)
            .map_err(|e| Error::io("reading", path, e))?;
        let positions = n.min(CHUNK as usize);
        for i in 0..positions {
            // Random bytes pass the framing checks rarely, and a CRC32 about once
            // in 2^32 tries.
            let Ok(h) = record::parse_header(version, &buf[i..]) else {
                continue;
            };
            let pos = base + i as u64;
            if pos + h.record_len() > end {
                continue;
            }
            let ok = match buf.get(i..i + h.record_len() as usize) {
                Some(rec) => record::verify(&h, rec).is_ok(),
                None => read_record_at(file, version, pos, end, path)?.is_some(),
            };
            if ok {
                return Ok(Some(pos));
            }
        }
        base += positions as u64;
    }
    Ok(None)
}

/// The valid record at `pos` (header, key and value), or `None` when the bytes
/// there are not one that ends by `end`.
pub fn read_record_at(
    file: &dyn FileHandle,
    version: u32,
    pos: u64,
    end: u64,
    path: &Path,
) -> Result<Option<(Header, Vec<u8>)>> {
    if pos >= end {
        return Ok(None);
    }
    let mut head = vec![0u8; (record::max_header_len(version) as u64).min(end - pos) as usize];
    file.read_exact_at(&mut head, pos)
        .map_err(|e| Error::io("reading", path, e))?;
    let Ok(h) = record::parse_header(version, &head) else {
        return Ok(None);
    };
    if pos + h.record_len() > end {
        return Ok(None);
    }
    let mut rec = vec![0u8; h.record_len() as usize];
    file.read_exact_at(&mut rec, pos)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(record::verify(&h, &rec).is_ok().then_some((h, rec)))
}

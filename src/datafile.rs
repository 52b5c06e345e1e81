//! A data file: a header, then records, append-only while active and immutable after.
//! Reads are positioned (`pread`), so any number of readers share one descriptor
//! with the appending writer and never move a file cursor.

use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{FileHandle, Fs};
use crate::record::{self, Bad, Header};
use std::path::{Path, PathBuf};

/// An open data file. Shared behind `Arc` by readers, merge and the writer: the
/// descriptor closes when the last user drops it, so a merge can unlink a file
/// while a read of it is still in flight.
#[derive(Debug)]
pub struct DataFile {
    pub id: u32,
    pub path: PathBuf,
    pub(crate) file: Box<dyn FileHandle>,
}

impl DataFile {
    /// Opens an existing data file for reading (and appending, when `writable`).
    pub fn open(fs: &dyn Fs, dir: &Path, id: u32, writable: bool) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = fs
            .open(&path, writable)
            .map_err(|e| Error::io("opening", &path, e))?;
        Ok(DataFile { id, path, file })
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
        Ok(DataFile { id, path, file })
    }

    pub fn len(&self) -> Result<u64> {
        self.file
            .len()
            .map_err(|e| Error::io("reading size of", &self.path, e))
    }

    /// Reads the record whose value starts at `value_offset`, checks its checksum and
    /// that it belongs to `key`, and returns the value.
    pub fn read_value(&self, key: &[u8], value_offset: u32, value_len: u32) -> Result<Vec<u8>> {
        let start = (value_offset as u64)
            .checked_sub((RECORD_HEADER_LEN + key.len()) as u64)
            .ok_or_else(|| {
                Error::corruption(&self.path, value_offset as u64, "impossible value offset")
            })?;
        let mut buf = vec![0u8; record::record_len(key.len(), value_len as usize)];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| Error::io("reading", &self.path, e))?;
        let h = record::decode(&buf).map_err(|b| self.bad(start, b))?;
        if h.key_len as usize != key.len() || &buf[RECORD_HEADER_LEN..][..key.len()] != key {
            return Err(Error::corruption(
                &self.path,
                start,
                "record is not the key's",
            ));
        }
        buf.drain(..RECORD_HEADER_LEN + key.len());
        Ok(buf)
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

/// Checks a file header read from `path`. `Ok(false)` means the file is shorter than
/// a header (a crash right after creation); anything else wrong is `BadFormat`.
pub fn check_header(path: &Path, head: &[u8], magic: &[u8; 8]) -> Result<bool> {
    if head.len() < FILE_HEADER_LEN {
        return Ok(false);
    }
    if &head[..8] != magic {
        return Err(Error::BadFormat {
            file: path.to_path_buf(),
            reason: "wrong magic".into(),
        });
    }
    let version = le_u32(head, 8);
    if version != FORMAT_VERSION {
        return Err(Error::BadFormat {
            file: path.to_path_buf(),
            reason: format!("format version {version}, this build reads {FORMAT_VERSION}"),
        });
    }
    Ok(true)
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
    /// The bytes at `offset` are not a valid record.
    Bad { offset: u64, bad: Bad },
}

/// Reads records from `from` up to `end`, calling `f` for each valid one, and stops
/// at the first byte that is not a record. Reads in large sequential chunks with
/// positioned reads, so scans of one file may run at once (merge, hint writing).
pub fn scan(
    file: &dyn FileHandle,
    from: u64,
    end: u64,
    mut f: impl FnMut(RecordRef<'_>) -> Result<()>,
    path: &Path,
) -> Result<ScanEnd> {
    const CHUNK: usize = 1 << 20;
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
        let header = if have >= RECORD_HEADER_LEN {
            record::parse_header(&buf[at..])
        } else {
            Err(Bad::Truncated)
        };
        let need = match header {
            Ok(h) => h.record_len(),
            Err(Bad::Truncated) => RECORD_HEADER_LEN as u64,
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
        let k = RECORD_HEADER_LEN + h.key_len as usize;
        f(RecordRef {
            offset: pos,
            header: h,
            key: &rec[RECORD_HEADER_LEN..k],
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
    from: u64,
    end: u64,
    path: &Path,
) -> Result<Option<u64>> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut base = from + 1;
    while base < end {
        // Each chunk overlaps the next by a header, so every position is judged
        // with its whole header in view.
        let n = (end - base).min(CHUNK + RECORD_HEADER_LEN as u64) as usize;
        buf.resize(n, 0);
        file.read_exact_at(&mut buf, base)
            .map_err(|e| Error::io("reading", path, e))?;
        let positions = n.min(CHUNK as usize);
        for i in 0..positions {
            // Random bytes pass the framing checks rarely, and a CRC32 about once
            // in 2^32 tries.
            let Ok(h) = record::parse_header(&buf[i..]) else {
                continue;
            };
            let pos = base + i as u64;
            if pos + h.record_len() > end {
                continue;
            }
            let ok = match buf.get(i..i + h.record_len() as usize) {
                Some(rec) => record::verify(&h, rec).is_ok(),
                None => read_record_at(file, pos, end, path)?.is_some(),
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
    pos: u64,
    end: u64,
    path: &Path,
) -> Result<Option<(Header, Vec<u8>)>> {
    if pos + RECORD_HEADER_LEN as u64 > end {
        return Ok(None);
    }
    let mut head = [0u8; RECORD_HEADER_LEN];
    file.read_exact_at(&mut head, pos)
        .map_err(|e| Error::io("reading", path, e))?;
    let Ok(h) = record::parse_header(&head) else {
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

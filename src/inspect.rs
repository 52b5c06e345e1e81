//! Read-only inspection of a database directory's files with the engine's own
//! decoding, for the `bitcask` tool's `verify` and `dump` (cli/). Opens no
//! database and takes no lock. Not a stable API.

use crate::datafile::{self, check_header, ScanEnd};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{Fs, RealFs};
use crate::record::Bad;
use std::path::{Path, PathBuf};

/// One valid record of a data file.
#[derive(Debug)]
pub struct Record<'a> {
    /// Offset of the record's first byte in its file.
    pub offset: u64,
    pub seq: u64,
    /// Format version 1 only: when the record was written (seconds since the epoch).
    pub tstamp: u32,
    /// Seconds since the epoch at which the value expires; 0 for never.
    pub expires: u32,
    /// On a format 2 tombstone: the file that held the value it deleted.
    pub target: u32,
    pub flags: u8,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// The whole record as stored: header, key and value.
    pub raw: &'a [u8],
}

/// Something wrong in a file, at an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

/// The ids of the data files and of the hint files in `dir`, ascending.
pub fn file_ids(dir: &Path) -> Result<(Vec<u32>, Vec<u32>)> {
    let names = RealFs.list(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut data: Vec<u32> = names
        .iter()
        .filter_map(|n| parse_file_name(n, DATA_EXT))
        .collect();
    let mut hint: Vec<u32> = names
        .iter()
        .filter_map(|n| parse_file_name(n, HINT_EXT))
        .collect();
    data.sort_unstable();
    hint.sort_unstable();
    Ok((data, hint))
}

fn problem(file: &Path, offset: u64, reason: impl Into<String>) -> Problem {
    Problem {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// A whole file, read through the engine's file layer.
fn read_whole(path: &Path) -> Result<Vec<u8>> {
    let file = RealFs
        .open(path, false)
        .map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .len()
        .map_err(|e| Error::io("reading size of", path, e))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

/// What is wrong with a file's header, if anything (too short, wrong magic, a
/// format version this build does not read).
fn header_problem(path: &Path, head: &[u8], magic: &[u8; 8]) -> Result<Option<Problem>> {
    match check_header(path, head, magic) {
        Ok(Some(_)) => Ok(None),
        Ok(None) => Ok(Some(problem(path, 0, "file shorter than its header"))),
        Err(Error::BadFormat { reason, .. }) => Ok(Some(problem(path, 0, reason))),
        Err(e) => Err(e),
    }
}

/// Reads the data file at `path`: calls `f` with every valid record in file
/// order and returns what is wrong (bad header or version, each damaged range,
/// a torn tail, a write left without its last record). After damage it resumes
/// at the next valid record, as a salvage open does.
pub fn scan_data_file(path: &Path, mut f: impl FnMut(Record<'_>)) -> Result<Vec<Problem>> {
    let file = RealFs
        .open(path, false)
        .map_err(|e| Error::io("opening", path, e))?;
    let end = file.len().map_err(|e| Error::io("reading", path, e))?;
    let mut problems = Vec::new();
    let mut head = vec![0u8; (end as usize).min(FILE_HEADER_LEN)];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io("reading", path, e))?;
    if let Some(p) = header_problem(path, &head, &DATA_MAGIC)? {
        problems.push(p);
        return Ok(problems);
    }
    let version = le_u32(&head, 8);
    let mut from = FILE_HEADER_LEN as u64;
    let mut last_flags = FLAG_WRITE_END;
    let mut last_end = from;
    loop {
        let scanned = datafile::scan(
            &*file,
            version,
            from,
            end,
            |r| {
                last_flags = r.header.flags;
                last_end = r.offset + r.raw.len() as u64;
                f(Record {
                    offset: r.offset,
                    seq: r.header.seq,
                    tstamp: r.header.tstamp,
                    expires: r.header.expires,
                    target: r.header.target,
                    flags: r.header.flags,
                    key: r.key,
                    value: crate::record::key_value(&r.header, r.raw).1,
                    raw: r.raw,
                });
                Ok(())
            },
            path,
        )?;
        let ScanEnd::Bad { offset, bad } = scanned else {
            break;
        };
        match datafile::find_next_valid(&*file, version, offset, end, path)? {
            Some(next) => {
                let why = match bad {
                    Bad::Truncated => "record length runs past the next valid record",
                    Bad::Invalid(why) => why,
                };
                problems.push(problem(
                    path,
                    offset,
                    format!(
                        "{why}; {} bytes skipped to the next valid record",
                        next - offset
                    ),
                ));
                from = next;
            }
            None => {
                let why = match bad {
                    Bad::Truncated => "torn tail".to_string(),
                    // A torn write may end in any bytes, not only too few.
                    Bad::Invalid(why) => {
                        format!("{why}, then nothing valid (a torn tail, in the last file)")
                    }
                };
                problems.push(problem(
                    path,
                    offset,
                    format!("{why}: {} bytes to the end of the file", end - offset),
                ));
                break;
            }
        }
    }
    if last_flags & FLAG_WRITE_END == 0 {
        problems.push(problem(
            path,
            last_end,
            "the last write has no WRITE_END record (open drops it)",
        ));
    }
    Ok(problems)
}

/// Checks the hint file at `hint_path` against its data file: header and
/// version, trailer, checksum, length, and that every entry describes the
/// record at its offset (seq, flags, key, value length) and that it lists
/// every valid record of the data file.
pub fn check_hint_file(hint_path: &Path, data_path: &Path) -> Result<Vec<Problem>> {
    let bytes = read_whole(hint_path)?;
    let data_len = match RealFs.size(data_path) {
        Ok(n) => n,
        Err(_) => {
            return Ok(vec![problem(
                hint_path,
                0,
                "hint file without its data file (open removes it)",
            )])
        }
    };
    let mut out = Vec::new();
    if let Some(p) = header_problem(hint_path, &bytes, &HINT_MAGIC)? {
        out.push(p);
        return Ok(out);
    }
    let id = hint_path
        .file_name()
        .and_then(|n| parse_file_name(&n.to_string_lossy(), HINT_EXT))
        .unwrap_or(0);
    let Some(hint) = crate::hint::parse(bytes.clone(), id, data_len) else {
        let reason = if bytes.len() < FILE_HEADER_LEN + HINT_TRAILER_LEN {
            "no trailer".to_string()
        } else {
            let t = &bytes[bytes.len() - HINT_TRAILER_LEN..];
            let covered = bytes.len() - HINT_TRAILER_LEN + 16;
            if t[20..24] != HINT_TRAILER_MAGIC {
                "no trailer (torn hint file)".to_string()
            } else if le_u64(t, 8) != data_len {
                format!(
                    "written for a data file of {} bytes, which has {data_len}",
                    le_u64(t, 8)
                )
            } else if crc32fast::hash(&bytes[..covered]) != le_u32(t, 16) {
                "checksum mismatch".to_string()
            } else {
                "entry framing or count is wrong".to_string()
            }
        };
        out.push(problem(
            hint_path,
            0,
            format!("{reason}; open ignores it and scans the data file"),
        ));
        return Ok(out);
    };
    // Every valid record of the data file, by offset.
    let mut records = Vec::new();
    scan_data_file(data_path, |r| {
        records.push((r.offset, r.seq, r.flags, r.key.to_vec(), r.value.len()))
    })?;
    // Entries are in key order (version 2) or file order (version 1): each is
    // matched with the record at its offset, and records no entry named are
    // reported after.
    let mut seen = vec![false; records.len()];
    // Where the entry begins: where the one before it ended.
    let mut entry_end = FILE_HEADER_LEN as u64;
    for (at, e) in hint.entries() {
        let entry_at = entry_end;
        entry_end = (at + e.key.len()) as u64;
        let rec_at = e.offset;
        let found = records.binary_search_by_key(&rec_at, |r| r.0).ok();
        let Some(i) = found.filter(|&i| !seen[i]) else {
            out.push(problem(
                hint_path,
                entry_at,
                format!("entry points at offset {rec_at} of the data file, where no valid record starts (or another entry's does)"),
            ));
            continue;
        };
        seen[i] = true;
        let r = &records[i];
        if r.1 != e.seq || r.2 != e.flags || r.3 != e.key || r.4 != e.value_len as usize {
            out.push(problem(
                hint_path,
                entry_at,
                format!(
                    "entry differs from the record at offset {rec_at} of the data file (seq, flags, key or value length)"
                ),
            ));
        }
    }
    for (r, _) in records.iter().zip(&seen).filter(|(_, &s)| !s) {
        out.push(problem(
            hint_path,
            (bytes.len() - HINT_TRAILER_LEN) as u64,
            format!("no entry for the record at offset {} of the data file", r.0),
        ));
    }
    Ok(out)
}

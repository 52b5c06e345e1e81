//! The snapshot file format (see the crate docs, "Snapshot files").
//!
//! ```text
//! magic      8 bytes   "BCOSNAP1"
//! meta_len   u32 LE
//! meta       meta_len bytes: openraft's SnapshotMeta as JSON
//! records    each: key_len u32 LE, key, value_len u32 LE, value;
//!            keys strictly ascending (bytewise)
//! end        u32 LE 0xFFFF_FFFF (a key_len that cannot occur)
//! count      u64 LE: the number of records
//! crc        u32 LE: CRC-32 (IEEE) of every byte before it
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub(crate) const MAGIC: &[u8; 8] = b"BCOSNAP1";
const END: u32 = u32::MAX;
const MAX_META_LEN: u32 = 64 << 20;
const MAX_KEY_LEN: u32 = 1 << 20;
const MAX_VALUE_LEN: u32 = 1 << 30;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Writes a snapshot file: header, records in key order, trailer.
pub(crate) struct Writer {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    count: u64,
}

impl Writer {
    /// Creates `path` (which must not exist) and writes the header.
    pub(crate) fn create(path: &Path, meta_json: &[u8]) -> io::Result<Writer> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut w = Writer {
            out: BufWriter::with_capacity(1 << 16, file),
            crc: crc32fast::Hasher::new(),
            count: 0,
        };
        w.put(MAGIC)?;
        let len = u32::try_from(meta_json.len())
            .ok()
            .filter(|&n| n <= MAX_META_LEN)
            .ok_or_else(|| invalid(format!("snapshot meta of {} bytes", meta_json.len())))?;
        w.put(&len.to_le_bytes())?;
        w.put(meta_json)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    /// Appends one record; keys must come in ascending order.
    pub(crate) fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.len() > MAX_KEY_LEN as usize || value.len() > MAX_VALUE_LEN as usize {
            return Err(invalid(format!(
                "record too large for a snapshot: key {} bytes, value {} bytes",
                key.len(),
                value.len()
            )));
        }
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer, fsyncs the file and returns it positioned at its start.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        self.put(&END.to_le_bytes())?;
        let count = self.count.to_le_bytes();
        self.put(&count)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

/// Reads a snapshot file, checking its framing, key order, count and CRC.
pub(crate) struct Reader<R: Read> {
    inp: R,
    crc: crc32fast::Hasher,
    /// The header's meta, as JSON.
    pub(crate) meta_json: Vec<u8>,
    count: u64,
    last_key: Option<Vec<u8>>,
    done: bool,
}

impl Reader<BufReader<File>> {
    /// Opens `path` and reads its header.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        Reader::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

impl<R: Read> Reader<R> {
    /// Reads the header from `inp`.
    pub(crate) fn new(inp: R) -> io::Result<Self> {
        let mut r = Reader {
            inp,
            crc: crc32fast::Hasher::new(),
            meta_json: Vec::new(),
            count: 0,
            last_key: None,
            done: false,
        };
        let mut magic = [0u8; 8];
        r.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid(
                "not a bitcask-openraft snapshot (bad magic)".into(),
            ));
        }
        let len = r.u32()?;
        if len > MAX_META_LEN {
            return Err(invalid(format!(
                "snapshot meta length {len} is implausible"
            )));
        }
        r.meta_json = r.bytes(len)?;
        Ok(r)
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inp.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid("snapshot file is truncated".into())
            } else {
                e
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self, len: u32) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len as usize];
        self.take(&mut v)?;
        Ok(v)
    }

    /// The next record, or `None` after the trailer has been read and checked.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let klen = self.u32()?;
        if klen == END {
            return self.trailer().map(|()| None);
        }
        if klen > MAX_KEY_LEN {
            return Err(invalid(format!(
                "snapshot key length {klen} is implausible"
            )));
        }
        let key = self.bytes(klen)?;
        let vlen = self.u32()?;
        if vlen > MAX_VALUE_LEN {
            return Err(invalid(format!(
                "snapshot value length {vlen} is implausible"
            )));
        }
        let value = self.bytes(vlen)?;
        if self.last_key.as_ref().is_some_and(|last| *last >= key) {
            return Err(invalid("snapshot keys are not in ascending order".into()));
        }
        self.last_key = Some(key.clone());
        self.count += 1;
        Ok(Some((key, value)))
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut count = [0u8; 8];
        self.take(&mut count)?;
        let count = u64::from_le_bytes(count);
        let want = self.crc.clone().finalize();
        let mut crc = [0u8; 4];
        self.inp.read_exact(&mut crc).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid("snapshot file is truncated".into())
            } else {
                e
            }
        })?;
        if u32::from_le_bytes(crc) != want {
            return Err(invalid("snapshot checksum mismatch".into()));
        }
        if count != self.count {
            return Err(invalid(format!(
                "snapshot trailer counts {count} records, the file holds {}",
                self.count
            )));
        }
        let mut extra = [0u8; 1];
        if self.inp.read(&mut extra)? != 0 {
            return Err(invalid("bytes after the snapshot trailer".into()));
        }
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, records: &[(&[u8], &[u8])]) -> File {
        let mut w = Writer::create(path, b"{\"m\":1}").unwrap();
        for (k, v) in records {
            w.record(k, v).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut r = Reader::open(path)?;
        assert_eq!(r.meta_json, b"{\"m\":1}");
        let mut out = Vec::new();
        while let Some(kv) = r.next_record()? {
            out.push(kv);
        }
        Ok(out)
    }

    #[test]
    fn records_round_trip_including_an_empty_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write(&p, &[(b"", b"empty key"), (b"a", b""), (b"b", b"2")]);
        let got = read_all(&p).unwrap();
        assert_eq!(
            got,
            vec![
                (b"".to_vec(), b"empty key".to_vec()),
                (b"a".to_vec(), b"".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write(&p, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let good = std::fs::read(&p).unwrap();
        let q = dir.path().join("bad");
        for cut in 0..good.len() {
            std::fs::write(&q, &good[..cut]).unwrap();
            assert!(read_all_quiet(&q).is_err(), "truncated at {cut} accepted");
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&q, &bad).unwrap();
            assert!(read_all_quiet(&q).is_err(), "flipped byte {at} accepted");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&q, &longer).unwrap();
        assert!(read_all_quiet(&q).is_err(), "trailing byte accepted");
    }

    fn read_all_quiet(path: &Path) -> io::Result<usize> {
        let mut r = Reader::open(path)?;
        let mut n = 0;
        while r.next_record()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

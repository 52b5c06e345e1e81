//! Every on-disk constant, in one place. `docs/format.md` draws these byte by byte;
//! change them together, and bump [`FORMAT_VERSION`] on any change of layout.

/// Version written in the header of every new file. Files of an older version
/// this build still reads ([`MIN_FORMAT_VERSION`]) are read in their own layout and
/// rewritten by merges; a file of any other version is refused at open.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest version this build reads.
pub const MIN_FORMAT_VERSION: u32 = 1;

/// Magic at the start of a data file.
pub const DATA_MAGIC: [u8; 8] = *b"BCSKDATA";
/// Magic at the start of a hint file.
pub const HINT_MAGIC: [u8; 8] = *b"BCSKHINT";

/// File header: magic (8) | version u32 | reserved u32 (zero).
pub const FILE_HEADER_LEN: usize = 16;

/// Version 2 record: crc u32 | flags u8 | seq varint | key_len varint |
/// value_len varint | [expires u32, with `FLAG_EXPIRES`] | [target varint, on a
/// tombstone] | key | value. The crc covers every byte after it.
pub const REC_CRC_LEN: usize = 4;
/// Shortest possible version 2 record header (every varint one byte).
pub const MIN_RECORD_HEADER_LEN: usize = REC_CRC_LEN + 4;
/// Longest possible version 2 record header: flags, a 10-byte seq, a 3-byte key
/// length, a 5-byte value length, and either an expiry or a tombstone's target
/// (a tombstone's value length is one byte, so the two maxima never meet).
pub const MAX_RECORD_HEADER_LEN: usize = REC_CRC_LEN + 1 + 10 + 3 + 5 + 4;

/// Version 1 record header: crc u32 | seq u64 | tstamp u32 | key_len u32 |
/// value_len u32 | flags u8, fixed width.
pub const V1_RECORD_HEADER_LEN: usize = 25;
/// Offsets of the version 1 record header fields.
pub const V1_REC_CRC: usize = 0;
pub const V1_REC_SEQ: usize = 4;
pub const V1_REC_TSTAMP: usize = 12;
pub const V1_REC_KEY_LEN: usize = 16;
pub const V1_REC_VALUE_LEN: usize = 20;
pub const V1_REC_FLAGS: usize = 24;

/// Record flag: the record deletes its key (a tombstone). Its value is empty.
pub const FLAG_TOMBSTONE: u8 = 0x01;
/// Record flag: the last record of a write (a single put or delete, or a batch).
/// Records of a write without this flag are only valid once a later record of the
/// same write carries it; recovery drops an unfinished write whole.
pub const FLAG_WRITE_END: u8 = 0x02;
/// Record flag (version 2): the record carries an expiry time; never on a tombstone.
pub const FLAG_EXPIRES: u8 = 0x04;
/// Flags each version understands; any other bit set marks the record corrupt.
pub const V1_KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_WRITE_END;
pub const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_WRITE_END | FLAG_EXPIRES;

/// Version 2 hint entry: the record's header without its crc, then the key. The
/// record's offset is not stored: entries list every record in file order, so
/// each record starts where the one before it ends.
/// Version 1 hint entry: seq u64 | tstamp u32 | key_len u32 | value_len u32 |
/// value_offset u32 | flags u8, then the key.
pub const V1_HINT_ENTRY_HEADER_LEN: usize = 25;
/// Hint trailer: entry count u64 | covered data file length u64 | crc u32 | magic "HEND".
pub const HINT_TRAILER_LEN: usize = 24;
pub const HINT_TRAILER_MAGIC: [u8; 4] = *b"HEND";

/// Hard ceilings the options are checked against. Value offsets and sizes are stored
/// in the keydir as u32, so no data file may grow past 4 GiB; these limits keep the
/// largest file (a full file plus one maximal write group) below that.
pub const MAX_KEY_LEN_LIMIT: usize = 65_535;
pub const MAX_VALUE_LEN_LIMIT: usize = 1 << 30;
pub const MAX_FILE_SIZE_LIMIT: u64 = 1 << 31;
/// Largest single write (a batch, encoded).
pub const MAX_WRITE_LEN: usize = 1 << 31;

/// File names. Ids are zero-padded so that a directory listing sorts by id.
pub const LOCK_FILE: &str = "LOCK";
pub const DATA_EXT: &str = "data";
pub const HINT_EXT: &str = "hint";
pub const TMP_EXT: &str = "tmp";
/// The next data file, made ahead (preallocated); a `.tmp`, so open removes it.
pub const SPARE_FILE_NAME: &str = "spare.data.tmp";

pub fn data_file_name(id: u32) -> String {
    format!("{id:010}.{DATA_EXT}")
}

pub fn hint_file_name(id: u32) -> String {
    format!("{id:010}.{HINT_EXT}")
}

/// Parses `0000000042.data` into 42; anything else is not ours.
pub fn parse_file_name(name: &str, ext: &str) -> Option<u32> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Encodes a file header of the current version for the given magic.
pub fn file_header(magic: &[u8; 8]) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Bytes of `v` as a varint: LEB128, 7 bits per byte, low bits first, the high
/// bit set on every byte but the last.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*at`, advancing it. `None` when the bytes end first (the
/// caller decides whether that is a torn tail), `Some(Err)` for an encoding no
/// writer produces: longer than 10 bytes, overflowing 64 bits, or not minimal.
/// Refusing non-minimal encodings keeps one value to one byte string, so a
/// record's length follows from its fields alone.
#[inline]
pub fn get_varint(b: &[u8], at: &mut usize) -> Option<Result<u64, ()>> {
    // Most varints in a record header are one byte: decoded without the loop.
    match b.get(*at) {
        Some(&byte) if byte < 0x80 => {
            *at += 1;
            Some(Ok(byte as u64))
        }
        _ => get_varint_long(b, at),
    }
}

fn get_varint_long(b: &[u8], at: &mut usize) -> Option<Result<u64, ()>> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at + i)?;
        let bits = (byte & 0x7f) as u64;
        if i == 9 && byte > 1 {
            return Some(Err(()));
        }
        v |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Some(Err(()));
            }
            *at += i + 1;
            return Some(Ok(v));
        }
    }
    Some(Err(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(data_file_name(42), "0000000042.data");
        assert_eq!(parse_file_name("0000000042.data", DATA_EXT), Some(42));
        assert_eq!(parse_file_name("0000000042.hint", DATA_EXT), None);
        assert_eq!(parse_file_name("42.data", DATA_EXT), None);
        assert_eq!(parse_file_name("00000000x2.data", DATA_EXT), None);
    }

    #[test]
    fn varints_round_trip_and_refuse_what_no_writer_writes() {
        for v in [0, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut at = 0;
            assert_eq!(get_varint(&b, &mut at), Some(Ok(v)));
            assert_eq!(at, b.len());
            assert_eq!(get_varint(&b[..b.len() - 1], &mut 0), None);
        }
        // Not minimal, too long, overflowing.
        assert_eq!(get_varint(&[0x80, 0x00], &mut 0), Some(Err(())));
        assert_eq!(get_varint(&[0xff; 11], &mut 0), Some(Err(())));
        let mut big = vec![0xff; 9];
        big.push(0x02);
        assert_eq!(get_varint(&big, &mut 0), Some(Err(())));
    }
}

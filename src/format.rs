//! Every on-disk constant, in one place. `docs/format.md` draws these byte by byte;
//! change them together, and bump [`FORMAT_VERSION`] on any change of layout.

/// Version written in every file header. A file with another version is refused at open.
pub const FORMAT_VERSION: u32 = 1;

/// Magic at the start of a data file.
pub const DATA_MAGIC: [u8; 8] = *b"BCSKDATA";
/// Magic at the start of a hint file.
pub const HINT_MAGIC: [u8; 8] = *b"BCSKHINT";

/// File header: magic (8) | version u32 | reserved u32 (zero).
pub const FILE_HEADER_LEN: usize = 16;

/// Record header: crc u32 | seq u64 | tstamp u32 | key_len u32 | value_len u32 | flags u8.
pub const RECORD_HEADER_LEN: usize = 25;
/// Offsets of the record header fields.
pub const REC_CRC: usize = 0;
pub const REC_SEQ: usize = 4;
pub const REC_TSTAMP: usize = 12;
pub const REC_KEY_LEN: usize = 16;
pub const REC_VALUE_LEN: usize = 20;
pub const REC_FLAGS: usize = 24;

/// Record flag: the record deletes its key (a tombstone). Its value is empty.
pub const FLAG_TOMBSTONE: u8 = 0x01;
/// Record flag: the last record of a write (a single put or delete, or a batch).
/// Records of a write without this flag are only valid once a later record of the
/// same write carries it; recovery drops an unfinished write whole.
pub const FLAG_WRITE_END: u8 = 0x02;
/// Flags this version understands; any other bit set marks the record corrupt.
pub const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_WRITE_END;

/// Hint entry: seq u64 | tstamp u32 | key_len u32 | value_len u32 | value_offset u32 | flags u8.
pub const HINT_ENTRY_HEADER_LEN: usize = 25;
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

/// Encodes a file header for the given magic.
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
}

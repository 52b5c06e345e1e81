//! One log record: encoding, and decoding with every length checked before it is
//! trusted (a corrupt header can claim a 4 GiB key; nothing here allocates it).
//!
//! Two layouts exist (docs/format.md draws both). Version 2 is the only one
//! written; version 1 is read from files written before it, until a merge
//! rewrites them.

use crate::format::*;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub crc: u32,
    pub seq: u64,
    /// Version 1 only (seconds since the epoch when written); 0 in version 2.
    pub tstamp: u32,
    pub key_len: u32,
    pub value_len: u32,
    pub flags: u8,
    /// Seconds since the epoch at which the value expires; 0 for never.
    pub expires: u32,
    /// On a version 2 tombstone: the id of the file that held the value it
    /// deleted (or its own file's id, when nothing older needed hiding). 0 when
    /// unknown (a version 1 tombstone).
    pub target: u32,
    /// Bytes of header before the key.
    pub header_len: u32,
}

impl Header {
    /// Length of the whole record: header, key and value.
    pub fn record_len(&self) -> u64 {
        self.header_len as u64 + self.key_len as u64 + self.value_len as u64
    }

    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The bytes end before the record does (a torn tail, or a length that lies).
    Truncated,
    /// Framing or checksum is wrong.
    Invalid(&'static str),
}

/// The fields of a version 2 record other than its key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub seq: u64,
    pub flags: u8,
    /// 0 for never; a nonzero value sets `FLAG_EXPIRES`.
    pub expires: u32,
    /// For a tombstone: see [`Header::target`].
    pub target: u32,
}

impl Fields {
    /// The fields of a decoded header (of either version): what a copy of the
    /// record in version 2 carries.
    pub fn of(h: &Header) -> Fields {
        Fields {
            seq: h.seq,
            flags: h.flags,
            expires: h.expires,
            target: h.target,
        }
    }
}

/// Length of the version 2 header (crc included) for these fields and lengths.
pub fn header_len(f: &Fields, key_len: usize, value_len: usize) -> usize {
    let mut n = REC_CRC_LEN
        + 1
        + varint_len(f.seq)
        + varint_len(key_len as u64)
        + varint_len(value_len as u64);
    if f.expires != 0 {
        n += 4;
    }
    if f.flags & FLAG_TOMBSTONE != 0 {
        n += varint_len(f.target as u64);
    }
    n
}

/// Length of the version 2 record holding these fields, key and value.
pub fn record_len(f: &Fields, key_len: usize, value_len: usize) -> usize {
    header_len(f, key_len, value_len) + key_len + value_len
}

/// Appends the header fields after the crc: also a version 2 hint entry's header.
pub fn encode_fields(out: &mut Vec<u8>, f: &Fields, key_len: usize, value_len: usize) {
    let mut flags = f.flags & !FLAG_EXPIRES;
    if f.expires != 0 {
        flags |= FLAG_EXPIRES;
    }
    out.push(flags);
    put_varint(out, f.seq);
    put_varint(out, key_len as u64);
    put_varint(out, value_len as u64);
    if f.expires != 0 {
        out.extend_from_slice(&f.expires.to_le_bytes());
    }
    if f.flags & FLAG_TOMBSTONE != 0 {
        put_varint(out, f.target as u64);
    }
}

/// Appends one version 2 record to `out`.
pub fn encode(out: &mut Vec<u8>, f: &Fields, key: &[u8], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; REC_CRC_LEN]);
    encode_fields(out, f, key.len(), value.len());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + REC_CRC_LEN..]);
    out[start..start + REC_CRC_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// Parses the version 2 fields at the start of `b` (a record's bytes after its
/// crc, or a hint entry) and checks their framing. Returns the header with
/// `header_len` counting the crc, as in a record.
pub fn parse_fields(b: &[u8]) -> Result<Header, Bad> {
    let flags = *b.first().ok_or(Bad::Truncated)?;
    let mut at = 1;
    let next = |at: &mut usize| match get_varint(b, at) {
        None => Err(Bad::Truncated),
        Some(Err(())) => Err(Bad::Invalid("malformed varint in record header")),
        Some(Ok(v)) => Ok(v),
    };
    let seq = next(&mut at)?;
    let key_len = next(&mut at)?;
    let value_len = next(&mut at)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Bad::Invalid("unknown record flags"));
    }
    if key_len == 0 {
        return Err(Bad::Invalid("empty key"));
    }
    if key_len as usize > MAX_KEY_LEN_LIMIT {
        return Err(Bad::Invalid("key length beyond the format limit"));
    }
    if value_len as usize > MAX_VALUE_LEN_LIMIT {
        return Err(Bad::Invalid("value length beyond the format limit"));
    }
    let tomb = flags & FLAG_TOMBSTONE != 0;
    if tomb && value_len != 0 {
        return Err(Bad::Invalid("tombstone with a value"));
    }
    if tomb && flags & FLAG_EXPIRES != 0 {
        return Err(Bad::Invalid("tombstone with an expiry"));
    }
    let mut expires = 0;
    if flags & FLAG_EXPIRES != 0 {
        let e = b.get(at..at + 4).ok_or(Bad::Truncated)?;
        expires = u32::from_le_bytes(e.try_into().expect("4 bytes"));
        if expires == 0 {
            return Err(Bad::Invalid("expiry flag with no expiry"));
        }
        at += 4;
    }
    let mut target = 0;
    if tomb {
        let t = next(&mut at)?;
        if t == 0 || t > u32::MAX as u64 {
            return Err(Bad::Invalid("tombstone target is not a file id"));
        }
        target = t as u32;
    }
    Ok(Header {
        crc: 0,
        seq,
        tstamp: 0,
        key_len: key_len as u32,
        value_len: value_len as u32,
        flags,
        expires,
        target,
        header_len: (REC_CRC_LEN + at) as u32,
    })
}

/// Parses a header of a file of `version` and checks its framing (not yet the
/// checksum).
pub fn parse_header(version: u32, b: &[u8]) -> Result<Header, Bad> {
    if version == 1 {
        return parse_header_v1(b);
    }
    if b.len() < MIN_RECORD_HEADER_LEN {
        return Err(Bad::Truncated);
    }
    let mut h = parse_fields(&b[REC_CRC_LEN..])?;
    h.crc = le_u32(b, 0);
    Ok(h)
}

fn parse_header_v1(b: &[u8]) -> Result<Header, Bad> {
    if b.len() < V1_RECORD_HEADER_LEN {
        return Err(Bad::Truncated);
    }
    let h = Header {
        crc: le_u32(b, V1_REC_CRC),
        seq: le_u64(b, V1_REC_SEQ),
        tstamp: le_u32(b, V1_REC_TSTAMP),
        key_len: le_u32(b, V1_REC_KEY_LEN),
        value_len: le_u32(b, V1_REC_VALUE_LEN),
        flags: b[V1_REC_FLAGS],
        expires: 0,
        target: 0,
        header_len: V1_RECORD_HEADER_LEN as u32,
    };
    if h.flags & !V1_KNOWN_FLAGS != 0 {
        return Err(Bad::Invalid("unknown record flags"));
    }
    if h.key_len == 0 {
        return Err(Bad::Invalid("empty key"));
    }
    if h.key_len as usize > MAX_KEY_LEN_LIMIT {
        return Err(Bad::Invalid("key length beyond the format limit"));
    }
    if h.value_len as usize > MAX_VALUE_LEN_LIMIT {
        return Err(Bad::Invalid("value length beyond the format limit"));
    }
    if h.is_tombstone() && h.value_len != 0 {
        return Err(Bad::Invalid("tombstone with a value"));
    }
    Ok(h)
}

/// Bytes to read at a record's offset to be sure of its whole header, in a file
/// of `version`.
pub fn max_header_len(version: u32) -> usize {
    if version == 1 {
        V1_RECORD_HEADER_LEN
    } else {
        MAX_RECORD_HEADER_LEN
    }
}

/// Checks the checksum of a whole record held in `rec` (header, key, value).
pub fn verify(h: &Header, rec: &[u8]) -> Result<(), Bad> {
    if (rec.len() as u64) < h.record_len() {
        return Err(Bad::Truncated);
    }
    let end = h.record_len() as usize;
    if crc32fast::hash(&rec[REC_CRC_LEN..end]) != h.crc {
        return Err(Bad::Invalid("checksum mismatch"));
    }
    Ok(())
}

/// Decodes the record at the start of `b`, checksum included.
pub fn decode(version: u32, b: &[u8]) -> Result<Header, Bad> {
    let h = parse_header(version, b)?;
    verify(&h, b)?;
    Ok(h)
}

/// The key and value of a record decoded from `rec`.
pub fn key_value<'a>(h: &Header, rec: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let k = h.header_len as usize;
    let v = k + h.key_len as usize;
    (&rec[k..v], &rec[v..v + h.value_len as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(seq: u64, expires: u32) -> Fields {
        Fields {
            seq,
            flags: FLAG_WRITE_END,
            expires,
            target: 0,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_bit_is_caught() {
        for f in [
            put(7, 0),
            put(1 << 40, 1_900_000_000),
            Fields {
                seq: 300,
                flags: FLAG_TOMBSTONE | FLAG_WRITE_END,
                expires: 0,
                target: 70_000,
            },
        ] {
            let value: &[u8] = if f.flags & FLAG_TOMBSTONE != 0 {
                b""
            } else {
                b"value"
            };
            let mut buf = Vec::new();
            encode(&mut buf, &f, b"key", value);
            assert_eq!(buf.len(), record_len(&f, 3, value.len()));
            let h = decode(2, &buf).unwrap();
            assert_eq!(
                (h.seq, h.expires, h.target, h.key_len, h.value_len),
                (f.seq, f.expires, f.target, 3, value.len() as u32)
            );
            assert_eq!(key_value(&h, &buf), (&b"key"[..], value));
            for i in 0..buf.len() * 8 {
                let mut b = buf.clone();
                b[i / 8] ^= 1 << (i % 8);
                assert!(decode(2, &b).is_err(), "bit {i} flip undetected");
            }
        }
    }

    #[test]
    fn a_small_record_costs_eight_bytes_of_header() {
        let mut buf = Vec::new();
        encode(&mut buf, &put(100, 0), &[7; 16], &[9; 100]);
        assert_eq!(buf.len(), 8 + 16 + 100);
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut buf = Vec::new();
        encode(&mut buf, &put(1, 0), b"k", b"");
        // key_len as a 5-byte varint of u32::MAX.
        let mut bad = buf[..6].to_vec();
        bad.truncate(6);
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        assert!(matches!(parse_header(2, &bad), Err(Bad::Invalid(_))));
        assert_eq!(decode(2, &buf[..5]), Err(Bad::Truncated));
    }

    #[test]
    fn version_1_records_still_decode() {
        // crc | seq 7 | tstamp 99 | key_len 3 | value_len 5 | flags WRITE_END | key | value
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&99u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.push(FLAG_WRITE_END);
        b.extend_from_slice(b"keyvalue");
        let crc = crc32fast::hash(&b[4..]);
        b[..4].copy_from_slice(&crc.to_le_bytes());
        let h = decode(1, &b).unwrap();
        assert_eq!((h.seq, h.tstamp, h.header_len), (7, 99, 25));
        assert_eq!(key_value(&h, &b), (&b"key"[..], &b"value"[..]));
        assert!(decode(2, &b).is_err());
    }
}

//! One log record: encoding, and decoding with every length checked before it is
//! trusted (a corrupt header can claim a 4 GiB key; nothing here allocates it).

use crate::format::*;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub crc: u32,
    pub seq: u64,
    pub tstamp: u32,
    pub key_len: u32,
    pub value_len: u32,
    pub flags: u8,
}

impl Header {
    /// Length of the whole record: header, key and value.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.key_len as u64 + self.value_len as u64
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

/// Length of the record holding a key of `key_len` and a value of `value_len` bytes.
pub fn record_len(key_len: usize, value_len: usize) -> usize {
    RECORD_HEADER_LEN + key_len + value_len
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, tstamp: u32, flags: u8, key: &[u8], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&tstamp.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.push(flags);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Parses a header and checks its framing (not yet the checksum).
pub fn parse_header(b: &[u8]) -> Result<Header, Bad> {
    if b.len() < RECORD_HEADER_LEN {
        return Err(Bad::Truncated);
    }
    let h = Header {
        crc: le_u32(b, REC_CRC),
        seq: le_u64(b, REC_SEQ),
        tstamp: le_u32(b, REC_TSTAMP),
        key_len: le_u32(b, REC_KEY_LEN),
        value_len: le_u32(b, REC_VALUE_LEN),
        flags: b[REC_FLAGS],
    };
    if h.flags & !KNOWN_FLAGS != 0 {
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

/// Checks the checksum of a whole record held in `rec` (header, key, value).
pub fn verify(h: &Header, rec: &[u8]) -> Result<(), Bad> {
    if (rec.len() as u64) < h.record_len() {
        return Err(Bad::Truncated);
    }
    let end = h.record_len() as usize;
    if crc32fast::hash(&rec[4..end]) != h.crc {
        return Err(Bad::Invalid("checksum mismatch"));
    }
    Ok(())
}

/// Decodes the record at the start of `b`, checksum included.
pub fn decode(b: &[u8]) -> Result<Header, Bad> {
    let h = parse_header(b)?;
    verify(&h, b)?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_bit_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 99, FLAG_WRITE_END, b"key", b"value");
        let h = decode(&buf).unwrap();
        assert_eq!((h.seq, h.tstamp, h.key_len, h.value_len), (7, 99, 3, 5));
        assert_eq!(&buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + 3], b"key");
        for i in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode(&b).is_err(), "bit {i} flip undetected");
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 1, FLAG_WRITE_END, b"k", b"");
        buf[REC_KEY_LEN..REC_KEY_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_header(&buf), Err(Bad::Invalid(_))));
        assert_eq!(decode(&buf[..10]), Err(Bad::Truncated));
    }
}

//! `WriteBatch`: puts and deletes applied all or nothing.
//!
//! A batch is kept already encoded as records (with sequence, time and checksum left
//! blank) so that the writer that commits it only stamps and copies bytes.

use crate::error::Error;
use crate::format::*;
use crate::record;

/// An ordered set of puts and deletes, applied atomically by
/// [`crate::Bitcask::write`]. Later operations on the same key win.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) rep: Vec<u8>,
    pub(crate) count: usize,
    /// An operation too large for the format at all; reported by `write`, since
    /// building a batch is infallible.
    pub(crate) oversize: Option<Error>,
}

/// One operation of a batch, as seen by [`WriteBatch::iter`].
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOp<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put. Sizes are checked when the batch is written.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        if !self.fits(key, value) {
            return self;
        }
        record::encode(&mut self.rep, 0, 0, 0, key, value);
        self.count += 1;
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        if !self.fits(key, b"") {
            return self;
        }
        record::encode(&mut self.rep, 0, 0, FLAG_TOMBSTONE, key, b"");
        self.count += 1;
        self
    }

    fn fits(&mut self, key: &[u8], value: &[u8]) -> bool {
        let err = if key.len() > MAX_KEY_LEN_LIMIT {
            Error::KeyTooLarge {
                len: key.len(),
                max: MAX_KEY_LEN_LIMIT,
            }
        } else if value.len() > MAX_VALUE_LEN_LIMIT {
            Error::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE_LEN_LIMIT,
            }
        } else {
            return true;
        };
        self.oversize.get_or_insert(err);
        false
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch will occupy in the log.
    pub fn encoded_len(&self) -> usize {
        self.rep.len()
    }

    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.oversize = None;
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = BatchOp<'_>> {
        RecordIter { rep: &self.rep }.map(|(flags, key, value)| {
            if flags & FLAG_TOMBSTONE != 0 {
                BatchOp::Delete(key)
            } else {
                BatchOp::Put(key, value)
            }
        })
    }
}

/// Walks records encoded by this crate (trusted: no checksum check).
pub(crate) struct RecordIter<'a> {
    pub rep: &'a [u8],
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = (u8, &'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rep.is_empty() {
            return None;
        }
        let k = le_u32(self.rep, REC_KEY_LEN) as usize;
        let v = le_u32(self.rep, REC_VALUE_LEN) as usize;
        let flags = self.rep[REC_FLAGS];
        let key = &self.rep[RECORD_HEADER_LEN..RECORD_HEADER_LEN + k];
        let value = &self.rep[RECORD_HEADER_LEN + k..RECORD_HEADER_LEN + k + v];
        self.rep = &self.rep[RECORD_HEADER_LEN + k + v..];
        Some((flags, key, value))
    }
}

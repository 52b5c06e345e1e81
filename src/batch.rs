//! `WriteBatch`: puts and deletes applied all or nothing.
//!
//! A batch keeps its operations in one buffer; the writer that commits it encodes
//! them as records, once the sequence number and the time are known.

use crate::error::Error;
use crate::format::*;
use std::time::Duration;

/// An ordered set of puts and deletes, applied atomically by
/// [`crate::Bitcask::write`]. Later operations on the same key win.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Per operation: flags u8 | ttl in ms u64 (0: none given) | key_len u32 |
    /// value_len u32 | key | value. In memory only, never on disk.
    pub(crate) rep: Vec<u8>,
    pub(crate) count: usize,
    /// Upper bound of the records' bytes in the log.
    log_len: usize,
    /// An operation the format cannot hold (too large, a bad TTL); reported by
    /// `write`, since building a batch is infallible.
    pub(crate) oversize: Option<Error>,
}

/// One operation of a batch, as seen by [`WriteBatch::iter`].
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOp<'a> {
    Put(&'a [u8], &'a [u8]),
    /// A put whose value expires this long after the batch is written.
    PutWithTtl(&'a [u8], &'a [u8], Duration),
    Delete(&'a [u8]),
}

const OP_HEADER: usize = 1 + 8 + 4 + 4;

/// Longest TTL: an expiry must fit the format's 32-bit seconds (year 2106).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(u32::MAX as u64 / 2);

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put. Sizes are checked when the batch is written. The value takes
    /// the database's default TTL, if it has one.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.push(0, 0, key, value)
    }

    /// Adds a put whose value expires `ttl` after the batch is written (rounded
    /// up to a whole second of the wall clock). A zero TTL, or one past the
    /// year 2106, makes `write` fail with `InvalidOption`.
    pub fn put_with_ttl(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> &mut Self {
        if ttl.is_zero() || ttl > MAX_TTL {
            self.oversize.get_or_insert(Error::InvalidOption {
                name: "ttl",
                reason: format!(
                    "must be between 1 ms and {} s, not {ttl:?}",
                    MAX_TTL.as_secs()
                ),
            });
            return self;
        }
        // Sub-millisecond TTLs round up, so that a positive TTL stays positive.
        let ms = ttl.as_nanos().div_ceil(1_000_000) as u64;
        self.push(0, ms, key, value)
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.push(FLAG_TOMBSTONE, 0, key, b"")
    }

    fn push(&mut self, flags: u8, ttl_ms: u64, key: &[u8], value: &[u8]) -> &mut Self {
        if !self.fits(key, value) {
            return self;
        }
        self.rep.push(flags);
        self.rep.extend_from_slice(&ttl_ms.to_le_bytes());
        self.rep
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.rep
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.rep.extend_from_slice(key);
        self.rep.extend_from_slice(value);
        self.log_len += MAX_RECORD_HEADER_LEN + key.len() + value.len();
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

    /// At most the bytes the batch will occupy in the log (record headers vary
    /// in length; this counts the longest).
    pub fn encoded_len(&self) -> usize {
        self.log_len
    }

    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.log_len = 0;
        self.oversize = None;
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = BatchOp<'_>> {
        self.ops().map(|op| {
            if op.flags & FLAG_TOMBSTONE != 0 {
                BatchOp::Delete(op.key)
            } else if op.ttl_ms != 0 {
                BatchOp::PutWithTtl(op.key, op.value, Duration::from_millis(op.ttl_ms))
            } else {
                BatchOp::Put(op.key, op.value)
            }
        })
    }

    pub(crate) fn ops(&self) -> Ops<'_> {
        Ops { rep: &self.rep }
    }
}

/// One operation as the writer sees it.
pub(crate) struct Op<'a> {
    pub flags: u8,
    /// 0: no TTL given.
    pub ttl_ms: u64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Walks the operations of a batch (trusted: built by this crate).
pub(crate) struct Ops<'a> {
    rep: &'a [u8],
}

impl<'a> Iterator for Ops<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        if self.rep.is_empty() {
            return None;
        }
        let flags = self.rep[0];
        let ttl_ms = le_u64(self.rep, 1);
        let k = le_u32(self.rep, 9) as usize;
        let v = le_u32(self.rep, 13) as usize;
        let key = &self.rep[OP_HEADER..OP_HEADER + k];
        let value = &self.rep[OP_HEADER + k..OP_HEADER + k + v];
        self.rep = &self.rep[OP_HEADER + k + v..];
        Some(Op {
            flags,
            ttl_ms,
            key,
            value,
        })
    }
}

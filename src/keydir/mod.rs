//! An ordered, memory-compact keydir: byte-string keys to packed value locations.
//!
//! It is a B+tree. The point of it, compared with a `HashMap<Box<[u8]>, Loc>`, is
//! memory: a hash map pays a pointer, an allocation header and load-factor slack for
//! every key, while a leaf here keeps all its entries in one buffer it owns, so the
//! overhead is a few bytes per key (about 38 bytes per 16-byte key in all, against
//! about 85 for the hash map). Ordered iteration (range scans) comes with it.
//!
//! Leaf layout (see `Leaf`): keys share a leaf-wide prefix that is stored once; of
//! the rest of each key (its *suffix*) the first 7 bytes plus a length code are packed
//! into a `u64` *head* that orders like the suffix, and any remaining bytes (the
//! *tail*) go to a byte arena. When all tails in a leaf have one length (fixed-size
//! keys) no offsets are stored at all. Lookups first read a few 32-bit samples of the
//! heads from the leaf header, then one line of heads; the tail is read only to break
//! ties and to confirm a match.
//!
//! Memory is kept tight by growing every buffer in steps of about 1/8 of its size
//! instead of doubling, and by rebuilding leaves with exact capacity when they split.
//! So the familiar "B-tree nodes are ~70% full after random inserts" costs little
//! here: an under-full leaf simply has a shorter buffer.
//!
//! Lookups cost more than in a hash map (about 2-2.5x at 10M keys, measured alone):
//! a lookup misses the cache about five times in sequence (internal node heads, the
//! child pointer, the leaf header, its heads line, the tail and location) where a
//! hash map misses about three times.

use std::cmp::Ordering;
use std::mem;
use std::ops::Bound;

/// Location of a value in the log. 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file_id: u32,
    /// Offset of the record (not of its value): the header's length varies.
    pub offset: u32,
    /// Length of the whole record, so that a read is one positioned read and the
    /// bytes a key keeps alive are known exactly.
    pub rec_len: u32,
    /// Seconds since the epoch at which the value expires; 0 for never. Keys
    /// without expiry cost nothing for it: the field is the one version 1 used
    /// for the write time.
    pub expires: u32,
}

/// Longest key accepted. Tail offsets in a leaf are `u16`, which this bound (and
/// `LEAF_BYTES`) keeps from overflowing.
pub const MAX_KEY_LEN: usize = 65535;

/// Most entries per leaf. Large enough that per-leaf overhead (96-byte header,
/// 24-byte child slot, allocator header: ~140 bytes) is ~1.5 bytes per key; small
/// enough that an insert's memmove stays cheap and the head samples fit in the
/// header's 64 bytes. (64 and 256 were measured too, and were worse on one side.)
#[cfg(not(test))]
const LEAF_MAX: usize = 128;
#[cfg(test)]
const LEAF_MAX: usize = 8;

/// Most key bytes in a leaf that holds more than one entry. Bounds the tail arena so
/// that its `u16` offsets cannot overflow, and keeps inserts into leaves with long
/// keys from moving too much memory. A single key of any length may sit alone.
#[cfg(not(test))]
const LEAF_BYTES: usize = 8192;
#[cfg(test)]
const LEAF_BYTES: usize = 48;

/// Head samples per internal node: it briefly holds NODE_MAX + 2 children (3
/// leaves from one rebuild) before it splits, so up to NODE_MAX + 1 separators.
const NODE_SAMPLES: usize = (NODE_MAX + 1).div_ceil(8);

/// Most children per internal node. Internal nodes are ~1% of the tree, so this is
/// about tree height (3 internal levels at 10M keys), not memory.
#[cfg(not(test))]
const NODE_MAX: usize = 128;
#[cfg(test)]
const NODE_MAX: usize = 4;

/// Packs the first 7 bytes of `s` (zero padded) and `min(len, 8)` into a `u64`.
///
/// Comparing heads as integers agrees with comparing the byte strings whenever the
/// heads differ: zero padding alone could not tell `a` from `a\0`, which is what the
/// length code in the low byte is for. Equal heads mean equal strings when the length
/// code is below 8, otherwise the tails (`s[7..]`) decide.
#[inline]
fn head_of(s: &[u8]) -> u64 {
    // The common case, a key of 8 bytes or more, in one load (a variable-length
    // copy is a call to memcpy: 14% of a hot get).
    if let Some(first) = s.first_chunk::<8>() {
        return (u64::from_be_bytes(*first) & !0xff) | 8;
    }
    let mut b = [0u8; 8];
    let n = s.len().min(7);
    b[..n].copy_from_slice(&s[..n]);
    b[7] = s.len().min(8) as u8;
    u64::from_be_bytes(b)
}

/// The bytes of `s` that its head does not hold.
fn tail_of(s: &[u8]) -> &[u8] {
    if s.len() >= 8 {
        &s[7..]
    } else {
        &[]
    }
}

fn lcp(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Number of the `n` sorted heads (`head(i)`) below `th`, helped by `sample(j)`,
/// the top 32 bits of `head(8 * j)`.
///
/// The samples are 4 bytes per 8 entries, so the first pass reads one or two cache
/// lines (and its loads are independent); the second then reads the one line of
/// heads the key falls in. Against a binary search over the heads that is two
/// cache misses instead of about five in sequence, and against a linear count it
/// avoids pulling a dozen lines through the (few) miss buffers at once.
fn sampled_count(
    n: usize,
    th: u64,
    sample: impl Fn(usize) -> u32,
    head: impl Fn(usize) -> u64,
) -> usize {
    let t32 = (th >> 32) as u32;
    let blocks: usize = (0..n.div_ceil(8))
        .map(|j| usize::from(sample(j) < t32))
        .sum();
    // head(8 * (blocks - 1)) < th for sure; the samples cannot tell apart heads
    // that agree in their top 32 bits, so walk from there.
    let mut i = if blocks == 0 { 0 } else { 8 * (blocks - 1) + 1 };
    while i < n && head(i) < th {
        i += 1;
    }
    i
}

/// Makes room for `extra` more elements, growing by ~1/8 rather than doubling: the
/// doubling policy would leave a quarter of the index unused on average.
fn grow<T>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() < extra {
        let target = (v.len() + extra).max(v.capacity() + v.capacity() / 8 + 1);
        v.reserve_exact(target - v.len());
    }
}

fn vec_insert<T>(v: &mut Vec<T>, i: usize, x: T) {
    grow(v, 1);
    v.insert(i, x);
}

/// Gives memory back after deletes, with hysteresis so that alternating
/// insert/remove does not reallocate every time.
fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > 2 * v.len() + 8 {
        v.shrink_to_fit();
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_ne_bytes(
        b[at..at + 2].try_into().expect("2 bytes"),
    ))
}

fn write_u16(b: &mut [u8], at: usize, v: usize) {
    b[at..at + 2].copy_from_slice(&(v as u16).to_ne_bytes());
}

/// Longest prefix a leaf factors out. Kept in the leaf header so that checking it
/// costs no extra cache miss; keys sharing more than this just store the rest.
const MAX_PREFIX: usize = 21;
const _: () = assert!(7 + MAX_PREFIX <= SAMPLES_AT);

/// Leaf `fixed` value meaning "tails vary in length; see the ends section".
const VARIABLE: u16 = u16::MAX;

/// Head samples per leaf (one per 8 entries); see [`sampled_count`].
const SAMPLES: usize = LEAF_MAX.div_ceil(8);
/// Offset of the samples in a leaf's header.
const SAMPLES_AT: usize = 32;
/// Bytes of leaf header at the start of a leaf's buffer.
const HDR: usize = (SAMPLES_AT + 4 * SAMPLES).next_multiple_of(8);

/// A sorted run of entries. Entry `i` is `prefix ++ head_bytes(head(i)) ++ tail(i)`.
///
/// Everything lives in one buffer, so a lookup touches one allocation (a page or
/// two: one TLB miss, not four), and the parent's array of leaves is 24 bytes per
/// child, small enough to stay cached. Layout, for an entry capacity `ecap`:
///
/// ```text
/// header (HDR bytes): n: u16, ecap: u16, fixed: u16, plen: u8, prefix: [u8; MAX_PREFIX],
///                    (at SAMPLES_AT) samples: u32 x SAMPLES
/// heads: u64 x ecap | locs: 16 B x ecap | ends: u16 x ecap (variable only) | tails
/// ```
///
/// `fixed` is the common tail length, or [`VARIABLE`]. Fixed-size keys are the
/// common case; for them there is no ends section (2 bytes per key saved) and a
/// lookup has one dependent load fewer. When tails vary, end `i` is where tail `i`
/// ends (tail `i` starts where tail `i - 1` ends): 2 bytes per key rather than an
/// (offset, length) pair. The prefix is shared by every key in the leaf; it is set
/// when the leaf is built (the common prefix of its first and last key) and only
/// changed by a rebuild. The header shares a cache line with the first heads.
struct Leaf {
    buf: Vec<u8>,
}

/// What [`Leaf::insert`] did.
enum LeafInsert {
    /// Done in place; the previous location if the key existed.
    Done(Option<Loc>),
    /// The key was new and the leaf was rebuilt; these leaves, each with the separator
    /// that precedes it, go immediately right of it.
    Rebuilt(Vec<Split<Leaf>>),
}

impl Leaf {
    fn len(&self) -> usize {
        read_u16(&self.buf, 0)
    }

    fn ecap(&self) -> usize {
        read_u16(&self.buf, 2)
    }

    fn fixed(&self) -> usize {
        read_u16(&self.buf, 4)
    }

    fn plen(&self) -> usize {
        usize::from(self.buf[6])
    }

    fn prefix(&self) -> &[u8] {
        &self.buf[7..7 + self.plen()]
    }

    /// `key` without the prefix, if it has it. A plain loop: prefixes are a few
    /// bytes, and this runs on every lookup, where a `memcmp` call costs more.
    fn strip<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let p = self.prefix();
        let ok = key.len() >= p.len() && key.iter().zip(p).all(|(a, b)| a == b);
        ok.then(|| &key[p.len()..])
    }

    fn variable(&self) -> bool {
        self.fixed() == usize::from(VARIABLE)
    }

    fn locs_at(&self) -> usize {
        HDR + 8 * self.ecap()
    }

    fn ends_at(&self) -> usize {
        HDR + 24 * self.ecap()
    }

    fn tails_at(&self) -> usize {
        let e = self.ecap();
        HDR + 24 * e + if self.variable() { 2 * e } else { 0 }
    }

    fn tails_len(&self) -> usize {
        self.buf.len() - self.tails_at()
    }

    fn head(&self, i: usize) -> u64 {
        read_u64(&self.buf, HDR + 8 * i)
    }

    fn loc(&self, i: usize) -> Loc {
        let o = self.locs_at() + 16 * i;
        Loc {
            file_id: read_u32(&self.buf, o),
            offset: read_u32(&self.buf, o + 4),
            rec_len: read_u32(&self.buf, o + 8),
            expires: read_u32(&self.buf, o + 12),
        }
    }

    fn set_loc(&mut self, i: usize, loc: Loc) {
        let o = self.locs_at() + 16 * i;
        let b = &mut self.buf[o..o + 16];
        b[0..4].copy_from_slice(&loc.file_id.to_ne_bytes());
        b[4..8].copy_from_slice(&loc.offset.to_ne_bytes());
        b[8..12].copy_from_slice(&loc.rec_len.to_ne_bytes());
        b[12..16].copy_from_slice(&loc.expires.to_ne_bytes());
    }

    fn tail_end(&self, i: usize) -> usize {
        if self.variable() {
            read_u16(&self.buf, self.ends_at() + 2 * i)
        } else {
            (i + 1) * self.fixed()
        }
    }

    fn tail_start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.tail_end(i - 1)
        }
    }

    fn tail(&self, i: usize) -> &[u8] {
        let t = self.tails_at();
        &self.buf[t + self.tail_start(i)..t + self.tail_end(i)]
    }

    /// Refreshes the samples of the blocks from the one holding entry `i` on.
    fn resample_from(&mut self, i: usize) {
        for j in i / 8..self.len().div_ceil(8) {
            let h = (self.head(8 * j) >> 32) as u32;
            self.buf[SAMPLES_AT + 4 * j..SAMPLES_AT + 4 * j + 4].copy_from_slice(&h.to_ne_bytes());
        }
    }

    fn key_len(&self, i: usize) -> usize {
        let code = (self.head(i) & 0xff) as usize;
        self.plen() + code.min(7) + self.tail_end(i) - self.tail_start(i)
    }

    fn key_into(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.prefix());
        let h = self.head(i).to_be_bytes();
        out.extend_from_slice(&h[..usize::from(h[7]).min(7)]);
        out.extend_from_slice(self.tail(i));
    }

    /// `Ok(i)` if `key` is entry `i`, else `Err(i)` with `i` where it would go.
    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let Some(s) = self.strip(key) else {
            // Every entry starts with the prefix, so the key is beyond one end.
            return Err(if key < self.prefix() { 0 } else { self.len() });
        };
        let th = head_of(s);
        let n = self.len();
        let sample = |j: usize| read_u32(&self.buf, SAMPLES_AT + 4 * j);
        let mut i = sampled_count(n, th, sample, |j| self.head(j));
        if s.len() < 8 {
            return if i < n && self.head(i) == th {
                Ok(i)
            } else {
                Err(i)
            };
        }
        let t = &s[7..];
        while i < n && self.head(i) == th {
            match self.tail(i).cmp(t) {
                Ordering::Less => i += 1,
                Ordering::Equal => return Ok(i),
                Ordering::Greater => return Err(i),
            }
        }
        Err(i)
    }

    fn insert(&mut self, key: &[u8], loc: Loc) -> LeafInsert {
        let i = match self.search(key) {
            Ok(i) => {
                let old = self.loc(i);
                self.set_loc(i, loc);
                return LeafInsert::Done(Some(old));
            }
            Err(i) => i,
        };
        if let Some(s) = self.strip(key) {
            let t = tail_of(s);
            let same_shape = self.variable() || t.len() == self.fixed();
            if same_shape && self.len() < LEAF_MAX && self.tails_len() + t.len() <= LEAF_BYTES {
                self.insert_at(i, s, t, loc);
                return LeafInsert::Done(None);
            }
        }
        // Full, the key does not share the prefix, or its tail length breaks a fixed
        // layout: rebuild from whole keys. This is also the split, so one code path
        // changes a leaf's shape.
        let mut e = Entries::default();
        self.append_range(0, i, &mut e);
        e.push(key, loc);
        self.append_range(i, self.len(), &mut e);
        let (first, rest) = e.into_leaves(Some(i));
        *self = first;
        LeafInsert::Rebuilt(rest)
    }

    /// Moves the sections to fit `ecap` entries.
    fn relayout(&mut self, ecap: usize) {
        let (n, l, e, t) = (self.len(), self.locs_at(), self.ends_at(), self.tails_at());
        let ends = if self.variable() { 2 * ecap } else { 0 };
        // Room for the tails of the new entries too, so that the buffer does not
        // grow again (with its own slack) on the very next insert.
        let tails = self.tails_len() * ecap / n.max(1);
        let mut b = Vec::with_capacity(HDR + 24 * ecap + ends + tails.max(self.tails_len()));
        b.extend_from_slice(&self.buf[..HDR + 8 * n]);
        b.resize(HDR + 8 * ecap, 0);
        b.extend_from_slice(&self.buf[l..l + 16 * n]);
        b.resize(HDR + 24 * ecap, 0);
        if self.variable() {
            b.extend_from_slice(&self.buf[e..e + 2 * n]);
            b.resize(HDR + 24 * ecap + ends, 0);
        }
        b.extend_from_slice(&self.buf[t..]);
        write_u16(&mut b, 2, ecap);
        self.buf = b;
    }

    fn insert_at(&mut self, i: usize, s: &[u8], t: &[u8], loc: Loc) {
        let n = self.len();
        if n == self.ecap() {
            let e = self.ecap();
            self.relayout((e + e / 8 + 1).min(LEAF_MAX));
        }
        let (l, e, tb) = (self.locs_at(), self.ends_at(), self.tails_at());
        let start = self.tail_start(i);
        if !t.is_empty() {
            let old = self.buf.len();
            grow(&mut self.buf, t.len());
            self.buf.resize(old + t.len(), 0);
            self.buf.copy_within(tb + start..old, tb + start + t.len());
            self.buf[tb + start..tb + start + t.len()].copy_from_slice(t);
        }
        if self.variable() {
            self.buf.copy_within(e + 2 * i..e + 2 * n, e + 2 * i + 2);
            // Fits in u16: the caller checked tails_len() + t.len() <= LEAF_BYTES.
            write_u16(&mut self.buf, e + 2 * i, start + t.len());
            for j in i + 1..=n {
                let v = read_u16(&self.buf, e + 2 * j) + t.len();
                write_u16(&mut self.buf, e + 2 * j, v);
            }
        }
        self.buf
            .copy_within(l + 16 * i..l + 16 * n, l + 16 * i + 16);
        self.set_loc(i, loc);
        self.buf
            .copy_within(HDR + 8 * i..HDR + 8 * n, HDR + 8 * i + 8);
        self.buf[HDR + 8 * i..HDR + 8 * i + 8].copy_from_slice(&head_of(s).to_ne_bytes());
        write_u16(&mut self.buf, 0, n + 1);
        self.resample_from(i);
    }

    fn remove_at(&mut self, i: usize) -> Loc {
        let (n, l, e, tb) = (self.len(), self.locs_at(), self.ends_at(), self.tails_at());
        let loc = self.loc(i);
        let (start, end) = (self.tail_start(i), self.tail_end(i));
        self.buf
            .copy_within(HDR + 8 * (i + 1)..HDR + 8 * n, HDR + 8 * i);
        self.buf
            .copy_within(l + 16 * (i + 1)..l + 16 * n, l + 16 * i);
        if self.variable() {
            self.buf.copy_within(e + 2 * (i + 1)..e + 2 * n, e + 2 * i);
            for j in i..n - 1 {
                let v = read_u16(&self.buf, e + 2 * j) - (end - start);
                write_u16(&mut self.buf, e + 2 * j, v);
            }
        }
        self.buf.drain(tb + start..tb + end);
        let n = n - 1;
        write_u16(&mut self.buf, 0, n);
        self.resample_from(i);
        if self.ecap() > 2 * n + 8 {
            self.relayout(n + n / 8);
        }
        trim(&mut self.buf);
        loc
    }

    fn append_range(&self, a: usize, b: usize, e: &mut Entries) {
        for i in a..b {
            self.key_into(i, &mut e.bytes);
            e.ends.push(e.bytes.len());
            e.locs.push(self.loc(i));
        }
    }

    /// Appends entries `[start, end)` to `out`, backwards if `rev`, until `left` is 0.
    fn scan<O: ScanOut>(&self, start: usize, end: usize, rev: bool, left: &mut usize, out: &mut O) {
        for step in 0..end.saturating_sub(start) {
            if *left == 0 {
                return;
            }
            let i = if rev { end - 1 - step } else { start + step };
            out.push_key(self.key_len(i), |k| self.key_into(i, k), self.loc(i));
            *left -= 1;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Where a scan puts the entries it finds.
pub trait ScanOut {
    /// Takes one entry: `write` appends its key (`len` bytes) to the buffer given.
    fn push_key(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>), loc: Loc);
}

impl ScanOut for Vec<(Vec<u8>, Loc)> {
    fn push_key(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>), loc: Loc) {
        let mut k = Vec::with_capacity(len);
        write(&mut k);
        self.push((k, loc));
    }
}

/// Scanned entries with their keys packed into one buffer: one allocation per
/// chunk of a scan, not one per key.
#[derive(Clone, Debug, Default)]
pub struct KeyChunk {
    pub bytes: Vec<u8>,
    /// Where each key ends in `bytes` (it starts where the previous one ends).
    pub ends: Vec<usize>,
    pub locs: Vec<Loc>,
}

// Clippy's len-without-is_empty: a chunk is asked its length only.
#[allow(clippy::len_without_is_empty)]
impl KeyChunk {
    pub fn len(&self) -> usize {
        self.locs.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.locs.clear();
    }

    pub fn push(&mut self, key: &[u8], loc: Loc) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
        self.locs.push(loc);
    }
}

impl ScanOut for KeyChunk {
    fn push_key(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>), loc: Loc) {
        self.bytes.reserve(len);
        write(&mut self.bytes);
        self.ends.push(self.bytes.len());
        self.locs.push(loc);
    }
}

/// A node split off to the right of another, with the separator between them.
type Split<T> = (Box<[u8]>, T);

/// Whole keys, flattened: the staging area for rebuilding (splitting or merging)
/// leaves. Rebuilds are rare (about one per LEAF_MAX/2 inserts), so decoding whole
/// keys there keeps the in-place paths simple.
#[derive(Default)]
struct Entries {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    locs: Vec<Loc>,
}

impl Entries {
    fn push(&mut self, key: &[u8], loc: Loc) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
        self.locs.push(loc);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    fn key(&self, i: usize) -> &[u8] {
        &self.bytes[self.start(i)..self.ends[i]]
    }

    /// Whether entries `[a, b)` may form one leaf.
    fn valid(&self, a: usize, b: usize) -> bool {
        b - a <= LEAF_MAX && (b - a == 1 || self.ends[b - 1] - self.start(a) <= LEAF_BYTES)
    }

    /// Where to cut the entries into leaves (the end index of each leaf). `new_at` is
    /// the entry just inserted: when it is at either end, the old entries stay
    /// together in a full leaf, so that sequential inserts (ascending or descending)
    /// leave full leaves behind instead of half-full ones.
    fn cuts(&self, new_at: Option<usize>) -> Vec<usize> {
        let n = self.len();
        if self.valid(0, n) {
            return vec![n];
        }
        if new_at == Some(n - 1) && self.valid(0, n - 1) {
            return vec![n - 1, n];
        }
        if new_at == Some(0) && self.valid(1, n) {
            return vec![1, n];
        }
        let total = self.ends[n - 1];
        let mid = if total > LEAF_BYTES {
            (1..n)
                .find(|&c| 2 * self.ends[c - 1] >= total)
                .unwrap_or(n / 2)
        } else {
            n / 2
        };
        for d in 0..n {
            for c in [mid.wrapping_sub(d), mid + d] {
                if (1..n).contains(&c) && self.valid(0, c) && self.valid(c, n) {
                    return vec![c, n];
                }
            }
        }
        // Only reachable with very long keys: pack greedily. Single entries are
        // always valid, so this terminates; it yields at most 3 leaves because the
        // entries minus the new one formed a valid leaf.
        let mut cuts = Vec::new();
        let mut a = 0;
        while a < n {
            let mut b = a + 1;
            while b < n && self.valid(a, b + 1) {
                b += 1;
            }
            cuts.push(b);
            a = b;
        }
        cuts
    }

    fn build(&self, a: usize, b: usize) -> Leaf {
        let n = b - a;
        let plen = lcp(self.key(a), self.key(b - 1)).min(MAX_PREFIX);
        let suffix = |i: usize| &self.key(i)[plen..];
        let tails_len: usize = (a..b).map(|i| tail_of(suffix(i)).len()).sum();
        let first = tail_of(suffix(a)).len();
        let fixed = (a..b).all(|i| tail_of(suffix(i)).len() == first);
        let mut buf = Vec::with_capacity(HDR + 24 * n + if fixed { 0 } else { 2 * n } + tails_len);
        buf.resize(HDR, 0);
        write_u16(&mut buf, 0, n);
        write_u16(&mut buf, 2, n);
        // Tails are at most MAX_KEY_LEN - 7 bytes, so never equal VARIABLE.
        write_u16(
            &mut buf,
            4,
            if fixed { first } else { usize::from(VARIABLE) },
        );
        buf[6] = plen as u8;
        buf[7..7 + plen].copy_from_slice(&self.key(a)[..plen]);
        for i in a..b {
            buf.extend_from_slice(&head_of(suffix(i)).to_ne_bytes());
        }
        for l in &self.locs[a..b] {
            for w in [l.file_id, l.offset, l.rec_len, l.expires] {
                buf.extend_from_slice(&w.to_ne_bytes());
            }
        }
        if !fixed {
            let mut end = 0;
            for i in a..b {
                end += tail_of(suffix(i)).len();
                buf.extend_from_slice(&(end as u16).to_ne_bytes());
            }
        }
        for i in a..b {
            buf.extend_from_slice(tail_of(suffix(i)));
        }
        let mut leaf = Leaf { buf };
        leaf.resample_from(0);
        leaf
    }

    /// The shortest separator between entries `c - 1` and `c`: internal nodes hold
    /// one per leaf, and random keys need only a couple of bytes to tell apart.
    fn separator(&self, c: usize) -> Box<[u8]> {
        let r = self.key(c);
        r[..lcp(self.key(c - 1), r) + 1].into()
    }

    fn into_leaves(self, new_at: Option<usize>) -> (Leaf, Vec<Split<Leaf>>) {
        let cuts = self.cuts(new_at);
        let first = self.build(0, cuts[0]);
        let rest = cuts
            .windows(2)
            .map(|w| (self.separator(w[0]), self.build(w[0], w[1])))
            .collect();
        (first, rest)
    }
}

enum Kids {
    Leaves(Vec<Leaf>),
    Nodes(Vec<Internal>),
}

impl Kids {
    fn len(&self) -> usize {
        match self {
            Kids::Leaves(v) => v.len(),
            Kids::Nodes(v) => v.len(),
        }
    }
}

/// Child `i` holds the keys in `[seps[i - 1], seps[i])`. Children are stored inline
/// (not boxed), so that descending reads one pointer fewer per level: a leaf is
/// just its buffer's 24-byte `Vec`, an internal node carries its samples with it.
struct Internal {
    /// `head_of(seps[i])`, kept beside the separators so that choosing a child
    /// rarely dereferences a separator.
    heads: Vec<u64>,
    /// Top 32 bits of every 8th head; see [`sampled_count`]. Derived from `heads`
    /// by [`Internal::resample`] whenever those change (once per leaf split). Inline,
    /// so that the first probe of a node reads the struct its parent already led to.
    samples: [u32; NODE_SAMPLES],
    seps: Vec<Box<[u8]>>,
    kids: Kids,
}

impl Internal {
    fn empty() -> Self {
        Internal {
            heads: Vec::new(),
            samples: [0; NODE_SAMPLES],
            seps: Vec::new(),
            kids: Kids::Leaves(Vec::new()),
        }
    }

    /// Index of the child whose range contains `key`: the number of separators <= key.
    /// `th` is `head_of(key)`, computed once per descent.
    fn child_index(&self, key: &[u8], th: u64) -> usize {
        let n = self.heads.len();
        let mut i = sampled_count(n, th, |j| self.samples[j], |j| self.heads[j]);
        while i < self.seps.len() && self.heads[i] == th && *self.seps[i] <= *key {
            i += 1;
        }
        i
    }

    fn resample(&mut self) {
        for (s, h) in self.samples.iter_mut().zip(self.heads.iter().step_by(8)) {
            *s = (h >> 32) as u32;
        }
    }

    fn add_sep(&mut self, at: usize, sep: Box<[u8]>) {
        vec_insert(&mut self.heads, at, head_of(&sep));
        vec_insert(&mut self.seps, at, sep);
    }

    /// Removes child `i` and the separator that bounded it, so that a neighbour's
    /// range absorbs its (empty or merged) range.
    fn remove_kid(&mut self, i: usize) {
        match &mut self.kids {
            Kids::Leaves(v) => drop(v.remove(i)),
            Kids::Nodes(v) => drop(v.remove(i)),
        }
        if !self.seps.is_empty() {
            let s = i.saturating_sub(1);
            self.seps.remove(s);
            self.heads.remove(s);
        }
        self.resample();
        trim(&mut self.heads);
        trim(&mut self.seps);
    }

    /// Inserts; returns the previous location and, if this node overflowed, the
    /// separator and node to put right of it.
    fn insert(&mut self, key: &[u8], loc: Loc) -> (Option<Loc>, Option<Split<Internal>>) {
        let i = self.child_index(key, head_of(key));
        let added = match &mut self.kids {
            Kids::Leaves(leaves) => {
                let Some(leaf) = leaves.get_mut(i) else {
                    // Only the root can have no children.
                    let mut e = Entries::default();
                    e.push(key, loc);
                    leaves.push(e.build(0, 1));
                    return (None, None);
                };
                let rest = match leaf.insert(key, loc) {
                    LeafInsert::Done(old) => return (old, None),
                    LeafInsert::Rebuilt(rest) => rest,
                };
                let added = rest.len();
                for (k, (sep, l)) in rest.into_iter().enumerate() {
                    vec_insert(leaves, i + 1 + k, l);
                    vec_insert(&mut self.heads, i + k, head_of(&sep));
                    vec_insert(&mut self.seps, i + k, sep);
                }
                added
            }
            Kids::Nodes(nodes) => {
                let (old, split) = nodes[i].insert(key, loc);
                let Some((sep, right)) = split else {
                    return (old, None);
                };
                vec_insert(nodes, i + 1, right);
                self.add_sep(i, sep);
                1
            }
        };
        self.resample();
        let k = self.kids.len();
        if k <= NODE_MAX {
            return (None, None);
        }
        // Same idea as for leaves: growth at either edge leaves full nodes behind.
        let cut = if i + added + 1 == k {
            NODE_MAX
        } else if i == 0 {
            k - NODE_MAX
        } else {
            k / 2
        };
        (None, Some(self.split_at(cut)))
    }

    fn split_at(&mut self, cut: usize) -> (Box<[u8]>, Internal) {
        let seps = self.seps.split_off(cut);
        let heads = self.heads.split_off(cut);
        let up = self.seps.pop().expect("cut >= 1");
        self.heads.pop();
        let kids = match &mut self.kids {
            Kids::Leaves(v) => {
                let r = v.split_off(cut);
                v.shrink_to_fit();
                Kids::Leaves(r)
            }
            Kids::Nodes(v) => {
                let r = v.split_off(cut);
                v.shrink_to_fit();
                Kids::Nodes(r)
            }
        };
        self.seps.shrink_to_fit();
        self.heads.shrink_to_fit();
        self.resample();
        let mut right = Internal {
            heads,
            samples: [0; NODE_SAMPLES],
            seps,
            kids,
        };
        right.resample();
        (up, right)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let i = self.child_index(key, head_of(key));
        let (old, now) = match &mut self.kids {
            Kids::Leaves(leaves) => {
                let leaf = leaves.get_mut(i)?;
                let j = leaf.search(key).ok()?;
                (leaf.remove_at(j), leaf.len())
            }
            Kids::Nodes(nodes) => {
                let old = nodes[i].remove(key)?;
                (old, nodes[i].kids.len())
            }
        };
        if now == 0 {
            self.remove_kid(i);
        } else if now <= LEAF_MAX / 4 {
            self.try_merge_leaf(i);
        }
        Some(old)
    }

    /// Merges a small leaf into a neighbour when they fit in one, so deletes do not
    /// leave a long tail of near-empty leaves (each costs ~140 bytes of overhead).
    /// Internal nodes are only removed when empty: they are too few to matter.
    fn try_merge_leaf(&mut self, i: usize) {
        let Kids::Leaves(leaves) = &mut self.kids else {
            return;
        };
        if leaves.len() < 2 {
            return;
        }
        let a = if i + 1 < leaves.len() { i } else { i - 1 };
        if leaves[a].len() + leaves[a + 1].len() > LEAF_MAX * 3 / 4 {
            return;
        }
        let mut e = Entries::default();
        leaves[a].append_range(0, leaves[a].len(), &mut e);
        leaves[a + 1].append_range(0, leaves[a + 1].len(), &mut e);
        if !e.valid(0, e.len()) {
            return;
        }
        leaves[a] = e.build(0, e.len());
        self.remove_kid(a + 1);
    }

    fn scan<O: ScanOut>(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        left: &mut usize,
        out: &mut O,
    ) {
        let n = self.kids.len();
        if n == 0 {
            return;
        }
        let a = match lo {
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => self.child_index(k, head_of(k)),
        };
        let b = match hi {
            Bound::Unbounded => n - 1,
            Bound::Included(k) | Bound::Excluded(k) => self.child_index(k, head_of(k)),
        };
        for step in 0..(b + 1).saturating_sub(a) {
            if *left == 0 {
                return;
            }
            let i = if rev { b - step } else { a + step };
            // Only the edge children can hold keys outside the bounds.
            let lo_i = if i == a { lo } else { Bound::Unbounded };
            let hi_i = if i == b { hi } else { Bound::Unbounded };
            match &self.kids {
                Kids::Nodes(v) => v[i].scan(lo_i, hi_i, rev, left, out),
                Kids::Leaves(v) => {
                    let leaf = &v[i];
                    let pos = |k: &[u8], after_equal: bool| match leaf.search(k) {
                        Ok(j) => j + usize::from(after_equal),
                        Err(j) => j,
                    };
                    let start = match lo_i {
                        Bound::Unbounded => 0,
                        Bound::Included(k) => pos(k, false),
                        Bound::Excluded(k) => pos(k, true),
                    };
                    let end = match hi_i {
                        Bound::Unbounded => leaf.len(),
                        Bound::Included(k) => pos(k, true),
                        Bound::Excluded(k) => pos(k, false),
                    };
                    leaf.scan(start, end, rev, left, out);
                }
            }
        }
    }

    fn for_each(&self, buf: &mut Vec<u8>, f: &mut impl FnMut(&[u8], Loc)) {
        match &self.kids {
            Kids::Nodes(v) => v.iter().for_each(|n| n.for_each(buf, f)),
            Kids::Leaves(v) => {
                for leaf in v {
                    for i in 0..leaf.len() {
                        buf.clear();
                        leaf.key_into(i, buf);
                        f(buf, leaf.loc(i));
                    }
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        let own = self.heads.capacity() * 8
            + self.seps.capacity() * mem::size_of::<Box<[u8]>>()
            + self.seps.iter().map(|s| s.len()).sum::<usize>();
        own + match &self.kids {
            Kids::Leaves(v) => {
                v.capacity() * mem::size_of::<Leaf>()
                    + v.iter().map(Leaf::heap_bytes).sum::<usize>()
            }
            Kids::Nodes(v) => {
                v.capacity() * mem::size_of::<Internal>()
                    + v.iter().map(Internal::heap_bytes).sum::<usize>()
            }
        }
    }
}

/// Builds a [`KeyDir`] from keys given in strictly ascending order, packing every
/// leaf full and stacking the internal levels over them. Open uses it: it costs
/// one leaf build per `LEAF_MAX` keys instead of a tree insert (and the shifting
/// of a leaf's packed buffer) per key.
#[derive(Default)]
pub struct SortedBuilder {
    cur: Entries,
    leaves: Vec<Leaf>,
    /// `seps[i]` separates `leaves[i]` and `leaves[i + 1]`.
    seps: Vec<Box<[u8]>>,
    /// The last key of the last finished leaf.
    prev_last: Vec<u8>,
    /// The first key added: what separates this part from the one before
    /// when parts are appended.
    first: Vec<u8>,
    len: usize,
}

impl SortedBuilder {
    /// Adds the next key; it must sort after every key added before.
    ///
    /// # Panics
    /// If `key` is longer than [`MAX_KEY_LEN`].
    pub fn push(&mut self, key: &[u8], loc: Loc) {
        assert!(key.len() <= MAX_KEY_LEN, "key longer than MAX_KEY_LEN");
        let n = self.cur.len();
        debug_assert!(n == 0 || self.cur.key(n - 1) < key, "keys out of order");
        if n > 0 && (n + 1 > LEAF_MAX || self.cur.bytes.len() + key.len() > LEAF_BYTES) {
            self.flush_leaf();
        }
        if self.len == 0 {
            self.first = key.to_vec();
        }
        self.cur.push(key, loc);
        self.len += 1;
    }

    fn flush_leaf(&mut self) {
        let cur = mem::take(&mut self.cur);
        let n = cur.len();
        if n == 0 {
            return;
        }
        if !self.leaves.is_empty() {
            let first = cur.key(0);
            self.seps
                .push(first[..lcp(&self.prev_last, first) + 1].into());
        }
        self.leaves.push(cur.build(0, n));
        self.prev_last.clear();
        self.prev_last.extend_from_slice(cur.key(n - 1));
    }

    /// Appends what `next` built, whose keys all sort after this one's, so
    /// that parts of one key range can be built on separate cores.
    pub fn append(&mut self, mut next: SortedBuilder) {
        self.flush_leaf();
        next.flush_leaf();
        if next.leaves.is_empty() {
            return;
        }
        if !self.leaves.is_empty() {
            let first = &next.first[..];
            debug_assert!(&self.prev_last[..] < first, "parts out of order");
            self.seps
                .push(first[..lcp(&self.prev_last, first) + 1].into());
        }
        self.leaves.append(&mut next.leaves);
        self.seps.append(&mut next.seps);
        self.prev_last = next.prev_last;
        self.len += next.len;
    }

    /// The finished keydir.
    pub fn finish(mut self) -> KeyDir {
        self.flush_leaf();
        if self.leaves.is_empty() {
            return KeyDir::new();
        }
        let (mut nodes, mut seps) = group(self.leaves, self.seps, Kids::Leaves);
        while nodes.len() > 1 {
            (nodes, seps) = group(nodes, seps, Kids::Nodes);
        }
        KeyDir {
            root: nodes.pop().expect("one root"),
            len: self.len,
        }
    }
}

/// Groups `kids` (with `seps` between them) into internal nodes of nearly equal
/// size, at most `NODE_MAX` children each; returns the nodes and the separators
/// between them.
fn group<T>(
    kids: Vec<T>,
    seps: Vec<Box<[u8]>>,
    wrap: impl Fn(Vec<T>) -> Kids,
) -> (Vec<Internal>, Vec<Box<[u8]>>) {
    let n = kids.len();
    let groups = n.div_ceil(NODE_MAX);
    let (base, extra) = (n / groups, n % groups);
    let (mut kids, mut seps) = (kids.into_iter(), seps.into_iter());
    let (mut nodes, mut up) = (Vec::with_capacity(groups), Vec::new());
    for g in 0..groups {
        let size = base + usize::from(g < extra);
        let ks: Vec<T> = kids.by_ref().take(size).collect();
        let ss: Vec<Box<[u8]>> = seps.by_ref().take(size - 1).collect();
        let mut node = Internal {
            heads: ss.iter().map(|s| head_of(s)).collect(),
            samples: [0; NODE_SAMPLES],
            seps: ss,
            kids: wrap(ks),
        };
        node.resample();
        nodes.push(node);
        if g + 1 < groups {
            up.push(seps.next().expect("a separator between groups"));
        }
    }
    (nodes, up)
}

/// Ordered map from byte-string keys to [`Loc`]s.
pub struct KeyDir {
    /// Always an internal node (with leaf children when small), so that the tree
    /// code has one shape to deal with at the top.
    root: Internal,
    len: usize,
}

impl Default for KeyDir {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyDir {
    pub fn new() -> Self {
        KeyDir {
            root: Internal::empty(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &[u8]) -> Option<Loc> {
        let mut node = &self.root;
        let th = head_of(key);
        loop {
            let i = node.child_index(key, th);
            match &node.kids {
                Kids::Nodes(v) => node = &v[i],
                Kids::Leaves(v) => {
                    let leaf = v.get(i)?;
                    return leaf.search(key).ok().map(|j| leaf.loc(j));
                }
            }
        }
    }

    /// Insert or overwrite; returns the previous location.
    ///
    /// # Panics
    /// If `key` is longer than [`MAX_KEY_LEN`].
    pub fn insert(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        assert!(key.len() <= MAX_KEY_LEN, "key longer than MAX_KEY_LEN");
        let (old, split) = self.root.insert(key, loc);
        if let Some((sep, right)) = split {
            let left = mem::replace(&mut self.root, Internal::empty());
            self.root = Internal {
                heads: vec![head_of(&sep)],
                samples: [0; NODE_SAMPLES],
                seps: vec![sep],
                kids: Kids::Nodes(vec![left, right]),
            };
            self.root.resample();
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let old = self.root.remove(key)?;
        self.len -= 1;
        // Shrink the tree from the top when a level is down to one child, so that
        // heavy deletion also gives back height.
        loop {
            match &mut self.root.kids {
                Kids::Nodes(v) if v.len() == 1 => {
                    let only = v.pop().expect("one child");
                    self.root = only;
                }
                Kids::Nodes(v) if v.is_empty() => self.root = Internal::empty(),
                _ => break,
            }
        }
        Some(old)
    }

    /// Appends up to `limit` entries within the bounds, in ascending key order
    /// (descending when `reverse`), to `out`. Callers resume a scan by calling again
    /// with the last key returned as an Excluded bound.
    pub fn scan<O: ScanOut>(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        out: &mut O,
    ) {
        let mut left = limit;
        if left > 0 {
            self.root.scan(lower, upper, reverse, &mut left, out);
        }
    }

    /// Visit every entry in key order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Loc)) {
        let mut buf = Vec::new();
        self.root.for_each(&mut buf, &mut f);
    }

    /// Approximate heap bytes used (for stats): vector capacities, not counting
    /// allocator headers or fragmentation.
    pub fn heap_bytes(&self) -> usize {
        self.root.heap_bytes()
    }
}

#[cfg(test)]
mod tests;

//! Snapshots: a read view as of one sequence number.
//!
//! Taking one copies nothing: it registers the sequence number of the last write
//! the keydir holds. While any snapshot is registered, each write keeps, for every
//! key it changes, what the key held before (a location and its file, or
//! nothing), tagged with the write's sequence number. A snapshot at `s` reading a
//! key takes the oldest such entry newer than `s`; without one, the keydir's
//! entry has not changed since `s` and stands. The file of a kept location is
//! held by its `Arc`, so a merge that removes it meanwhile leaves it readable.
//!
//! What is kept is bounded by what some snapshot can see: a write keeps nothing
//! for a key whose previous value is itself newer than every snapshot, so a key
//! written again and again costs one entry per snapshot at most. Entries no
//! live snapshot can read go by a sweep when the oldest snapshot goes, or when
//! the map has doubled since the last sweep, and all of them when the last
//! snapshot does.

use crate::datafile::DataFile;
use crate::db::Inner;
use crate::keydir::Loc;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A kept key with its first 8 bytes inline (big-endian, zero-padded): most
/// comparisons of a search are settled by them without touching the key's heap
/// bytes, which would be a cache miss each (measured: writes with a snapshot
/// open spent a fifth of their time comparing boxed keys).
struct VKey {
    head: u64,
    key: Box<[u8]>,
}

fn head(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[..n].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}

/// A key as the map compares it: owned (`VKey`) or borrowed for a lookup
/// (`Probe`). Ordered as its bytes are: zero padding keeps a prefix first.
trait KeyRef {
    fn parts(&self) -> (u64, &[u8]);
}

struct Probe<'a>(u64, &'a [u8]);

impl<'a> Probe<'a> {
    fn new(k: &'a [u8]) -> Probe<'a> {
        Probe(head(k), k)
    }
}

impl KeyRef for Probe<'_> {
    fn parts(&self) -> (u64, &[u8]) {
        (self.0, self.1)
    }
}

impl KeyRef for VKey {
    fn parts(&self) -> (u64, &[u8]) {
        (self.head, &self.key)
    }
}

impl Ord for dyn KeyRef + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        let ((h1, k1), (h2, k2)) = (self.parts(), other.parts());
        h1.cmp(&h2).then_with(|| k1.cmp(k2))
    }
}

impl PartialOrd for dyn KeyRef + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyRef + '_ {}

impl<'a> Borrow<dyn KeyRef + 'a> for VKey {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

impl Ord for VKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn KeyRef).cmp(other as &dyn KeyRef)
    }
}

impl PartialOrd for VKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for VKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for VKey {}

/// What a key held before a write changed it: a value's location and its file,
/// or nothing (absent, or a tombstone).
pub(crate) type Old = Option<(Loc, Arc<DataFile>)>;

/// The kept versions of one key, oldest write first. Most keys have one.
enum Chain {
    One(u64, Old),
    Many(Vec<(u64, Old)>),
}

impl Chain {
    fn last_seq(&self) -> u64 {
        match self {
            Chain::One(s, _) => *s,
            Chain::Many(v) => v.last().map_or(0, |e| e.0),
        }
    }

    /// What the key held at `seq`, if a write after `seq` changed it.
    fn at(&self, seq: u64) -> Option<&Old> {
        match self {
            Chain::One(s, old) => (*s > seq).then_some(old),
            Chain::Many(v) => v.iter().find(|e| e.0 > seq).map(|e| &e.1),
        }
    }

    fn push(&mut self, seq: u64, old: Old) {
        match self {
            Chain::One(..) => {
                let Chain::One(s, o) = std::mem::replace(self, Chain::Many(Vec::new())) else {
                    unreachable!()
                };
                *self = Chain::Many(vec![(s, o), (seq, old)]);
            }
            Chain::Many(v) => v.push((seq, old)),
        }
    }

    /// Keeps the entries a snapshot of `live` (ascending sequence numbers)
    /// reads: entry `i` serves the snapshots from the previous entry's write
    /// up to its own. Returns how many are left.
    fn retain_read(&mut self, live: &[u64]) -> usize {
        let read = |from: u64, to: u64| {
            let i = live.partition_point(|&s| s < from);
            live.get(i).is_some_and(|&s| s < to)
        };
        match self {
            Chain::One(s, _) => read(0, *s) as usize,
            Chain::Many(v) => {
                let mut from = 0;
                v.retain(|e| {
                    let keep = read(from, e.0);
                    from = e.0;
                    keep
                });
                v.len()
            }
        }
    }
}

/// The registered snapshots and the versions they may still read. Lives in the
/// index, under its lock, so a snapshot's sequence number and the keydir agree.
#[derive(Default)]
pub(crate) struct Versions {
    /// Registered snapshots: id to sequence number. Ids are handed out in
    /// sequence order, so the first entry is the oldest snapshot.
    live: BTreeMap<u64, u64>,
    next_id: u64,
    old: BTreeMap<VKey, Chain>,
    /// Entries in `old`, and the count past which a release that is not the
    /// oldest snapshot's sweeps them (twice what the last sweep left).
    entries: usize,
    sweep_at: usize,
}

impl Versions {
    /// Whether writes must keep what they replace.
    pub fn active(&self) -> bool {
        !self.live.is_empty()
    }

    /// Snapshots alive, and versions kept.
    pub fn counts(&self) -> (u64, u64) {
        (self.live.len() as u64, self.entries as u64)
    }

    pub fn register(&mut self, seq: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(id, seq);
        id
    }

    /// Unregisters a snapshot and drops the versions no snapshot left can
    /// read: all of them with the last snapshot; a sweep of the map when the
    /// oldest goes (the versions only it read are the ones usually held), or
    /// once the map has doubled since the last sweep, so that memory held for
    /// snapshots that went stays within twice what the live ones read. A sweep
    /// is a walk of the map under the index lock.
    pub fn release(&mut self, id: u64) {
        let oldest = self.live.first_key_value().map(|(&i, _)| i);
        if self.live.remove(&id).is_none() {
            return;
        }
        if self.live.is_empty() {
            self.old.clear();
            (self.entries, self.sweep_at) = (0, 0);
        } else if oldest == Some(id) || self.entries >= self.sweep_at {
            let live: Vec<u64> = self.live.values().copied().collect();
            let mut left = 0;
            self.old.retain(|_, c| {
                let n = c.retain_read(&live);
                left += n;
                n > 0
            });
            self.entries = left;
            self.sweep_at = (2 * left).max(4096);
        }
    }

    /// Keeps what `key` held before the write `seq` changed it. `old` is asked
    /// only when some snapshot may read it: when the value it replaces is not
    /// newer than the newest snapshot.
    pub fn note(&mut self, key: &[u8], seq: u64, old: impl FnOnce() -> Old) {
        let Some((_, &newest)) = self.live.last_key_value() else {
            return;
        };
        // One search: a key new to the map (the common case) is inserted where
        // it was looked for; one already there wastes the allocation.
        let k = VKey {
            head: head(key),
            key: key.into(),
        };
        match self.old.entry(k) {
            Entry::Occupied(mut c) if c.get().last_seq() <= newest => {
                c.get_mut().push(seq, old());
                self.entries += 1;
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(v) => {
                v.insert(Chain::One(seq, old()));
                self.entries += 1;
            }
        }
    }

    /// What `key` held at `seq`, if a write since changed it; `None` when the
    /// keydir's entry stands.
    pub fn at(&self, key: &[u8], seq: u64) -> Option<&Old> {
        self.old.get(&Probe::new(key) as &dyn KeyRef)?.at(seq)
    }

    /// Keys in `(lower, upper)` changed since `seq`, in order (descending when
    /// `reverse`), with what they held at `seq`: at most `limit`.
    pub fn changed<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        seq: u64,
        limit: usize,
    ) -> Vec<(&'a [u8], &'a Old)> {
        if self.old.is_empty() || crate::db::empty_range(lower, upper) {
            return Vec::new();
        }
        let (lower, upper) = (lower.map(Probe::new), upper.map(Probe::new));
        let it = self
            .old
            .range::<dyn KeyRef, _>((as_key(&lower), as_key(&upper)))
            .filter_map(|(k, c)| c.at(seq).map(|o| (&*k.key, o)));
        if reverse {
            it.rev().take(limit).collect()
        } else {
            it.take(limit).collect()
        }
    }

    /// Entries kept per key, for counting the keys a snapshot sees.
    pub fn each_changed(&self, seq: u64, mut f: impl FnMut(&[u8], &Old)) {
        for (k, c) in &self.old {
            if let Some(o) = c.at(seq) {
                f(&k.key, o);
            }
        }
    }
}

fn as_key<'p>(b: &'p Bound<Probe<'_>>) -> Bound<&'p dyn KeyRef> {
    match b {
        Bound::Included(p) => Bound::Included(p),
        Bound::Excluded(p) => Bound::Excluded(p),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A registered snapshot; dropping the last reference releases it.
pub(crate) struct Pin {
    inner: Arc<Inner>,
    id: u64,
    pub seq: u64,
}

impl Pin {
    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Registers a snapshot at the last write the keydir holds.
    pub fn take(inner: &Arc<Inner>) -> crate::Result<Arc<Pin>> {
        inner.check_open()?;
        let mut ix = inner.index.write();
        let seq = ix.seq;
        let id = ix.versions.register(seq);
        Ok(Arc::new(Pin {
            inner: inner.clone(),
            id,
            seq,
        }))
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.inner.index.write().versions.release(self.id);
    }
}

/// A read view of the database as of one sequence number, from
/// [`Bitcask::snapshot`](crate::Bitcask::snapshot): `get`, `contains`, `len` and
/// every iterator made from it see exactly the writes up to [`Snapshot::seq`],
/// whatever writes and merges happen while it lives. Taking one copies nothing.
/// While any snapshot (or iterator, which reads from one of its own) is alive,
/// each write also keeps what it replaced, about 130 bytes per key changed, and
/// the data files those versions lie in stay open, and on disk, after a merge
/// removes them. Dropping a snapshot releases what only it could read: at once
/// when it is the oldest (or the last) one, else once the versions kept have
/// doubled since they were last swept. Keys that expire do so in a snapshot
/// too, by the clock.
///
/// Clones share one registration. `Send + Sync`.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) pin: Arc<Pin>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.pin.seq)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The sequence number of the last write this snapshot sees (0 before any).
    pub fn seq(&self) -> u64 {
        self.pin.seq
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.pin.inner
    }

    /// The value `key` had at [`Snapshot::seq`], or `None`.
    pub fn get(&self, key: &[u8]) -> crate::Result<Option<Vec<u8>>> {
        let inner = self.inner();
        let Some((loc, file)) = inner.locate(key, Some(self.pin.seq))? else {
            return Ok(None);
        };
        inner.read_value(key, &loc, &file).map(Some)
    }

    /// Calls `f` with the value `key` had, borrowed where it lies (as
    /// [`Bitcask::get_with`](crate::Bitcask::get_with)).
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> crate::Result<Option<R>> {
        let inner = self.inner();
        let Some((loc, file)) = inner.locate(key, Some(self.pin.seq))? else {
            return Ok(None);
        };
        inner.value_with(key, &loc, &file, f).map(Some)
    }

    /// Whether `key` had a value (that has not expired since). No I/O.
    pub fn contains(&self, key: &[u8]) -> crate::Result<bool> {
        Ok(self.inner().locate(key, Some(self.pin.seq))?.is_some())
    }

    /// Number of keys this snapshot sees, expired ones not counted. No I/O; it
    /// walks the versions kept since the snapshot was taken.
    pub fn len(&self) -> crate::Result<usize> {
        let inner = self.inner();
        let now = inner.now_ms();
        let ix = inner.open_index()?;
        let live = |l: Option<&Loc>| l.is_some_and(|l| !crate::db::expired(l.expires, now));
        let mut n = ix.live_keys(now) as i64;
        ix.versions.each_changed(self.pin.seq, |k, old| {
            let then = live(old.as_ref().map(|o| &o.0));
            let now = live(ix.keydir.get(k).as_ref());
            n += then as i64 - now as i64;
        });
        Ok(n.max(0) as usize)
    }

    /// Whether this snapshot sees no keys.
    pub fn is_empty(&self) -> crate::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every key and value this snapshot sees, in key order.
    pub fn iter(&self) -> crate::Result<crate::Iter> {
        self.range::<&[u8]>(.., false)
    }

    /// Keys in `range`, ascending, or descending when `reverse`.
    pub fn range<K: AsRef<[u8]>>(
        &self,
        range: impl std::ops::RangeBounds<K>,
        reverse: bool,
    ) -> crate::Result<crate::Iter> {
        crate::db::Iter::new(self.pin.clone(), range, reverse)
    }

    /// Keys that start with `prefix`.
    pub fn prefix(&self, prefix: &[u8], reverse: bool) -> crate::Result<crate::Iter> {
        let upper = match crate::db::prefix_successor(prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        let upper = match &upper {
            Bound::Excluded(s) => Bound::Excluded(s.as_slice()),
            _ => Bound::Unbounded,
        };
        self.range::<&[u8]>((Bound::Included(prefix), upper), reverse)
    }
}

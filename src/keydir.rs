//! The keydir: key to the location of its newest value. It does no I/O and knows
//! nothing of files; the engine wraps it in a lock. This module is the only place
//! that knows how it is stored, so the representation can change freely.

use std::collections::HashMap;
use std::ops::Bound;

/// Where a value lives. 16 bytes, so that a keydir entry stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file_id: u32,
    /// Offset of the value's first byte in the data file.
    pub offset: u32,
    /// Value length in bytes.
    pub len: u32,
    /// Write time, seconds since the Unix epoch.
    pub tstamp: u32,
}

/// Key to location map.
#[derive(Default)]
pub struct KeyDir {
    map: HashMap<Box<[u8]>, Loc>,
    key_bytes: usize,
}

impl KeyDir {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, key: &[u8]) -> Option<Loc> {
        self.map.get(key).copied()
    }

    /// Inserts or overwrites; returns the previous location.
    pub fn insert(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        if let Some(slot) = self.map.get_mut(key) {
            return Some(std::mem::replace(slot, loc));
        }
        self.key_bytes += key.len();
        self.map.insert(key.into(), loc)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.key_bytes -= key.len();
        }
        old
    }

    /// Appends up to `limit` entries within the bounds, in key order (descending when
    /// `reverse`), to `out`. A hash map has no order, so this sorts: fine for the
    /// whole-map iteration it serves, not for repeated small range scans.
    pub fn scan(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        out: &mut Vec<(Vec<u8>, Loc)>,
    ) {
        let mut hits: Vec<(&[u8], Loc)> = self
            .map
            .iter()
            .filter(|(k, _)| in_bounds(k, lower, upper))
            .map(|(k, l)| (&k[..], *l))
            .collect();
        hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if reverse {
            hits.reverse();
        }
        out.extend(hits.into_iter().take(limit).map(|(k, l)| (k.to_vec(), l)));
    }

    /// Visits every entry, in no particular order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Loc)) {
        for (k, l) in &self.map {
            f(k, *l);
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<[u8]>, Loc)>() + 1;
        self.map.capacity() * slot + self.key_bytes
    }
}

fn in_bounds(k: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    let above = match lower {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let below = match upper {
        Bound::Included(u) => k <= u,
        Bound::Excluded(u) => k < u,
        Bound::Unbounded => true,
    };
    above && below
}

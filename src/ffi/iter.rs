//! `bitcask_iterator_t`: a bidirectional cursor over the engine's one-directional
//! `Iter`.
//!
//! The handle keeps two untouched engine iterators over its range, one ascending and
//! one descending, and moves by streaming a clone of one of them. A move against the
//! current stream (`prev` after `next`) restarts the other one just past the current
//! key. Both hold the engine's internals (an `Arc`), not the `bitcask_t`, so a
//! destroyed database leaves them reporting `BITCASK_CLOSED`.

use super::db::bitcask_t;
use super::snapshot::bitcask_snapshot_t;
use super::{
    bitcask_status_t, borrowed_ptr, guard, guard_value, handle, handle_mut, key_slice, out_ptr,
    slice, Failure, Status,
};
use crate::db::{prefix_successor, Bitcask, Iter, IterEntry};
use crate::snapshot::Snapshot;
use std::cell::{OnceCell, RefCell};
use std::ops::Bound;

/// A cursor over keys in order, with the current key and value. Not thread-safe:
/// use one iterator from one thread at a time (it may move between threads). It
/// stays valid after its database is closed or destroyed (moves then return
/// `BITCASK_CLOSED`) and must be freed with `bitcask_iter_destroy`.
pub struct bitcask_iterator_t {
    /// Fresh iterators over the whole range, cloned to (re)start a stream.
    ascending: Iter,
    descending: Iter,
    /// Inclusive lower bound; empty when unbounded (the empty key cannot exist).
    start: Vec<u8>,
    /// Exclusive upper bound.
    end: Option<Vec<u8>>,
    /// The iteration direction `next` follows.
    reverse: bool,
    /// The stream the current entry came from, and whether it is descending.
    stream: Option<(Iter, bool)>,
    /// The current entry; the key and value handed out borrow from it.
    current: Option<Current>,
    /// The first failure of the engine since the last seek: a move that ended
    /// the iteration, or a value that could not be read (`bitcask_iter_get_error`).
    error: RefCell<Option<Failure>>,
}

/// An entry, and its value once `bitcask_iter_value` asked for it: moving reads
/// no data file, so iterating keys alone does no I/O.
struct Current {
    entry: IterEntry,
    value: OnceCell<Vec<u8>>,
}

impl bitcask_iterator_t {
    fn new(
        snap: &Snapshot,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        reverse: bool,
    ) -> Result<Self, Failure> {
        let lower = if start.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(start.clone())
        };
        let upper = end.clone().map_or(Bound::Unbounded, Bound::Excluded);
        // Both directions read one view.
        let mut ascending = snap.range::<Vec<u8>>((lower.clone(), upper.clone()), false)?;
        let mut descending = snap.range::<Vec<u8>>((lower, upper), true)?;
        ascending.set_values(false);
        descending.set_values(false);
        let mut it = bitcask_iterator_t {
            ascending,
            descending,
            start,
            end,
            reverse,
            stream: None,
            current: None,
            error: RefCell::new(None),
        };
        it.seek_first()?;
        Ok(it)
    }

    /// Takes the next entry of the current stream.
    fn step(&mut self) -> Result<(), Failure> {
        let next = self.stream.as_mut().and_then(|(it, _)| it.advance());
        match next {
            Some(Ok(entry)) => {
                self.current = Some(Current {
                    entry,
                    value: OnceCell::new(),
                });
                Ok(())
            }
            None => {
                self.current = None;
                Ok(())
            }
            Some(Err(e)) => {
                self.current = None;
                self.stream = None;
                Err(self.note(e.into()))
            }
        }
    }

    /// Starts a stream in the given direction at `from` (the first key at or after
    /// it, ascending; at or before it, descending), or at the range's edge. With
    /// `exclusive`, `from` itself is skipped.
    fn start_stream(
        &mut self,
        descending: bool,
        from: Option<&[u8]>,
        exclusive: bool,
    ) -> Result<(), Failure> {
        let mut it = if descending {
            self.descending.clone()
        } else {
            self.ascending.clone()
        };
        if let Some(key) = from {
            // The engine's seek replaces the range's bound on that side, so seek
            // only to keys inside the range; the range itself covers the rest.
            let inside = if descending {
                self.end.as_deref().is_none_or(|e| key < e)
            } else {
                key > self.start.as_slice()
            };
            if inside {
                it.seek(key);
            }
        }
        self.stream = Some((it, descending));
        self.step()?;
        if let (Some(key), true) = (from, exclusive) {
            if self.current.as_ref().is_some_and(|c| c.entry.key == key) {
                self.step()?;
            }
        }
        Ok(())
    }

    /// Keeps the first failure for `bitcask_iter_get_error`.
    fn note(&self, f: Failure) -> Failure {
        self.error.borrow_mut().get_or_insert_with(|| f.clone());
        f
    }

    fn seek_first(&mut self) -> Result<(), Failure> {
        self.error.replace(None);
        self.start_stream(self.reverse, None, false)
    }

    fn seek_last(&mut self) -> Result<(), Failure> {
        self.error.replace(None);
        self.start_stream(!self.reverse, None, false)
    }

    /// Moves one entry, descending or ascending.
    fn advance(&mut self, descending: bool) -> Result<(), Failure> {
        let Some(Current {
            entry: IterEntry { key, .. },
            ..
        }) = self.current.take()
        else {
            return Err(Failure::invalid("iterator is not positioned on an entry"));
        };
        if self.stream.as_ref().is_some_and(|(_, d)| *d == descending) {
            return self.step();
        }
        self.start_stream(descending, Some(&key), true)
    }
}

/// What an iterator reads: a database (through a snapshot of its own, taken
/// now) or a snapshot.
pub(crate) enum Source {
    Db(*const bitcask_t),
    Snapshot(*const bitcask_snapshot_t),
}

/// Creates the iterator behind the constructors.
pub(crate) unsafe fn create(
    src: Source,
    out: *mut *mut bitcask_iterator_t,
    make: impl FnOnce(&Snapshot) -> Result<bitcask_iterator_t, Failure>,
) -> bitcask_status_t {
    guard(|| {
        let snap = match src {
            // SAFETY: the caller promises a live database handle.
            Source::Db(db) => Bitcask::snapshot(&unsafe { handle(db, "db") }?.db)?,
            // SAFETY: the caller promises a live snapshot handle.
            Source::Snapshot(s) => unsafe { handle(s, "snapshot") }?.snap.clone(),
        };
        let out = out_ptr(out, "out")?;
        let it = make(&snap)?;
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { out.write(Box::into_raw(Box::new(it))) };
        Ok(())
    })
}

/// Creates an iterator over every key, ascending (descending when `reverse`),
/// positioned on the first entry (check `bitcask_iter_valid`), and stores it in
/// `*out`. The caller owns it and frees it with `bitcask_iter_destroy`.
///
/// It reads the database as of its creation, through a snapshot of its own (see
/// `bitcask_snapshot_create`, whose costs it shares until destroyed): writes
/// made meanwhile are not seen, in either direction or after a seek. Returns
/// `BITCASK_OK`; `BITCASK_INVALID_ARGUMENT` when `db` or `out` is NULL;
/// `BITCASK_CLOSED`, `BITCASK_CORRUPTION` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_create(
    db: *const bitcask_t,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { create(Source::Db(db), out, |s| whole(s, reverse)) }
}

pub(crate) fn whole(s: &Snapshot, reverse: bool) -> Result<bitcask_iterator_t, Failure> {
    bitcask_iterator_t::new(s, Vec::new(), None, reverse)
}

/// Creates an iterator over the keys `k` with `start <= k < end`, as
/// `bitcask_iter_create`. A NULL `end` means no upper bound; any other `end` is
/// a key, the empty key included (a non-NULL pointer with length 0: then the
/// range is empty), as in every binding (Python `None`, Go `nil`). A NULL or
/// empty `start` is the smallest key, so no lower bound. The bounds are copied.
/// Returns as `bitcask_iter_create`, and `BITCASK_INVALID_ARGUMENT` for a NULL
/// bound with a non-zero length.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_create_range(
    db: *const bitcask_t,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: the caller promises readable bounds; the rest is forwarded.
    unsafe {
        let bounds = range_bounds(start, start_len, end, end_len);
        create(Source::Db(db), out, |s| ranged(s, bounds, reverse))
    }
}

/// Copies a range's bounds: a NULL `end` is no bound.
///
/// Safety: each pointer is NULL or readable for its length.
pub(crate) unsafe fn range_bounds(
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
) -> Result<(Vec<u8>, Option<Vec<u8>>), Failure> {
    // SAFETY: forwarded caller promise.
    let s = unsafe { slice(start, start_len, "start") }?;
    // SAFETY: forwarded caller promise.
    let e = unsafe { slice(end, end_len, "end") }?;
    Ok((s.to_vec(), (!end.is_null()).then(|| e.to_vec())))
}

pub(crate) fn ranged(
    s: &Snapshot,
    bounds: Result<(Vec<u8>, Option<Vec<u8>>), Failure>,
    reverse: bool,
) -> Result<bitcask_iterator_t, Failure> {
    let (start, end) = bounds?;
    bitcask_iterator_t::new(s, start, end, reverse)
}

pub(crate) fn prefixed(
    s: &Snapshot,
    prefix: Result<Vec<u8>, Failure>,
    reverse: bool,
) -> Result<bitcask_iterator_t, Failure> {
    let p = prefix?;
    let end = prefix_successor(&p);
    bitcask_iterator_t::new(s, p, end, reverse)
}

/// Creates an iterator over the keys that start with `prefix` (copied), as
/// `bitcask_iter_create`. An empty prefix means every key. Returns as
/// `bitcask_iter_create`, and `BITCASK_INVALID_ARGUMENT` for a NULL prefix with a
/// non-zero length.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_create_prefix(
    db: *const bitcask_t,
    prefix: *const u8,
    prefix_len: usize,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: the caller promises a readable prefix; the rest is forwarded.
    unsafe {
        let prefix = slice(prefix, prefix_len, "prefix").map(<[u8]>::to_vec);
        create(Source::Db(db), out, |s| prefixed(s, prefix, reverse))
    }
}

/// Frees an iterator. NULL is accepted and ignored. Keys and values borrowed from
/// it become invalid.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_destroy(it: *mut bitcask_iterator_t) {
    guard_value((), || {
        if !it.is_null() {
            // SAFETY: a non-NULL handle came from `Box::into_raw` in a constructor
            // and the caller gives up ownership.
            drop(unsafe { Box::from_raw(it) });
        }
    })
}

/// Runs a move on a non-NULL iterator.
unsafe fn move_with(
    it: *mut bitcask_iterator_t,
    f: impl FnOnce(&mut bitcask_iterator_t) -> Result<(), Failure>,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live iterator used by one thread at a time.
        let h = unsafe { handle_mut(it, "iterator") }?;
        f(h)
    })
}

/// Positions on the first entry in the iteration direction (the smallest key, or
/// the largest when reversed). Like every move it ends the borrow of the previous
/// key and value, and returns `BITCASK_OK` whether or not an entry was found (see
/// `bitcask_iter_valid`); `BITCASK_INVALID_ARGUMENT` when `it` is NULL;
/// `BITCASK_CLOSED` when the database was closed or destroyed (the iterator is
/// then not valid). A move reads no value: `bitcask_iter_value` does, and reports
/// a value that cannot be read.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_seek_first(it: *mut bitcask_iterator_t) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { move_with(it, |h| h.seek_first()) }
}

/// Positions on the last entry in the iteration direction. Returns as
/// `bitcask_iter_seek_first`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_seek_last(it: *mut bitcask_iterator_t) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { move_with(it, |h| h.seek_last()) }
}

/// Positions on the first key at or after `key` in the iteration direction (at or
/// before it when reversed), within the iterator's range. Returns as
/// `bitcask_iter_seek_first`, and `BITCASK_INVALID_ARGUMENT` for a NULL key with a
/// non-zero length.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_seek(
    it: *mut bitcask_iterator_t,
    key: *const u8,
    key_len: usize,
) -> bitcask_status_t {
    // SAFETY: the caller promises a readable key; the rest is forwarded.
    unsafe {
        let key = key_slice(key, key_len);
        move_with(it, |h| {
            h.error.replace(None);
            h.start_stream(h.reverse, Some(key?), false)
        })
    }
}

/// Moves to the next entry in the iteration direction. Returns as
/// `bitcask_iter_seek_first`, and `BITCASK_INVALID_ARGUMENT` when the iterator is
/// not valid.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_next(it: *mut bitcask_iterator_t) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { move_with(it, |h| h.advance(h.reverse)) }
}

/// Moves to the previous entry (against the iteration direction). Returns as
/// `bitcask_iter_next`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_prev(it: *mut bitcask_iterator_t) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { move_with(it, |h| h.advance(!h.reverse)) }
}

/// Whether the iterator is on an entry. False for NULL, past either end, and after a
/// move returned an error: so a loop that stops when this turns false must ask
/// `bitcask_iter_get_error` whether it reached the end or failed.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_valid(it: *const bitcask_iterator_t) -> bool {
    // SAFETY: the caller promises a live iterator or NULL.
    guard_value(false, || {
        unsafe { it.as_ref() }.is_some_and(|h| h.current.is_some())
    })
}

/// Hands out part of the current entry.
unsafe fn borrow_part(
    it: *const bitcask_iterator_t,
    ptr: *mut *const u8,
    len: *mut usize,
    pick: impl for<'a> FnOnce(&'a bitcask_iterator_t, &'a Current) -> Result<&'a [u8], Failure>,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live iterator.
        let h = unsafe { handle(it, "iterator") }?;
        let ptr = out_ptr(ptr, "ptr")?;
        let len = out_ptr(len, "len")?;
        let cur = h
            .current
            .as_ref()
            .ok_or_else(|| Failure::new(Status::BITCASK_NOT_FOUND, "iterator is not valid"))?;
        let bytes = pick(h, cur)?;
        // SAFETY: both non-NULL, and the caller promises they are writable.
        unsafe {
            ptr.write(borrowed_ptr(bytes));
            len.write(bytes.len());
        }
        Ok(())
    })
}

/// Stores the current key in `*key` and `*key_len`. The bytes are borrowed from the
/// iterator: valid until its next move or destroy; do not free them. Returns
/// `BITCASK_OK`; `BITCASK_NOT_FOUND` when the iterator is not valid;
/// `BITCASK_INVALID_ARGUMENT` when a pointer is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_key(
    it: *const bitcask_iterator_t,
    key: *mut *const u8,
    key_len: *mut usize,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { borrow_part(it, key, key_len, |_, c| Ok(c.entry.key.as_slice())) }
}

/// Stores the current value in `*value` and `*value_len` (never NULL, even when
/// empty), borrowed like `bitcask_iter_key`. Moves read no value: the first call
/// at an entry reads it (one read of where the key pointed when the iterator
/// reached it; the file stays readable even if a merge removes it meanwhile), so
/// an iteration that only asks for keys reads no data file. Returns as
/// `bitcask_iter_key`, and `BITCASK_CORRUPTION` or `BITCASK_IO` when the value
/// cannot be read (the iterator stays on its entry).
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_value(
    it: *const bitcask_iterator_t,
    value: *mut *const u8,
    value_len: *mut usize,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        borrow_part(it, value, value_len, |h, c| {
            if let Some(v) = c.value.get() {
                return Ok(v.as_slice());
            }
            let v = h.ascending.read(&c.entry).map_err(|e| h.note(e.into()))?;
            Ok(c.value.get_or_init(|| v).as_slice())
        })
    }
}

/// Why an iteration stopped early: returns `BITCASK_OK` when no move and no value
/// read of the iterator failed since its creation or last seek (a loop that ended
/// on `bitcask_iter_valid` then reached the end of its range), else the status of
/// the first failure (`BITCASK_CORRUPTION`, `BITCASK_IO`, `BITCASK_CLOSED`, ...),
/// whose message `bitcask_last_error_message` then gives. Misuse (a move on an
/// iterator that is not valid) is not recorded: its call returned it.
/// `BITCASK_INVALID_ARGUMENT` when `it` is NULL. The pattern, as LevelDB's
/// `leveldb_iter_get_error`:
///
/// ```c
/// for (; bitcask_iter_valid(it); bitcask_iter_next(it)) { ... }
/// if (bitcask_iter_get_error(it) != BITCASK_OK) { ... failed, not the end ... }
/// ```
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_get_error(it: *const bitcask_iterator_t) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live iterator.
        let h = unsafe { handle(it, "iterator") }?;
        match h.error.borrow().as_ref() {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    })
}

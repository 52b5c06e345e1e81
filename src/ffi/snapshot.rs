//! `bitcask_snapshot_t`: a read view of a database as of one sequence number.

use super::db::{alloc_value, bitcask_t, copy_value, found, write_count};
use super::iter::{self, bitcask_iterator_t, Source};
use super::{bitcask_status_t, guard, guard_value, handle, key_slice, out_ptr, slice};
use crate::snapshot::Snapshot;

/// A consistent read view of a database as of one sequence number: reads and
/// iterators made from it see exactly the writes up to it, whatever writes and
/// merges happen while it lives. Thread-safe: any number of threads may read
/// through one snapshot at once; only `bitcask_snapshot_destroy` must be its last
/// use. Like an iterator, it holds the database's internals and stays valid after
/// `bitcask_destroy` of its database (reads then return `BITCASK_CLOSED`).
pub struct bitcask_snapshot_t {
    pub(crate) snap: Snapshot,
}

/// Takes a snapshot of `db` as of its last write and stores it in `*out`. It
/// copies nothing, so it is cheap (a lock and a map insert). While a snapshot (or
/// an iterator, which reads from one of its own) is alive, each write also keeps
/// what it replaced, about 130 bytes per key changed, and data files a merge
/// removes stay open, and their space in use, until no snapshot can read them;
/// `bitcask_snapshot_destroy` releases what only this snapshot could read (at
/// once when it is the oldest or the last, else once the versions kept have
/// doubled since they were last swept). The caller owns the snapshot.
/// Returns `BITCASK_OK`; `BITCASK_INVALID_ARGUMENT` when `db` or `out` is NULL;
/// `BITCASK_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_create(
    db: *const bitcask_t,
    out: *mut *mut bitcask_snapshot_t,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(db, "db") }?;
        let out = out_ptr(out, "out")?;
        let snap = h.db.snapshot()?;
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { out.write(Box::into_raw(Box::new(bitcask_snapshot_t { snap }))) };
        Ok(())
    })
}

/// Releases a snapshot. NULL is accepted and ignored. Iterators made from it keep
/// the view they read until they are destroyed themselves.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_destroy(snap: *mut bitcask_snapshot_t) {
    guard_value((), || {
        if !snap.is_null() {
            // SAFETY: made by `bitcask_snapshot_create`, and the caller promises
            // this is its last use.
            drop(unsafe { Box::from_raw(snap) });
        }
    })
}

/// The sequence number of the last write the snapshot sees (0 before any write,
/// and for a NULL snapshot).
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_seq(snap: *const bitcask_snapshot_t) -> u64 {
    // SAFETY: the caller promises a live handle or NULL.
    guard_value(0, || unsafe { snap.as_ref() }.map_or(0, |s| s.snap.seq()))
}

/// `bitcask_get` through a snapshot: copies the value `key` had into `buf`, with
/// the same contract (`BITCASK_BUFFER_TOO_SMALL` and the length needed in
/// `*value_len` when it does not fit; `BITCASK_NOT_FOUND` when the key had no
/// value). `BITCASK_INVALID_ARGUMENT` for a NULL `snap` or `value_len`;
/// `BITCASK_CLOSED`, `BITCASK_CORRUPTION` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_get(
    snap: *const bitcask_snapshot_t,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        let value_len = out_ptr(value_len, "value_len")?;
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(snap, "snapshot")?, key_slice(key, key_len)?) };
        // SAFETY: the caller promises `buf_len` writable bytes at `buf`.
        unsafe { copy_value(buf, buf_len, value_len, |f| h.snap.get_with(k, f)) }
    })
}

/// `bitcask_get_alloc` through a snapshot: the value `key` had, in a new buffer
/// the caller frees with `bitcask_free`. Returns as `bitcask_get_alloc`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_get_alloc(
    snap: *const bitcask_snapshot_t,
    key: *const u8,
    key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(snap, "snapshot")?, key_slice(key, key_len)?) };
        // SAFETY: the caller promises writable out-parameters.
        unsafe { alloc_value(value, value_len, || h.snap.get(k)) }
    })
}

/// `BITCASK_OK` when `key` had a value in the snapshot, `BITCASK_NOT_FOUND` when
/// not; no data file is read. `BITCASK_INVALID_ARGUMENT` for a NULL `snap`;
/// `BITCASK_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_contains(
    snap: *const bitcask_snapshot_t,
    key: *const u8,
    key_len: usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(snap, "snapshot")?, key_slice(key, key_len)?) };
        found(h.snap.contains(k))
    })
}

/// Stores the number of keys the snapshot sees in `*count` (no data file is
/// read). Returns `BITCASK_OK`, `BITCASK_INVALID_ARGUMENT` when a pointer is NULL,
/// or `BITCASK_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_count(
    snap: *const bitcask_snapshot_t,
    count: *mut u64,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(snap, "snapshot") }?;
        // SAFETY: the caller promises a writable `count`.
        unsafe { write_count(count, h.snap.len()) }
    })
}

/// `bitcask_iter_create` over the snapshot's view. The iterator may outlive the
/// snapshot handle. Returns as `bitcask_iter_create`, with
/// `BITCASK_INVALID_ARGUMENT` for a NULL `snap`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_iter_create(
    snap: *const bitcask_snapshot_t,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { iter::create(Source::Snapshot(snap), out, |s| iter::whole(s, reverse)) }
}

/// `bitcask_iter_create_range` over the snapshot's view (a NULL `end` is no
/// upper bound; an empty non-NULL one is the empty key). Returns as
/// `bitcask_iter_create_range`, with `BITCASK_INVALID_ARGUMENT` for a NULL `snap`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_iter_create_range(
    snap: *const bitcask_snapshot_t,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: the caller promises readable bounds; the rest is forwarded.
    unsafe {
        let bounds = iter::range_bounds(start, start_len, end, end_len);
        iter::create(Source::Snapshot(snap), out, |s| {
            iter::ranged(s, bounds, reverse)
        })
    }
}

/// `bitcask_iter_create_prefix` over the snapshot's view. Returns as
/// `bitcask_iter_create_prefix`, with `BITCASK_INVALID_ARGUMENT` for a NULL `snap`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_snapshot_iter_create_prefix(
    snap: *const bitcask_snapshot_t,
    prefix: *const u8,
    prefix_len: usize,
    reverse: bool,
    out: *mut *mut bitcask_iterator_t,
) -> bitcask_status_t {
    // SAFETY: the caller promises a readable prefix; the rest is forwarded.
    unsafe {
        let prefix = slice(prefix, prefix_len, "prefix").map(<[u8]>::to_vec);
        iter::create(Source::Snapshot(snap), out, |s| {
            iter::prefixed(s, prefix, reverse)
        })
    }
}

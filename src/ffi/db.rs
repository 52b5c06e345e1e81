//! `bitcask_t`: the database handle.
//!
//! `bitcask_close` and `bitcask_destroy` are separate so that a handle shared by
//! threads can be closed while others still hold it: they then get
//! `BITCASK_CLOSED` instead of touching freed memory. Only `bitcask_destroy` frees.

use super::batch::bitcask_batch_t;
use super::options::bitcask_options_t;
use super::{
    bitcask_status_t, c_message, guard, guard_value, handle, key_slice, malloc_copy, out_ptr, utf8,
    value_slice, Failure, Status,
};
use crate::db::{Bitcask, KeyTtl, WriteOptions};
use crate::options::Options;
use std::time::Duration;

/// An open (or closed, not yet destroyed) database. Thread-safe: every function may
/// be called on one handle from many threads at once, except `bitcask_destroy`,
/// which must be the handle's last use.
pub struct bitcask_t {
    pub(crate) db: Bitcask,
}

/// Counters readable with `bitcask_stat`. The numbers are stable.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bitcask_stat_t {
    /// Live keys.
    BITCASK_STAT_KEYS = 0,
    /// Approximate heap bytes of the in-memory keydir.
    BITCASK_STAT_KEYDIR_BYTES = 1,
    /// Bytes in data files.
    BITCASK_STAT_DATA_BYTES = 2,
    /// Bytes in hint files.
    BITCASK_STAT_HINT_BYTES = 3,
    /// Data plus hint bytes.
    BITCASK_STAT_DISK_BYTES = 4,
    /// Number of data files, the active one included.
    BITCASK_STAT_DATA_FILES = 5,
    /// Bytes of all data files that no longer hold a current value.
    BITCASK_STAT_DEAD_BYTES = 6,
    /// Bytes of torn tail truncated from the last data file at open.
    BITCASK_STAT_DROPPED_BYTES_AT_OPEN = 7,
    /// Bytes skipped by a salvage open.
    BITCASK_STAT_SALVAGED_BYTES_AT_OPEN = 8,
    /// Sequence number of the newest write; `BITCASK_NOT_FOUND` when read-only.
    BITCASK_STAT_LAST_SEQ = 9,
    /// Data files merged and removed by the last merge since open (this and the
    /// other `LAST_MERGE` counters give `BITCASK_NOT_FOUND` before any merge).
    BITCASK_STAT_LAST_MERGE_FILES_IN = 10,
    /// Data files written by the last merge.
    BITCASK_STAT_LAST_MERGE_FILES_OUT = 11,
    /// Bytes of the last merge's input files.
    BITCASK_STAT_LAST_MERGE_BYTES_IN = 12,
    /// Bytes of the last merge's output files.
    BITCASK_STAT_LAST_MERGE_BYTES_OUT = 13,
    /// Bytes the last merge gave back (input minus output).
    BITCASK_STAT_LAST_MERGE_BYTES_RECLAIMED = 14,
    /// Live records the last merge copied.
    BITCASK_STAT_LAST_MERGE_RECORDS_COPIED = 15,
    /// Tombstones the last merge kept for older files outside it.
    BITCASK_STAT_LAST_MERGE_TOMBSTONES_KEPT = 16,
    /// Wall time of the last merge, in microseconds.
    BITCASK_STAT_LAST_MERGE_DURATION_US = 17,
    /// Merges that completed since open, manual or automatic (a merge with nothing
    /// to reclaim does not run, so it is not counted).
    BITCASK_STAT_MERGES = 18,
    /// Merges that failed in a row up to now; 0 once a merge succeeds. Automatic
    /// merging backs off while it is above 0. `bitcask_last_merge_error` gives
    /// the newest failure.
    BITCASK_STAT_MERGE_FAILURES = 19,
    /// Tombstone (delete) records in the data files. A merge drops each once no
    /// file that could hold a value it hides remains.
    BITCASK_STAT_TOMBSTONES = 20,
    /// Expired values the last merge dropped.
    BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED = 21,
    /// fdatasyncs of the active file since open (durable writes,
    /// `bitcask_sync`, the `EVERY_MS` thread).
    BITCASK_STAT_SYNCS = 22,
    /// Writes (puts, deletes, batches) committed since open.
    BITCASK_STAT_WRITES = 23,
    /// Appends those writes were committed in (below `BITCASK_STAT_WRITES` when
    /// concurrent writes shared one append and one fsync).
    BITCASK_STAT_WRITE_GROUPS = 24,
    /// Bytes allocated past the data for durable writes (the active file's
    /// zero-filled tail and the spare next file); not in the disk bytes.
    BITCASK_STAT_PREALLOCATED_BYTES = 25,
    /// Snapshots alive, those iterators read from included.
    BITCASK_STAT_SNAPSHOTS = 26,
    /// Versions kept for them (one per key changed since the oldest was taken,
    /// at most one per key and snapshot); 0 once none is alive.
    BITCASK_STAT_SNAPSHOT_VERSIONS = 27,
}

impl bitcask_stat_t {
    /// Every counter, indexed by its number.
    const ALL: [bitcask_stat_t; 28] = [
        bitcask_stat_t::BITCASK_STAT_KEYS,
        bitcask_stat_t::BITCASK_STAT_KEYDIR_BYTES,
        bitcask_stat_t::BITCASK_STAT_DATA_BYTES,
        bitcask_stat_t::BITCASK_STAT_HINT_BYTES,
        bitcask_stat_t::BITCASK_STAT_DISK_BYTES,
        bitcask_stat_t::BITCASK_STAT_DATA_FILES,
        bitcask_stat_t::BITCASK_STAT_DEAD_BYTES,
        bitcask_stat_t::BITCASK_STAT_DROPPED_BYTES_AT_OPEN,
        bitcask_stat_t::BITCASK_STAT_SALVAGED_BYTES_AT_OPEN,
        bitcask_stat_t::BITCASK_STAT_LAST_SEQ,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_FILES_IN,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_FILES_OUT,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_BYTES_IN,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_BYTES_OUT,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_BYTES_RECLAIMED,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_RECORDS_COPIED,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_TOMBSTONES_KEPT,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_DURATION_US,
        bitcask_stat_t::BITCASK_STAT_MERGES,
        bitcask_stat_t::BITCASK_STAT_MERGE_FAILURES,
        bitcask_stat_t::BITCASK_STAT_TOMBSTONES,
        bitcask_stat_t::BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED,
        bitcask_stat_t::BITCASK_STAT_SYNCS,
        bitcask_stat_t::BITCASK_STAT_WRITES,
        bitcask_stat_t::BITCASK_STAT_WRITE_GROUPS,
        bitcask_stat_t::BITCASK_STAT_PREALLOCATED_BYTES,
        bitcask_stat_t::BITCASK_STAT_SNAPSHOTS,
        bitcask_stat_t::BITCASK_STAT_SNAPSHOT_VERSIONS,
    ];
}

/// Opens (creating it if missing, unless read-only or
/// `bitcask_options_set_create_if_missing` says not to) the database in the directory
/// `path`, a NUL-terminated UTF-8 string, and stores the handle in `*out`.
/// `options` may be NULL for the defaults; it is copied, so the caller may destroy
/// it right after. The caller owns the new handle and frees it with
/// `bitcask_destroy`.
///
/// Returns `BITCASK_OK`; `BITCASK_INVALID_ARGUMENT` when `path` or `out` is NULL or
/// `path` is not UTF-8; `BITCASK_INVALID_OPTION` (the message names the option);
/// `BITCASK_DB_NOT_FOUND` / `BITCASK_DB_EXISTS` as the open-mode options ask;
/// `BITCASK_LOCKED` when another writer holds the directory; `BITCASK_CORRUPTION`,
/// `BITCASK_BAD_FORMAT` or `BITCASK_IO` when the files cannot be read.
#[no_mangle]
pub unsafe extern "C" fn bitcask_open(
    path: *const std::ffi::c_char,
    options: *const bitcask_options_t,
    out: *mut *mut bitcask_t,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a NUL-terminated path and, unless NULL, live
        // options not being modified meanwhile.
        let (path, opts) = unsafe {
            (
                utf8(path, "path")?,
                match options.as_ref() {
                    Some(o) => o.resolve()?,
                    None => Options::default(),
                },
            )
        };
        let out = out_ptr(out, "out")?;
        let db = Bitcask::open(path, opts)?;
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { out.write(Box::into_raw(Box::new(bitcask_t { db }))) };
        Ok(())
    })
}

/// Flushes and syncs outstanding writes, stops background work and releases the
/// writer lock. The handle stays valid: later calls on it (and on its iterators)
/// return `BITCASK_CLOSED` until `bitcask_destroy` frees it. Closing twice is not an
/// error. Returns `BITCASK_OK`, `BITCASK_INVALID_ARGUMENT` when `db` is NULL, or
/// `BITCASK_IO` when the final sync failed (the database is closed regardless).
#[no_mangle]
pub unsafe extern "C" fn bitcask_close(db: *const bitcask_t) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        unsafe { handle(db, "db") }?.db.close()?;
        Ok(())
    })
}

/// Closes the database if it is open (an error cannot be reported here: call
/// `bitcask_close` first to see it) and frees the handle. NULL is accepted and
/// ignored. Iterators of the database stay valid and report `BITCASK_CLOSED`; they
/// must still be destroyed.
#[no_mangle]
pub unsafe extern "C" fn bitcask_destroy(db: *mut bitcask_t) {
    guard_value((), || {
        if !db.is_null() {
            // SAFETY: a non-NULL handle came from `Box::into_raw` in `bitcask_open`
            // and the caller gives up ownership with this last use.
            drop(unsafe { Box::from_raw(db) });
        }
    })
}

/// Copies the value of `key` into the caller's buffer `buf` of `buf_len` bytes,
/// straight from where it lies (the data file's map): the call allocates nothing.
///
/// On `BITCASK_OK` the value fills the first `*value_len` bytes of `buf`. When the
/// value is longer than `buf_len`, returns `BITCASK_BUFFER_TOO_SMALL`, stores the
/// length needed in `*value_len` and leaves `buf` untouched: `buf` may be NULL with
/// `buf_len` 0 to ask for the size. Returns `BITCASK_NOT_FOUND` (writing nothing)
/// when the key has no value; `BITCASK_INVALID_ARGUMENT` for a NULL `db` or
/// `value_len`, or a NULL slice with a non-zero length; `BITCASK_CLOSED`,
/// `BITCASK_CORRUPTION` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        let value_len = out_ptr(value_len, "value_len")?;
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(db, "db")?, key_slice(key, key_len)?) };
        // SAFETY: the caller promises `buf_len` writable bytes at `buf`.
        unsafe { copy_value(buf, buf_len, value_len, |f| h.db.get_with(k, f)) }
    })
}

/// The body of `bitcask_get` and `bitcask_snapshot_get`: `get_with` calls its
/// argument with the value, which is copied straight from where it lies into
/// `buf` (no allocation), or finds none.
///
/// Safety: `buf` is NULL or writable for `buf_len` bytes; `value_len` is writable.
pub(crate) unsafe fn copy_value(
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    get_with: impl FnOnce(
        &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
    ) -> crate::Result<Option<Result<(), Failure>>>,
) -> Result<(), Failure> {
    if buf.is_null() && buf_len > 0 {
        return Err(Failure::invalid(format!(
            "buf is NULL with length {buf_len}"
        )));
    }
    let copied = get_with(&mut |v: &[u8]| {
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { value_len.write(v.len()) };
        if v.len() > buf_len {
            return Err(Failure::new(
                Status::BITCASK_BUFFER_TOO_SMALL,
                format!("value of {} bytes does not fit in {buf_len}", v.len()),
            ));
        }
        // SAFETY: `buf` holds `buf_len >= v.len()` writable bytes (non-NULL
        // when v.len() > 0, checked above); `v` is the engine's memory, which
        // the caller's buffer cannot be.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len()) };
        Ok(())
    })?;
    copied.ok_or_else(Failure::not_found)?
}

/// Stores the value of `key` in a new buffer at `*value` with its length in
/// `*value_len`. The caller owns the buffer and frees it with `bitcask_free`; it is
/// never NULL on `BITCASK_OK`, even for an empty value. Returns `BITCASK_NOT_FOUND`
/// (writing nothing) when the key has no value; `BITCASK_INVALID_ARGUMENT` for a
/// NULL `db`, `value` or `value_len`, or a NULL key with a non-zero length;
/// `BITCASK_CLOSED`, `BITCASK_CORRUPTION` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get_alloc(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(db, "db")?, key_slice(key, key_len)?) };
        // SAFETY: the caller promises writable out-parameters.
        unsafe { alloc_value(value, value_len, || h.db.get(k)) }
    })
}

/// The body of `bitcask_get_alloc` and `bitcask_snapshot_get_alloc`: the value
/// `get` finds, in a new buffer at `*value`.
///
/// Safety: `value` and `value_len` are NULL or writable.
pub(crate) unsafe fn alloc_value(
    value: *mut *mut u8,
    value_len: *mut usize,
    get: impl FnOnce() -> crate::Result<Option<Vec<u8>>>,
) -> Result<(), Failure> {
    let value = out_ptr(value, "value")?;
    let value_len = out_ptr(value_len, "value_len")?;
    let v = get()?.ok_or_else(Failure::not_found)?;
    let p = malloc_copy(&v)?;
    // SAFETY: both non-NULL, and the caller promises they are writable.
    unsafe {
        value.write(p);
        value_len.write(v.len());
    }
    Ok(())
}

/// `BITCASK_OK` for a key that exists, `BITCASK_NOT_FOUND` for one that does not.
pub(crate) fn found(exists: crate::Result<bool>) -> Result<(), Failure> {
    match exists? {
        true => Ok(()),
        false => Err(Failure::not_found()),
    }
}

/// Stores a count in `*count`.
///
/// Safety: `count` is NULL or writable.
pub(crate) unsafe fn write_count(count: *mut u64, n: crate::Result<usize>) -> Result<(), Failure> {
    let count = out_ptr(count, "count")?;
    let n = n? as u64;
    // SAFETY: non-NULL, and the caller promises it is writable.
    unsafe { count.write(n) };
    Ok(())
}

/// Returns `BITCASK_OK` when `key` has a value and `BITCASK_NOT_FOUND` when not,
/// without reading the value. `BITCASK_INVALID_ARGUMENT` for a NULL `db` or a NULL
/// key with a non-zero length; `BITCASK_CLOSED` after close.
#[no_mangle]
pub unsafe extern "C" fn bitcask_contains(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(db, "db")?, key_slice(key, key_len)?) };
        found(h.db.contains(k))
    })
}

/// Stores `value` under `key` (both copied). The write has reached the OS when this
/// returns (unless a write buffer was configured) and the disk too under
/// `BITCASK_SYNC_ALWAYS`. Returns `BITCASK_OK`; `BITCASK_INVALID_ARGUMENT` for a
/// NULL `db` or a NULL slice with a non-zero length; `BITCASK_EMPTY_KEY`,
/// `BITCASK_KEY_TOO_LARGE`, `BITCASK_VALUE_TOO_LARGE`, `BITCASK_READ_ONLY`,
/// `BITCASK_CLOSED`, `BITCASK_WRITES_REFUSED` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_put(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> bitcask_status_t {
    // SAFETY: the caller's promises are `put`'s.
    unsafe { put(db, key, key_len, value, value_len, None) }
}

/// `bitcask_put` and `bitcask_put_ttl`.
///
/// Safety: `db` live or NULL; `key` and `value` readable for their lengths or NULL.
unsafe fn put(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl: Option<Duration>,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and readable slices.
        let (h, k, v) = unsafe {
            (
                handle(db, "db")?,
                key_slice(key, key_len)?,
                value_slice(value, value_len)?,
            )
        };
        match ttl {
            Some(t) => h.db.put_with_ttl(k, v, t)?,
            None => h.db.put(k, v)?,
        };
        Ok(())
    })
}

/// Stores `value` under `key` (both copied) until `ttl_ms` milliseconds from now;
/// from then on the key reads as absent everywhere (`bitcask_get`,
/// `bitcask_contains`, `bitcask_ttl`, counts and iterators), and a merge drops the
/// value. Expiry has whole-second granularity, rounded up: the key lives at least
/// `ttl_ms` and less than `ttl_ms` plus one second. A later `bitcask_put` of the
/// key makes it persistent again (unless a default TTL was set with
/// `bitcask_options_set_default_ttl`). Returns as `bitcask_put`, plus
/// `BITCASK_INVALID_OPTION` (writing nothing) when `ttl_ms` is 0 or longer than
/// 2^31 - 1 seconds (about 68 years).
#[no_mangle]
pub unsafe extern "C" fn bitcask_put_ttl(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
) -> bitcask_status_t {
    let ttl = Some(Duration::from_millis(ttl_ms));
    // SAFETY: the caller's promises are `put`'s.
    unsafe { put(db, key, key_len, value, value_len, ttl) }
}

/// Stores in `*ms_left` the milliseconds before `key` expires. No I/O.
///
/// Returns `BITCASK_OK` for a key that expires (`*ms_left` is then at least 1);
/// `BITCASK_NO_EXPIRY` for a key that exists and never expires, storing
/// `UINT64_MAX` in `*ms_left` (the one status besides `BITCASK_OK` that writes
/// it); `BITCASK_NOT_FOUND` (writing nothing) for a key that is absent or
/// expired; `BITCASK_INVALID_ARGUMENT` (writing nothing) for a NULL `db` or
/// `ms_left`, or a NULL key with a non-zero length; `BITCASK_CLOSED` after close.
#[no_mangle]
pub unsafe extern "C" fn bitcask_ttl(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
    ms_left: *mut u64,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(db, "db")?, key_slice(key, key_len)?) };
        let ms_left = out_ptr(ms_left, "ms_left")?;
        let (ms, result) = match h.db.key_ttl(k)? {
            KeyTtl::Remaining(d) => (u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ok(())),
            KeyTtl::Persistent => (
                u64::MAX,
                Err(Failure::new(Status::BITCASK_NO_EXPIRY, "key has no expiry")),
            ),
            KeyTtl::Missing => return Err(Failure::not_found()),
        };
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { ms_left.write(ms) };
        result
    })
}

/// Removes `key`; deleting a missing key is not an error. Returns as `bitcask_put`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_delete(
    db: *const bitcask_t,
    key: *const u8,
    key_len: usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a readable key.
        let (h, k) = unsafe { (handle(db, "db")?, key_slice(key, key_len)?) };
        h.db.delete(k)?;
        Ok(())
    })
}

/// Applies every operation of `batch`, or none of them, even across a crash. The
/// batch is not consumed. Returns as `bitcask_put`, plus `BITCASK_BATCH_TOO_LARGE`,
/// and `BITCASK_INVALID_OPTION` when a `bitcask_batch_put_ttl` had a bad TTL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_write(
    db: *const bitcask_t,
    batch: *const bitcask_batch_t,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { bitcask_write_opt(db, batch, false, std::ptr::null_mut()) }
}

/// `bitcask_write` that, when `sync` is true, also fdatasyncs before returning
/// whatever the sync policy, and, when `seq` is not NULL, stores the write's
/// sequence number in `*seq` on success. Returns as `bitcask_write`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_write_opt(
    db: *const bitcask_t,
    batch: *const bitcask_batch_t,
    sync: bool,
    seq: *mut u64,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises live handles not modified meanwhile.
        let (h, b) = unsafe { (handle(db, "db")?, handle(batch, "batch")?) };
        let s = h.db.write_opt(&b.batch, WriteOptions { sync })?;
        if !seq.is_null() {
            // SAFETY: non-NULL, and the caller promises it is writable.
            unsafe { seq.write(s) };
        }
        Ok(())
    })
}

/// Flushes buffered writes and fdatasyncs the active file. Returns `BITCASK_OK`,
/// `BITCASK_INVALID_ARGUMENT` when `db` is NULL, `BITCASK_CLOSED` or `BITCASK_IO`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_sync(db: *const bitcask_t) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        unsafe { handle(db, "db") }?.db.sync()?;
        Ok(())
    })
}

/// Stores the number of keys in `*count`. Returns `BITCASK_OK`,
/// `BITCASK_INVALID_ARGUMENT` when a pointer is NULL, or `BITCASK_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_count(db: *const bitcask_t, count: *mut u64) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(db, "db") }?;
        // SAFETY: the caller promises a writable `count`.
        unsafe { write_count(count, h.db.len()) }
    })
}

/// Rewrites every immutable data file that has dead bytes into files of live
/// records and removes the old files, giving their space back. Reads and writes on
/// other threads go on meanwhile; one merge runs at a time (a second call waits).
/// Its counters are then readable as the `BITCASK_STAT_LAST_MERGE_*` stats; a
/// failure is counted in `BITCASK_STAT_MERGE_FAILURES` and its error kept for
/// `bitcask_last_merge_error` until a merge succeeds. Returns `BITCASK_OK`;
/// `BITCASK_INVALID_ARGUMENT` when `db` is NULL; `BITCASK_READ_ONLY`,
/// `BITCASK_CLOSED`, `BITCASK_CORRUPTION` or `BITCASK_IO` on failure.
#[no_mangle]
pub unsafe extern "C" fn bitcask_merge(db: *const bitcask_t) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        unsafe { handle(db, "db") }?.db.merge()?;
        Ok(())
    })
}

/// Writes a consistent copy of the database, as of one sequence number, into the
/// new directory `path`, a NUL-terminated UTF-8 string, and stores that sequence
/// number in `*seq`. Reads, writes and merges on other threads go on meanwhile.
/// Immutable data files are hard-linked when `path` is on the same filesystem and
/// copied otherwise; the active file is copied up to its last complete write.
/// The copy is built in a hidden directory beside `path` and renamed into place
/// once every file in it is synced, so `path` either holds a whole backup, to be
/// opened with `bitcask_open` like any database, or does not exist. Copies are
/// paced by the `merge_bytes_per_sec` option. `path` is only read during the
/// call; the caller keeps ownership of it.
///
/// Returns `BITCASK_OK`; `BITCASK_INVALID_ARGUMENT` (writing nothing) when `db`,
/// `path` or `seq` is NULL or `path` is not UTF-8; `BITCASK_IO` when `path` exists
/// and is not empty (refused, with nothing written) or the copy failed (no
/// partial copy is left; `bitcask_last_os_error` gives errno); `BITCASK_CLOSED`
/// after close; `BITCASK_WRITES_REFUSED` when buffered writes could not be
/// flushed for the copy.
#[no_mangle]
pub unsafe extern "C" fn bitcask_backup(
    db: *const bitcask_t,
    path: *const std::ffi::c_char,
    seq: *mut u64,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle and a NUL-terminated path.
        let (h, path) = unsafe { (handle(db, "db")?, utf8(path, "path")?) };
        let seq = out_ptr(seq, "seq")?;
        let s = h.db.backup(path)?;
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { seq.write(s) };
        Ok(())
    })
}

/// Stores the counter `stat` (a `bitcask_stat_t`) in `*value`. Returns
/// `BITCASK_OK`; `BITCASK_NOT_FOUND` when the counter has no value (the last
/// sequence number of a read-only database); `BITCASK_INVALID_ARGUMENT` for a NULL
/// pointer or an unknown `stat`; `BITCASK_CLOSED` after close.
#[no_mangle]
pub unsafe extern "C" fn bitcask_stat(
    db: *const bitcask_t,
    stat: i32,
    value: *mut u64,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(db, "db") }?;
        let value = out_ptr(value, "value")?;
        let which = usize::try_from(stat)
            .ok()
            .and_then(|i| bitcask_stat_t::ALL.get(i))
            .ok_or_else(|| Failure::invalid(format!("unknown stat {stat}")))?;
        let s = h.db.stats()?;
        let m = s.last_merge.as_ref();
        use bitcask_stat_t::*;
        let v = match which {
            BITCASK_STAT_KEYS => Some(s.keys),
            BITCASK_STAT_KEYDIR_BYTES => Some(s.keydir_bytes),
            BITCASK_STAT_DATA_BYTES => Some(s.data_bytes),
            BITCASK_STAT_HINT_BYTES => Some(s.hint_bytes),
            BITCASK_STAT_DISK_BYTES => Some(s.disk_bytes),
            BITCASK_STAT_DATA_FILES => Some(s.files.len() as u64),
            BITCASK_STAT_DEAD_BYTES => Some(s.files.iter().map(|f| f.dead_bytes).sum()),
            BITCASK_STAT_DROPPED_BYTES_AT_OPEN => Some(s.dropped_bytes_at_open),
            BITCASK_STAT_SALVAGED_BYTES_AT_OPEN => Some(s.salvaged_bytes_at_open),
            BITCASK_STAT_LAST_SEQ => s.last_seq,
            BITCASK_STAT_LAST_MERGE_FILES_IN => m.map(|m| m.files_in.into()),
            BITCASK_STAT_LAST_MERGE_FILES_OUT => m.map(|m| m.files_out.into()),
            BITCASK_STAT_LAST_MERGE_BYTES_IN => m.map(|m| m.bytes_in),
            BITCASK_STAT_LAST_MERGE_BYTES_OUT => m.map(|m| m.bytes_out),
            BITCASK_STAT_LAST_MERGE_BYTES_RECLAIMED => m.map(|m| m.bytes_reclaimed),
            BITCASK_STAT_LAST_MERGE_RECORDS_COPIED => m.map(|m| m.records_copied),
            BITCASK_STAT_LAST_MERGE_TOMBSTONES_KEPT => m.map(|m| m.tombstones_kept),
            BITCASK_STAT_LAST_MERGE_DURATION_US => {
                m.map(|m| u64::try_from(m.duration.as_micros()).unwrap_or(u64::MAX))
            }
            BITCASK_STAT_MERGES => Some(s.merges),
            BITCASK_STAT_MERGE_FAILURES => Some(s.merge_failures),
            BITCASK_STAT_TOMBSTONES => Some(s.tombstones),
            BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED => m.map(|m| m.expired_dropped),
            BITCASK_STAT_SYNCS => Some(s.syncs),
            BITCASK_STAT_WRITES => Some(s.writes),
            BITCASK_STAT_WRITE_GROUPS => Some(s.write_groups),
            BITCASK_STAT_PREALLOCATED_BYTES => Some(s.preallocated_bytes),
            BITCASK_STAT_SNAPSHOTS => Some(s.snapshots),
            BITCASK_STAT_SNAPSHOT_VERSIONS => Some(s.snapshot_versions),
        };
        let v = v.ok_or_else(|| Failure::new(Status::BITCASK_NOT_FOUND, "no value"))?;
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { value.write(v) };
        Ok(())
    })
}

/// Space use of one data file, from `bitcask_file_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bitcask_file_stats_t {
    /// The data file's id (its name is the id in ten digits, `.data`).
    pub id: u32,
    /// Its length in bytes, header included (written bytes: a preallocated tail
    /// is not counted).
    pub total_bytes: u64,
    /// Bytes of records that hold the current value of a key.
    pub live_bytes: u64,
    /// Everything else: overwritten and deleted values, tombstones, the header.
    pub dead_bytes: u64,
}

/// Stores the space use of every data file, in ascending id order (the last is
/// the active file), in the caller's array `out` of `cap` entries, and the number
/// of data files in `*count`. Returns `BITCASK_OK`; `BITCASK_BUFFER_TOO_SMALL`
/// when there are more than `cap` files (`*count` says how many; `out` is left
/// untouched, and may be NULL with `cap` 0 to ask); `BITCASK_INVALID_ARGUMENT`
/// for a NULL `db` or `count`, or a NULL `out` with a non-zero `cap`;
/// `BITCASK_CLOSED` after close.
#[no_mangle]
pub unsafe extern "C" fn bitcask_file_stats(
    db: *const bitcask_t,
    out: *mut bitcask_file_stats_t,
    cap: usize,
    count: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(db, "db") }?;
        let count = out_ptr(count, "count")?;
        if out.is_null() && cap > 0 {
            return Err(Failure::invalid(format!("out is NULL with cap {cap}")));
        }
        let files = h.db.stats()?.files;
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { count.write(files.len()) };
        if files.len() > cap {
            return Err(Failure::new(
                Status::BITCASK_BUFFER_TOO_SMALL,
                format!("{} data files do not fit in {cap}", files.len()),
            ));
        }
        for (i, f) in files.iter().enumerate() {
            let e = bitcask_file_stats_t {
                id: f.id,
                total_bytes: f.total_bytes,
                live_bytes: f.live_bytes,
                dead_bytes: f.dead_bytes,
            };
            // SAFETY: `out` holds `cap >= files.len()` writable entries (non-NULL
            // when there is one, checked above).
            unsafe { out.add(i).write(e) };
        }
        Ok(())
    })
}

/// Reports the error of the newest failed merge (manual or automatic) while
/// merges are failing, that is while `BITCASK_STAT_MERGE_FAILURES` is above 0:
/// stores the status code that failed merge returned (`BITCASK_IO`,
/// `BITCASK_CORRUPTION`...) in `*code`, its detailed message, a NUL-terminated
/// string, in `*message`, and the OS error number (errno) behind it in
/// `*os_error`, or 0 when the failure did not come from the operating system (as
/// `bitcask_last_os_error` reports it for the failed call itself). The caller owns
/// the message and frees it with `bitcask_free`; it is never NULL on `BITCASK_OK`.
///
/// Returns `BITCASK_OK`; `BITCASK_NOT_FOUND` (writing nothing) when no merge has
/// failed since open or the last merge succeeded; `BITCASK_INVALID_ARGUMENT`
/// (writing nothing) when `db`, `code`, `message` or `os_error` is NULL;
/// `BITCASK_CLOSED` after close.
#[no_mangle]
pub unsafe extern "C" fn bitcask_last_merge_error(
    db: *const bitcask_t,
    code: *mut bitcask_status_t,
    message: *mut *mut std::ffi::c_char,
    os_error: *mut std::ffi::c_int,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live handle.
        let h = unsafe { handle(db, "db") }?;
        let code = out_ptr(code, "code")?;
        let message = out_ptr(message, "message")?;
        let os_error = out_ptr(os_error, "os_error")?;
        let e =
            h.db.stats()?
                .last_merge_error
                .ok_or_else(|| Failure::new(Status::BITCASK_NOT_FOUND, "no merge has failed"))?;
        // The same status, message and errno the failed merge call returned.
        let f = Failure::from(e);
        let p = malloc_copy(c_message(&f.message).as_bytes_with_nul())?;
        // SAFETY: all non-NULL, and the caller promises they are writable.
        unsafe {
            code.write(f.status);
            message.write(p.cast());
            os_error.write(f.os_error);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::bitcask_stat_t;

    #[test]
    fn stats_are_indexed_by_their_number() {
        for (i, s) in bitcask_stat_t::ALL.iter().enumerate() {
            assert_eq!(*s as i32, i as i32);
        }
    }

    /// An I/O failure of a merge hands back its errno with the code and message
    /// (the C, Go and Python tests can only provoke a corruption, whose errno is 0).
    #[test]
    fn last_merge_error_reports_the_errno_of_an_io_failure() {
        use super::{bitcask_last_merge_error, bitcask_t};
        use crate::ffi::{bitcask_free, Status};
        use crate::fs::memfs::{Fault, MemFs, Op, ENOSPC};
        use crate::{Bitcask, Options};
        use std::sync::Arc;

        let fs = MemFs::new();
        let o = Options {
            max_file_size: 1024,
            auto_merge: false,
            ..Options::default()
        };
        let db = Bitcask::open_with_fs("/db", o, Arc::new(fs.process())).unwrap();
        for i in 0..40u32 {
            db.put(format!("k{}", i % 5).as_bytes(), &[7u8; 60])
                .unwrap();
        }
        let h = bitcask_t { db };
        let (mut code, mut msg, mut errno) = (Status::BITCASK_OK, std::ptr::null_mut(), -1);
        // SAFETY: a live handle and writable out-parameters.
        let st = unsafe { bitcask_last_merge_error(&h, &mut code, &mut msg, &mut errno) };
        assert_eq!(st, Status::BITCASK_NOT_FOUND);
        assert!(msg.is_null() && errno == -1, "NOT_FOUND must write nothing");

        fs.inject(Fault {
            op: Op::Create,
            nth: 1,
            errno: ENOSPC,
            sticky: true,
            short: false,
        });
        let err = h.db.merge().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC), "{err}");
        fs.clear_faults();

        // SAFETY: as above.
        let st = unsafe { bitcask_last_merge_error(&h, &mut code, &mut msg, &mut errno) };
        assert_eq!(st, Status::BITCASK_OK);
        assert_eq!((code, errno), (Status::BITCASK_IO, ENOSPC));
        // SAFETY: a NUL-terminated string the library allocated.
        let text = unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(text, err.to_string());
        // SAFETY: allocated by the library for the caller.
        unsafe { bitcask_free(msg.cast()) };
    }
}

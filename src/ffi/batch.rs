//! `bitcask_batch_t`: a write batch, applied all or nothing by `bitcask_write`.

use super::{
    bitcask_status_t, guard, guard_value, handle, handle_mut, key_slice, out_ptr, value_slice,
};
use crate::batch::WriteBatch;
use std::time::Duration;

/// Puts (with or without a TTL) and deletes applied atomically by `bitcask_write`;
/// later operations on the same key win. Not thread-safe while being modified;
/// several threads may pass the same unchanging batch to `bitcask_write` at once.
pub struct bitcask_batch_t {
    pub(crate) batch: WriteBatch,
}

/// Creates an empty batch and stores it in `*out`. Returns `BITCASK_OK`, or
/// `BITCASK_INVALID_ARGUMENT` when `out` is NULL. The caller owns the handle and
/// frees it with `bitcask_batch_destroy`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_create(out: *mut *mut bitcask_batch_t) -> bitcask_status_t {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let h = Box::new(bitcask_batch_t {
            batch: WriteBatch::new(),
        });
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { out.write(Box::into_raw(h)) };
        Ok(())
    })
}

/// Frees a batch. NULL is accepted and ignored.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_destroy(batch: *mut bitcask_batch_t) {
    guard_value((), || {
        if !batch.is_null() {
            // SAFETY: a non-NULL handle came from `Box::into_raw` in
            // `bitcask_batch_create` and the caller gives up ownership.
            drop(unsafe { Box::from_raw(batch) });
        }
    })
}

/// Adds a put of `value` under `key` (both copied; the caller keeps its buffers).
/// The database's size limits (`max_key_size`, `max_value_size`) and empty keys
/// are checked when the batch is written; a length past the format's own limit
/// (65,535-byte keys, 1 GiB values) is refused here, before a byte is read.
/// Returns `BITCASK_OK`; `BITCASK_KEY_TOO_LARGE` / `BITCASK_VALUE_TOO_LARGE` past
/// the format's limit; `BITCASK_INVALID_ARGUMENT` when `batch` is NULL or a slice
/// is NULL with a non-zero length.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_put(
    batch: *mut bitcask_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> bitcask_status_t {
    // SAFETY: the caller's promises are `put`'s.
    unsafe { put(batch, key, key_len, value, value_len, None) }
}

/// `bitcask_batch_put` and `bitcask_batch_put_ttl`.
///
/// Safety: `batch` live and unshared, or NULL; `key` and `value` readable for
/// their lengths or NULL.
unsafe fn put(
    batch: *mut bitcask_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl: Option<Duration>,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live, unshared batch and readable slices.
        let (b, k, v) = unsafe {
            (
                handle_mut(batch, "batch")?,
                key_slice(key, key_len)?,
                value_slice(value, value_len)?,
            )
        };
        match ttl {
            Some(t) => b.batch.put_with_ttl(k, v, t),
            None => b.batch.put(k, v),
        };
        Ok(())
    })
}

/// Adds a put of `value` under `key` (both copied) that expires `ttl_ms`
/// milliseconds after the batch is written, as `bitcask_put_ttl` describes. A
/// `ttl_ms` of 0 or longer than 2^31 - 1 seconds is reported when the batch is
/// written: `bitcask_write` then returns `BITCASK_INVALID_OPTION` and writes
/// nothing (until `bitcask_batch_clear`). Returns as `bitcask_batch_put`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_put_ttl(
    batch: *mut bitcask_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
) -> bitcask_status_t {
    let ttl = Some(Duration::from_millis(ttl_ms));
    // SAFETY: the caller's promises are `put`'s.
    unsafe { put(batch, key, key_len, value, value_len, ttl) }
}

/// Adds a delete of `key` (copied). Returns as `bitcask_batch_put`: an empty key
/// is reported when the batch is written, a key past the format's limit here.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_delete(
    batch: *mut bitcask_batch_t,
    key: *const u8,
    key_len: usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live, unshared batch and a readable slice.
        let (b, k) = unsafe { (handle_mut(batch, "batch")?, key_slice(key, key_len)?) };
        b.batch.delete(k);
        Ok(())
    })
}

/// Removes every operation, so the batch can be reused. Returns `BITCASK_OK`, or
/// `BITCASK_INVALID_ARGUMENT` when `batch` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_clear(batch: *mut bitcask_batch_t) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live, unshared batch.
        unsafe { handle_mut(batch, "batch") }?.batch.clear();
        Ok(())
    })
}

/// Stores the number of operations in `*count`. Returns `BITCASK_OK`, or
/// `BITCASK_INVALID_ARGUMENT` when a pointer is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_count(
    batch: *const bitcask_batch_t,
    count: *mut usize,
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live batch.
        let b = unsafe { handle(batch, "batch") }?;
        let count = out_ptr(count, "count")?;
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { count.write(b.batch.len()) };
        Ok(())
    })
}

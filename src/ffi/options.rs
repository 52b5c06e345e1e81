//! `bitcask_options_t`: open options as an opaque handle with one setter per option,
//! so that options can be added without changing any struct layout.
//!
//! Setters never fail on a value: the engine checks ranges at `bitcask_open`, which
//! reports `BITCASK_INVALID_OPTION` naming the option. A value the engine's types
//! cannot even hold (an unknown sync policy, a percentage above 255) is remembered
//! here and reported the same way at open.

use super::{bitcask_status_t, guard, guard_value, handle_mut, out_ptr, Failure};
use crate::error::Error;
use crate::options::{OpenProgress, Options, Progress, SyncPolicy};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// How `bitcask_options_set_sync` makes writes durable. The numbers are stable.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bitcask_sync_t {
    /// Left to the OS (the default).
    BITCASK_SYNC_NEVER = 0,
    /// fdatasync before every write returns.
    BITCASK_SYNC_ALWAYS = 1,
    /// A background fdatasync at most `interval_ms` apart.
    BITCASK_SYNC_EVERY_MS = 2,
}

/// Open options. Create with `bitcask_options_create`, free with
/// `bitcask_options_destroy`. Not thread-safe while being set; `bitcask_open` copies
/// it, so it may be destroyed or reused right after.
pub struct bitcask_options_t {
    pub(crate) opts: Options,
    /// The first setter value that `Options` cannot represent: (option, reason).
    pub(crate) invalid: Option<(&'static str, String)>,
}

impl bitcask_options_t {
    /// The options to open with, or the `InvalidOption` error a setter deferred.
    pub(crate) fn resolve(&self) -> Result<Options, Failure> {
        match &self.invalid {
            Some((name, reason)) => Err(Error::InvalidOption {
                name,
                reason: reason.clone(),
            }
            .into()),
            None => Ok(self.opts.clone()),
        }
    }

    fn defer(&mut self, name: &'static str, reason: String) {
        self.invalid.get_or_insert((name, reason));
    }
}

/// Creates options holding the defaults and stores the handle in `*out`.
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `out` is NULL. The
/// caller owns the handle and frees it with `bitcask_options_destroy`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_create(
    out: *mut *mut bitcask_options_t,
) -> bitcask_status_t {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let h = Box::new(bitcask_options_t {
            opts: Options::default(),
            invalid: None,
        });
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { out.write(Box::into_raw(h)) };
        Ok(())
    })
}

/// Frees options made by `bitcask_options_create`. NULL is accepted and ignored.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_destroy(opts: *mut bitcask_options_t) {
    guard_value((), || {
        if !opts.is_null() {
            // SAFETY: a non-NULL handle came from `Box::into_raw` in
            // `bitcask_options_create` and the caller gives up ownership.
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}

/// Runs a setter on a non-NULL handle.
unsafe fn set(
    opts: *mut bitcask_options_t,
    f: impl FnOnce(&mut bitcask_options_t),
) -> bitcask_status_t {
    guard(|| {
        // SAFETY: the caller promises a live options handle not used concurrently.
        let h = unsafe { handle_mut(opts, "options") }?;
        f(h);
        Ok(())
    })
}

/// Sets when writes reach the disk: `policy` is a `bitcask_sync_t`; `interval_ms`
/// is used only by `BITCASK_SYNC_EVERY_MS` (and must then be at least 1). An unknown
/// policy fails the open with `BITCASK_INVALID_OPTION`. Returns `BITCASK_OK`, or
/// `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_sync(
    opts: *mut bitcask_options_t,
    policy: i32,
    interval_ms: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        set(opts, |h| {
            use bitcask_sync_t::*;
            match policy {
                p if p == BITCASK_SYNC_NEVER as i32 => h.opts.sync = SyncPolicy::Never,
                p if p == BITCASK_SYNC_ALWAYS as i32 => h.opts.sync = SyncPolicy::Always,
                p if p == BITCASK_SYNC_EVERY_MS as i32 => {
                    h.opts.sync = SyncPolicy::EveryMs(interval_ms)
                }
                _ => h.defer("sync", format!("unknown sync policy {policy}")),
            }
        })
    }
}

/// Sets the size at which the active data file becomes immutable (default
/// 128 MiB; 1024 to 2 GiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_max_file_size(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.max_file_size = value) }
}

/// Sets the largest key accepted (default 4096; 1 to 65535).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_max_key_size(
    opts: *mut bitcask_options_t,
    value: usize,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.max_key_size = value) }
}

/// Sets the largest value accepted (default 64 MiB; at most 1 GiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_max_value_size(
    opts: *mut bitcask_options_t,
    value: usize,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.max_value_size = value) }
}

/// Sets the bytes of writes held in memory before a write(2) (default 0: every
/// write reaches the OS before returning; a buffer speeds bulk loads and loses at
/// most its contents if the process crashes; at most 1 GiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_write_buffer_size(
    opts: *mut bitcask_options_t,
    value: usize,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.write_buffer_size = value) }
}

/// Sets whether values are read through read-only memory maps of the data files
/// (default true: a read makes no system call). With maps, an I/O error while
/// the kernel pages a file in, or a data file cut short by another program,
/// raises SIGBUS instead of returning `BITCASK_IO`; false reads with pread(2).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_mmap(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.mmap = value) }
}

/// Sets whether open creates the database when the directory holds none
/// (default true). False makes `bitcask_open` return `BITCASK_DB_NOT_FOUND`
/// there, so that a mistyped path is not a new, empty database.
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_create_if_missing(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.create_if_missing = value) }
}

/// Sets whether open fails with `BITCASK_DB_EXISTS` when the directory already
/// holds a database (default false).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_error_if_exists(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.error_if_exists = value) }
}

/// Sets whether the active data file is kept zero-filled ahead of durable
/// writes, and the next file made ahead (default true): a durable write's
/// fdatasync then commits no file metadata. Costs up to 13 MiB of allocated space
/// past the data (`BITCASK_STAT_PREALLOCATED_BYTES`); files are trimmed to their
/// data when sealed or closed.
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_preallocate(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.preallocate = value) }
}

/// Sets whether concurrent writers share one append and one fsync (group
/// commit; default true).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_write_merging(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.write_merging = value) }
}

/// Opens without the writer lock; every write then returns `BITCASK_READ_ONLY`
/// (default false).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_read_only(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.read_only = value) }
}

/// Skips corrupt records in immutable files at open instead of failing with
/// `BITCASK_CORRUPTION` (default false).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_salvage(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.salvage = value) }
}

/// Sets whether merges run automatically when a trigger fires (default true).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_auto_merge(
    opts: *mut bitcask_options_t,
    value: bool,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.auto_merge = value) }
}

/// Sets the dead bytes of one file that trigger a merge (default 512 MiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_trigger_dead_bytes(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.merge_trigger_dead_bytes = value) }
}

/// Sets the dead bytes over all immutable files that trigger a merge (default
/// 512 MiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_trigger_total_dead_bytes(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.merge_trigger_total_dead_bytes = value) }
}

/// Sets the dead bytes from which a file is included once merging (default
/// 128 MiB).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_threshold_dead_bytes(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.merge_threshold_dead_bytes = value) }
}

/// Caps merge reads plus writes, in bytes per second; 0 (the default) means no
/// cap.
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
/// An out-of-range value fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_bytes_per_sec(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.merge_bytes_per_sec = value) }
}

/// Sets how often, in milliseconds, the background thread checks the merge
/// triggers (default 1000; must be at least 1).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL; 0 fails
/// `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_check_interval_ms(
    opts: *mut bitcask_options_t,
    value: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        set(opts, |h| {
            h.opts.merge_check_interval = Duration::from_millis(value)
        })
    }
}

/// Stores a percentage, deferring a value the engine's `u8` cannot hold.
fn percent(h: &mut bitcask_options_t, name: &'static str, value: u32) -> Option<u8> {
    match u8::try_from(value) {
        Ok(v) => Some(v),
        Err(_) => {
            h.defer(name, "is a percentage, 0 to 100".into());
            None
        }
    }
}

/// Sets the fragmentation percentage (dead bytes over file size) of one file that
/// triggers a merge (default 60; 0 to 100).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL; a value
/// above 100 fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_trigger_fragmentation(
    opts: *mut bitcask_options_t,
    percentage: u32,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        set(opts, |h| {
            if let Some(v) = percent(h, "merge_trigger_fragmentation", percentage) {
                h.opts.merge_trigger_fragmentation = v;
            }
        })
    }
}

/// Sets the fragmentation percentage from which a file is included once merging
/// (default 40; 0 to 100).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL; a value
/// above 100 fails `bitcask_open` with `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_merge_threshold_fragmentation(
    opts: *mut bitcask_options_t,
    percentage: u32,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        set(opts, |h| {
            if let Some(v) = percent(h, "merge_threshold_fragmentation", percentage) {
                h.opts.merge_threshold_fragmentation = v;
            }
        })
    }
}

/// Sets the TTL, in milliseconds, of every put that names none (`bitcask_put`,
/// `bitcask_batch_put`): each such key expires that long after its write, as
/// `bitcask_put_ttl` describes. 0 (the default) means no default TTL: plain
/// puts never expire.
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL; a
/// value above 2^31 - 1 seconds fails `bitcask_open` with
/// `BITCASK_INVALID_OPTION`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_default_ttl(
    opts: *mut bitcask_options_t,
    ttl_ms: u64,
) -> bitcask_status_t {
    // SAFETY: forwarded caller promise.
    unsafe {
        set(opts, |h| {
            h.opts.default_ttl = (ttl_ms != 0).then(|| Duration::from_millis(ttl_ms))
        })
    }
}

/// How far `bitcask_open` has got, as passed to a `bitcask_progress_fn`: data
/// files loaded and their bytes, of all the database holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bitcask_progress_t {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A progress callback: `progress` is valid for the call only; `user_data` is
/// what `bitcask_options_set_open_progress` was given.
pub type bitcask_progress_fn =
    Option<unsafe extern "C" fn(progress: *const bitcask_progress_t, user_data: *mut c_void)>;

/// Makes `bitcask_open` call `progress(&p, user_data)` once per data file it has
/// loaded, so that a service can log how far a long open has got. Calls come
/// from threads of the open (not necessarily the caller's), never two at once,
/// and only while `bitcask_open` runs; the last has `files_done == files_total`
/// (the keydir is then built). `user_data` must stay valid, and usable from
/// those threads, until `bitcask_open` returns. The callback must not call into
/// this database. A NULL `progress` removes the callback (the default).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_open_progress(
    opts: *mut bitcask_options_t,
    progress: bitcask_progress_fn,
    user_data: *mut c_void,
) -> bitcask_status_t {
    // The pointer crosses threads as an integer: the caller vouches for it.
    let user_data = user_data as usize;
    let callback = progress.map(|f| {
        OpenProgress(Arc::new(move |p: Progress| {
            let c = bitcask_progress_t {
                files_done: p.files_done,
                files_total: p.files_total,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            };
            // SAFETY: the caller of `bitcask_options_set_open_progress` promised
            // a callable `progress` and a `user_data` valid on any thread until
            // `bitcask_open` returns, which is the only time the engine calls it.
            unsafe { f(&c, user_data as *mut c_void) }
        }))
    });
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.open_progress = callback) }
}

/// What a `bitcask_event_t` reports. The numbers are stable.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bitcask_event_kind_t {
    /// A merge finished and removed files: `bytes` given back, `duration_us`.
    BITCASK_EVENT_MERGE_COMPLETED = 0,
    /// A merge failed (`error`, `error_message`, and `file` when the error names
    /// one); an automatic one backs off.
    BITCASK_EVENT_MERGE_FAILED = 1,
    /// A write or fdatasync failed (`error`, `file`): writes are refused until
    /// the database is reopened.
    BITCASK_EVENT_WRITES_REFUSED = 2,
    /// Open cut a torn tail of `bytes` from `file` at `offset`.
    BITCASK_EVENT_DROPPED_AT_OPEN = 3,
    /// A salvage open skipped `bytes` of damage in `file` at `offset`.
    BITCASK_EVENT_SALVAGED_AT_OPEN = 4,
    /// An fdatasync of the active `file` took `duration_us`, at least the
    /// threshold of `bitcask_options_set_slow_sync_ms`.
    BITCASK_EVENT_SLOW_SYNC = 5,
}

/// The value of a numeric `bitcask_event_t` field that its event does not have.
pub const BITCASK_EVENT_NO_VALUE: u64 = u64::MAX;

/// One event, as passed to a `bitcask_event_fn`. Every pointer is valid for the
/// call only; copy what you keep.
#[repr(C)]
#[derive(Debug)]
pub struct bitcask_event_t {
    pub kind: bitcask_event_kind_t,
    /// The kind as a NUL-terminated lowercase name (`"merge_failed"`).
    pub name: *const std::ffi::c_char,
    /// A one-line description with every field, as the library would log it.
    pub message: *const std::ffi::c_char,
    /// The data file concerned (NUL-terminated), or NULL.
    pub file: *const std::ffi::c_char,
    /// A byte offset in `file`, a byte count and a duration in microseconds;
    /// each `BITCASK_EVENT_NO_VALUE` when the event has none.
    pub offset: u64,
    pub bytes: u64,
    pub duration_us: u64,
    /// The error's status code (`BITCASK_OK` when the event has none) and its
    /// message (NULL when none).
    pub error: bitcask_status_t,
    pub error_message: *const std::ffi::c_char,
}

/// An event callback: `event` is valid for the call only; `user_data` is what
/// `bitcask_options_set_event_listener` was given.
pub type bitcask_event_fn =
    Option<unsafe extern "C" fn(event: *const bitcask_event_t, user_data: *mut c_void)>;

/// Makes the database call `listener(&event, user_data)` for each of its events:
/// failed and completed merges, writes refused after a failed write or fsync,
/// bytes dropped or salvaged at open, slow fdatasyncs (see
/// `bitcask_event_kind_t`). Calls come from any thread (the database's
/// background thread; for a read-only database, the opening thread during
/// `bitcask_open`), one at a time per database, never with a lock of the library held; a slow listener
/// delays the hint files and `BITCASK_SYNC_EVERY_MS` syncs queued behind it.
/// `user_data` must stay valid, and usable from any thread, until the database
/// is closed or destroyed. A NULL `listener` removes it (the default).
///
/// Returns `BITCASK_OK`, or `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_event_listener(
    opts: *mut bitcask_options_t,
    listener: bitcask_event_fn,
    user_data: *mut c_void,
) -> bitcask_status_t {
    // The pointer crosses threads as an integer: the caller vouches for it.
    let user_data = user_data as usize;
    let callback = listener.map(|f| {
        crate::event::EventListener(Arc::new(move |e: &crate::event::Event| {
            let c = |s: String| std::ffi::CString::new(s.replace('\0', "?")).unwrap_or_default();
            let name = c(e.kind.name().to_string());
            let message = c(e.to_string());
            let file = e.file.as_ref().map(|p| c(p.display().to_string()));
            let failure = e.error.clone().map(Failure::from);
            let error_message = failure.as_ref().map(|f| c(f.message.clone()));
            let ptr =
                |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
            let ev = bitcask_event_t {
                kind: match e.kind {
                    crate::EventKind::MergeCompleted => {
                        bitcask_event_kind_t::BITCASK_EVENT_MERGE_COMPLETED
                    }
                    crate::EventKind::MergeFailed => {
                        bitcask_event_kind_t::BITCASK_EVENT_MERGE_FAILED
                    }
                    crate::EventKind::WritesRefused => {
                        bitcask_event_kind_t::BITCASK_EVENT_WRITES_REFUSED
                    }
                    crate::EventKind::DroppedAtOpen => {
                        bitcask_event_kind_t::BITCASK_EVENT_DROPPED_AT_OPEN
                    }
                    crate::EventKind::SalvagedAtOpen => {
                        bitcask_event_kind_t::BITCASK_EVENT_SALVAGED_AT_OPEN
                    }
                    crate::EventKind::SlowSync => bitcask_event_kind_t::BITCASK_EVENT_SLOW_SYNC,
                },
                name: name.as_ptr(),
                message: message.as_ptr(),
                file: ptr(&file),
                offset: e.offset.unwrap_or(BITCASK_EVENT_NO_VALUE),
                bytes: e.bytes.unwrap_or(BITCASK_EVENT_NO_VALUE),
                duration_us: e
                    .duration
                    .map_or(BITCASK_EVENT_NO_VALUE, |d| d.as_micros() as u64),
                error: failure
                    .as_ref()
                    .map_or(bitcask_status_t::BITCASK_OK, |f| f.status),
                error_message: ptr(&error_message),
            };
            // SAFETY: the caller of `bitcask_options_set_event_listener` promised
            // a callable `listener` and a `user_data` valid on any thread while
            // the database is open; `ev` and its strings outlive the call.
            unsafe { f(&ev, user_data as *mut c_void) }
        }))
    });
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.event_listener = callback) }
}

/// Sets how long an fdatasync of the active file must take to be reported as a
/// `BITCASK_EVENT_SLOW_SYNC` event: `threshold_ms` milliseconds (0 reports every
/// sync), or none when negative. Default 1000. Returns `BITCASK_OK`, or
/// `BITCASK_INVALID_ARGUMENT` when `opts` is NULL.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_slow_sync_ms(
    opts: *mut bitcask_options_t,
    threshold_ms: i64,
) -> bitcask_status_t {
    let t = u64::try_from(threshold_ms).ok().map(Duration::from_millis);
    // SAFETY: forwarded caller promise.
    unsafe { set(opts, |h| h.opts.slow_sync_threshold = t) }
}

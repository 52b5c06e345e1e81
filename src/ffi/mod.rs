//! The C ABI. Everything `extern "C"` lives under this module, one file per handle
//! type; this file holds what they share: status codes, the thread-local last error,
//! the panic guard, byte-slice and out-parameter helpers, versioning and
//! `bitcask_free`. `include/bitcask.h` is generated from these sources by cbindgen.
//!
//! Every entry point runs its body inside [`guard`] so that neither a panic nor an
//! engine error can cross the boundary as anything but a status code.
// The header's preamble states the pointer contract once for every function, so the
// per-function `# Safety` sections clippy asks for would only repeat it.
#![allow(clippy::missing_safety_doc)]
// C names: handle and enum types follow the header's `bitcask_*_t` convention.
#![allow(non_camel_case_types)]

pub mod batch;
pub mod db;
pub mod iter;
pub mod options;
pub mod snapshot;

use crate::error::Error;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Major version of the library; equals the major version in `Cargo.toml`.
pub const BITCASK_VERSION_MAJOR: u32 = 0;
/// Minor version of the library; equals the minor version in `Cargo.toml`.
pub const BITCASK_VERSION_MINOR: u32 = 1;
/// Patch version of the library; equals the patch version in `Cargo.toml`.
pub const BITCASK_VERSION_PATCH: u32 = 0;

// The macros are literals because cbindgen cannot evaluate `env!`; this makes a
// version bump in Cargo.toml fail the build until they follow.
const _: () = {
    assert!(BITCASK_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(BITCASK_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(BITCASK_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
};

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// The result of every fallible function. The numbers are part of the ABI: they
/// never change, and new codes are only ever appended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bitcask_status_t {
    /// Success.
    BITCASK_OK = 0,
    /// The key (or, for an iterator, a current entry) does not exist. Not an error of
    /// the database; no out-parameter is written.
    BITCASK_NOT_FOUND = 1,
    /// A NULL pointer where one is not allowed, a NULL slice with a non-zero length,
    /// a path that is not UTF-8, or a call that is not valid in the handle's state.
    BITCASK_INVALID_ARGUMENT = 2,
    /// The caller's buffer is smaller than the value; the size needed was reported.
    BITCASK_BUFFER_TOO_SMALL = 3,
    /// The library panicked (a bug); the message says where. The handle may still
    /// be used, but destroying and reopening is the safe course.
    BITCASK_PANIC = 4,
    /// An operating-system call failed; `bitcask_last_os_error` gives errno.
    BITCASK_IO = 5,
    /// Another handle, in this or another process, holds the directory's writer lock.
    BITCASK_LOCKED = 6,
    /// A write on a database opened read-only.
    BITCASK_READ_ONLY = 7,
    /// The database was closed (by `bitcask_close`, or, for an iterator, because its
    /// database handle was closed or destroyed).
    BITCASK_CLOSED = 8,
    /// An earlier write or fsync failed; writes are refused until reopen.
    BITCASK_WRITES_REFUSED = 9,
    /// A record or hint entry failed its checksum or framing; the message names the
    /// file and offset.
    BITCASK_CORRUPTION = 10,
    /// A file that is not a libbitcask file of a version this build can read.
    BITCASK_BAD_FORMAT = 11,
    /// An empty key was written.
    BITCASK_EMPTY_KEY = 12,
    /// A key longer than the `max_key_size` option.
    BITCASK_KEY_TOO_LARGE = 13,
    /// A value longer than the `max_value_size` option.
    BITCASK_VALUE_TOO_LARGE = 14,
    /// A batch larger than the largest single write.
    BITCASK_BATCH_TOO_LARGE = 15,
    /// An option value out of range, reported at open; the message names the option.
    BITCASK_INVALID_OPTION = 16,
    /// An engine error this version of the C ABI has no code for yet.
    BITCASK_OTHER = 17,
    /// The key exists and never expires (from `bitcask_ttl`, which then stores
    /// `UINT64_MAX` as the time left). Not an error of the database.
    BITCASK_NO_EXPIRY = 18,
    /// No database at the path, and `bitcask_options_set_create_if_missing` is
    /// false.
    BITCASK_DB_NOT_FOUND = 19,
    /// A database exists at the path, and `bitcask_options_set_error_if_exists`
    /// is true.
    BITCASK_DB_EXISTS = 20,
}

use bitcask_status_t as Status;

impl Status {
    /// The static description behind `bitcask_strerror`.
    fn text(self) -> &'static CStr {
        match self {
            Status::BITCASK_OK => c"ok",
            Status::BITCASK_NOT_FOUND => c"not found",
            Status::BITCASK_INVALID_ARGUMENT => c"invalid argument",
            Status::BITCASK_BUFFER_TOO_SMALL => c"buffer too small",
            Status::BITCASK_PANIC => c"internal panic",
            Status::BITCASK_IO => c"I/O error",
            Status::BITCASK_LOCKED => c"database locked by another writer",
            Status::BITCASK_READ_ONLY => c"database is read-only",
            Status::BITCASK_CLOSED => c"database is closed",
            Status::BITCASK_WRITES_REFUSED => c"writes refused after an earlier failure",
            Status::BITCASK_CORRUPTION => c"corruption",
            Status::BITCASK_BAD_FORMAT => c"not a readable libbitcask file",
            Status::BITCASK_EMPTY_KEY => c"empty key",
            Status::BITCASK_KEY_TOO_LARGE => c"key too large",
            Status::BITCASK_VALUE_TOO_LARGE => c"value too large",
            Status::BITCASK_BATCH_TOO_LARGE => c"batch too large",
            Status::BITCASK_INVALID_OPTION => c"invalid option",
            Status::BITCASK_OTHER => c"other error",
            Status::BITCASK_NO_EXPIRY => c"key has no expiry",
            Status::BITCASK_DB_NOT_FOUND => c"no database at the path",
            Status::BITCASK_DB_EXISTS => c"database already exists",
        }
    }

    /// Every status, indexed by its number.
    const ALL: [Status; 21] = [
        Status::BITCASK_OK,
        Status::BITCASK_NOT_FOUND,
        Status::BITCASK_INVALID_ARGUMENT,
        Status::BITCASK_BUFFER_TOO_SMALL,
        Status::BITCASK_PANIC,
        Status::BITCASK_IO,
        Status::BITCASK_LOCKED,
        Status::BITCASK_READ_ONLY,
        Status::BITCASK_CLOSED,
        Status::BITCASK_WRITES_REFUSED,
        Status::BITCASK_CORRUPTION,
        Status::BITCASK_BAD_FORMAT,
        Status::BITCASK_EMPTY_KEY,
        Status::BITCASK_KEY_TOO_LARGE,
        Status::BITCASK_VALUE_TOO_LARGE,
        Status::BITCASK_BATCH_TOO_LARGE,
        Status::BITCASK_INVALID_OPTION,
        Status::BITCASK_OTHER,
        Status::BITCASK_NO_EXPIRY,
        Status::BITCASK_DB_NOT_FOUND,
        Status::BITCASK_DB_EXISTS,
    ];
}

/// Why a call failed: its status, the detailed message and the OS error behind it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: Status,
    pub message: String,
    pub os_error: i32,
}

impl Failure {
    pub fn new(status: Status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            os_error: 0,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Status::BITCASK_INVALID_ARGUMENT, message)
    }

    pub fn not_found() -> Failure {
        Failure::new(Status::BITCASK_NOT_FOUND, "key not found")
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::Io { .. } => Status::BITCASK_IO,
            Error::Locked { .. } => Status::BITCASK_LOCKED,
            Error::ReadOnly => Status::BITCASK_READ_ONLY,
            Error::Closed => Status::BITCASK_CLOSED,
            Error::WritesRefused { .. } => Status::BITCASK_WRITES_REFUSED,
            Error::Corruption { .. } => Status::BITCASK_CORRUPTION,
            Error::BadFormat { .. } => Status::BITCASK_BAD_FORMAT,
            Error::EmptyKey => Status::BITCASK_EMPTY_KEY,
            Error::KeyTooLarge { .. } => Status::BITCASK_KEY_TOO_LARGE,
            Error::ValueTooLarge { .. } => Status::BITCASK_VALUE_TOO_LARGE,
            Error::BatchTooLarge { .. } => Status::BITCASK_BATCH_TOO_LARGE,
            Error::InvalidOption { .. } => Status::BITCASK_INVALID_OPTION,
            Error::DatabaseNotFound { .. } => Status::BITCASK_DB_NOT_FOUND,
            Error::DatabaseExists { .. } => Status::BITCASK_DB_EXISTS,
            #[allow(unreachable_patterns)]
            _ => Status::BITCASK_OTHER,
        };
        Failure {
            status,
            message: e.to_string(),
            os_error: e.raw_os_error().unwrap_or(0),
        }
    }
}

/// What `bitcask_last_error_message` and `bitcask_last_os_error` report.
struct LastError {
    message: CString,
    os_error: i32,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        os_error: 0,
    });
}

/// A message as a C string. A path from C cannot hold NUL, but an engine message
/// might quote one: it is spelled out instead of cutting the message short.
pub(crate) fn c_message(message: &str) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

fn set_last_error(f: &Failure) {
    let message = c_message(&f.message);
    // `try_with`: during thread teardown the slot may be gone; the status still tells.
    let _ = LAST_ERROR.try_with(|l| {
        *l.borrow_mut() = LastError {
            message,
            os_error: f.os_error,
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic payload");
    format!("panic in libbitcask: {what}")
}

/// Runs an entry point's body: maps its failure or panic to a status code and
/// records the detailed message for `bitcask_last_error_message`.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Failure>) -> bitcask_status_t {
    let failure = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return Status::BITCASK_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(Status::BITCASK_PANIC, panic_message(&*payload)),
    };
    set_last_error(&failure);
    failure.status
}

/// `guard` for entry points that cannot report a status (destroy, getters): a
/// panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Borrows `(ptr, len)` from C. A zero length is the empty slice whatever `ptr` is.
///
/// Safety: unless NULL, `ptr` must point to `len` readable bytes that stay valid and
/// unchanged for `'a`.
pub(crate) unsafe fn slice<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "{what} is NULL with length {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: non-NULL and at most isize::MAX long; the caller promises `len`
    // readable bytes that outlive the borrow.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a key. A length beyond the format's limit is refused before a byte is
/// read: no such key can exist, and a lookup would compare (read) every claimed
/// byte, past the end of a caller's buffer whose length was wrong.
///
/// Safety: as `slice`.
pub(crate) unsafe fn key_slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len > crate::format::MAX_KEY_LEN_LIMIT {
        return Err(Error::KeyTooLarge {
            len,
            max: crate::format::MAX_KEY_LEN_LIMIT,
        }
        .into());
    }
    // SAFETY: forwarded.
    unsafe { slice(ptr, len, "key") }
}

/// Borrows a value, refusing a length beyond the format's limit before a byte is
/// read. Safety: as `slice`.
pub(crate) unsafe fn value_slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len > crate::format::MAX_VALUE_LEN_LIMIT {
        return Err(Error::ValueTooLarge {
            len,
            max: crate::format::MAX_VALUE_LEN_LIMIT,
        }
        .into());
    }
    // SAFETY: forwarded.
    unsafe { slice(ptr, len, "value") }
}

/// Borrows a handle from C, reporting NULL as an invalid argument.
///
/// Safety: unless NULL, `p` must point to a live `T` made by this library that no
/// other thread mutates for `'a`.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises a live handle; `as_ref` handles NULL.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// `handle` for handles the call mutates.
///
/// Safety: as for `handle`, and no other reference to `*p` may exist for `'a`.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller promises a live, unaliased handle; `as_mut` handles NULL.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// Checks an out-parameter before any work is done, so that a NULL one fails the
/// call without side effects.
pub(crate) fn out_ptr<T>(p: *mut T, what: &str) -> Result<*mut T, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    Ok(p)
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// Safety: unless NULL, `p` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn utf8<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Failure::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// Copies `bytes` into a `malloc`ed buffer, so that `bitcask_free` (which is `free`)
/// releases it whatever allocator the Rust side uses.
pub(crate) fn malloc_copy(bytes: &[u8]) -> Result<*mut u8, Failure> {
    // SAFETY: malloc has no preconditions; one byte at least so that an empty value
    // still gets a unique, freeable, non-NULL pointer.
    let p = unsafe { libc::malloc(bytes.len().max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(Failure::new(
            Status::BITCASK_IO,
            format!("out of memory allocating {} bytes", bytes.len()),
        ));
    }
    // SAFETY: `p` was just allocated with room for `bytes.len()` bytes and cannot
    // overlap `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    Ok(p)
}

/// A pointer for a borrowed slice handed to C: never NULL, even when empty, so a
/// caller that checks for NULL is not misled.
pub(crate) fn borrowed_ptr(bytes: &[u8]) -> *const u8 {
    static EMPTY: u8 = 0;
    if bytes.is_empty() {
        &EMPTY
    } else {
        bytes.as_ptr()
    }
}

/// The static, NUL-terminated description of a status code; never NULL. Unknown
/// codes give "unknown status". The string is owned by the library: do not free it.
#[no_mangle]
pub extern "C" fn bitcask_strerror(code: i32) -> *const c_char {
    let text = usize::try_from(code)
        .ok()
        .and_then(|i| Status::ALL.get(i))
        .map_or(c"unknown status", |s| s.text());
    text.as_ptr()
}

/// The detailed message of the last call on this thread that returned an error
/// (for example the file and offset of a corruption, or the OS error of an I/O
/// failure); "" before any error. Never NULL. Borrowed: valid until the next
/// `bitcask_` call on this thread; do not free it.
#[no_mangle]
pub extern "C" fn bitcask_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|l| l.borrow().message.as_ptr())
            .unwrap_or(c"".as_ptr())
    })
}

/// The OS error number (errno) behind the last error on this thread, or 0 when that
/// error did not come from the operating system.
#[no_mangle]
pub extern "C" fn bitcask_last_os_error() -> c_int {
    guard_value(0, || {
        LAST_ERROR.try_with(|l| l.borrow().os_error).unwrap_or(0)
    })
}

/// The library's version, "MAJOR.MINOR.PATCH", equal to the `BITCASK_VERSION_*`
/// macros of the header it was built with. Static: do not free it.
#[no_mangle]
pub extern "C" fn bitcask_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The on-disk format version this library reads and writes.
#[no_mangle]
pub extern "C" fn bitcask_format_version() -> u32 {
    crate::FORMAT_VERSION
}

/// Frees a buffer the library allocated for the caller (`bitcask_get_alloc`,
/// `bitcask_last_merge_error`).
/// NULL is accepted and ignored. Freeing anything else is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bitcask_free(ptr: *mut c_void) {
    // SAFETY: the library hands out only `malloc`ed buffers to be freed here, and
    // free(NULL) does nothing.
    unsafe { libc::free(ptr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let st = guard(|| panic!("boom"));
        assert_eq!(st, Status::BITCASK_PANIC);
        // SAFETY: the message pointer is valid until the next call on this thread.
        let msg = unsafe { CStr::from_ptr(bitcask_last_error_message()) };
        assert!(msg.to_str().unwrap().contains("boom"), "{msg:?}");
    }

    #[test]
    fn every_status_has_its_own_text_at_its_number() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as i32, i as i32);
            // SAFETY: strerror returns a static NUL-terminated string.
            let t = unsafe { CStr::from_ptr(bitcask_strerror(i as i32)) };
            assert_eq!(t, s.text());
        }
        // SAFETY: as above.
        let t = unsafe { CStr::from_ptr(bitcask_strerror(-1)) };
        assert_eq!(t, c"unknown status");
    }
}

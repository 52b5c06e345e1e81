//! Read-only memory maps of data files, and the one other system call std does
//! not wrap (`sync_file_range`): the one place outside `src/ffi` with `unsafe`
//! code.
//!
//! A data file's bytes never change once written (files are append-only, then
//! immutable), so a shared read-only mapping can hand out `&[u8]` over them
//! without a system call or a copy. What a mapping risks, and why the engine
//! accepts it (ARCHITECTURE.md says the same):
//! - A byte of the file read past its end raises SIGBUS. The engine only reads
//!   ranges a keydir entry names, and those lie below the file's written length;
//!   it truncates a file only past the end of anything the keydir names (a torn
//!   tail at open, the bytes of a failed append). Another program truncating a
//!   file under an open database would crash the process: the directory belongs
//!   to the engine while it holds the writer lock.
//! - An I/O error while the kernel pages the file in raises SIGBUS too, where
//!   `pread` would return `EIO`. `Options::mmap = false` keeps every read on
//!   `pread`.
//! - Checksums are verified on every read either way.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// Starts writing `len` bytes of `fd` at `offset` to the device without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A hint: on failure the next
/// fdatasync writes them all the same.
pub fn start_writeback(fd: RawFd, offset: u64, len: u64) {
    // SAFETY: the call takes no pointer; a bad descriptor or range is an error
    // return, ignored on purpose.
    let _ = unsafe {
        libc::sync_file_range(
            fd,
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// A read-only, shared mapping of the first `len` bytes of a file (pages past
/// the file's end included: the active file is mapped ahead of its writes, and
/// `write(2)`s into it show through the shared mapping). Unmapped on drop.
#[derive(Debug)]
pub struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; reading it from
// several threads at once is what shared memory is for.
unsafe impl Send for Map {}
// SAFETY: as for `Send`: `&Map` only hands out shared reads.
unsafe impl Sync for Map {}

impl Map {
    /// Maps `len` bytes of `fd` from offset 0. `len` must be above 0.
    pub fn new(fd: RawFd, len: usize) -> io::Result<Map> {
        if len == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint), read-only, of a
        // descriptor the caller holds open; nothing else is aliased.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Map { ptr, len })
    }

    /// `n` bytes at `offset`, or `None` when they are not all inside the mapping.
    /// The caller reads only bytes the file holds (see the module doc).
    pub fn get(&self, offset: u64, n: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        if start.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: `start + n <= len`, so the range lies inside the live mapping,
        // which outlives the borrow of `self`; the bytes are written once, before
        // the keydir names them, and never change after.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), n) })
    }

    /// Asks the kernel to read the mapped file ahead, asynchronously (a hint).
    pub fn will_need(&self) {
        // SAFETY: advice on exactly the live mapping; it changes no contents.
        unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.len, libc::MADV_WILLNEED) };
    }

    /// Asks the CPU to start loading the cache lines of `n` bytes at `offset`
    /// (when inside the mapping), so that reads of many scattered records wait for
    /// memory in parallel rather than one after another. A hint: it never faults.
    pub fn prefetch(&self, offset: u64, n: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let Some(bytes) = self.get(offset, n) else {
                return;
            };
            for line in bytes.chunks(64) {
                // SAFETY: a prefetch of an address inside the live mapping; the
                // instruction reads nothing architecturally and cannot fault.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        line.as_ptr().cast(),
                    )
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (offset, n);
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped once; no
        // borrow of the bytes outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn map_sees_bytes_appended_after_it_was_made() {
        let path = std::env::temp_dir().join(format!("bitcask-map-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(b"hello").unwrap();
        let m = Map::new(f.as_raw_fd(), 1 << 20).unwrap();
        assert_eq!(m.get(0, 5), Some(&b"hello"[..]));
        f.write_all(b" world").unwrap();
        assert_eq!(m.get(5, 6), Some(&b" world"[..]));
        assert_eq!(m.get((1 << 20) - 1, 2), None);
        assert_eq!(m.get(u64::MAX, 1), None);
    }
}

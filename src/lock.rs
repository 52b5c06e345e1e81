//! The writer lock: an exclusive `flock` on `LOCK` in the database directory. The
//! kernel drops it when the process dies, so a crash never leaves a stale lock.

use crate::error::{Error, Result};
use crate::format::LOCK_FILE;
use crate::fs::{Fs, LockGuard};
use std::path::Path;

/// Held for as long as the database is open for writing.
#[derive(Debug)]
pub struct DirLock {
    _guard: Box<dyn LockGuard>,
}

impl DirLock {
    /// Takes the lock or fails at once with `Error::Locked`; never waits. flock locks
    /// belong to the open file description, so a second open in the same process
    /// conflicts too, as it must.
    pub fn acquire(fs: &dyn Fs, dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        match fs.lock(&path) {
            Ok(guard) => Ok(DirLock { _guard: guard }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked {
                path: dir.to_path_buf(),
            }),
            Err(e) => Err(Error::io("opening and locking", &path, e)),
        }
    }
}

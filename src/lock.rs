//! The writer lock: an exclusive `flock` on `LOCK` in the database directory. The
//! kernel drops it when the process dies, so a crash never leaves a stale lock.

use crate::error::{Error, Result};
use crate::format::LOCK_FILE;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// Held for as long as the database is open for writing.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails at once with `Error::Locked`; never waits. flock locks
    /// belong to the open file description, so a second open in the same process
    /// conflicts too, as it must.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
        }
    }
}

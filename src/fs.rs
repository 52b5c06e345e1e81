//! The file layer: the handful of file operations the engine uses, behind a trait so
//! that tests can swap in a filesystem that fails on purpose or loses power
//! (`memfs`, built with the `fault-injection` feature). Production uses [`RealFs`];
//! the dynamic dispatch costs nothing next to the syscall behind each call.
//!
//! Not a stable API: hidden from the docs, it exists for the engine's own tests and
//! fuzz targets.

use std::fmt::Debug;
use std::io;
use std::path::Path;

#[cfg(any(test, feature = "fault-injection"))]
pub mod memfs;

/// Mode of every file the engine creates, before the process umask is applied.
pub const FILE_MODE: u32 = 0o644;

/// An open file. Appends go to the end, and the active data file is written at
/// positions (it may be preallocated past its data); reads are positioned, so
/// readers share a handle with the writer.
// Files are never asked whether they are empty, only how long they are.
#[allow(clippy::len_without_is_empty)]
pub trait FileHandle: Send + Sync + Debug {
    /// One positioned read; fewer bytes than asked only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Appends all of `buf`, or fails (possibly after writing part of it).
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if it ends before, or
    /// fails (possibly after writing part of it). The active data file is written
    /// this way: it may be longer than its data (preallocated).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Asks the OS to start writing `len` bytes at `offset` to the device, without
    /// waiting: a later fdatasync then finds them written. Only a hint.
    fn start_writeback(&self, _offset: u64, _len: u64) {}
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// A read-only map of the first `len` bytes (the file may still be shorter),
    /// or `None` when this file layer does not map: reads then use `read_at`.
    fn map(&self, _len: u64) -> io::Result<Option<crate::map::Map>> {
        Ok(None)
    }

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A held writer lock; released when dropped.
pub trait LockGuard: Send + Sync + Debug {}

/// Directory and file-name operations.
pub trait Fs: Send + Sync + Debug {
    /// Opens an existing file for reading, and appending when `writable`.
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn FileHandle>>;
    /// Creates a file for reading and appending: failing if it exists when
    /// `exclusive`, else truncating it.
    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn FileHandle>>;
    /// Renames a file, or a directory (onto a missing or empty one).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a name (never what a symlink points to).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// A second name for the file at `from` (a hard link): fails across
    /// filesystems (`EXDEV`).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes created, renamed and removed names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names in `dir` (those that are not UTF-8 are skipped: none is ours).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn size(&self, path: &Path) -> io::Result<u64>;
    /// Takes an exclusive lock on `path` (created if missing) without waiting:
    /// `ErrorKind::WouldBlock` when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
}

/// The operating system's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(std::fs::File);

impl FileHandle for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
    }
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        // Not O_APPEND: with it, Linux's pwrite ignores the offset, and the
        // active data file is written at positions.
        let end = self.len()?;
        self.write_at(buf, end)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }
    fn start_writeback(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        crate::map::start_writeback(self.0.as_raw_fd(), offset, len);
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }
    fn map(&self, len: u64) -> io::Result<Option<crate::map::Map>> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        crate::map::Map::new(self.0.as_raw_fd(), len).map(Some)
    }
}

#[derive(Debug)]
struct RealLock(#[allow(dead_code)] std::fs::File);

impl LockGuard for RealLock {}

impl Fs for RealFs {
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn FileHandle>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn FileHandle>> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).mode(FILE_MODE);
        if exclusive {
            o.create_new(true);
        } else {
            o.create(true);
        }
        let f = o.open(path)?;
        if !exclusive {
            f.set_len(0)?;
        }
        Ok(Box::new(RealFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        // unlink(2) removes a symlink itself, never its target.
        std::fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(RealLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// `std::io::Write` over a handle's appends, for `BufWriter`.
pub(crate) struct Appender(pub Box<dyn FileHandle>);

impl io::Write for Appender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

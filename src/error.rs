//! The one error type of the engine. Bindings map each variant to a stable code,
//! exception class or sentinel, so adding a variant is an ABI decision.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong. Not-found is not an error: lookups return `Option`.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Error {
    /// An operating-system call failed. `op` says what the engine was doing.
    /// The source is shared because a group-committed write reports one failure
    /// to every writer of the group.
    Io {
        op: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// Another handle, in this or another process, holds the directory's writer lock.
    Locked {
        path: PathBuf,
    },
    /// A write was attempted on a handle opened read-only.
    ReadOnly,
    /// The handle was closed.
    Closed,
    /// An earlier write or fsync failed, so what is on disk is unknown; writes are
    /// refused until the database is reopened (which re-reads the truth from disk).
    WritesRefused {
        cause: String,
    },
    /// A record or hint entry failed its checksum or framing.
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// A file that is not a libbitcask file of a version this build can read.
    BadFormat {
        file: PathBuf,
        reason: String,
    },
    EmptyKey,
    KeyTooLarge {
        len: usize,
        max: usize,
    },
    ValueTooLarge {
        len: usize,
        max: usize,
    },
    /// A batch whose encoded size exceeds the largest single write.
    BatchTooLarge {
        len: usize,
        max: usize,
    },
    /// An option value out of range; `name` is the option's field name.
    InvalidOption {
        name: &'static str,
        reason: String,
    },
    /// No database at `path` (no data file there), and `Options::create_if_missing`
    /// is off.
    DatabaseNotFound {
        path: PathBuf,
    },
    /// A database exists at `path` (a data file is there), and
    /// `Options::error_if_exists` is on.
    DatabaseExists {
        path: PathBuf,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The file or directory the error concerns, if it names one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Locked { path }
            | Error::DatabaseNotFound { path }
            | Error::DatabaseExists { path } => Some(path),
            Error::Corruption { file, .. } | Error::BadFormat { file, .. } => Some(file),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corruption(file: impl Into<PathBuf>, offset: u64, reason: &'static str) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            reason,
        }
    }

    /// The OS error number behind an `Io` error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "I/O error while {op} {}: {source}", path.display())
            }
            Error::Locked { path } => {
                write!(f, "database {} is locked by another writer", path.display())
            }
            Error::ReadOnly => f.write_str("database is open read-only"),
            Error::Closed => f.write_str("database is closed"),
            Error::WritesRefused { cause } => write!(
                f,
                "writes refused after an earlier failure ({cause}); reopen the database"
            ),
            Error::Corruption {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {reason}",
                file.display()
            ),
            Error::BadFormat { file, reason } => {
                write!(
                    f,
                    "{} is not a readable libbitcask file: {reason}",
                    file.display()
                )
            }
            Error::EmptyKey => f.write_str("empty keys are not allowed"),
            Error::KeyTooLarge { len, max } => {
                write!(f, "key of {len} bytes exceeds the limit of {max}")
            }
            Error::ValueTooLarge { len, max } => {
                write!(f, "value of {len} bytes exceeds the limit of {max}")
            }
            Error::BatchTooLarge { len, max } => {
                write!(f, "batch of {len} bytes exceeds the limit of {max}")
            }
            Error::InvalidOption { name, reason } => write!(f, "invalid option {name}: {reason}"),
            Error::DatabaseNotFound { path } => write!(
                f,
                "no database at {} (and create_if_missing is off)",
                path.display()
            ),
            Error::DatabaseExists { path } => write!(
                f,
                "a database already exists at {} (and error_if_exists is on)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

//! libbitcask: a Bitcask storage engine, a log-structured hash table.
//!
//! A database is a directory of append-only data files. Every write appends a
//! checksummed record to the one active file; an in-memory keydir maps each key to
//! the newest value's location, so a read is one lookup and one positioned read.
//! See `ARCHITECTURE.md` for the design and `docs/format.md` for the bytes.
//!
//! ```no_run
//! use bitcask::{Bitcask, Options};
//! let db = Bitcask::open("/tmp/my-db", Options::default())?;
//! db.put(b"hello", b"world")?;
//! assert_eq!(db.get(b"hello")?.as_deref(), Some(&b"world"[..]));
//! db.delete(b"hello")?;
//! # Ok::<(), bitcask::Error>(())
//! ```
#![deny(unsafe_code)]

mod backup;
mod batch;
mod datafile;
mod db;
mod error;
mod event;
// The C ABI: the only module allowed unsafe code.
#[allow(unsafe_code)]
mod ffi;
mod format;
#[doc(hidden)]
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
mod hint;
#[doc(hidden)]
pub mod inspect;
mod keydir;
mod lock;
// Memory maps of data files: the one other module allowed unsafe code.
#[allow(unsafe_code)]
#[doc(hidden)]
pub mod map;
mod merge;
mod options;
mod prealloc;
mod record;
mod recovery;
mod snapshot;
mod stats;
mod write;

pub use batch::{BatchOp, WriteBatch};
pub use db::{Bitcask, Iter, KeyTtl, Keys, WriteOptions};
pub use error::{Error, Result};
pub use event::{Event, EventKind, EventListener};
pub use merge::MergeStats;
pub use options::{Clock, CommitTrace, CommitTracer, OpenProgress, Options, Progress, SyncPolicy};
pub use snapshot::Snapshot;
pub use stats::{FileStats, Stats};

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = format::FORMAT_VERSION;

/// The README's Rust examples, compiled as doctests so they cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

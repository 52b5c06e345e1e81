//! Events: what background work and recovery did, for a program to see without
//! polling `stats`.
//!
//! Every event goes to the `log` facade (target `bitcask`, with its fields as
//! key-values) and to the listener set in `Options::event_listener`. Both are
//! reached from the database's background thread (without one, as with
//! `read_only`, from the thread that saw the event: the opening thread, before
//! open returns), never with a lock of the engine held: a listener may take its
//! time, and may even call into the database, though a slow one delays the
//! hint files and `EveryMs` syncs queued behind it.

use crate::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What happened.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A merge finished and removed files: `bytes` given back, `duration`.
    MergeCompleted,
    /// A merge failed (`error`, and `file` when the error names one); an
    /// automatic one backs off before retrying.
    MergeFailed,
    /// A write or fdatasync failed (`error`, `file`): writes are refused until
    /// the database is reopened.
    WritesRefused,
    /// Open cut a torn tail: `bytes` written past the last whole write of the
    /// last data file, `file`, from `offset`.
    DroppedAtOpen,
    /// A salvage open skipped damaged bytes: `file`, `offset`, `bytes`.
    SalvagedAtOpen,
    /// An fdatasync of the active file took `duration`, at least
    /// `Options::slow_sync_threshold`.
    SlowSync,
}

impl EventKind {
    /// A stable lowercase name (`merge_completed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::MergeCompleted => "merge_completed",
            EventKind::MergeFailed => "merge_failed",
            EventKind::WritesRefused => "writes_refused",
            EventKind::DroppedAtOpen => "dropped_at_open",
            EventKind::SalvagedAtOpen => "salvaged_at_open",
            EventKind::SlowSync => "slow_sync",
        }
    }

    /// How much it matters: a completed merge is information, the rest need
    /// attention, and refused writes are an error of the database.
    pub fn level(self) -> log::Level {
        match self {
            EventKind::MergeCompleted => log::Level::Info,
            EventKind::WritesRefused => log::Level::Error,
            _ => log::Level::Warn,
        }
    }
}

/// One event, with the fields its kind has (see [`EventKind`]).
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    /// The data file concerned.
    pub file: Option<PathBuf>,
    /// A byte offset in `file`.
    pub offset: Option<u64>,
    /// Bytes concerned.
    pub bytes: Option<u64>,
    pub duration: Option<Duration>,
    pub error: Option<Error>,
}

impl Event {
    pub(crate) fn new(kind: EventKind) -> Event {
        Event {
            kind,
            file: None,
            offset: None,
            bytes: None,
            duration: None,
            error: None,
        }
    }

    pub(crate) fn file(mut self, file: impl Into<PathBuf>) -> Event {
        self.file = Some(file.into());
        self
    }

    pub(crate) fn offset(mut self, offset: u64) -> Event {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn bytes(mut self, bytes: u64) -> Event {
        self.bytes = Some(bytes);
        self
    }

    pub(crate) fn duration(mut self, d: Duration) -> Event {
        self.duration = Some(d);
        self
    }

    pub(crate) fn error(mut self, e: Error) -> Event {
        self.error = Some(e);
        self
    }
}

impl std::fmt::Display for Event {
    /// A one-line message, as logged: the kind's name and its fields.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(p) = &self.file {
            write!(f, " file={}", p.display())?;
        }
        if let Some(o) = self.offset {
            write!(f, " offset={o}")?;
        }
        if let Some(b) = self.bytes {
            write!(f, " bytes={b}")?;
        }
        if let Some(d) = self.duration {
            write!(f, " duration_ms={:.3}", d.as_secs_f64() * 1000.0)?;
        }
        if let Some(e) = &self.error {
            write!(f, " error=\"{e}\"")?;
        }
        Ok(())
    }
}

/// Receives every event of a database (`Options::event_listener`), from any
/// thread.
#[derive(Clone)]
pub struct EventListener(pub Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for EventListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventListener")
    }
}

/// Hands `e` to the `log` facade and to the listener.
pub(crate) fn deliver(listener: Option<&EventListener>, e: &Event) {
    let level = e.kind.level();
    if log::log_enabled!(target: "bitcask", level) {
        let file = e.file.as_ref().map(|p| p.display().to_string());
        let error = e.error.as_ref().map(|e| e.to_string());
        log::log!(
            target: "bitcask",
            level,
            event = e.kind.name(),
            file = file.as_deref(),
            offset = e.offset,
            bytes = e.bytes,
            duration_us = e.duration.map(|d| d.as_micros() as u64),
            error = error.as_deref();
            "{e}"
        );
    }
    if let Some(l) = listener {
        (l.0)(e);
    }
}

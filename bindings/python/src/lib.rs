//! `bitcask._bitcask`: the thin PyO3 layer between the engine and the pure-Python
//! package `bitcask` (whose `Bitcask` class is the mapping users see).
//!
//! Nothing here stores data or decides anything about it. This layer converts
//! arguments, maps engine errors to the exception classes of `bitcask._errors`,
//! and releases the GIL around every call that can do I/O or wait for a lock, so
//! that Python threads sharing one handle run in parallel. Its one `unsafe` part,
//! `bytes_without_gil`, fills a new `bytes` from a data file's map with the GIL
//! released.

use bitcask::{
    Bitcask, Error, Event, EventListener, Iter, KeyTtl, Keys, MergeStats, OpenProgress, Options,
    Progress, Snapshot, Stats, SyncPolicy, WriteBatch, WriteOptions,
};
use pyo3::exceptions::{
    PyBaseException, PyKeyError, PyKeyboardInterrupt, PyRuntimeError, PyTypeError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
    PyType,
};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Errors

/// Builds the Python exception for an engine error: one class per variant, with
/// the variant's fields as attributes so that callers need not parse messages.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    build_error(py, &e).unwrap_or_else(|err| err)
}

fn build_error(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let errors = py.import("bitcask._errors")?;
    let msg = e.to_string();
    let mut attrs: Vec<(&str, Py<PyAny>)> = Vec::new();
    let path = |p: &std::path::Path| -> PyResult<Py<PyAny>> {
        Ok(p.to_path_buf().into_pyobject(py)?.into_any().unbind())
    };
    let int = |n: u64| -> PyResult<Py<PyAny>> { Ok(n.into_pyobject(py)?.into_any().unbind()) };
    let text = |s: &str| -> Py<PyAny> { PyString::new(py, s).into_any().unbind() };
    let class = match e {
        Error::Io { op, path: p, .. } => {
            attrs.push(("op", text(op)));
            // OSError's own constructor fills errno, strerror and filename.
            let class = errors.getattr("StorageIOError")?;
            let value = match e.raw_os_error() {
                Some(errno) => class.call1((errno, msg, path(p)?))?,
                None => class.call1((msg,))?,
            };
            return finish(py, value, attrs);
        }
        Error::Locked { path: p } => {
            attrs.push(("path", path(p)?));
            "LockedError"
        }
        Error::ReadOnly => "ReadOnlyError",
        Error::Closed => "ClosedError",
        Error::WritesRefused { cause } => {
            attrs.push(("cause", text(cause)));
            "WritesRefusedError"
        }
        Error::Corruption {
            file,
            offset,
            reason,
        } => {
            attrs.push(("file", path(file)?));
            attrs.push(("offset", int(*offset)?));
            attrs.push(("reason", text(reason)));
            "CorruptionError"
        }
        Error::BadFormat { file, reason } => {
            attrs.push(("file", path(file)?));
            attrs.push(("reason", text(reason)));
            "BadFormatError"
        }
        Error::EmptyKey => "EmptyKeyError",
        Error::KeyTooLarge { len, max } => {
            attrs.push(("len", int(*len as u64)?));
            attrs.push(("max", int(*max as u64)?));
            "KeyTooLargeError"
        }
        Error::ValueTooLarge { len, max } => {
            attrs.push(("len", int(*len as u64)?));
            attrs.push(("max", int(*max as u64)?));
            "ValueTooLargeError"
        }
        Error::BatchTooLarge { len, max } => {
            attrs.push(("len", int(*len as u64)?));
            attrs.push(("max", int(*max as u64)?));
            "BatchTooLargeError"
        }
        Error::InvalidOption { name, reason } => {
            attrs.push(("option", text(name)));
            attrs.push(("reason", text(reason)));
            "InvalidOptionError"
        }
        // Also FileNotFoundError / FileExistsError: OSError's own constructor
        // fills errno, strerror and filename.
        Error::DatabaseNotFound { path: p } | Error::DatabaseExists { path: p } => {
            let (class, errno) = match e {
                Error::DatabaseNotFound { .. } => ("DatabaseNotFoundError", "ENOENT"),
                _ => ("DatabaseExistsError", "EEXIST"),
            };
            attrs.push(("path", path(p)?));
            let errno = py.import("errno")?.getattr(errno)?;
            let value = errors.getattr(class)?.call1((errno, msg, path(p)?))?;
            return finish(py, value, attrs);
        }
        // A variant added to the engine after this binding was written still
        // raises something catchable as bitcask.Error.
        _ => "Error",
    };
    let value = errors.getattr(class)?.call1((msg,))?;
    finish(py, value, attrs)
}

/// The exception of `e`, if any, as an instance (not raised): an event's
/// `error`, `Stats.last_merge_error`.
fn error_value(py: Python<'_>, e: Option<&Error>) -> PyResult<Option<Py<PyBaseException>>> {
    e.map(|e| build_error(py, e).map(|err| err.into_value(py)))
        .transpose()
}

fn finish(
    py: Python<'_>,
    value: Bound<'_, PyAny>,
    attrs: Vec<(&str, Py<PyAny>)>,
) -> PyResult<PyErr> {
    for (name, v) in attrs {
        value.setattr(name, v.bind(py))?;
    }
    Ok(PyErr::from_value(value))
}

/// `Result` of an engine call to `PyResult`.
trait IntoPy<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for bitcask::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

fn invalid_option(py: Python<'_>, name: &'static str, reason: impl Into<String>) -> PyErr {
    to_py(
        py,
        Error::InvalidOption {
            name,
            reason: reason.into(),
        },
    )
}

// ---------------------------------------------------------------------------
// Arguments

/// The bytes of a bytes-like argument. `bytes` is borrowed (immutable, so it may be
/// read with the GIL released); anything else with the buffer protocol is copied,
/// because another thread could resize a bytearray while the GIL is released.
/// `str` is refused rather than encoded: which encoding is the caller's choice.
fn bytes_arg<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be bytes, not str; encode it first, e.g. {what}.encode()"
        )));
    }
    let view = PyMemoryView::from(obj).map_err(|_| {
        let ty = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!(
            "{what} must be bytes-like (bytes, bytearray, memoryview), not {ty}"
        ))
    })?;
    let copy = view.call_method0("tobytes")?;
    Ok(Cow::Owned(copy.cast::<PyBytes>()?.as_bytes().to_vec()))
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// An unsigned integer option: a wrong type is a TypeError, a wrong value (negative,
/// too large) a ValueError naming the option.
fn uint_opt<T: TryFrom<u64>>(
    py: Python<'_>,
    name: &'static str,
    v: &Bound<'_, PyAny>,
) -> PyResult<T> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "option {name} must be an int, not {}",
            type_name(v)
        )));
    }
    v.extract::<u64>()
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| invalid_option(py, name, format!("{v} is out of range")))
}

fn bool_opt(name: &'static str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    match v.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "option {name} must be a bool, not {}",
            type_name(v)
        ))),
    }
}

/// `sync`: "always", "never", or an int of milliseconds between background syncs.
fn sync_opt(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<SyncPolicy> {
    const HOW: &str = "must be 'always', 'never' or a positive int (milliseconds)";
    if let Ok(s) = v.cast::<PyString>() {
        return match &*s.to_cow()? {
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            other => Err(invalid_option(py, "sync", format!("{other:?} {HOW}"))),
        };
    }
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "option sync {HOW}, not {}",
            type_name(v)
        )));
    }
    match v.extract::<u64>() {
        // 0 is passed on: the engine's validation owns that rule.
        Ok(ms) => Ok(SyncPolicy::EveryMs(ms)),
        Err(_) => Err(invalid_option(py, "sync", format!("{v} {HOW}"))),
    }
}

/// A duration option, in seconds (int or float) as Python's own timeouts are.
fn seconds_opt(py: Python<'_>, name: &'static str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    seconds(py, name, &format!("option {name}"), v)
}

/// A duration in seconds, int or float: a wrong type is a TypeError; a value no
/// `Duration` holds (negative, NaN, infinite, too large) is an InvalidOptionError
/// naming `name`. Zero and range limits are the engine's to judge.
fn seconds(
    py: Python<'_>,
    name: &'static str,
    what: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<Duration> {
    let bad = || invalid_option(py, name, format!("{v} is not a valid number of seconds"));
    if v.is_instance_of::<PyBool>() {
        // bool is an int subclass; True seconds is a bug, not a duration.
    } else if v.is_instance_of::<PyInt>() {
        // Taken exactly, not rounded through a float; past u64 it is out of range.
        return v
            .extract::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad());
    } else if v.is_instance_of::<PyFloat>() {
        let secs: f64 = v.extract()?;
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a number of seconds (int or float), not {}",
        type_name(v)
    )))
}

/// `slow_sync_threshold`: seconds, as `seconds_opt`, or `math.inf` for no
/// report at all (no sync is that slow). The package passes its `None` as
/// `math.inf`, since None here keeps the engine's default, as for every option.
fn threshold_opt(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Option<Duration>> {
    if v.is_instance_of::<PyFloat>() && v.extract::<f64>()? == f64::INFINITY {
        return Ok(None);
    }
    seconds_opt(py, "slow_sync_threshold", v).map(Some)
}

/// The `ttl` argument of a put, in seconds; None keeps the default TTL, if any.
fn ttl_arg(py: Python<'_>, ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    ttl.map(|v| seconds(py, "ttl", "ttl", v)).transpose()
}

// ---------------------------------------------------------------------------
// Events

/// Set by the `atexit` hook: events are no longer logged. A thread other than
/// the main one that waits for the GIL when the interpreter starts finalizing
/// never gets it (CPython ends it; PyO3 parks it for ever instead), so a
/// background thread caught there could never be joined by the close that
/// finalization does when it collects a handle left open. The hook
/// (`_interpreter_exiting`) shuts listeners out before finalization starts,
/// then waits, without the GIL, for those already in (`IN_FLIGHT`).
static EXITING: AtomicBool = AtomicBool::new(false);
/// Listeners past the `EXITING` check, taking or holding the GIL. Atomics
/// rather than a lock, so that a `fork` child, which has none of the parent's
/// threads, can be given a count of 0 whatever they were doing.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A listener's passage, counted in `IN_FLIGHT` until dropped.
struct Passage;

impl Passage {
    /// None once the interpreter is exiting. Sequentially consistent, against
    /// the hook's store then load: either the listener sees `EXITING`, or the
    /// hook sees it in flight and waits for it.
    fn enter() -> Option<Passage> {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let passage = Passage;
        (!EXITING.load(Ordering::SeqCst)).then_some(passage)
    }
}

impl Drop for Passage {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registered with `atexit` by the module's init, so it runs before
/// finalization (after the exit hooks registered later): no event is logged
/// from here on, and those being logged are let finish, the GIL released.
#[pyfunction]
fn _interpreter_exiting(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Registered with `os.register_at_fork`: the child has none of the parent's
/// threads, so none of its listeners.
#[pyfunction]
fn _after_fork_in_child() {
    IN_FLIGHT.store(0, Ordering::SeqCst);
}

/// `logging.getLogger("bitcask")`, looked up once.
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The engine listener of every database opened from Python: each event goes
/// to the `bitcask` logger. Called from the database's background thread (or,
/// without one, as read-only or once closing has stopped it, from the thread
/// that saw the event), with no lock of the engine held and without the GIL,
/// which it takes: so no thread may wait for the background thread while
/// holding the GIL (see `PyBitcask::close` and `Drop for DbCore`).
fn event_listener() -> EventListener {
    EventListener(Arc::new(|e: &Event| {
        let Some(_passage) = Passage::enter() else {
            return;
        };
        // Gives up, rather than attach, when the interpreter is not running.
        let _ = Python::try_attach(|py| {
            if let Err(err) = log_event(py, e) {
                report_log_failure(py, err, e);
            }
        });
    }))
}

/// The `logging` level of an event's level (logging has no TRACE: 5).
fn logging_level(e: &Event) -> u32 {
    match e.kind.level().as_str() {
        "ERROR" => 40,
        "WARN" => 30,
        "INFO" => 20,
        "DEBUG" => 10,
        _ => 5,
    }
}

/// Logs `e` on the `bitcask` logger: its one-line text as the message, its
/// fields in `extra` (`event`, `file`, `offset`, `bytes`, `duration`,
/// `error`). Nothing is built when the logger does not take the level.
fn log_event(py: Python<'_>, e: &Event) -> PyResult<()> {
    let logger = LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", ("bitcask",))
                .map(Bound::unbind)
        })?
        .bind(py);
    let level = logging_level(e);
    if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        return Ok(());
    }
    let extra = PyDict::new(py);
    extra.set_item("event", e.kind.name())?;
    // A str, decoded as os.fsdecode does.
    extra.set_item("file", e.file.as_deref().map(|p| p.as_os_str()))?;
    extra.set_item("offset", e.offset)?;
    extra.set_item("bytes", e.bytes)?;
    extra.set_item("duration", e.duration.map(|d| d.as_secs_f64()))?;
    extra.set_item("error", error_value(py, e.error.as_ref())?)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("extra", extra)?;
    logger.call_method("log", (level, e.to_string()), Some(&kwargs))?;
    Ok(())
}

/// What `logging.Handler.handleError` does with a handler's exception, for
/// one raised while logging an event (by a filter, a handler outside its
/// `emit`, a logger subclass): with `logging.raiseExceptions` (the default),
/// the traceback on `sys.stderr`; without, nothing. It goes no further: the
/// background thread must live on. A KeyboardInterrupt (only the main thread
/// gets one, when it delivers an event itself: a read-only open, a close) is
/// not lost: it is raised again at the thread's next check.
fn report_log_failure(py: Python<'_>, err: PyErr, e: &Event) {
    if err.is_instance_of::<PyKeyboardInterrupt>(py) {
        // SAFETY: called with the GIL held; sets the flag SIGINT would.
        unsafe { pyo3::ffi::PyErr_SetInterrupt() };
        return;
    }
    let report = || -> PyResult<()> {
        if !py
            .import("logging")?
            .getattr("raiseExceptions")?
            .is_truthy()?
        {
            return Ok(());
        }
        let stderr = py.import("sys")?.getattr("stderr")?;
        if stderr.is_none() {
            return Ok(());
        }
        stderr.call_method1("write", ("--- Logging error ---\n",))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("file", &stderr)?;
        py.import("traceback")?.call_method(
            "print_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
            Some(&kwargs),
        )?;
        stderr.call_method1("write", (format!("While logging bitcask event: {e}\n"),))?;
        Ok(())
    };
    if let Err(again) = report() {
        again.write_unraisable(py, None);
    }
}

// ---------------------------------------------------------------------------
// Open progress

/// How far an open has got: data files, and their bytes, loaded so far and in
/// all. What the `progress` callable given to `bitcask.open` receives.
#[pyclass(frozen, eq, hash, name = "OpenProgress", module = "bitcask")]
#[derive(PartialEq, Eq, Hash)]
struct PyOpenProgress {
    /// Data files loaded so far, from 1 to `files_total`.
    #[pyo3(get)]
    files_done: u64,
    /// Data files the open loads.
    #[pyo3(get)]
    files_total: u64,
    /// Bytes of the data files loaded so far.
    #[pyo3(get)]
    bytes_done: u64,
    /// Bytes of all the data files, as their sizes were when the open began.
    #[pyo3(get)]
    bytes_total: u64,
}

#[pymethods]
impl PyOpenProgress {
    fn __repr__(&self) -> String {
        format!(
            "OpenProgress(files_done={}, files_total={}, bytes_done={}, bytes_total={})",
            self.files_done, self.files_total, self.bytes_done, self.bytes_total
        )
    }
}

/// The `progress` callable of one open and the first exception it raised.
struct ProgressHook {
    /// Taken out once the open returns: the engine keeps its options (and so
    /// this hook) for the handle's life, and a callable that refers to the
    /// handle would otherwise make a cycle the garbage collector cannot see.
    callable: Mutex<Option<Py<PyAny>>>,
    error: Mutex<Option<PyErr>>,
}

impl ProgressHook {
    fn new(callable: Py<PyAny>) -> Arc<Self> {
        Arc::new(ProgressHook {
            callable: Mutex::new(Some(callable)),
            error: Mutex::new(None),
        })
    }

    /// What the engine calls, from its loader threads with the GIL free.
    fn engine_callback(self: &Arc<Self>) -> OpenProgress {
        let hook = Arc::clone(self);
        OpenProgress(Arc::new(move |p: Progress| hook.report(p)))
    }

    fn report(&self, p: Progress) {
        // Once the callable has raised, the open is being aborted: later calls
        // would only report on work the caller no longer wants.
        if lock(&self.error).is_some() {
            return;
        }
        Python::attach(|py| {
            let Some(f) = lock(&self.callable).as_ref().map(|f| f.clone_ref(py)) else {
                return;
            };
            let arg = PyOpenProgress {
                files_done: p.files_done,
                files_total: p.files_total,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            };
            // No lock is held during the call: the callable may take its time,
            // release the GIL or be interrupted.
            if let Err(e) = f.call1(py, (arg,)) {
                *lock(&self.error) = Some(e);
            }
        });
    }

    /// Ends the hook's part in an open: drops the callable and returns the
    /// exception it raised, if any.
    fn finish(&self, _gil: Python<'_>) -> Option<PyErr> {
        // Dropped here, with the GIL, rather than whenever the handle goes.
        drop(lock(&self.callable).take());
        lock(&self.error).take()
    }
}

/// A lock that a panic elsewhere does not make unusable: the guarded values
/// stay consistent whatever the panicking code was doing.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `lock` for the readers of a `RwLock`.
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// `lock` for the writer of a `RwLock`.
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// Reads

/// The reads of `_Bitcask` and `_Snapshot`, written once: the base class of
/// both, over the database or one of its snapshots. Not made from Python.
#[pyclass(frozen, subclass, name = "_Reader", module = "bitcask._bitcask")]
struct PyReader {
    source: Source,
}

/// What a `_Reader` reads.
enum Source {
    /// The database (a `_Bitcask`): each read sees the writes made before it.
    Db(Arc<DbCore>),
    /// One of its snapshots (a `_Snapshot`): ClosedError once it is closed.
    Snap(Arc<SnapCore>),
}

impl Source {
    /// `f` on the engine's reads, without the GIL. A closed handle's reads
    /// raise ClosedError themselves; a closed snapshot has none left.
    fn with<R>(&self, f: impl FnOnce(&dyn Reads) -> bitcask::Result<R>) -> bitcask::Result<R> {
        match self {
            Source::Db(core) => f(&core.db),
            Source::Snap(core) => match &*read(&core.snap) {
                Some(s) => f(s),
                None => Err(Error::Closed),
            },
        }
    }

    /// Where the iterators made from it register, for its owner's `close`.
    fn children(&self) -> &Children {
        match self {
            Source::Db(core) => &core.children,
            Source::Snap(core) => &core.children,
        }
    }
}

/// The engine's reads, which `Bitcask` and `Snapshot` both have.
trait Reads {
    /// The value of `key`, taken by `Value::take`.
    fn get(&self, key: &[u8]) -> bitcask::Result<Option<PyResult<Value>>>;
    fn contains(&self, key: &[u8]) -> bitcask::Result<bool>;
    fn len(&self) -> bitcask::Result<usize>;
    fn range(&self, bounds: KeyBounds, reverse: bool) -> bitcask::Result<Iter>;
    fn prefix(&self, prefix: &[u8], reverse: bool) -> bitcask::Result<Iter>;
}

/// `Reads` for the engine's types, by their methods of the same names (an
/// inherent method comes before a trait's).
macro_rules! impl_reads {
    ($($ty:ty),*) => {$(
        impl Reads for $ty {
            fn get(&self, key: &[u8]) -> bitcask::Result<Option<PyResult<Value>>> {
                self.get_with(key, Value::take)
            }
            fn contains(&self, key: &[u8]) -> bitcask::Result<bool> {
                self.contains(key)
            }
            fn len(&self) -> bitcask::Result<usize> {
                self.len()
            }
            fn range(&self, bounds: KeyBounds, reverse: bool) -> bitcask::Result<Iter> {
                self.range::<Vec<u8>>(bounds, reverse)
            }
            fn prefix(&self, prefix: &[u8], reverse: bool) -> bitcask::Result<Iter> {
                self.prefix(prefix, reverse)
            }
        }
    )*};
}

impl_reads!(Bitcask, Snapshot);

#[pymethods]
impl PyReader {
    /// The value of `key`, or None.
    ///
    /// The lookup and the read run with the GIL released, and a value is never
    /// copied out of a data file's map with the GIL held (the copy may fault pages
    /// in from disk). Below `ONE_COPY_MIN` bytes the value is copied into a `Vec`
    /// without the GIL, then into its `bytes` with it; from there up, the `bytes`
    /// is allocated (the GIL taken again just for that) and filled straight from
    /// the map without the GIL. Measured on 2 CPUs: the extra GIL round trip made
    /// 100-byte gets 5-15% slower than two copies, broke even at a few KiB, and
    /// made gets 20-35% faster from 256 KiB.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = bytes_arg(key, "key")?;
        let v = py.detach(|| self.source.with(|r| r.get(&key))).py(py)?;
        Value::into_bytes(py, v)
    }

    fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = bytes_arg(key, "key")?;
        py.detach(|| self.source.with(|r| r.contains(&key))).py(py)
    }

    /// No I/O, but it takes the index lock, which a writer may hold (and a
    /// snapshot's walks the versions kept since it was taken).
    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.source.with(|r| r.len())).py(py)
    }

    /// An iterator over `[start, stop)` in key order (descending when `reverse`).
    #[pyo3(signature = (start=None, stop=None, reverse=false, yields="items"))]
    fn range(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        start: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        reverse: bool,
        yields: &str,
    ) -> PyResult<PyIter> {
        let what = Yield::parse(yields)?;
        let bounds = range_bounds(start, stop)?;
        Self::scan(slf, py, what, |r| r.range(bounds, reverse))
    }

    /// An iterator over the keys that start with `prefix`, in key order.
    #[pyo3(signature = (prefix, reverse=false, yields="items"))]
    fn prefix(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        prefix: &Bound<'_, PyAny>,
        reverse: bool,
        yields: &str,
    ) -> PyResult<PyIter> {
        let what = Yield::parse(yields)?;
        let p = bytes_arg(prefix, "prefix")?;
        Self::scan(slf, py, what, |r| r.prefix(&p, reverse))
    }
}

impl PyReader {
    /// The iterator `open` makes (without the GIL: the database's takes a
    /// snapshot, under the index lock a writer may hold), kept by `slf`'s
    /// children, yielding `what`.
    fn scan(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        what: Yield,
        open: impl FnOnce(&dyn Reads) -> bitcask::Result<Iter> + Send,
    ) -> PyResult<PyIter> {
        let source = &slf.get().source;
        let it = py.detach(|| source.with(open)).py(py)?;
        Ok(PyIter::new(slf.as_any(), source.children(), it, what))
    }
}

// ---------------------------------------------------------------------------
// The handle

/// The engine handle. Shared freely between threads: it is `Sync`, and every call
/// that may block runs with the GIL released. Its reads are those of its base
/// class, `_Reader`, which shares its `DbCore`.
#[pyclass(frozen, extends = PyReader, name = "_Bitcask", module = "bitcask._bitcask")]
struct PyBitcask {
    core: Arc<DbCore>,
}

/// The database behind a `_Bitcask`, held by the handle and its `_Reader` part.
struct DbCore {
    db: Bitcask,
    /// The iterators and snapshots made on this handle, for `close` to end
    /// those still live; its flag is the handle's `closed`.
    children: Children,
}

impl Drop for DbCore {
    /// The handle's last reference went (garbage collection, `del`, an
    /// iterator or a snapshot letting go) without a `close`: the engine's drop
    /// would close the database with the GIL held, joining the background
    /// thread while it may be waiting for the GIL to log an event, a deadlock.
    /// So the close is done here, with the GIL released, and the engine's drop
    /// finds it done. No child is live: each keeps the handle alive.
    fn drop(&mut self) {
        let db = &self.db;
        // Dropped with the GIL held, from `tp_dealloc`; without it (never
        // expected) there is nothing to release.
        if Python::try_attach(|py| py.detach(|| db.close())).is_none() {
            let _ = db.close();
        }
    }
}

/// What a `close` ends besides its own object: an iterator, or a snapshot
/// (which ends its own iterators in turn).
trait EndByClose: Send + Sync {
    /// Lets go of the engine's internals; later use raises ClosedError. Waits
    /// for a call in progress on another thread, so it runs without the GIL.
    fn end_by_close(&self);
}

/// The live iterators and snapshots of a handle, or the live iterators of a
/// snapshot, for the owner's `close` to end them, and whether it was closed.
#[derive(Default)]
struct Children {
    closed: AtomicBool,
    registry: Mutex<Registry>,
}

/// Weak references to the children: one dropped by Python leaves a dead
/// entry, pruned when the list has doubled since the last pruning, so the list
/// stays within twice the live children (plus 64).
#[derive(Default)]
struct Registry {
    live: Vec<Weak<dyn EndByClose>>,
    prune_at: usize,
}

impl Children {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Registers a new child, or ends it at once if the owner was closed
    /// meanwhile. `close` sets its flag before it takes the registry's lock, so
    /// a child is either registered before `close` sweeps the registry or sees
    /// the flag here: none escapes.
    fn register<T: EndByClose + 'static>(&self, child: &Arc<T>) {
        let mut reg = lock(&self.registry);
        if self.is_closed() {
            child.end_by_close();
            return;
        }
        if reg.live.len() >= reg.prune_at {
            reg.live.retain(|w| w.strong_count() > 0);
            reg.prune_at = (2 * reg.live.len()).max(64);
        }
        let weak: Weak<dyn EndByClose> = Arc::downgrade(child) as Weak<dyn EndByClose>;
        reg.live.push(weak);
    }

    /// Marks the owner closed and ends every child still live. Without the GIL.
    fn close(&self) {
        // Set first; `register` reads it under the registry's lock.
        self.closed.store(true, Ordering::Release);
        let live = std::mem::take(&mut lock(&self.registry).live);
        for child in live.iter().filter_map(Weak::upgrade) {
            child.end_by_close();
        }
    }
}

/// The bounds of `range(start, stop)`: `start` included, `stop` excluded, None
/// no bound (the empty key is an ordinary bound).
type KeyBounds = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);

fn range_bounds(
    start: Option<&Bound<'_, PyAny>>,
    stop: Option<&Bound<'_, PyAny>>,
) -> PyResult<KeyBounds> {
    use std::ops::Bound as B;
    let lo = match start {
        Some(k) => B::Included(bytes_arg(k, "start")?.into_owned()),
        None => B::Unbounded,
    };
    let hi = match stop {
        Some(k) => B::Excluded(bytes_arg(k, "stop")?.into_owned()),
        None => B::Unbounded,
    };
    Ok((lo, hi))
}

/// What an iterator yields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Yield {
    Items,
    Keys,
    Values,
}

impl Yield {
    fn parse(s: &str) -> PyResult<Yield> {
        match s {
            "items" => Ok(Yield::Items),
            "keys" => Ok(Yield::Keys),
            "values" => Ok(Yield::Values),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "yields must be 'items', 'keys' or 'values', not {s:?}"
            ))),
        }
    }
}

#[pymethods]
impl PyBitcask {
    #[new]
    #[pyo3(signature = (
        path, *, sync=None, max_file_size=None, max_key_size=None, max_value_size=None,
        read_only=None, salvage=None, create_if_missing=None, error_if_exists=None,
        write_buffer_size=None, mmap=None, preallocate=None,
        write_merging=None, auto_merge=None, merge_check_interval=None,
        merge_trigger_fragmentation=None, merge_trigger_dead_bytes=None,
        merge_trigger_total_dead_bytes=None, merge_threshold_fragmentation=None,
        merge_threshold_dead_bytes=None, merge_bytes_per_sec=None, default_ttl=None,
        progress=None, slow_sync_threshold=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        sync: Option<Bound<'_, PyAny>>,
        max_file_size: Option<Bound<'_, PyAny>>,
        max_key_size: Option<Bound<'_, PyAny>>,
        max_value_size: Option<Bound<'_, PyAny>>,
        read_only: Option<Bound<'_, PyAny>>,
        salvage: Option<Bound<'_, PyAny>>,
        create_if_missing: Option<Bound<'_, PyAny>>,
        error_if_exists: Option<Bound<'_, PyAny>>,
        write_buffer_size: Option<Bound<'_, PyAny>>,
        mmap: Option<Bound<'_, PyAny>>,
        preallocate: Option<Bound<'_, PyAny>>,
        write_merging: Option<Bound<'_, PyAny>>,
        auto_merge: Option<Bound<'_, PyAny>>,
        merge_check_interval: Option<Bound<'_, PyAny>>,
        merge_trigger_fragmentation: Option<Bound<'_, PyAny>>,
        merge_trigger_dead_bytes: Option<Bound<'_, PyAny>>,
        merge_trigger_total_dead_bytes: Option<Bound<'_, PyAny>>,
        merge_threshold_fragmentation: Option<Bound<'_, PyAny>>,
        merge_threshold_dead_bytes: Option<Bound<'_, PyAny>>,
        merge_bytes_per_sec: Option<Bound<'_, PyAny>>,
        default_ttl: Option<Bound<'_, PyAny>>,
        progress: Option<Bound<'_, PyAny>>,
        slow_sync_threshold: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut o = Options::default();
        if let Some(v) = &sync {
            o.sync = sync_opt(py, v)?;
        }
        macro_rules! set {
            ($field:ident, $conv:expr) => {
                if let Some(v) = &$field {
                    o.$field = $conv(stringify!($field), v)?;
                }
            };
        }
        let uint = |name, v: &Bound<'_, PyAny>| uint_opt(py, name, v);
        let uint_usize = |name, v: &Bound<'_, PyAny>| uint_opt::<usize>(py, name, v);
        let uint_u8 = |name, v: &Bound<'_, PyAny>| uint_opt::<u8>(py, name, v);
        let secs = |name, v: &Bound<'_, PyAny>| seconds_opt(py, name, v);
        set!(max_file_size, uint);
        set!(max_key_size, uint_usize);
        set!(max_value_size, uint_usize);
        set!(read_only, bool_opt);
        set!(salvage, bool_opt);
        set!(create_if_missing, bool_opt);
        set!(error_if_exists, bool_opt);
        set!(write_buffer_size, uint_usize);
        set!(mmap, bool_opt);
        set!(preallocate, bool_opt);
        set!(write_merging, bool_opt);
        set!(auto_merge, bool_opt);
        set!(merge_check_interval, secs);
        set!(merge_trigger_fragmentation, uint_u8);
        set!(merge_trigger_dead_bytes, uint);
        set!(merge_trigger_total_dead_bytes, uint);
        set!(merge_threshold_fragmentation, uint_u8);
        set!(merge_threshold_dead_bytes, uint);
        set!(merge_bytes_per_sec, uint);
        if let Some(v) = &default_ttl {
            o.default_ttl = Some(seconds_opt(py, "default_ttl", v)?);
        }
        if let Some(v) = &slow_sync_threshold {
            o.slow_sync_threshold = threshold_opt(py, v)?;
        }
        o.event_listener = Some(event_listener());
        let hook = match &progress {
            Some(f) if !f.is_callable() => {
                return Err(PyTypeError::new_err(format!(
                    "option progress must be callable, not {}",
                    type_name(f)
                )))
            }
            Some(f) => Some(ProgressHook::new(f.clone().unbind())),
            None => None,
        };
        o.open_progress = hook.as_ref().map(ProgressHook::engine_callback);
        // Opening replays the log: it can take a while on a big database.
        let opened = py.detach(|| Bitcask::open(&path, o));
        if let Some(err) = hook.and_then(|h| h.finish(py)) {
            // The callable raised to abort: no handle is returned, so the
            // directory lock must not outlive this call. A failure to close
            // matters less than the exception the caller chose to raise.
            if let Ok(db) = opened {
                let _ = py.detach(|| db.close());
            }
            return Err(err);
        }
        let core = Arc::new(DbCore {
            db: opened.py(py)?,
            children: Children::default(),
        });
        let reader = PyReader {
            source: Source::Db(Arc::clone(&core)),
        };
        Ok(PyClassInitializer::from(reader).add_subclass(PyBitcask { core }))
    }

    /// Stores `value` under `key`, expiring `ttl` seconds from now when given (else
    /// after the default TTL, if any); returns the write's sequence number.
    #[pyo3(signature = (key, value, ttl=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let key = bytes_arg(key, "key")?;
        let value = bytes_arg(value, "value")?;
        match ttl_arg(py, ttl)? {
            Some(ttl) => py.detach(|| self.core.db.put_with_ttl(&key, &value, ttl)),
            None => py.detach(|| self.core.db.put(&key, &value)),
        }
        .py(py)
    }

    /// Seconds before `key` expires; None when it never does. KeyError when it is
    /// absent or expired, as for a read.
    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let k = bytes_arg(key, "key")?;
        // No I/O, but it takes the index lock, which a writer may hold.
        match py.detach(|| self.core.db.key_ttl(&k)).py(py)? {
            KeyTtl::Missing => Err(PyKeyError::new_err(key.clone().unbind())),
            KeyTtl::Persistent => Ok(None),
            KeyTtl::Remaining(d) => Ok(Some(d.as_secs_f64())),
            other => Err(PyRuntimeError::new_err(format!(
                "unknown expiry state {other:?}: this binding is older than its engine"
            ))),
        }
    }

    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        let key = bytes_arg(key, "key")?;
        py.detach(|| self.core.db.delete(&key)).py(py)
    }

    /// Applies a batch atomically; `sync` forces an fdatasync before returning.
    #[pyo3(signature = (batch, sync=false))]
    fn write(&self, py: Python<'_>, batch: PyRef<'_, PyWriteBatch>, sync: bool) -> PyResult<u64> {
        let b: &WriteBatch = &batch.batch;
        py.detach(|| self.core.db.write_opt(b, WriteOptions { sync }))
            .py(py)
    }

    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.core.db.sync()).py(py)
    }

    /// Deletes every key, in batches of at most `CLEAR_KEYS` deletes or
    /// `CLEAR_BYTES` bytes of log, in key order, so memory stays bounded
    /// whatever the number of keys. Each batch's keys come from a keys-only
    /// iterator (which reads the keydir a chunk at a time) started past the
    /// previous batch's last key and dropped before the batch is written: an
    /// iterator reads from a snapshot, and one kept across the deletes would
    /// make the engine keep what every delete replaced, a version per key.
    /// Not atomic: each batch is. Returns the batches written.
    fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        use std::ops::Bound as B;
        let engine = |e: Error| Python::attach(|py| to_py(py, e));
        py.detach(|| -> PyResult<u64> {
            let mut written = 0;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let lower = match &after {
                    Some(k) => B::Excluded(k.as_slice()),
                    None => B::Unbounded,
                };
                let keys = self
                    .core
                    .db
                    .range::<&[u8]>((lower, B::Unbounded), false)
                    .map_err(engine)?
                    .keys();
                let mut batch = WriteBatch::new();
                let mut last = None;
                let mut full = false;
                for key in keys {
                    let key = key.map_err(engine)?;
                    batch.delete(&key);
                    last = Some(key);
                    if batch.len() >= CLEAR_KEYS || batch.encoded_len() >= CLEAR_BYTES {
                        full = true;
                        break;
                    }
                }
                // The iterator, and its snapshot, are gone by here.
                if !batch.is_empty() {
                    self.core.db.write(&batch).map_err(engine)?;
                    written += 1;
                }
                if !full {
                    return Ok(written);
                }
                after = last;
                // Long on a big database: let Ctrl-C stop it between batches.
                Python::attach(|py| py.check_signals())?;
            }
        })
    }

    /// A read view as of the last write made (see `PySnapshot`). O(1).
    fn snapshot(slf: &Bound<'_, Self>, py: Python<'_>) -> PyResult<Py<PySnapshot>> {
        let db = &slf.get().core;
        // Takes the index lock, which a writer may hold.
        let snap = py.detach(|| db.db.snapshot()).py(py)?;
        let seq = snap.seq();
        let core = Arc::new(SnapCore {
            snap: RwLock::new(Some(snap)),
            children: Children::default(),
        });
        // Ending it here if the handle was closed meanwhile releases the
        // engine's registration, with the GIL released.
        py.detach(|| db.children.register(&core));
        let reader = PyReader {
            source: Source::Snap(Arc::clone(&core)),
        };
        let snapshot = PySnapshot {
            core,
            seq,
            db: Mutex::new(Some(slf.clone().unbind())),
        };
        Py::new(py, PyClassInitializer::from(reader).add_subclass(snapshot))
    }

    /// The engine's counters as a dict (the package turns it into `Stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // Reads hint file sizes from disk.
        let s: Stats = py.detach(|| self.core.db.stats()).py(py)?;
        let d = PyDict::new(py);
        d.set_item("keys", s.keys)?;
        d.set_item("keydir_bytes", s.keydir_bytes)?;
        d.set_item("tombstones", s.tombstones)?;
        d.set_item("data_bytes", s.data_bytes)?;
        d.set_item("hint_bytes", s.hint_bytes)?;
        d.set_item("disk_bytes", s.disk_bytes)?;
        d.set_item("preallocated_bytes", s.preallocated_bytes)?;
        let files = PyList::empty(py);
        for f in &s.files {
            let fd = PyDict::new(py);
            fd.set_item("id", f.id)?;
            fd.set_item("total_bytes", f.total_bytes)?;
            fd.set_item("live_bytes", f.live_bytes)?;
            fd.set_item("dead_bytes", f.dead_bytes)?;
            files.append(fd)?;
        }
        d.set_item("files", files)?;
        d.set_item("dropped_bytes_at_open", s.dropped_bytes_at_open)?;
        d.set_item("salvaged_bytes_at_open", s.salvaged_bytes_at_open)?;
        d.set_item("last_seq", s.last_seq)?;
        let last_merge = s
            .last_merge
            .as_ref()
            .map(|m| merge_dict(py, m))
            .transpose()?;
        d.set_item("last_merge", last_merge)?;
        d.set_item("merges", s.merges)?;
        d.set_item("merge_failures", s.merge_failures)?;
        // The exception the failed merge raised, as an instance (not raised).
        let last_merge_error = error_value(py, s.last_merge_error.as_ref())?;
        d.set_item("last_merge_error", last_merge_error)?;
        d.set_item("syncs", s.syncs)?;
        d.set_item("writes", s.writes)?;
        d.set_item("write_groups", s.write_groups)?;
        d.set_item("snapshots", s.snapshots)?;
        d.set_item("snapshot_versions", s.snapshot_versions)?;
        Ok(d)
    }

    /// Compacts every immutable data file with dead bytes; reads and writes go on
    /// meanwhile. Returns the merge's counters as a dict.
    fn merge<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // Rewrites files: seconds on a big database, so the GIL must be free.
        let m = py.detach(|| self.core.db.merge()).py(py)?;
        merge_dict(py, &m)
    }

    /// Writes a consistent copy of the database into the new directory `path`;
    /// returns the sequence number the copy is as of.
    fn backup(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        // Links and copies files: seconds on a big database, so the GIL must be free.
        py.detach(|| self.core.db.backup(&path)).py(py)
    }

    /// Ends the handle's live iterators and snapshots (their next use raises
    /// ClosedError), then flushes, syncs and releases the directory lock.
    /// Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            // The engine closes even when the final sync fails, so the
            // children are ended (and the flag set) first. Waits for a step or
            // a read in progress on another thread, if any.
            self.core.children.close();
            self.core.db.close()
        })
        .py(py)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.children.is_closed()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.core.db.path().to_path_buf()
    }
}

/// Values of at least this many bytes are read into their `bytes` directly (see
/// `PyReader::get`).
const ONE_COPY_MIN: usize = 16 << 10;

/// The largest batch `PyBitcask::clear` writes: this many deletes...
const CLEAR_KEYS: usize = 10_000;
/// ...or this many bytes of log (keys are up to `max_key_size` long).
const CLEAR_BYTES: usize = 8 << 20;

/// A value read by `PyReader::get` with the GIL released.
enum Value {
    /// Copied out, to become a `bytes` once the GIL is back.
    Copied(Vec<u8>),
    /// Already a `bytes`.
    Made(Py<PyBytes>),
}

impl Value {
    /// What `get_with` does with a value, without the GIL.
    fn take(v: &[u8]) -> PyResult<Value> {
        if v.len() < ONE_COPY_MIN {
            Ok(Value::Copied(v.to_vec()))
        } else {
            bytes_without_gil(v).map(Value::Made)
        }
    }

    /// The `bytes` of what `get_with` returned, with the GIL.
    fn into_bytes(
        py: Python<'_>,
        v: Option<PyResult<Value>>,
    ) -> PyResult<Option<Bound<'_, PyBytes>>> {
        Ok(match v.transpose()? {
            None => None,
            Some(Value::Copied(v)) => Some(PyBytes::new(py, &v)),
            Some(Value::Made(b)) => Some(b.into_bound(py)),
        })
    }
}

/// A `bytes` holding `v`, made on a thread without the GIL: the GIL is taken
/// only to allocate the object, and `v` (in a data file's map, where reading
/// may fault pages in from disk) is copied into it with the GIL released.
fn bytes_without_gil(v: &[u8]) -> PyResult<Py<PyBytes>> {
    /// Where the new object's bytes go.
    struct Dest(*mut u8);
    // SAFETY: the buffer of an object that no other thread can reach (below).
    unsafe impl Send for Dest {}
    let (obj, dest) = Python::attach(|py| -> PyResult<_> {
        // SAFETY: a NULL source makes a `bytes` of `v.len()` bytes left to fill
        // (a slice's length fits an isize), returned as a new reference.
        let obj = unsafe {
            let p = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), v.len() as isize);
            Bound::from_owned_ptr_or_err(py, p)?.cast_into_unchecked::<PyBytes>()
        };
        // SAFETY: `obj` is a `bytes`.
        let dest = unsafe { pyo3::ffi::PyBytes_AsString(obj.as_ptr()) };
        Ok((obj.unbind(), Dest(dest.cast())))
    })?;
    // SAFETY: `dest` holds `v.len()` bytes. The object is not shared yet: no
    // other thread, with the GIL or not, sees its bytes before it is returned.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), dest.0, v.len()) };
    Ok(obj)
}

fn merge_dict<'py>(py: Python<'py>, m: &MergeStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files_in", m.files_in)?;
    d.set_item("files_out", m.files_out)?;
    d.set_item("bytes_in", m.bytes_in)?;
    d.set_item("bytes_out", m.bytes_out)?;
    d.set_item("bytes_reclaimed", m.bytes_reclaimed)?;
    d.set_item("records_copied", m.records_copied)?;
    d.set_item("tombstones_kept", m.tombstones_kept)?;
    d.set_item("expired_dropped", m.expired_dropped)?;
    d.set_item("duration", m.duration.as_secs_f64())?;
    Ok(d)
}

// ---------------------------------------------------------------------------
// Iterators

/// An engine iterator. Its state is locked because Python may call `__next__`
/// from several threads; the lock is taken with the GIL released, as a value
/// read is I/O. The handle (or the snapshot) it was made from keeps a weak
/// reference to the state, so that its `close` can end the iterator.
#[pyclass(frozen, name = "_Iter", module = "bitcask._bitcask")]
struct PyIter {
    state: Arc<Mutex<IterState>>,
    what: Yield,
    /// Keeps the handle (a `PyBitcask`) or the snapshot (a `PySnapshot`) it was
    /// made from alive: dropping the last reference to a handle closes the
    /// database, which would end `for k in bitcask.open(p): ...` with
    /// ClosedError, and dropping a snapshot's would release the snapshot. Let
    /// go by `close`. Only touched with the GIL held.
    owner: Mutex<Option<Py<PyAny>>>,
}

/// What an iterator has left. The engine iterator holds the engine's internals
/// (an `Arc`, with the data files of the chunk it read ahead), so it is dropped
/// as soon as the iterator ends, whatever ends it.
struct IterState {
    /// None once exhausted or closed.
    cursor: Option<Cursor>,
    /// Whether the handle's `close` ended the iterator: its next step raises
    /// ClosedError rather than StopIteration.
    db_closed: bool,
}

impl IterState {
    /// The handle (or the snapshot) was closed: a live iterator is ended, and
    /// its next step raises ClosedError. One already exhausted or closed keeps
    /// raising StopIteration, as a Python iterator that has ended must.
    fn end_by_close(&mut self) {
        if self.cursor.take().is_some() {
            self.db_closed = true;
        }
    }
}

impl EndByClose for Mutex<IterState> {
    fn end_by_close(&self) {
        // Waits for a step in progress on another thread, if any.
        lock(self).end_by_close();
    }
}

/// The engine's side of a `PyIter`.
enum Cursor {
    /// Keys with their values, read ahead in file order.
    Entries(Iter),
    /// Keys only: reads no data file (`Iter::next_key` on an `Iter` still reads
    /// values ahead, so the `Iter` is turned into `Keys`).
    Keys(Keys),
}

impl PyIter {
    /// An iterator over `it`, registered with `children`, its owner's.
    fn new(owner: &Bound<'_, PyAny>, children: &Children, it: Iter, what: Yield) -> Self {
        let cursor = match what {
            Yield::Keys => Cursor::Keys(it.keys()),
            Yield::Items | Yield::Values => Cursor::Entries(it),
        };
        let state = Arc::new(Mutex::new(IterState {
            cursor: Some(cursor),
            db_closed: false,
        }));
        children.register(&state);
        PyIter {
            state,
            what,
            owner: Mutex::new(Some(owner.clone().unbind())),
        }
    }
}

/// One step of a `PyIter`.
enum Step {
    Next(bitcask::Result<Item>),
    /// Exhausted or closed: StopIteration.
    End,
    /// Ended by the handle's `close`: ClosedError.
    Closed,
}

type Item = (Vec<u8>, Option<Vec<u8>>);

#[pymethods]
impl PyIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let step = py.detach(|| {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let r = match st.cursor.as_mut() {
                None if st.db_closed => return Step::Closed,
                None => return Step::End,
                Some(Cursor::Keys(it)) => it.next().map(|r| r.map(|k| (k, None))),
                Some(Cursor::Entries(it)) => it.next().map(|r| r.map(|(k, v)| (k, Some(v)))),
            };
            match r {
                Some(r) => Step::Next(r),
                None => {
                    // Exhausted: let go of the engine's files now, not at garbage collection.
                    st.cursor = None;
                    Step::End
                }
            }
        });
        let r = match step {
            Step::Next(r) => r,
            Step::End => return Ok(None),
            Step::Closed => return Err(to_py(py, Error::Closed)),
        };
        let obj = match (self.what, r.py(py)?) {
            (Yield::Keys, (k, _)) => PyBytes::new(py, &k).into_any(),
            (Yield::Values, (_, Some(v))) => PyBytes::new(py, &v).into_any(),
            (Yield::Items, (k, Some(v))) => PyTuple::new(
                py,
                [
                    PyBytes::new(py, &k).into_any(),
                    PyBytes::new(py, &v).into_any(),
                ],
            )?
            .into_any(),
            _ => return Err(PyRuntimeError::new_err("iterator yielded no value")),
        };
        Ok(Some(obj.unbind()))
    }

    /// Ends the iterator: lets go of the engine iterator (and the data files and
    /// the snapshot it holds) and of the handle or snapshot it was made from.
    /// Idempotent. Its next step raises StopIteration, or ClosedError if the
    /// owner's `close` ended it first.
    fn close(&self, py: Python<'_>) {
        // Waits, with the GIL released, for a step in progress on another thread.
        py.detach(|| drop(lock(&self.state).cursor.take()));
        // Dropped with the GIL held; may be the owner's last reference.
        drop(lock(&self.owner).take());
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Closes the iterator; exceptions propagate.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close(py);
        false
    }

    /// `_Iter[bytes]` at run time, as for the typing's generic classes.
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        py.import("types")?
            .getattr("GenericAlias")?
            .call1((cls, item))
    }
}

// ---------------------------------------------------------------------------
// Snapshots

/// A read view of the database as of one sequence number (the engine's
/// `Snapshot`), from `_Bitcask.snapshot`. Its reads are those of its base
/// class, `_Reader`, which shares its `SnapCore`: they take the core's lock
/// shared, with the GIL released, so threads read one snapshot in parallel;
/// `close` (its own or the handle's) takes it exclusively to let go of the
/// engine's snapshot, waiting for reads in progress. The handle keeps a weak
/// reference to the core, so that its `close` can end the snapshot; the
/// snapshot keeps weak references to its iterators, which its own end ends in
/// turn.
#[pyclass(frozen, extends = PyReader, name = "_Snapshot", module = "bitcask._bitcask")]
struct PySnapshot {
    core: Arc<SnapCore>,
    /// The snapshot's sequence number: still known once it is closed.
    seq: u64,
    /// Keeps the handle alive, as an iterator does. Let go by `close`. Only
    /// touched with the GIL held.
    db: Mutex<Option<Py<PyBitcask>>>,
}

struct SnapCore {
    /// None once closed, by its `close` or the handle's: dropping the engine's
    /// snapshot releases what the engine keeps for it.
    snap: RwLock<Option<Snapshot>>,
    /// Iterators made from the snapshot; the flag is the snapshot's `closed`.
    children: Children,
}

impl EndByClose for SnapCore {
    fn end_by_close(&self) {
        // Waits for reads in progress; an iterator being made from the snapshot
        // meanwhile is ended by `register`, or by the sweep below.
        drop(write(&self.snap).take());
        self.children.close();
    }
}

#[pymethods]
impl PySnapshot {
    /// Releases the snapshot (and ends its live iterators, whose next step
    /// raises ClosedError) and lets go of the handle. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.core.end_by_close());
        // Dropped with the GIL held; may be the handle's last reference.
        drop(lock(&self.db).take());
    }

    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.children.is_closed()
    }
}

// ---------------------------------------------------------------------------
// Batches

/// Puts and deletes collected in memory, applied all or nothing by `_Bitcask.write`.
#[pyclass(name = "_WriteBatch", module = "bitcask._bitcask")]
struct PyWriteBatch {
    batch: WriteBatch,
}

#[pymethods]
impl PyWriteBatch {
    #[new]
    fn new() -> Self {
        PyWriteBatch {
            batch: WriteBatch::new(),
        }
    }

    /// A put; `ttl` (seconds) as for `_Bitcask.put`. A TTL the engine refuses
    /// (zero, too long) is reported by `write`, as sizes are.
    #[pyo3(signature = (key, value, ttl=None))]
    fn put(
        &mut self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key = bytes_arg(key, "key")?;
        let value = bytes_arg(value, "value")?;
        match ttl_arg(py, ttl)? {
            Some(ttl) => self.batch.put_with_ttl(&key, &value, ttl),
            None => self.batch.put(&key, &value),
        };
        Ok(())
    }

    fn delete(&mut self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = bytes_arg(key, "key")?;
        self.batch.delete(&key);
        Ok(())
    }

    fn clear(&mut self) {
        self.batch.clear();
    }

    fn __len__(&self) -> usize {
        self.batch.len()
    }
}

/// Registers the hooks of the event listener's gate (see `EXITING`).
fn register_gate_hooks(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let exiting = wrap_pyfunction!(_interpreter_exiting, m)?;
    py.import("atexit")?.call_method1("register", (exiting,))?;
    // Where there is no fork (Windows), there is no os.register_at_fork.
    if let Ok(at_fork) = py.import("os")?.getattr("register_at_fork") {
        let kwargs = PyDict::new(py);
        kwargs.set_item("after_in_child", wrap_pyfunction!(_after_fork_in_child, m)?)?;
        at_fork.call((), Some(&kwargs))?;
    }
    Ok(())
}

#[pymodule]
fn _bitcask(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FORMAT_VERSION", bitcask::FORMAT_VERSION)?;
    m.add_class::<PyReader>()?;
    m.add_class::<PyBitcask>()?;
    m.add_class::<PyIter>()?;
    m.add_class::<PySnapshot>()?;
    m.add_class::<PyWriteBatch>()?;
    m.add_class::<PyOpenProgress>()?;
    register_gate_hooks(m)?;
    Ok(())
}

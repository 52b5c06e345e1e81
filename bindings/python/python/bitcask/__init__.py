"""libbitcask for Python: a Bitcask store (log-structured hash table) as a mapping.

>>> import bitcask
>>> with bitcask.open("/tmp/example-db") as db:
...     db[b"hello"] = b"world"
...     db[b"hello"]
b'world'

A database is a directory; :func:`open` creates it if needed (unless given
``create_if_missing=False``). A :class:`Bitcask` is a
:class:`collections.abc.MutableMapping` from bytes to bytes, plus keys that
expire (``put(key, value, ttl=seconds)``, ``ttl``), batches, ordered range and
prefix scans (of items, keys or values: ``yields=``), snapshots (``snapshot``),
``sync``, ``merge``, ``backup``, ``stats`` and ``close``.

Keys and values
    are bytes. Any bytes-like object (``bytes``, ``bytearray``, ``memoryview``,
    anything with the buffer protocol) is accepted as input; reads always return
    ``bytes``. ``str`` is refused with a :class:`TypeError` rather than silently
    encoded, because the encoding is the caller's choice: pass ``s.encode()``.

Threads
    A handle may be shared by any number of threads. Every call that can do I/O,
    wait for a lock or wait for an fsync releases the GIL, so reads run in
    parallel and concurrent writers are merged into one append and one fsync
    (group commit). Iterators read a consistent view as of their creation (see
    :meth:`Bitcask.range`).

Iterators
    Every iterator the package returns (``iter(db)``, ``iter(db.keys())``,
    ``iter(db.values())``, ``iter(db.items())``, :meth:`Bitcask.range`,
    :meth:`Bitcask.prefix`) is an :class:`Iter`: ``close()`` ends it at once
    (its next step raises ``StopIteration``) and ``with db.range(a, b) as it:``
    closes it on exit. :meth:`Bitcask.close` ends those still live: their next
    step raises :class:`ClosedError`.
    Do not use a handle in a child process after ``fork``: open the database
    again there (after the parent closed it, since one writer is allowed).

Snapshots
    ``with db.snapshot() as snap:`` gives a :class:`Snapshot`, a read-only
    :class:`collections.abc.Mapping` of the database as of one moment, whatever
    is written, deleted or merged meanwhile. :meth:`Bitcask.close` ends those
    still live, as it ends iterators.

Errors
    every engine error is a subclass of :class:`Error`; see ``bitcask._errors``.
    Using a closed handle raises :class:`ClosedError`.

Events
    what the engine does by itself, or finds at open, is logged on the standard
    logger ``logging.getLogger("bitcask")``: merges completed (INFO), merges
    failed, bytes dropped or salvaged at open and slow fdatasyncs (WARNING), and
    writes refused after a failed write (ERROR). The message is one line (e.g.
    ``slow_sync file=/db/000003.data duration_ms=1204.113``) and each record
    carries the event's fields as attributes, for handlers and formatters:
    ``event`` (its name: ``"merge_completed"``, ``"merge_failed"``,
    ``"writes_refused"``, ``"dropped_at_open"``, ``"salvaged_at_open"``,
    ``"slow_sync"``), ``file`` (a str), ``offset``, ``bytes`` (ints),
    ``duration`` (seconds, a float) and ``error`` (the :class:`Error` instance
    of a failure, not raised), each None when the event has none. Records come
    from the database's background thread, a moment after the fact (with
    ``read_only``, which has none, from the thread that saw the event, the
    opening one for what an open finds); :meth:`Bitcask.close` delivers those
    still queued. See the ``slow_sync_threshold`` option.
"""

from __future__ import annotations

import math
import os
from abc import abstractmethod
from collections.abc import Callable, ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Optional, TypeVar, Union, overload

from ._bitcask import (
    FORMAT_VERSION,
    OpenProgress,
    __version__,
    _Bitcask,
    _Iter,
    _Reader,
    _Snapshot,
    _WriteBatch,
)
from ._errors import (
    BadFormatError,
    BatchTooLargeError,
    ClosedError,
    CorruptionError,
    DatabaseExistsError,
    DatabaseNotFoundError,
    EmptyKeyError,
    Error,
    InvalidOptionError,
    KeyTooLargeError,
    LockedError,
    ReadOnlyError,
    StorageIOError,
    ValueTooLargeError,
    WritesRefusedError,
)

__all__ = [
    "__version__",
    "FORMAT_VERSION",
    "open",
    "Bitcask",
    "Iter",
    "Snapshot",
    "WriteBatch",
    "Stats",
    "FileStats",
    "MergeStats",
    "OpenProgress",
    "BytesLike",
    "SyncPolicy",
    "Yields",
    "Error",
    "StorageIOError",
    "LockedError",
    "DatabaseNotFoundError",
    "DatabaseExistsError",
    "ReadOnlyError",
    "ClosedError",
    "WritesRefusedError",
    "CorruptionError",
    "BadFormatError",
    "EmptyKeyError",
    "KeyTooLargeError",
    "ValueTooLargeError",
    "BatchTooLargeError",
    "InvalidOptionError",
]

#: What keys and values may be given as.
BytesLike = Union[bytes, bytearray, memoryview]

#: ``"always"``: fdatasync before each write returns (concurrent writers share
#: one); ``"never"``: leave it to the OS; an int ``n``: a background fdatasync at
#: most every ``n`` milliseconds. Whatever the policy, a write has reached the OS
#: before it returns (unless ``write_buffer_size`` is set), so a crash of the
#: process loses nothing acknowledged; the policy decides what a power loss may.
SyncPolicy = Union[Literal["always", "never"], int]

#: What :meth:`Bitcask.range` and :meth:`Bitcask.prefix` yield: ``"items"``,
#: ``(key, value)`` pairs; ``"keys"``, keys alone, read from memory (no data file
#: is read); ``"values"``, values alone.
Yields = Literal["items", "keys", "values"]

StrPath = Union[str, "os.PathLike[str]"]

_T = TypeVar("_T")
_Self = TypeVar("_Self", bound="_Reads")

#: The iterator of every scan: ``Iter[bytes]`` for keys or values,
#: ``Iter[tuple[bytes, bytes]]`` for items. An :class:`~collections.abc.Iterator`
#: that can be closed: ``close()`` (idempotent) lets go of what the scan holds
#: (read-ahead values, references to data files, its view, the handle) at once,
#: and its next step raises ``StopIteration``; as a context manager it closes on
#: exit. Every iterator reads from a snapshot: one of its own, taken when it is
#: made, or the :class:`Snapshot` it was made from. :meth:`Bitcask.close` ends
#: every iterator still live on the handle, and :meth:`Snapshot.close` those of
#: the snapshot: their next step raises :class:`ClosedError` (one already
#: exhausted or closed keeps raising ``StopIteration``), and they no longer hold
#: the database, so the directory can be opened again while they are still
#: referenced.
Iter = _Iter


@dataclass(frozen=True)
class FileStats:
    """Space use of one data file."""

    id: int
    #: File length, header included.
    total_bytes: int
    #: Bytes of records holding a key's current value.
    live_bytes: int
    #: Everything else: overwritten and deleted values, tombstones, the header.
    dead_bytes: int


@dataclass(frozen=True)
class MergeStats:
    """The outcome of a merge, from :meth:`Bitcask.merge`."""

    #: Data files merged and removed.
    files_in: int
    #: Data files written.
    files_out: int
    bytes_in: int
    bytes_out: int
    #: ``bytes_in - bytes_out``.
    bytes_reclaimed: int
    #: Live records copied.
    records_copied: int
    #: Tombstones kept because an older file outside the merge may hold their key.
    tombstones_kept: int
    #: Expired values dropped (each replaced by a tombstone when an older file
    #: outside the merge may hold a value of its key).
    expired_dropped: int
    #: Wall time, in seconds.
    duration: float


@dataclass(frozen=True)
class Stats:
    """A snapshot of the database's counters, from :meth:`Bitcask.stats`."""

    #: Live keys, what ``len()`` counts (expired keys not included).
    keys: int
    keydir_bytes: int
    #: Tombstone records in the data files. A merge drops each once no file that
    #: could hold a value it hides remains.
    tombstones: int
    data_bytes: int
    hint_bytes: int
    disk_bytes: int
    #: Space allocated past the data for durable writes (the ``preallocate``
    #: option): the zero-filled tail of the active file plus the spare next file.
    #: Not in ``data_bytes`` or ``disk_bytes``; at most 13 MiB.
    preallocated_bytes: int
    #: Per data file, ascending id; the last is the active file.
    files: list[FileStats]
    dropped_bytes_at_open: int
    salvaged_bytes_at_open: int
    #: Sequence number of the newest write (None when read-only).
    last_seq: Optional[int]
    #: The last merge since open, manual or automatic, that succeeded and did work.
    last_merge: Optional[MergeStats]
    #: Merges that completed since open (a merge with nothing to reclaim is not
    #: run, so it is not counted).
    merges: int
    #: Merges that failed in a row, up to now: 0 once a merge succeeds. Automatic
    #: merging backs off while this is above 0.
    merge_failures: int
    #: The exception the newest failed merge raised (an instance of the
    #: :class:`Error` subclass of its kind, e.g. :class:`CorruptionError`), while
    #: ``merge_failures`` is above 0; None otherwise.
    last_merge_error: Optional[Error]
    #: fdatasyncs of the active file since open (durable writes, :meth:`Bitcask.sync`,
    #: the background thread of ``sync=n``; not those of rotation, hint files or
    #: merge).
    syncs: int
    #: Writes (puts, deletes, batches) committed since open.
    writes: int
    #: Appends those writes were committed in: with ``write_merging``, concurrent
    #: writes share one append and one fdatasync, so this is below ``writes``.
    write_groups: int
    #: Snapshots alive: those of :meth:`Bitcask.snapshot`, and the one each live
    #: iterator reads from.
    snapshots: int
    #: Versions the engine keeps for them: one per key changed since the oldest
    #: was taken (at most one per key and snapshot), about 60 bytes each; 0 once
    #: none is alive.
    snapshot_versions: int


class _Reads(Mapping[bytes, bytes]):
    """The reads of :class:`Bitcask` and :class:`Snapshot`, written once, and
    their ``with`` blocks, which close them on exit."""

    #: What the reads go to: the extension's handle (a ``_Bitcask``), which
    #: reads the database as of each call, or one of its snapshots (a
    #: ``_Snapshot``), as of the snapshot. Both are ``_Reader``s, with the same
    #: read methods.
    _db: _Reader

    def __getitem__(self, key: BytesLike) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        # Answered from the in-memory keydir: no disk read.
        return self._db.contains(key)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Keys, expired ones not counted (a snapshot's: those it sees). No
        disk read."""
        return self._db.len()

    def __iter__(self) -> Iter[bytes]:
        """Keys in ascending order, from memory: no data file is read (nor by
        ``keys()``, whose view iterates with this). An :class:`Iter`, which can
        be closed."""
        return self._db.range(yields="keys")

    def keys(self) -> KeysView[bytes]:
        """Keys in key order, from memory (no data file is read)."""
        return _KeysView(self)

    def values(self) -> ValuesView[bytes]:
        """Values in key order, each read once (not a lookup per key)."""
        return _ValuesView(self)

    def items(self) -> ItemsView[bytes, bytes]:
        """``(key, value)`` pairs in key order, read by one scan."""
        return _ItemsView(self)

    @overload
    def get(self, key: BytesLike) -> Optional[bytes]: ...
    @overload
    def get(self, key: BytesLike, default: Union[bytes, _T]) -> Union[bytes, _T]: ...
    def get(self, key: BytesLike, default: object = None) -> object:
        """The value of ``key`` (in a snapshot, the value it had as of the
        snapshot), or ``default`` when it has none."""
        value = self._db.get(key)
        return default if value is None else value

    @overload
    def range(
        self,
        start: Optional[BytesLike] = None,
        stop: Optional[BytesLike] = None,
        reverse: bool = False,
        *,
        yields: Literal["items"] = "items",
    ) -> Iter[tuple[bytes, bytes]]: ...
    @overload
    def range(
        self,
        start: Optional[BytesLike] = None,
        stop: Optional[BytesLike] = None,
        reverse: bool = False,
        *,
        yields: Literal["keys", "values"],
    ) -> Iter[bytes]: ...
    @overload
    def range(
        self,
        start: Optional[BytesLike] = None,
        stop: Optional[BytesLike] = None,
        reverse: bool = False,
        *,
        yields: Yields,
    ) -> Iter[Union[bytes, tuple[bytes, bytes]]]: ...
    def range(
        self,
        start: Optional[BytesLike] = None,
        stop: Optional[BytesLike] = None,
        reverse: bool = False,
        *,
        yields: Yields = "items",
    ) -> Iter[Union[bytes, tuple[bytes, bytes]]]:
        """The keys ``start <= key < stop`` (in a snapshot, as of the
        snapshot) in key order (descending when ``reverse``); None leaves that
        side open.

        ``yields`` says what comes out: ``"items"`` (the default), ``(key, value)``
        pairs; ``"keys"``, keys alone, from the in-memory index without reading
        any data file; ``"values"``, values alone. Values are read a chunk of keys
        at a time, in file order. Any other ``yields`` raises ``ValueError``::

            for key in db.range(b"a", b"m", yields="keys"): ...

        The iterator reads a consistent view: a :class:`Snapshot`'s, the
        snapshot; a :class:`Bitcask`'s, the database as of the iterator's
        creation: writes, deletes and merges made meanwhile, by any thread, do
        not change what it yields. Until it ends (exhausted, closed or
        collected), the engine keeps what those writes replace (see
        :meth:`Bitcask.snapshot`).

        The result is an :class:`Iter`: ``it.close()`` ends it early, and
        ``with db.range(a, b) as it:`` closes it on exit. The ``close`` of the
        handle, or of the snapshot it was made from, ends it too.
        """
        return self._db.range(start, stop, reverse, yields=yields)

    @overload
    def prefix(
        self, prefix: BytesLike, reverse: bool = False, *, yields: Literal["items"] = "items"
    ) -> Iter[tuple[bytes, bytes]]: ...
    @overload
    def prefix(
        self, prefix: BytesLike, reverse: bool = False, *, yields: Literal["keys", "values"]
    ) -> Iter[bytes]: ...
    @overload
    def prefix(
        self, prefix: BytesLike, reverse: bool = False, *, yields: Yields
    ) -> Iter[Union[bytes, tuple[bytes, bytes]]]: ...
    def prefix(
        self, prefix: BytesLike, reverse: bool = False, *, yields: Yields = "items"
    ) -> Iter[Union[bytes, tuple[bytes, bytes]]]:
        """The keys that start with ``prefix`` (in a snapshot, as of the
        snapshot), in key order (descending when ``reverse``), yielded as
        ``yields`` says (see :meth:`range`): e.g. ``db.prefix(b"user:",
        yields="keys")`` reads no data file."""
        return self._db.prefix(prefix, reverse, yields=yields)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class Bitcask(_Reads, MutableMapping[bytes, bytes]):
    """An open database: a mutable mapping from bytes to bytes.

    Options are keywords; None (the default) keeps the engine's default:

    - ``sync``: ``"always"``, ``"never"`` (default) or an int of milliseconds;
      see :data:`SyncPolicy`.
    - ``max_file_size``: bytes at which the active data file is sealed (128 MiB).
    - ``max_key_size`` (4096), ``max_value_size`` (64 MiB): larger writes raise
      :class:`KeyTooLargeError` / :class:`ValueTooLargeError`.
    - ``read_only``: open without the writer lock; writes raise :class:`ReadOnlyError`.
    - ``salvage``: skip corrupt records in immutable files instead of raising
      :class:`CorruptionError` at open.
    - ``create_if_missing``: create the database when ``path`` holds none (True).
      False: an open that finds no data file there (a missing directory
      included) raises :class:`DatabaseNotFoundError` (a ``FileNotFoundError``)
      and creates nothing, so that a mistyped path is not a new, empty database.
    - ``error_if_exists``: raise :class:`DatabaseExistsError` (a
      ``FileExistsError``) when ``path`` already holds a database (a data file),
      leaving it untouched (False).
    - ``write_buffer_size``: bytes held in memory before a ``write(2)`` (0); speeds
      bulk loads, and a process crash may lose the buffered bytes.
    - ``mmap``: read values through read-only memory maps of the data files
      (True): a read makes no system call. The cost of a map: an I/O error while
      the kernel pages a value in, or a data file truncated by another program
      while the database is open, raises SIGBUS, which kills the process, instead
      of an exception (a signal raised by the read itself: neither ``except`` nor
      ``signal.signal`` can recover from it). False reads every value with
      ``pread``, where both raise :class:`StorageIOError`.
    - ``preallocate``: once a durable write is made (``sync="always"``, or a
      batch written with ``sync=True``), keep the active data file zero-filled
      ahead of the writes and the next file made ahead (True), so that a durable
      write's fdatasync commits no file metadata. Costs up to 13 MiB of space
      past the data (``Stats.preallocated_bytes``); files are trimmed to their
      data when sealed or closed. False: every file grows with its writes.
    - ``write_merging``: group commit of concurrent writers (True).
    - ``auto_merge``, ``merge_check_interval`` (seconds, a float),
      ``merge_trigger_fragmentation`` (percent), ``merge_trigger_dead_bytes``,
      ``merge_trigger_total_dead_bytes``, ``merge_threshold_fragmentation``
      (percent), ``merge_threshold_dead_bytes``, ``merge_bytes_per_sec`` (0: no
      cap): when the engine compacts files, and how fast.
    - ``default_ttl``: seconds (int or float) after which a value written without
      its own ``ttl`` expires; None (the default): such values never expire.
    - ``progress``: a callable that the open calls with an :class:`OpenProgress`
      each time it has loaded a data file, for a long open to report how far it
      has got; the last call has ``files_done == files_total``. It runs on the
      open's loader threads, not necessarily the calling one, never two calls at
      once, and only while the open runs (with the GIL, which the open otherwise
      releases). Its return value is ignored. An exception it raises aborts the
      open: later calls are skipped, the open finishes loading, closes the
      database again (releasing its lock) and raises that exception. A
      non-callable raises ``TypeError`` before anything is opened.
    - ``slow_sync_threshold``: an fdatasync of the active data file that takes
      at least this many seconds (int or float) is logged as a ``slow_sync``
      event (see Events in the package's documentation): 1.0 by default; 0
      logs every one; None (unlike for the other options, where None keeps the
      default) or ``math.inf`` logs none.

    A value out of range raises :class:`InvalidOptionError` (a ``ValueError``) whose
    ``option`` names the keyword; a value of the wrong type raises ``TypeError``; an
    unknown keyword raises ``TypeError`` as for any Python call. A second writable
    open of the same directory raises :class:`LockedError`.
    """

    _db: _Bitcask

    def __init__(
        self,
        path: StrPath,
        *,
        sync: Optional[SyncPolicy] = None,
        max_file_size: Optional[int] = None,
        max_key_size: Optional[int] = None,
        max_value_size: Optional[int] = None,
        read_only: Optional[bool] = None,
        salvage: Optional[bool] = None,
        create_if_missing: Optional[bool] = None,
        error_if_exists: Optional[bool] = None,
        write_buffer_size: Optional[int] = None,
        mmap: Optional[bool] = None,
        preallocate: Optional[bool] = None,
        write_merging: Optional[bool] = None,
        auto_merge: Optional[bool] = None,
        merge_check_interval: Optional[float] = None,
        merge_trigger_fragmentation: Optional[int] = None,
        merge_trigger_dead_bytes: Optional[int] = None,
        merge_trigger_total_dead_bytes: Optional[int] = None,
        merge_threshold_fragmentation: Optional[int] = None,
        merge_threshold_dead_bytes: Optional[int] = None,
        merge_bytes_per_sec: Optional[int] = None,
        default_ttl: Optional[float] = None,
        progress: Optional[Callable[[OpenProgress], object]] = None,
        slow_sync_threshold: Optional[float] = 1.0,
    ) -> None:
        self._db = _Bitcask(
            path,
            sync=sync,
            max_file_size=max_file_size,
            max_key_size=max_key_size,
            max_value_size=max_value_size,
            read_only=read_only,
            salvage=salvage,
            create_if_missing=create_if_missing,
            error_if_exists=error_if_exists,
            write_buffer_size=write_buffer_size,
            mmap=mmap,
            preallocate=preallocate,
            write_merging=write_merging,
            auto_merge=auto_merge,
            merge_check_interval=merge_check_interval,
            merge_trigger_fragmentation=merge_trigger_fragmentation,
            merge_trigger_dead_bytes=merge_trigger_dead_bytes,
            merge_trigger_total_dead_bytes=merge_trigger_total_dead_bytes,
            merge_threshold_fragmentation=merge_threshold_fragmentation,
            merge_threshold_dead_bytes=merge_threshold_dead_bytes,
            merge_bytes_per_sec=merge_bytes_per_sec,
            default_ttl=default_ttl,
            progress=progress,
            # None keeps the engine's default in _Bitcask: no report is an
            # infinite threshold.
            slow_sync_threshold=math.inf if slow_sync_threshold is None else slow_sync_threshold,
        )

    # -- the mapping protocol (its reads are those of _Reads) -----------------

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self._db.put(key, value)

    def __delitem__(self, key: BytesLike) -> None:
        # Check then delete is not atomic against other threads; a concurrent
        # delete of the same key at worst makes both succeed.
        if not self._db.contains(key):
            raise KeyError(key)
        self._db.delete(key)

    def clear(self) -> None:
        """Deletes every key, in batches of at most 10,000 keys (or 8 MiB of log)
        each, in key order, so memory stays bounded whatever the database holds.

        Not atomic: each batch is, the whole is not. A crash, an error or a
        ``KeyboardInterrupt`` (checked between batches) part-way leaves a prefix
        of the keys, in key order, deleted, batch by batch. Each batch takes the
        keys that follow the previous one's as they are when the batch starts:
        a key another thread writes meanwhile, behind the pass's position,
        survives. The GIL is released throughout.
        """
        self._db.clear()

    # -- beyond the mapping ---------------------------------------------------

    def put(self, key: BytesLike, value: BytesLike, ttl: Optional[float] = None) -> None:
        """Stores ``value`` under ``key`` (``db[key] = value``).

        With ``ttl`` (seconds, an int or a float), the key expires that long from
        now, rounded up to a whole second of the wall clock: it lives at least
        ``ttl`` and less than ``ttl + 1`` seconds. An expired key is gone for every
        read (``db[key]`` raises ``KeyError``, ``in`` is False, ``len`` and
        iteration skip it); a merge reclaims its space. Without ``ttl`` the value
        takes the ``default_ttl`` option, if set, and otherwise never expires;
        writing the key again replaces its expiry too. A TTL that is not positive
        and finite, or longer than about 68 years, raises
        :class:`InvalidOptionError` (``option == "ttl"``).
        """
        self._db.put(key, value, ttl)

    def ttl(self, key: BytesLike) -> Optional[float]:
        """Seconds left before ``key`` expires, or None when it never does.

        Raises ``KeyError`` when ``key`` is absent or has expired, as
        ``db[key]`` does. Answered from memory, no disk read.
        """
        return self._db.ttl(key)

    def delete(self, key: BytesLike) -> None:
        """Removes ``key``; deleting a missing key is not an error."""
        self._db.delete(key)

    def write_batch(self, *, sync: bool = False) -> WriteBatch:
        """A batch of puts and deletes applied all or nothing.

        As a context manager it is written when the block ends normally and
        discarded when the block raises::

            with db.write_batch() as b:
                b[b"a"] = b"1"
                b.delete(b"b")

        ``sync=True`` fdatasyncs before the write returns, whatever the sync policy.
        """
        return WriteBatch(self, sync=sync)

    def snapshot(self) -> Snapshot:
        """A read-only view of the database as of now: see :class:`Snapshot`.

        Taking one copies nothing. Close it when done (``with db.snapshot() as
        snap:`` does): while it lives, every write keeps what it replaces, so
        that the snapshot can still read it.
        """
        return Snapshot(self._db.snapshot())

    def sync(self) -> None:
        """Flushes buffered writes and fdatasyncs the active data file."""
        self._db.sync()

    def stats(self) -> Stats:
        """Counters and per-file space use."""
        d = self._db.stats()
        files = [FileStats(**f) for f in d.pop("files")]
        m = d.pop("last_merge")
        return Stats(files=files, last_merge=None if m is None else MergeStats(**m), **d)

    def merge(self) -> MergeStats:
        """Compacts the database now: rewrites every immutable data file that has
        dead bytes (overwritten or deleted values) into files of live records with
        hint files, and removes the old files.

        Reads and writes, from any thread, go on meanwhile (the GIL is released); a
        write that lands during the merge wins. One merge runs at a time; a second
        call waits for the first. Merges also run by themselves when ``auto_merge``
        is on and a trigger option is met.
        """
        return MergeStats(**self._db.merge())

    def backup(self, path: StrPath) -> int:
        """Writes a consistent copy of the database into the new directory
        ``path`` and returns the sequence number it is a copy as of: every write
        up to that number is in it, none after.

        Reads, writes and merges, from any thread, go on meanwhile (the GIL is
        released). Immutable data files are hard-linked when ``path`` is on the
        same filesystem and copied otherwise; the active file is copied up to its
        last complete write. The copy is built beside ``path`` and renamed into
        place once synced, so ``path`` holds a whole backup, to be opened with
        :func:`open` like any database, or does not exist. Copies are paced by
        ``merge_bytes_per_sec``. A ``path`` that exists and is not empty is
        refused with :class:`StorageIOError`.
        """
        return self._db.backup(path)

    def close(self) -> None:
        """Ends the handle's live iterators and snapshots, flushes and syncs
        outstanding writes and releases the directory lock.

        Idempotent. Any later use of the handle raises :class:`ClosedError`, and
        so does the next step of every iterator it ended (see :class:`Iter`) and
        any later read of a snapshot it ended (see :class:`Snapshot`); those let
        go of the database, so the directory can be opened again while they are
        still referenced.
        """
        self._db.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._db.closed

    @property
    def path(self) -> Path:
        """The database directory."""
        return Path(self._db.path)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<bitcask.Bitcask {str(self._db.path)!r} {state}>"


class _KeysView(KeysView[bytes]):
    _mapping: _Reads

    def __iter__(self) -> Iter[bytes]:
        return self._mapping._db.range(yields="keys")


class _ValuesView(ValuesView[bytes]):
    _mapping: _Reads

    def __iter__(self) -> Iter[bytes]:
        return self._mapping._db.range(yields="values")


class _ItemsView(ItemsView[bytes, bytes]):
    _mapping: _Reads

    def __iter__(self) -> Iter[tuple[bytes, bytes]]:
        return self._mapping._db.range(yields="items")


class Snapshot(_Reads):
    """A read-only view of the database as of one moment, from
    :meth:`Bitcask.snapshot`: a :class:`collections.abc.Mapping` from bytes to
    bytes that sees exactly the writes made before it was taken, whatever is
    written, deleted or merged afterwards, by any thread::

        with db.snapshot() as snap:
            snap[b"k"], b"k" in snap, len(snap), dict(snap.items())
            for key, value in snap.range(b"a", b"m"): ...

    Reads are those of :class:`Bitcask` (``snap[k]`` raises ``KeyError`` when
    absent; :meth:`range` and :meth:`prefix` take the same arguments), run with
    the GIL released; a snapshot may be shared by threads. Taking one copies
    nothing, but while it lives every write keeps what it replaces (about 60
    bytes a key changed, and the data files those values lie in, even once a
    merge has removed them: ``Stats.snapshot_versions``). :meth:`close` lets go
    of all that at once, and so does leaving the ``with`` block; otherwise it
    goes when the snapshot, and every iterator made from it, is garbage
    collected. :meth:`Bitcask.close` ends live snapshots too. Any read of a
    closed snapshot, and the next step of a live iterator made from it, raises
    :class:`ClosedError`. Keys with a TTL expire in a snapshot as they do in
    the database, by the clock.
    """

    _db: _Snapshot

    def __init__(self, snap: _Snapshot) -> None:
        self._db = snap

    @property
    def seq(self) -> int:
        """The sequence number of the last write the snapshot sees (0 before
        any; a batch is one write): a snapshot taken later has one as large or
        larger, and an equal one when nothing was written in between. Known even
        once closed."""
        return self._db.seq

    def close(self) -> None:
        """Releases the snapshot: the engine drops what it kept for it, and the
        iterators made from it that are still live end (their next step raises
        :class:`ClosedError`). Idempotent. Any later read raises
        :class:`ClosedError`."""
        self._db.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close`, or the handle's, was called."""
        return self._db.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<bitcask.Snapshot seq={self.seq} {state}>"


class WriteBatch:
    """Puts and deletes collected in memory and applied atomically, even across
    a crash. Made by :meth:`Bitcask.write_batch`; later operations on the same
    key win. Sizes are checked when the batch is written."""

    def __init__(self, db: Bitcask, *, sync: bool = False) -> None:
        self._db = db
        self._batch = _WriteBatch()
        self._sync = sync

    def put(self, key: BytesLike, value: BytesLike, ttl: Optional[float] = None) -> None:
        """Adds a put of ``value`` under ``key``; ``ttl`` (seconds) as for
        :meth:`Bitcask.put`, counted from when the batch is written. A negative or
        non-finite ``ttl`` raises :class:`InvalidOptionError` at once; one the
        engine refuses (zero, too long) when the batch is written, as sizes are."""
        self._batch.put(key, value, ttl)

    def delete(self, key: BytesLike) -> None:
        """Adds a delete of ``key`` (missing keys are fine)."""
        self._batch.delete(key)

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self._batch.put(key, value)

    def __delitem__(self, key: BytesLike) -> None:
        self._batch.delete(key)

    def __len__(self) -> int:
        """Number of operations collected."""
        return len(self._batch)

    def clear(self) -> None:
        """Discards the collected operations."""
        self._batch.clear()

    def write(self) -> None:
        """Applies the operations atomically, then empties the batch."""
        self._db._db.write(self._batch, self._sync)
        self._batch.clear()

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.write()
        else:
            self.clear()


#: Opens (creating if needed) the database in directory ``path``: the class
#: itself, so ``bitcask.open(path, **options)`` takes exactly the keywords of
#: :class:`Bitcask` and has its type.
open = Bitcask

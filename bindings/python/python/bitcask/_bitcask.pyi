"""Stubs of the compiled extension. Users import :mod:`bitcask`, not this module."""

import os
from pathlib import Path
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Literal, Optional, TypeVar, Union, overload

_BytesLike = Union[bytes, bytearray, memoryview]
_Yields = Literal["items", "keys", "values"]
_T_co = TypeVar("_T_co", covariant=True)

__version__: str
FORMAT_VERSION: int

class OpenProgress:
    """How far an open has got: data files, and their bytes, loaded so far and
    in all. What the ``progress`` callable given to ``bitcask.open`` receives."""

    @property
    def files_done(self) -> int:
        """Data files loaded so far, from 1 to ``files_total``."""
    @property
    def files_total(self) -> int:
        """Data files the open loads."""
    @property
    def bytes_done(self) -> int:
        """Bytes of the data files loaded so far."""
    @property
    def bytes_total(self) -> int:
        """Bytes of all the data files, as their sizes were when the open began."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class _Bitcask(_Reader):
    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        sync: Union[Literal["always", "never"], int, None] = None,
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
        # Seconds; None keeps the engine's 1 s, math.inf reports no slow sync.
        slow_sync_threshold: Optional[float] = None,
    ) -> None: ...
    def put(self, key: _BytesLike, value: _BytesLike, ttl: Optional[float] = None) -> int: ...
    def ttl(self, key: _BytesLike) -> Optional[float]: ...
    def delete(self, key: _BytesLike) -> int: ...
    def write(self, batch: _WriteBatch, sync: bool = False) -> int: ...
    def sync(self) -> None: ...
    # Deletes every key in batches (not atomic); returns the batches written.
    def clear(self) -> int: ...
    # A read view as of the last write made; see _Snapshot.
    def snapshot(self) -> _Snapshot: ...
    def stats(self) -> dict[str, Any]: ...
    def merge(self) -> dict[str, Any]: ...
    def backup(self, path: Union[str, os.PathLike[str]]) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> Path: ...

class _Reader:
    """The reads of ``_Bitcask`` and ``_Snapshot``, their base class (not made
    from Python): of the database as of each call, or as of the snapshot."""

    def get(self, key: _BytesLike) -> Optional[bytes]: ...
    def contains(self, key: _BytesLike) -> bool: ...
    def len(self) -> int: ...
    # yields="keys" reads no data file; "items" and "values" read values ahead,
    # a chunk of keys at a time, in file order. Anything else: ValueError.
    @overload
    def range(
        self,
        start: Optional[_BytesLike] = None,
        stop: Optional[_BytesLike] = None,
        reverse: bool = False,
        yields: Literal["items"] = "items",
    ) -> _Iter[tuple[bytes, bytes]]: ...
    @overload
    def range(
        self,
        start: Optional[_BytesLike] = None,
        stop: Optional[_BytesLike] = None,
        reverse: bool = False,
        *,
        yields: Literal["keys", "values"],
    ) -> _Iter[bytes]: ...
    @overload
    def range(
        self,
        start: Optional[_BytesLike] = None,
        stop: Optional[_BytesLike] = None,
        reverse: bool = False,
        *,
        yields: _Yields,
    ) -> _Iter[Union[bytes, tuple[bytes, bytes]]]: ...
    @overload
    def prefix(
        self, prefix: _BytesLike, reverse: bool = False, yields: Literal["items"] = "items"
    ) -> _Iter[tuple[bytes, bytes]]: ...
    @overload
    def prefix(
        self, prefix: _BytesLike, reverse: bool = False, *, yields: Literal["keys", "values"]
    ) -> _Iter[bytes]: ...
    @overload
    def prefix(
        self, prefix: _BytesLike, reverse: bool = False, *, yields: _Yields
    ) -> _Iter[Union[bytes, tuple[bytes, bytes]]]: ...

class _Iter(Iterator[_T_co]):
    """A scan's iterator (``bitcask.Iter``): closable, and a context manager."""

    def __iter__(self) -> _Iter[_T_co]: ...
    def __next__(self) -> _T_co:
        """The next item; StopIteration once exhausted or closed, ClosedError
        once the ``close`` of the handle (or of the snapshot it was made from)
        has ended it."""
    def close(self) -> None:
        """Ends the iterator at once (idempotent): its next step raises
        StopIteration, or ClosedError if the handle's (or the snapshot's)
        ``close`` ended it first."""
    def __enter__(self) -> _Iter[_T_co]: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class _Snapshot(_Reader):
    """A read view as of one sequence number (``bitcask.Snapshot`` wraps it).
    Every read raises ClosedError once it is closed, by its ``close`` or the
    handle's."""

    def close(self) -> None:
        """Releases the snapshot and ends its live iterators (their next step
        raises ClosedError). Idempotent."""
    @property
    def seq(self) -> int: ...
    @property
    def closed(self) -> bool: ...

class _WriteBatch:
    def __init__(self) -> None: ...
    def put(self, key: _BytesLike, value: _BytesLike, ttl: Optional[float] = None) -> None: ...
    def delete(self, key: _BytesLike) -> None: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...

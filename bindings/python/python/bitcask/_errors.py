"""Exception classes: one per kind of engine error, all under :class:`Error`.

Some classes also derive from a built-in exception so that code written for
other stores keeps working: I/O failures are :class:`OSError` (with ``errno``
and ``filename`` set when the OS gave them), an open that finds no database
where one must be, or one where none may be, is :class:`FileNotFoundError` /
:class:`FileExistsError`, and argument errors (too large,
empty key, bad option) are :class:`ValueError`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
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


class Error(Exception):
    """Root of every exception the engine raises."""


class StorageIOError(Error, OSError):
    """An operating-system call failed (disk full, permission denied...).

    ``errno``, ``strerror`` and ``filename`` are set as for any :class:`OSError`
    when the OS reported an error number; ``op`` says what the engine was doing.
    """

    op: str


class LockedError(Error):
    """Another handle, in this or another process, holds the directory's writer lock."""

    path: Path


class DatabaseNotFoundError(Error, FileNotFoundError):
    """No database at ``path`` (no data file there, or no directory) and the open
    was given ``create_if_missing=False``; nothing was created.

    ``errno`` is ``ENOENT`` and ``filename`` the path, as for any
    :class:`FileNotFoundError`.
    """

    path: Path


class DatabaseExistsError(Error, FileExistsError):
    """A database already exists at ``path`` (a data file is there) and the open
    was given ``error_if_exists=True``; the database was left untouched.

    ``errno`` is ``EEXIST`` and ``filename`` the path, as for any
    :class:`FileExistsError`.
    """

    path: Path


class ReadOnlyError(Error):
    """A write on a handle opened with ``read_only=True``."""


class ClosedError(Error):
    """The handle was closed: raised by any use of it, and by the next step of
    an iterator that its ``close`` ended."""


class WritesRefusedError(Error):
    """An earlier write or fsync failed, so writes are refused until the database
    is reopened (which re-reads the truth from disk)."""

    cause: str


class CorruptionError(Error):
    """A record or hint entry failed its checksum or framing.

    Opening with ``salvage=True`` skips corrupt records in immutable files instead.
    """

    file: Path
    offset: int
    reason: str


class BadFormatError(Error):
    """A file that is not a libbitcask file of a version this build can read."""

    file: Path
    reason: str


class EmptyKeyError(Error, ValueError):
    """Empty keys are not allowed."""


class _SizeError(Error, ValueError):
    len: int
    max: int


class KeyTooLargeError(_SizeError):
    """A key longer than ``max_key_size``; ``len`` and ``max`` give the sizes."""


class ValueTooLargeError(_SizeError):
    """A value longer than ``max_value_size``; ``len`` and ``max`` give the sizes."""


class BatchTooLargeError(_SizeError):
    """A batch larger than the largest single write the format allows."""


class InvalidOptionError(Error, ValueError):
    """An option value out of range; ``option`` is the option's keyword."""

    option: str
    reason: str

"""Every exception class the engine can be made to raise, and use after close."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

import pytest

import bitcask


def test_hierarchy() -> None:
    for cls in [
        bitcask.StorageIOError,
        bitcask.LockedError,
        bitcask.DatabaseNotFoundError,
        bitcask.DatabaseExistsError,
        bitcask.ReadOnlyError,
        bitcask.ClosedError,
        bitcask.WritesRefusedError,
        bitcask.CorruptionError,
        bitcask.BadFormatError,
        bitcask.EmptyKeyError,
        bitcask.KeyTooLargeError,
        bitcask.ValueTooLargeError,
        bitcask.BatchTooLargeError,
        bitcask.InvalidOptionError,
    ]:
        assert issubclass(cls, bitcask.Error)
    assert issubclass(bitcask.StorageIOError, OSError)
    assert issubclass(bitcask.DatabaseNotFoundError, FileNotFoundError)
    assert issubclass(bitcask.DatabaseExistsError, FileExistsError)
    for cls in [
        bitcask.EmptyKeyError,
        bitcask.KeyTooLargeError,
        bitcask.ValueTooLargeError,
        bitcask.BatchTooLargeError,
        bitcask.InvalidOptionError,
    ]:
        assert issubclass(cls, ValueError)


def test_locked(path: Path) -> None:
    with bitcask.open(path):
        with pytest.raises(bitcask.LockedError) as e:
            bitcask.open(path)
        assert e.value.path == path
        # A read-only open takes no lock.
        with bitcask.open(path, read_only=True) as ro:
            assert len(ro) == 0
    bitcask.open(path).close()  # released on close


def test_read_only(path: Path) -> None:
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
    with bitcask.open(path, read_only=True) as db:
        assert db[b"a"] == b"1"
        with pytest.raises(bitcask.ReadOnlyError):
            db[b"b"] = b"2"
        with pytest.raises(bitcask.ReadOnlyError):
            db.delete(b"a")
        with pytest.raises(bitcask.ReadOnlyError):
            with db.write_batch() as b:
                b.put(b"c", b"3")


def test_read_only_missing_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(bitcask.StorageIOError) as e:
        bitcask.open(tmp_path / "missing", read_only=True)
    assert isinstance(e.value, OSError)
    assert e.value.errno == errno.ENOENT
    assert isinstance(e.value.op, str)


def test_io_error_has_errno(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"x")
    with pytest.raises(OSError) as e:
        bitcask.open(not_a_dir / "db")
    assert isinstance(e.value, bitcask.StorageIOError)
    assert e.value.errno in (errno.ENOTDIR, errno.EEXIST)


def test_corruption_and_salvage(path: Path) -> None:
    with bitcask.open(path, max_file_size=1024) as db:
        for i in range(200):
            db[b"key%03d" % i] = b"value%03d" % i
    for hint in path.glob("*.hint"):
        hint.unlink()
    data = sorted(path.glob("*.data"))
    assert len(data) > 2
    first = data[0]
    raw = bytearray(first.read_bytes())
    raw[100] ^= 0xFF  # inside a record of an immutable file
    first.write_bytes(bytes(raw))
    with pytest.raises(bitcask.CorruptionError) as e:
        bitcask.open(path)
    assert Path(e.value.file).name == first.name
    assert isinstance(e.value.offset, int)
    with bitcask.open(path, salvage=True) as db:
        assert 0 < len(db) < 200
        assert db.stats().salvaged_bytes_at_open > 0


def test_bad_format(path: Path) -> None:
    path.mkdir()
    (path / ("%010d.data" % 1)).write_bytes(b"this is not a bitcask file at all")
    with pytest.raises(bitcask.BadFormatError):
        bitcask.open(path)


def test_sizes(path: Path) -> None:
    with bitcask.open(path, max_key_size=8, max_value_size=16) as db:
        with pytest.raises(bitcask.KeyTooLargeError) as e:
            db[b"k" * 9] = b"v"
        assert (e.value.len, e.value.max) == (9, 8)
        with pytest.raises(ValueError):
            db[b"k"] = b"v" * 17
        with pytest.raises(bitcask.ValueTooLargeError):
            db[b"k"] = b"v" * 17
        with pytest.raises(bitcask.EmptyKeyError):
            db[b""] = b"v"
        db[b"k" * 8] = b"v" * 16
        assert len(db) == 1


def test_invalid_options(path: Path) -> None:
    cases: list[tuple[str, object]] = [
        ("max_file_size", 10),
        ("max_file_size", -1),
        ("max_key_size", 0),
        ("max_value_size", 1 << 40),
        ("write_buffer_size", 1 << 40),
        ("sync", 0),
        ("sync", -5),
        ("sync", "sometimes"),
        ("merge_trigger_fragmentation", 101),
        ("merge_threshold_fragmentation", 1000),
        ("merge_check_interval", 0),
        ("merge_check_interval", -1.5),
    ]
    for name, value in cases:
        with pytest.raises(ValueError, match=name) as e:
            bitcask.open(path, **{name: value})  # type: ignore[arg-type]
        assert isinstance(e.value, bitcask.InvalidOptionError)
        assert e.value.option == name, (name, value)


def test_option_of_wrong_type_is_a_type_error(path: Path) -> None:
    for name, value in [("max_file_size", "big"), ("read_only", 1), ("sync", 1.5), ("salvage", "yes")]:
        with pytest.raises(TypeError, match=name):
            bitcask.open(path, **{name: value})  # type: ignore[arg-type]


def test_unknown_option_is_a_type_error(path: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        bitcask.open(path, max_size=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword"):
        bitcask.Bitcask(path, nope=True)  # type: ignore[call-arg]


def test_use_after_close_raises_closed(path: Path) -> None:
    db = bitcask.open(path)
    db[b"a"] = b"1"
    it = iter(db.items())
    batch = db.write_batch()
    batch.put(b"b", b"2")
    db.close()
    calls: list[Callable[[], object]] = [
        lambda: db[b"a"],
        lambda: db.__setitem__(b"a", b"2"),
        lambda: db.__delitem__(b"a"),
        lambda: b"a" in db,
        lambda: len(db),
        lambda: list(db),
        lambda: db.get(b"a"),
        lambda: db.put(b"a", b"1"),
        lambda: db.delete(b"a"),
        lambda: db.sync(),
        lambda: db.stats(),
        lambda: list(db.range()),
        lambda: list(db.prefix(b"a")),
        lambda: next(it),
        lambda: batch.write(),
    ]
    for call in calls:
        with pytest.raises(bitcask.ClosedError):
            call()
    db.close()


def test_writes_refused_class_exists() -> None:
    # Provoking it needs a failing write(2) or fsync (a full disk); only the class
    # and its place in the hierarchy are checked here.
    assert issubclass(bitcask.WritesRefusedError, bitcask.Error)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_permission_denied(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(bitcask.StorageIOError) as e:
            bitcask.open(ro / "db")
        assert e.value.errno == errno.EACCES
    finally:
        ro.chmod(0o700)

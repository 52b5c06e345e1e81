"""Preallocation (the preallocate option): durable writes keep the active data
file zero-filled ahead of them and the next file made ahead; a close trims the
files to their data and leaves no spare behind."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

import bitcask


def durable_puts(db: bitcask.Bitcask, n: int, seed: int = 7) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    model: dict[bytes, bytes] = {}
    for i in range(n):
        k = b"key:%06d" % i
        v = rng.randbytes(rng.randrange(1, 2000))
        db[k] = v
        model[k] = v
    return model


def tmp_files(path: Path) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.endswith(".tmp"))


def preallocated_soon(db: bitcask.Bitcask) -> int:
    """The preallocated bytes once the background thread has written some: the
    zeros ahead and the spare file are made off the write path."""
    deadline = time.monotonic() + 20
    while (n := db.stats().preallocated_bytes) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return n


def data_file_bytes(path: Path) -> int:
    return sum(os.path.getsize(path / n) for n in os.listdir(path) if n.endswith(".data"))


def test_durable_puts_preallocate_by_default_and_a_reopen_finds_every_value_and_no_tmp(
    path: Path,
) -> None:
    with bitcask.open(path, sync="always", auto_merge=False) as db:
        model = durable_puts(db, 200)
        s = db.stats()
        assert s.preallocated_bytes > 0
        # The space ahead is not data: the byte counts are the records'.
        assert s.data_bytes == sum(f.total_bytes for f in s.files)
        assert s.disk_bytes == s.data_bytes + s.hint_bytes
        assert s.writes == 200
        assert 1 <= s.write_groups <= s.writes
        assert s.syncs >= s.write_groups
    assert tmp_files(path) == []
    with bitcask.open(path, auto_merge=False) as db:
        assert dict(db.items()) == model
        # Closed files were trimmed to their data; none is made ahead until a
        # durable write.
        assert data_file_bytes(path) == db.stats().data_bytes
        assert db.stats().preallocated_bytes == 0


def test_durable_puts_across_many_small_files_rotate_into_spares_and_reopen_intact(
    path: Path,
) -> None:
    def open_small() -> bitcask.Bitcask:
        return bitcask.open(path, sync="always", max_file_size=64 << 10, auto_merge=False)

    with open_small() as db:
        model = durable_puts(db, 600)
        # Overwrites and deletes too, spread over the files.
        for i in range(0, 600, 3):
            k = b"key:%06d" % i
            db[k] = b"again:%d" % i
            model[k] = b"again:%d" % i
        for i in range(1, 600, 7):
            k = b"key:%06d" % i
            del db[k]
            del model[k]
        s = db.stats()
        assert len(s.files) > 3
        assert preallocated_soon(db) > 0
    assert tmp_files(path) == []
    with open_small() as db:
        assert dict(db.items()) == model
        assert data_file_bytes(path) == db.stats().data_bytes
        # Writable after the reopen, durably, and intact once more.
        db[b"after"] = b"reopen"
        model[b"after"] = b"reopen"
        assert preallocated_soon(db) > 0
    assert tmp_files(path) == []
    with bitcask.open(path, read_only=True) as db:
        assert dict(db.items()) == model


def test_a_durable_batch_preallocates_under_sync_never(path: Path) -> None:
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
        # No durable write yet: nothing allocated ahead.
        assert db.stats().preallocated_bytes == 0
        with db.write_batch(sync=True) as b:
            b[b"b"] = b"2"
        assert preallocated_soon(db) > 0
    assert tmp_files(path) == []
    with bitcask.open(path) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}


def test_preallocate_false_allocates_nothing_past_the_data_after_durable_puts(
    path: Path,
) -> None:
    with bitcask.open(path, sync="always", preallocate=False, auto_merge=False) as db:
        model = durable_puts(db, 200)
        s = db.stats()
        assert s.preallocated_bytes == 0
        assert s.writes == 200
        assert s.syncs >= s.write_groups >= 1
        # Every file is as long as its data, even while open.
        assert data_file_bytes(path) == s.data_bytes
    assert tmp_files(path) == []
    with bitcask.open(path, preallocate=False) as db:
        assert dict(db.items()) == model


def test_syncs_count_explicit_syncs_and_writes_count_every_write(path: Path) -> None:
    with bitcask.open(path) as db:
        before = db.stats()
        assert (before.syncs, before.writes, before.write_groups) == (0, 0, 0)
        db[b"a"] = b"1"
        db.delete(b"a")
        with db.write_batch() as b:
            b[b"b"] = b"2"
            b[b"c"] = b"3"
        db.sync()
        s = db.stats()
        assert s.writes == 3
        assert s.write_groups == 3
        assert s.syncs >= 1

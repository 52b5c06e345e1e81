"""clear(): deletes every key in bounded batches, not one huge one."""

from __future__ import annotations

from pathlib import Path

import pytest

import bitcask


def test_clear_of_many_keys_uses_several_batches(db: bitcask.Bitcask) -> None:
    n = 50_000
    with db.write_batch() as b:
        for i in range(n):
            b.put(b"key:%08d" % i, b"v")
    before = db.stats().writes
    db.clear()
    batches = db.stats().writes - before
    # 10,000 deletes a batch at most.
    assert batches == 5
    assert len(db) == 0
    assert list(db) == []
    assert db.get(b"key:00000000") is None
    # Usable afterwards.
    db[b"after"] = b"1"
    assert dict(db) == {b"after": b"1"}


def test_clear_batches_are_bounded_by_bytes_too(path: Path) -> None:
    with bitcask.open(path, max_key_size=65535) as db:
        with db.write_batch() as b:
            for i in range(400):
                b.put(b"%05d" % i + b"x" * (60 << 10), b"v")
        before = db.stats().writes
        db.clear()
        # 400 keys of 60 KiB: 24 MiB of tombstones, more than 8 MiB a batch.
        assert db.stats().writes - before >= 3
        assert len(db) == 0


def test_clear_persists(path: Path) -> None:
    with bitcask.open(path) as db:
        db.update({b"%d" % i: b"x" for i in range(25_000)})
        db.clear()
    with bitcask.open(path) as db:
        assert len(db) == 0


def test_clear_of_an_empty_database_writes_nothing(db: bitcask.Bitcask) -> None:
    before = db.stats().writes
    db.clear()
    assert db.stats().writes == before
    assert len(db) == 0


def test_clear_read_only_and_closed(path: Path) -> None:
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
    with bitcask.open(path, read_only=True) as ro:
        with pytest.raises(bitcask.ReadOnlyError):
            ro.clear()
        assert len(ro) == 1
    db = bitcask.open(path)
    db.close()
    with pytest.raises(bitcask.ClosedError):
        db.clear()

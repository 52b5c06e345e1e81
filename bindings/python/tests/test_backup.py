"""backup(): a consistent copy as of one sequence number, beside live writes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import bitcask

KEYS = 300


def state_at(base: dict[bytes, bytes], first_seq: int, seq: int) -> dict[bytes, bytes]:
    """The database at ``seq``: ``base`` plus the writer's puts numbered up to it
    (put ``i`` of the writer has sequence number ``first_seq + i``)."""
    model = dict(base)
    for i in range(seq - first_seq + 1):
        model[b"k%04d" % (i % KEYS)] = b"w%06d" % i
    return model


def test_backup_while_a_thread_writes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with bitcask.open(path, max_file_size=16 << 10, auto_merge=False) as db:
        base = {b"base%03d" % i: b"b" * 100 for i in range(200)}
        with db.write_batch() as b:
            for k, v in base.items():
                b[k] = v
        last = db.stats().last_seq
        assert last is not None
        first_seq = last + 1
        writes = 20_000
        started = threading.Event()

        def writer() -> None:
            for i in range(writes):
                db[b"k%04d" % (i % KEYS)] = b"w%06d" % i
                if i == 100:
                    started.set()

        t = threading.Thread(target=writer)
        t.start()
        started.wait(timeout=30)
        seqs = []
        for n in range(3):
            # str and os.PathLike both work.
            dest: str | os.PathLike[str] = tmp_path / f"b{n}" if n % 2 else str(tmp_path / f"b{n}")
            seqs.append(db.backup(dest))
        t.join()
        # Each put took exactly one sequence number, so state_at is exact.
        assert db.stats().last_seq == first_seq + writes - 1
        assert dict(db.items()) == state_at(base, first_seq, first_seq + writes - 1)

    assert seqs == sorted(seqs)
    for n, seq in enumerate(seqs):
        assert isinstance(seq, int) and last <= seq < first_seq + writes
        with bitcask.open(tmp_path / f"b{n}") as copy:
            assert copy.stats().last_seq == seq
            assert dict(copy.items()) == state_at(base, first_seq, seq)


def test_backup_of_a_quiet_database_and_reopen_for_writes(path: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
        db[b"b"] = b"2"
        del db[b"a"]
        seq = db.backup(dest)
        assert seq == db.stats().last_seq
        db[b"c"] = b"3"  # after the backup: not in it
    with bitcask.open(dest) as copy:
        assert dict(copy.items()) == {b"b": b"2"}
        copy[b"d"] = b"4"  # an ordinary, writable database
    # An existing but empty directory is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    with bitcask.open(path, read_only=True) as db:
        assert db.backup(empty) == seq + 1
    with bitcask.open(empty) as copy:
        assert dict(copy.items()) == {b"b": b"2", b"c": b"3"}


def test_backup_errors(path: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
        db.backup(dest)
        before = sorted(os.listdir(dest))
        # Refused: the destination is not empty, and it is left as it was.
        with pytest.raises(bitcask.StorageIOError) as e:
            db.backup(dest)
        assert isinstance(e.value, OSError)
        assert str(dest) in str(e.value)
        assert sorted(os.listdir(dest)) == before
        # Neither is any other non-empty directory.
        other = tmp_path / "other"
        other.mkdir()
        (other / "file").write_bytes(b"x")
        with pytest.raises(bitcask.StorageIOError):
            db.backup(other)
        assert os.listdir(other) == ["file"]
        # Nothing hidden is left beside the destinations.
        assert sorted(os.listdir(tmp_path)) == ["copy", "db", "other"]
        with pytest.raises(TypeError):
            db.backup(42)  # type: ignore[arg-type]
    with pytest.raises(bitcask.ClosedError):
        db.backup(tmp_path / "after-close")
    assert not (tmp_path / "after-close").exists()

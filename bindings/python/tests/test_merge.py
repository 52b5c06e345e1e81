"""merge(): compaction from Python, beside live traffic."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import bitcask


def fill(db: bitcask.Bitcask, rounds: int, n: int) -> dict[bytes, bytes]:
    model: dict[bytes, bytes] = {}
    for r in range(rounds):
        with db.write_batch() as b:
            for i in range(n):
                k, v = b"k%05d" % i, b"r%d-" % r + b"x" * 200
                b.put(k, v)
                model[k] = v
    for i in range(0, n, 4):
        del db[b"k%05d" % i]
        del model[b"k%05d" % i]
    return model


def test_merge_reclaims_space_and_keeps_data(path: Path) -> None:
    with bitcask.open(path, max_file_size=64 << 10, auto_merge=False) as db:
        model = fill(db, rounds=4, n=500)
        before = db.stats()
        assert before.last_merge is None
        m = db.merge()
        assert isinstance(m, bitcask.MergeStats)
        assert m.files_in > 0 and m.bytes_reclaimed > 0 and m.duration >= 0
        after = db.stats()
        assert after.data_bytes < before.data_bytes
        assert after.last_merge == m
        assert dict(db.items()) == model
    with bitcask.open(path) as db:
        assert dict(db.items()) == model


def test_merge_errors(path: Path) -> None:
    with bitcask.open(path) as db:
        db[b"a"] = b"1"
    with bitcask.open(path, read_only=True) as db:
        with pytest.raises(bitcask.ReadOnlyError):
            db.merge()
    db = bitcask.open(path)
    db.close()
    with pytest.raises(bitcask.ClosedError):
        db.merge()


def test_merge_beside_reads_and_writes_from_other_threads(path: Path) -> None:
    with bitcask.open(path, max_file_size=64 << 10, auto_merge=False) as db:
        model = fill(db, rounds=6, n=1000)
        stop = False
        done = {"reads": 0, "writes": 0}
        errors: list[BaseException] = []

        def traffic() -> None:
            try:
                i = 0
                while not stop:
                    k = b"k%05d" % (1 + 4 * (i % 250))
                    assert db[k] == model[k]
                    db[b"new%d" % i] = b"v"
                    done["reads"] += 1
                    done["writes"] += 1
                    i += 1
            except BaseException as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=traffic)
        t.start()
        time.sleep(0.02)
        during = done["writes"]
        t0 = time.perf_counter()
        m = db.merge()
        took = time.perf_counter() - t0
        during = done["writes"] - during
        stop = True
        t.join()
        assert errors == []
        assert m.files_in > 0
        # The other thread kept working while merge() ran in the extension. A
        # merge shorter than a few thread switches proves nothing either way.
        if took > 0.05:
            assert during > 0, (during, took)
        for k, v in model.items():
            assert db[k] == v


def test_merge_counters_after_success(path: Path) -> None:
    with bitcask.open(path, max_file_size=64 << 10, auto_merge=False) as db:
        fill(db, rounds=4, n=500)
        s = db.stats()
        assert (s.merges, s.merge_failures, s.last_merge_error) == (0, 0, None)
        db.merge()
        s = db.stats()
        assert s.merges >= 1
        assert s.merge_failures == 0
        assert s.last_merge_error is None


def test_merge_failure_is_reported_in_stats(path: Path) -> None:
    def value(i: int) -> bytes:
        return b"value of mf:%02d, padded to make the record longer" % i

    # About 60-byte records (format 2): sixteen per 1 KiB file, so keys 0 to 5 at
    # least live in the first data file.
    with bitcask.open(path, max_file_size=1024, auto_merge=False) as db:
        for i in range(60):
            db[b"mf:%02d" % i] = value(i)
        s = db.stats()
        assert len(s.files) > 3
        assert (s.merges, s.merge_failures, s.last_merge_error) == (0, 0, None)
    # A clean reopen leaves a hint for every sealed file; the next open reads the
    # first file's hint, not the file, so it does not see the damage.
    hint = path / "0000000001.hint"
    for _ in range(50):
        if hint.exists():
            break
        bitcask.open(path, auto_merge=False).close()
    assert hint.exists()
    data = path / "0000000001.data"
    raw = bytearray(data.read_bytes())
    at = raw.index(value(0)) + len(value(0)) // 2
    raw[at] ^= 0x20
    data.write_bytes(bytes(raw))

    with bitcask.open(path, max_file_size=1024, auto_merge=False) as db:
        assert db.stats().last_merge_error is None
        for i in range(1, 6):  # dead bytes in the first file, so merge reads it
            db[b"mf:%02d" % i] = b"new"
        with pytest.raises(bitcask.CorruptionError) as raised:
            db.merge()
        s = db.stats()
        assert s.merges == 0
        assert s.merge_failures == 1
        err = s.last_merge_error
        assert isinstance(err, bitcask.CorruptionError)
        assert str(err) == str(raised.value)
        assert "0000000001.data" in str(err)
        assert err.file == data
        assert s.last_merge is None

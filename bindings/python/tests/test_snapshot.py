"""Snapshots: db.snapshot() is a read-only Mapping as of one moment, checked
against a dict model of the database; iterators read a view as of their
creation; close(), the with block, garbage collection and db.close() release
a snapshot."""

from __future__ import annotations

import gc
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pytest

import bitcask

if TYPE_CHECKING:
    from conftest import CloseWhileReading

Model = dict[bytes, bytes]

# Small files, so that the data spans several and merges have work; merges run
# when a test asks for them.
OPTIONS: dict[str, int] = {"max_file_size": 4096}


@pytest.fixture
def small(path: Path) -> Iterator[bitcask.Bitcask]:
    with bitcask.open(path, max_file_size=OPTIONS["max_file_size"], auto_merge=False) as db:
        yield db


def fill(db: bitcask.Bitcask, model: Model, n: int, tag: bytes = b"v") -> None:
    for i in range(n):
        k, v = b"k%04d" % i, tag + b"%04d" % i + b"." * 40
        db[k] = v
        model[k] = v


def check(snap: bitcask.Snapshot, model: Model) -> None:
    """Every read of the snapshot agrees with the model."""
    assert len(snap) == len(model)
    assert list(snap) == sorted(model)
    assert list(snap.keys()) == sorted(model)
    assert list(snap.items()) == sorted(model.items())
    assert list(snap.values()) == [model[k] for k in sorted(model)]
    assert snap == model
    for k, v in model.items():
        assert snap[k] == v
        assert snap.get(k) == v
        assert k in snap
    for k in (b"absent", b"k9999", b"\xff"):
        if k not in model:
            assert k not in snap
            assert snap.get(k) is None
            assert snap.get(k, b"default") == b"default"
            with pytest.raises(KeyError):
                snap[k]


def expected_range(
    model: Model, start: Optional[bytes], stop: Optional[bytes], reverse: bool
) -> list[tuple[bytes, bytes]]:
    keys = [
        k
        for k in sorted(model, reverse=reverse)
        if (start is None or k >= start) and (stop is None or k < stop)
    ]
    return [(k, model[k]) for k in keys]


def test_snapshot_is_a_read_only_mapping(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    with db.snapshot() as snap:
        assert isinstance(snap, bitcask.Snapshot)
        assert not isinstance(snap, bitcask.Bitcask)
        check(snap, {b"a": b"1"})
        assert not hasattr(snap, "__setitem__")
        assert not hasattr(snap, "__delitem__")
        assert not snap.closed
        assert "open" in repr(snap)
        # Keys may be any bytes-like object, as for the database; str is refused.
        assert snap[bytearray(b"a")] == b"1"
        assert memoryview(b"a") in snap
        with pytest.raises(TypeError):
            snap.get("a")  # type: ignore[call-overload]
    assert snap.closed
    assert "closed" in repr(snap)


def test_large_values_and_read_only_handles(path: Path) -> None:
    big = bytes(range(256)) * 400  # 100 KiB: read straight into its bytes
    with bitcask.open(path) as db:
        db[b"big"] = big
        with db.snapshot() as snap:
            db[b"big"] = b"small"
            db.merge()
            assert snap[b"big"] == big
            assert list(snap.values()) == [big]
    with bitcask.open(path, read_only=True) as ro:
        with ro.snapshot() as snap:
            assert dict(snap) == {b"big": b"small"}
            assert ro.stats().snapshots == 1


def test_snapshot_keeps_its_view_across_puts_deletes_and_merge(small: bitcask.Bitcask) -> None:
    db = small
    model: Model = {}
    fill(db, model, 300)
    assert len(db.stats().files) > 3
    then = dict(model)
    with db.snapshot() as snap:
        check(snap, then)
        # Overwrite half, delete a third, add new keys: all after the snapshot.
        for i in range(0, 300, 2):
            k = b"k%04d" % i
            db[k] = model[k] = b"new%04d" % i
        for i in range(0, 300, 3):
            k = b"k%04d" % i
            del db[k]
            del model[k]
        for i in range(300, 350):
            k = b"k%04d" % i
            db[k] = model[k] = b"added"
        check(snap, then)
        # The merge rewrites every sealed file and removes the old ones, which
        # still hold the values the snapshot sees.
        merged = db.merge()
        assert merged.files_in > 1
        check(snap, then)
        # The database itself moved on.
        assert dict(db.items()) == model
        # More writes after the merge, overwriting keys again.
        for i in range(1, 300, 5):
            k = b"k%04d" % i
            db[k] = model[k] = b"again"
        db.merge()
        check(snap, then)
        assert dict(db.items()) == model
    with db.snapshot() as now:
        check(now, model)


def test_snapshots_at_different_points_match_copies_of_the_model(
    small: bitcask.Bitcask,
) -> None:
    db = small
    rng = random.Random(19)
    model: Model = {}
    taken: list[tuple[bitcask.Snapshot, Model]] = []
    with db.snapshot() as empty:
        check(empty, {})
        assert empty.seq == 0
    for step in range(1200):
        k = b"k%03d" % rng.randrange(150)
        op = rng.random()
        if op < 0.6:
            v = b"%d:" % step + k * rng.randrange(1, 8)
            db[k] = model[k] = v
        elif op < 0.8:
            db.delete(k)
            model.pop(k, None)
        else:
            with db.write_batch() as b:
                for _ in range(rng.randrange(1, 6)):
                    bk = b"k%03d" % rng.randrange(150)
                    if rng.random() < 0.7:
                        b.put(bk, b"batch%d" % step)
                        model[bk] = b"batch%d" % step
                    else:
                        b.delete(bk)
                        model.pop(bk, None)
        if step % 100 == 99:
            taken.append((db.snapshot(), dict(model)))
        if step % 250 == 249:
            db.merge()
    seqs = [snap.seq for snap, _ in taken]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert db.stats().snapshots == len(taken)
    for snap, then in taken:
        check(snap, then)
    # Releasing them in any order leaves the others intact.
    rng.shuffle(taken)
    while taken:
        snap, _ = taken.pop()
        snap.close()
        for other, then in taken:
            check(other, then)
    stats = db.stats()
    assert stats.snapshots == 0
    assert stats.snapshot_versions == 0


def test_range_prefix_and_reverse_through_a_snapshot(db: bitcask.Bitcask) -> None:
    model: Model = {}
    for k in (b"a", b"ab", b"abc", b"abd", b"b", b"ba", b"c", b"\xff", b"\xff\xff"):
        db[k] = model[k] = b"v-" + k
    with db.snapshot() as snap:
        # Change everything after the snapshot: new keys in every gap,
        # deletes and overwrites.
        for k in (b"aa", b"abca", b"bb", b"\xff\x00"):
            db[k] = b"later"
        for k in (b"ab", b"c"):
            del db[k]
        db[b"b"] = b"overwritten"
        bounds: list[Optional[bytes]] = [None, b"", b"a", b"ab", b"abz", b"b", b"c", b"\xff", b"z"]
        for start in bounds:
            for stop in bounds:
                for reverse in (False, True):
                    want = expected_range(model, start, stop, reverse)
                    assert list(snap.range(start, stop, reverse)) == want
                    assert list(snap.range(start, stop, reverse, yields="keys")) == [
                        k for k, _ in want
                    ]
                    assert list(snap.range(start, stop, reverse=reverse, yields="values")) == [
                        v for _, v in want
                    ]
        # The empty key is an ordinary bound: nothing is below it.
        assert list(snap.range(None, b"", yields="keys")) == []
        assert list(snap.range(b"", None, yields="keys")) == sorted(model)
        for p in (b"", b"a", b"ab", b"abc", b"b", b"\xff", b"x"):
            for reverse in (False, True):
                want = [(k, model[k]) for k in sorted(model, reverse=reverse) if k.startswith(p)]
                assert list(snap.prefix(p, reverse)) == want
                assert list(snap.prefix(p, reverse=reverse, yields="keys")) == [k for k, _ in want]
                assert list(snap.prefix(p, reverse, yields="values")) == [v for _, v in want]
        with pytest.raises(ValueError):
            snap.range(yields="nope")  # type: ignore[call-overload]


def test_writer_thread_does_not_change_what_a_snapshot_reads(small: bitcask.Bitcask) -> None:
    db = small
    model: Model = {}
    fill(db, model, 200)
    stop = threading.Event()
    writes = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        rng = random.Random(7)
        try:
            while not stop.is_set():
                k = b"k%04d" % rng.randrange(260)
                if rng.random() < 0.7:
                    db[k] = b"w%d" % writes[0]
                else:
                    db.delete(k)
                writes[0] += 1
                if writes[0] % 500 == 0:
                    db.merge()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    with db.snapshot() as snap:
        t = threading.Thread(target=writer)
        t.start()
        try:
            reads = 0
            while reads < 30 or writes[0] < 2000:
                assert dict(snap.items()) == model
                assert len(snap) == len(model)
                assert list(snap.range(b"k0050", b"k0100", reverse=True, yields="keys")) == [
                    b"k%04d" % i for i in range(99, 49, -1)
                ]
                assert snap[b"k0007"] == model[b"k0007"]
                assert b"k0250" not in snap
                reads += 1
                assert reads < 100_000
        finally:
            stop.set()
            t.join(30)
    assert not t.is_alive()
    assert errors == []
    assert writes[0] >= 2000


def test_db_iterator_reads_as_of_its_creation(small: bitcask.Bitcask) -> None:
    db = small
    model: Model = {}
    fill(db, model, 2000)  # more than one read-ahead chunk
    it = db.range()
    keys = iter(db)
    first = next(it)
    assert first == (b"k0000", model[b"k0000"])
    assert next(keys) == b"k0000"
    assert db.stats().snapshots == 2
    # Keys ahead of the iterators change while they are part-way.
    for i in range(1, 2000, 2):
        db[b"k%04d" % i] = b"changed"
    for i in range(2, 2000, 4):
        del db[b"k%04d" % i]
    db[b"k0001a"] = b"new"
    db.merge()
    assert [first, *it] == sorted(model.items())
    assert [b"k0000", *keys] == sorted(model)
    del it, keys
    gc.collect()
    assert db.stats().snapshots == 0
    assert db.stats().snapshot_versions == 0


def test_snapshot_versions_go_back_to_zero_after_all_snapshots_are_closed(
    db: bitcask.Bitcask,
) -> None:
    model: Model = {}
    fill(db, model, 50)
    stats = db.stats()
    assert (stats.snapshots, stats.snapshot_versions) == (0, 0)
    a = db.snapshot()
    db[b"k0000"] = b"x"
    b = db.snapshot()
    db[b"k0001"] = b"x"
    del db[b"k0002"]
    c = db.snapshot()
    for i in range(10, 20):
        db[b"k%04d" % i] = b"y"
    stats = db.stats()
    assert stats.snapshots == 3
    assert stats.snapshot_versions > 0
    it = db.range(yields="keys")  # an iterator's snapshot counts too
    assert db.stats().snapshots == 4
    it.close()
    assert db.stats().snapshots == 3
    a.close()
    assert db.stats().snapshots == 2
    c.close()
    assert db.stats().snapshots == 1
    assert db.stats().snapshot_versions > 0
    b.close()
    stats = db.stats()
    assert (stats.snapshots, stats.snapshot_versions) == (0, 0)
    # Writes with no snapshot alive keep nothing.
    db[b"k0003"] = b"z"
    assert db.stats().snapshot_versions == 0


def test_with_block_closes_the_snapshot_even_on_error(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    with pytest.raises(ZeroDivisionError):
        with db.snapshot() as snap:
            db[b"a"] = b"2"
            1 / 0
    assert snap.closed
    stats = db.stats()
    assert (stats.snapshots, stats.snapshot_versions) == (0, 0)


def test_garbage_collection_releases_a_snapshot(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    snap = db.snapshot()
    db[b"a"] = b"2"
    assert db.stats().snapshot_versions == 1
    del snap
    gc.collect()
    stats = db.stats()
    assert (stats.snapshots, stats.snapshot_versions) == (0, 0)


def test_an_iterator_keeps_an_unreferenced_snapshot_alive(db: bitcask.Bitcask) -> None:
    model: Model = {}
    fill(db, model, 100)
    it = db.snapshot().range(yields="keys")  # the iterator holds the only reference
    gc.collect()
    db[b"k0050a"] = b"new"
    del db[b"k0001"]
    assert list(it) == sorted(model)
    it.close()
    gc.collect()
    assert db.stats().snapshots == 0


def test_use_after_close_raises_closed_error(db: bitcask.Bitcask) -> None:
    model: Model = {}
    fill(db, model, 2000)
    snap = db.snapshot()
    seq = snap.seq
    live = snap.range()
    assert next(live) == (b"k0000", model[b"k0000"])
    done = snap.prefix(b"k000", yields="keys")
    assert len(list(done)) == 10
    snap.close()
    assert snap.closed
    snap.close()  # idempotent
    assert snap.seq == seq  # still known
    with pytest.raises(bitcask.ClosedError):
        snap[b"k0001"]
    with pytest.raises(bitcask.ClosedError):
        snap.get(b"k0001")
    with pytest.raises(bitcask.ClosedError):
        _ = b"k0001" in snap
    with pytest.raises(bitcask.ClosedError):
        len(snap)
    with pytest.raises(bitcask.ClosedError):
        list(snap)
    with pytest.raises(bitcask.ClosedError):
        list(snap.keys())
    with pytest.raises(bitcask.ClosedError):
        list(snap.values())
    with pytest.raises(bitcask.ClosedError):
        list(snap.items())
    with pytest.raises(bitcask.ClosedError):
        snap.range()
    with pytest.raises(bitcask.ClosedError):
        snap.prefix(b"k")
    # A live iterator made from it ended; an exhausted one keeps stopping.
    with pytest.raises(bitcask.ClosedError):
        next(live)
    with pytest.raises(StopIteration):
        next(done)
    # The database is untouched.
    assert len(db) == 2000
    stats = db.stats()
    assert (stats.snapshots, stats.snapshot_versions) == (0, 0)


def db_files_open(path: Path) -> list[str]:
    """Files of the database directory this process holds open or mapped."""
    prefix = str(path.resolve())
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            held.append(target)
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith(prefix):
                held.append(parts[5].strip())
    return held


def test_db_close_ends_a_live_snapshot(path: Path) -> None:
    db = bitcask.open(path, max_file_size=OPTIONS["max_file_size"], auto_merge=False)
    model: Model = {}
    fill(db, model, 300)
    snap = db.snapshot()
    it = snap.range()
    assert next(it) == (b"k0000", model[b"k0000"])
    # Rewrite everything and merge: the old files are removed from the
    # directory, and the snapshot holds them open.
    fill(db, {}, 300, tag=b"w")
    db.merge()
    check(snap, model)
    if os.path.isdir("/proc/self/fd"):
        assert any(f.endswith("(deleted)") for f in db_files_open(path))
    db.close()
    assert snap.closed
    with pytest.raises(bitcask.ClosedError):
        snap[b"k0001"]
    with pytest.raises(bitcask.ClosedError):
        len(snap)
    with pytest.raises(bitcask.ClosedError):
        list(snap.items())
    with pytest.raises(bitcask.ClosedError):
        next(it)
    with pytest.raises(bitcask.ClosedError):
        db.snapshot()
    snap.close()  # still fine
    # Nothing of the database is held any more, though the snapshot, its
    # iterator and the handle are all still referenced...
    if os.path.isdir("/proc/self/fd"):
        assert db_files_open(path) == []
    # ...and the directory opens again.
    with bitcask.open(path) as again:
        assert again[b"k0000"].startswith(b"w")
        assert again.stats().snapshots == 0
    del db


def test_snapshot_keeps_an_unreferenced_handle_open(path: Path) -> None:
    db = bitcask.open(path)
    db[b"a"] = b"1"
    snap = db.snapshot()
    del db
    gc.collect()
    assert snap[b"a"] == b"1"
    # Closing the snapshot lets go of the handle, which closes the database.
    snap.close()
    gc.collect()
    bitcask.open(path).close()


def test_snapshot_of_a_closed_handle_raises(path: Path) -> None:
    db = bitcask.open(path)
    db.close()
    with pytest.raises(bitcask.ClosedError):
        db.snapshot()


def test_db_close_while_another_thread_reads_a_snapshot(
    path: Path, close_while_reading: CloseWhileReading
) -> None:
    db = bitcask.open(path)
    model: Model = {}
    fill(db, model, 500)
    snap = db.snapshot()

    def read() -> None:
        assert dict(snap.items()) == model

    close_while_reading(db, read)


def test_clear_keeps_no_versions_while_it_runs(db: bitcask.Bitcask) -> None:
    # clear() scans a batch at a time: an iterator kept across its deletes
    # would make the engine keep a version of every key deleted.
    with db.write_batch() as b:
        for i in range(60_000):
            b.put(b"key:%08d" % i, b"v")
    seen: list[int] = []
    done = threading.Event()

    def clear() -> None:
        try:
            db.clear()
        finally:
            done.set()

    t = threading.Thread(target=clear)
    t.start()
    while not done.is_set():
        seen.append(db.stats().snapshot_versions)
    t.join()
    assert len(db) == 0
    assert max(seen, default=0) == 0

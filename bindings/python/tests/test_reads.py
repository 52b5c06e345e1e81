"""Reads: through memory maps or pread (the mmap option), beside a merge, and
keys-only scans that read no data file."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Union

import pytest

import bitcask

# Around the binding's 16 KiB line between a get copied twice and one copied
# once into its bytes, and an empty value.
SIZES = [0, 1, 100, 4000, (16 << 10) - 1, 16 << 10, 70_000]


def value(rng: random.Random) -> bytes:
    size = rng.choice(SIZES) if rng.random() < 0.2 else rng.randrange(1, 300)
    return rng.randbytes(size)


def churn(db: bitcask.Bitcask, model: dict[bytes, bytes], rng: random.Random, ops: int) -> None:
    """Puts, overwrites, deletes and batches over a small key space, applied to
    the database and the model alike."""
    for _ in range(ops):
        k = b"k%03d" % rng.randrange(400)
        r = rng.random()
        if r < 0.65:
            v = value(rng)
            db[k] = v
            model[k] = v
        elif r < 0.85:
            db.delete(k)
            model.pop(k, None)
        else:
            with db.write_batch() as b:
                for _ in range(rng.randrange(1, 8)):
                    k = b"k%03d" % rng.randrange(400)
                    if rng.random() < 0.7:
                        v = value(rng)
                        b.put(k, v)
                        model[k] = v
                    else:
                        b.delete(k)
                        model.pop(k, None)


def scanned(
    model: dict[bytes, bytes], start: Optional[bytes], stop: Optional[bytes], reverse: bool
) -> list[tuple[bytes, bytes]]:
    items = sorted(
        (k, v)
        for k, v in model.items()
        if (start is None or k >= start) and (stop is None or k < stop)
    )
    return items[::-1] if reverse else items


def check(db: bitcask.Bitcask, model: dict[bytes, bytes], rng: random.Random) -> None:
    """Every read of the package against the model."""
    assert len(db) == len(model)
    for i in range(400):
        k = b"k%03d" % i
        assert db.get(k) == model.get(k)
        assert (k in db) == (k in model)
        if k in model:
            assert db[k] == model[k]
        else:
            with pytest.raises(KeyError):
                db[k]
    assert list(db) == sorted(model)
    assert list(db.keys()) == sorted(model)
    assert list(db.values()) == [model[k] for k in sorted(model)]
    assert list(db.items()) == sorted(model.items())
    bounds: list[Optional[bytes]] = [None] + [b"k%03d" % rng.randrange(400) for _ in range(4)]
    for start in bounds:
        for stop in bounds:
            for reverse in (False, True):
                want = scanned(model, start, stop, reverse)
                assert list(db.range(start, stop, reverse)) == want
                assert list(db.range(start, stop, reverse, yields="keys")) == [k for k, _ in want]
                assert list(db.range(start, stop, reverse, yields="values")) == [
                    v for _, v in want
                ]
    for p in (b"k0", b"k12", b"k399", b"x"):
        want = sorted((k, v) for k, v in model.items() if k.startswith(p))
        assert list(db.prefix(p)) == want
        assert list(db.prefix(p, reverse=True, yields="keys")) == [k for k, _ in want][::-1]
        assert list(db.prefix(p, yields="values")) == [v for _, v in want]


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "pread"])
def test_mmap_on_and_off_agree_with_a_dict_through_puts_deletes_reopens_and_scans(
    path: Path, mmap: bool
) -> None:
    rng = random.Random(5)
    model: dict[bytes, bytes] = {}
    with bitcask.open(path, mmap=mmap, max_file_size=256 << 10, auto_merge=False) as db:
        for _ in range(3):
            churn(db, model, rng, 800)
            check(db, model, rng)
        assert len(db.stats().files) > 3
    # Reopened the same way, and the other way: the option changes how values
    # are read, not what is stored.
    for again in (mmap, not mmap):
        with bitcask.open(path, mmap=again, max_file_size=256 << 10, auto_merge=False) as db:
            check(db, model, rng)
            churn(db, model, rng, 300)
            check(db, model, rng)
    with bitcask.open(path, mmap=mmap, read_only=True) as db:
        check(db, model, rng)


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "pread"])
def test_a_value_in_the_write_buffer_reads_the_same_with_mmap_on_and_off(
    path: Path, mmap: bool
) -> None:
    rng = random.Random(9)
    model: dict[bytes, bytes] = {}
    with bitcask.open(path, mmap=mmap, write_buffer_size=1 << 20) as db:
        churn(db, model, rng, 500)
        check(db, model, rng)


@pytest.mark.parametrize("option", ["mmap", "preallocate"])
def test_bool_options_take_a_bool(path: Path, option: str) -> None:
    for bad in (1, "no"):
        with pytest.raises(TypeError, match=f"option {option} must be a bool"):
            bitcask.open(path, **{option: bad})  # type: ignore[arg-type]
    with bitcask.open(path, **{option: None}) as db:
        db[b"k"] = b"v"
        assert db[b"k"] == b"v"


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "pread"])
def test_values_read_while_a_merge_runs_stay_correct(path: Path, mmap: bool) -> None:
    rng = random.Random(11)
    with bitcask.open(path, mmap=mmap, max_file_size=64 << 10, auto_merge=False) as db:
        # Stable keys, read throughout; churned keys, overwritten to give the
        # merges dead bytes to reclaim.
        stable = {b"s%03d" % i: rng.randbytes(rng.choice([10, 500, 20_000])) for i in range(200)}
        for k, v in stable.items():
            db[k] = v
        errors: list[BaseException] = []
        stop = threading.Event()
        reads = [0]

        def reader(seed: int) -> None:
            r = random.Random(seed)
            keys = sorted(stable)
            try:
                while not stop.is_set():
                    k = r.choice(keys)
                    got = db[k]
                    if got != stable[k]:
                        raise AssertionError(f"{k!r}: {len(got)} bytes, not {len(stable[k])}")
                    reads[0] += 1
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(2)]
        for t in threads:
            t.start()
        merged = 0
        try:
            for turn in range(3):
                for i in range(300):
                    db[b"c%03d" % i] = b"%d" % turn + rng.randbytes(rng.randrange(100, 2000))
                # An iterator part-read before the merge: the rest of its values
                # come from files the merge replaces.
                it = db.prefix(b"s")
                first = [next(it) for _ in range(20)]
                merged += db.merge().files_in
                assert first + list(it) == sorted(stable.items())
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        assert merged > 0
        assert reads[0] > 0
        for k, v in stable.items():
            assert db[k] == v
    with bitcask.open(path, mmap=mmap) as db:
        assert dict(db.prefix(b"s")) == stable


def test_keys_only_iteration_returns_keys_in_order(db: bitcask.Bitcask) -> None:
    rng = random.Random(3)
    keys = {rng.randbytes(rng.randrange(1, 12)) for _ in range(3000)}
    with db.write_batch() as b:
        for k in keys:
            b.put(k, b"value of " + k)
    ordered = sorted(keys)
    assert list(db) == ordered
    assert list(db.keys()) == ordered
    assert list(db.range(yields="keys")) == ordered
    assert list(db.range(reverse=True, yields="keys")) == ordered[::-1]
    lo, hi = ordered[700], ordered[2100]
    assert list(db.range(lo, hi, yields="keys")) == ordered[700:2100]
    assert list(db.range(lo, hi, True, yields="keys")) == ordered[700:2100][::-1]
    p = ordered[1500][:1]
    assert list(db.prefix(p, yields="keys")) == [k for k in ordered if k.startswith(p)]
    # The keys' values, in the same order.
    assert list(db.range(lo, hi, yields="values")) == [b"value of " + k for k in ordered[700:2100]]


def test_yields_other_than_items_keys_values_is_a_value_error(db: bitcask.Bitcask) -> None:
    db[b"k"] = b"v"
    yields: Union[bitcask.Yields, str] = "pairs"
    with pytest.raises(ValueError, match="yields must be"):
        db.range(yields=yields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="yields must be"):
        db.prefix(b"k", yields=yields)  # type: ignore[arg-type]
    # A yields not known until run time, typed as the union.
    chosen: bitcask.Yields = "keys"
    assert list(db.range(yields=chosen)) == [b"k"]


def read_bytes_so_far() -> int:
    """Bytes this process has read with read(2)/pread(2) and the like."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_keys_only_iteration_reads_no_data_file(path: Path) -> None:
    # pread, so that every value read counts in rchar; one data file and no
    # automatic merge, so that no background job reads files meanwhile.
    n, size = 2000, 1000
    with bitcask.open(path, mmap=False, auto_merge=False) as db:
        with db.write_batch() as b:
            for i in range(n):
                b.put(b"k%05d" % i, bytes([i % 251]) * size)
        keys = [b"k%05d" % i for i in range(n)]
        scans: dict[str, Callable[[], list[bytes]]] = {
            "iter": lambda: list(db),
            "keys view": lambda: list(db.keys()),
            "range": lambda: list(db.range(yields="keys")),
            "range reversed": lambda: list(db.range(b"k00100", None, True, yields="keys")),
            "prefix": lambda: list(db.prefix(b"k01", yields="keys")),
        }
        for name, scan in scans.items():
            before = read_bytes_so_far()
            got = scan()
            assert got, name
            assert read_bytes_so_far() - before < size, name
        assert list(db) == keys
        # The measure does see reads: a scan of values reads them all.
        before = read_bytes_so_far()
        assert sum(1 for _ in db.range(yields="values")) == n
        assert read_bytes_so_far() - before >= n * size

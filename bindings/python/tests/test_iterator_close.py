"""Closing iterators: close(), the context manager, and db.close() ending the
iterators still live on the handle."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Union

import pytest

import bitcask

if TYPE_CHECKING:
    from conftest import CloseWhileReading

AnyIter = bitcask.Iter[Union[bytes, tuple[bytes, bytes]]]


def scan(it: Iterator[object]) -> AnyIter:
    """The views' iterators, typed Iterator by MutableMapping, are Iters."""
    assert isinstance(it, bitcask.Iter)
    return it


# Every kind of iterator the package hands out.
MAKERS: dict[str, Callable[[bitcask.Bitcask], AnyIter]] = {
    "iter(db)": lambda db: iter(db),
    "keys()": lambda db: scan(iter(db.keys())),
    "values()": lambda db: scan(iter(db.values())),
    "items()": lambda db: scan(iter(db.items())),
    "range()": lambda db: db.range(),
    "range(keys)": lambda db: db.range(yields="keys"),
    "range(values)": lambda db: db.range(b"k", b"l", reverse=True, yields="values"),
    "prefix()": lambda db: db.prefix(b"k"),
    "prefix(keys)": lambda db: db.prefix(b"k", yields="keys"),
}


def fill(db: bitcask.Bitcask, n: int = 100) -> None:
    with db.write_batch() as b:
        for i in range(n):
            b.put(b"k%03d" % i, b"v%03d" % i)


@pytest.mark.parametrize("make", MAKERS.values(), ids=list(MAKERS))
def test_every_iterator_is_an_iter_with_close(
    db: bitcask.Bitcask, make: Callable[[bitcask.Bitcask], AnyIter]
) -> None:
    fill(db)
    it = make(db)
    assert isinstance(it, bitcask.Iter)
    next(it)
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    it.close()  # idempotent
    with pytest.raises(StopIteration):
        next(it)
    assert list(it) == []
    # The database is untouched and usable.
    assert len(db) == 100


def test_close_before_the_first_step(db: bitcask.Bitcask) -> None:
    fill(db)
    it = db.range()
    it.close()
    assert list(it) == []


def test_with_block_closes_the_iterator(db: bitcask.Bitcask) -> None:
    fill(db)
    with db.range(b"k010", b"k020", yields="keys") as it:
        assert it is not None
        assert next(it) == b"k010"
        assert next(it) == b"k011"
    with pytest.raises(StopIteration):
        next(it)


def test_with_block_closes_on_exception_and_lets_it_through(db: bitcask.Bitcask) -> None:
    fill(db)
    with pytest.raises(ZeroDivisionError):
        with db.prefix(b"k") as it:
            next(it)
            1 / 0
    with pytest.raises(StopIteration):
        next(it)


def test_with_block_iterates_fully(db: bitcask.Bitcask) -> None:
    fill(db, 10)
    with db.range() as it:
        assert [k for k, _ in it] == [b"k%03d" % i for i in range(10)]


@pytest.mark.parametrize("make", MAKERS.values(), ids=list(MAKERS))
def test_db_close_ends_live_iterators_with_closed_error(
    path: Path, make: Callable[[bitcask.Bitcask], AnyIter]
) -> None:
    db = bitcask.open(path)
    fill(db, 2000)  # more than one read-ahead chunk
    it = make(db)
    next(it)
    db.close()
    with pytest.raises(bitcask.ClosedError):
        next(it)
    with pytest.raises(bitcask.ClosedError):
        next(it)  # stays ended
    it.close()  # still fine, and still ClosedError
    with pytest.raises(bitcask.ClosedError):
        next(it)


def test_db_close_ends_iterators_not_yet_started(path: Path) -> None:
    db = bitcask.open(path)
    fill(db)
    it = db.range()
    db.close()
    with pytest.raises(bitcask.ClosedError):
        next(it)


def test_exhausted_or_closed_iterators_keep_stopping_after_db_close(path: Path) -> None:
    db = bitcask.open(path)
    fill(db, 3)
    done = db.range()
    assert len(list(done)) == 3
    closed = db.range()
    closed.close()
    db.close()
    for it in (done, closed):
        with pytest.raises(StopIteration):
            next(it)


def test_reopen_succeeds_while_an_ended_iterator_is_referenced(path: Path) -> None:
    db = bitcask.open(path)
    fill(db, 2000)
    it = db.range()
    keys = iter(db)
    assert next(it) == (b"k000", b"v000")
    assert next(keys) == b"k000"
    db.close()
    gc.collect()
    # The old iterators and the old handle are all still referenced.
    with bitcask.open(path) as again:
        assert len(again) == 2000
        again[b"new"] = b"1"
    with pytest.raises(bitcask.ClosedError):
        next(it)
    with pytest.raises(bitcask.ClosedError):
        next(keys)
    del db


def test_closed_iterator_lets_go_of_an_unreferenced_handle(path: Path) -> None:
    it = bitcask.open(path).range()  # the iterator holds the only reference
    it.close()
    gc.collect()
    # Dropping the handle closed it, releasing the writer lock.
    bitcask.open(path).close()


def test_iterator_made_from_a_closed_handle_raises(path: Path) -> None:
    db = bitcask.open(path)
    db.close()
    with pytest.raises(bitcask.ClosedError):
        list(db.range())
    with pytest.raises(bitcask.ClosedError):
        list(db)


def test_many_short_lived_iterators(db: bitcask.Bitcask) -> None:
    # Dropped iterators are pruned from the handle's registry; all still work.
    fill(db, 5)
    for _ in range(1000):
        assert next(db.range(yields="keys")) == b"k000"
    live = [db.range(yields="keys") for _ in range(100)]
    assert all(next(it) == b"k000" for it in live)


def test_close_while_another_thread_iterates(
    path: Path, close_while_reading: CloseWhileReading
) -> None:
    db = bitcask.open(path)
    fill(db, 500)
    close_while_reading(db, lambda: list(db.range()))


def test_iter_is_generic_at_run_time() -> None:
    alias = bitcask.Iter[bytes]
    assert alias.__origin__ is bitcask.Iter  # type: ignore[attr-defined]

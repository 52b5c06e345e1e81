"""Per-key expiry: put(..., ttl=), ttl(), batches, default_ttl, and the counters
that came with it (tombstones, expired_dropped)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import bitcask

# Expiry is kept in whole seconds, rounded up: right after a put with ttl=t,
# db.ttl() is at least t minus the time the test took and below t + 1.
SLACK = 0.5


def assert_about(left: Optional[float], ttl: float) -> None:
    assert left is not None
    assert isinstance(left, float)
    assert ttl - SLACK < left < ttl + 1, (left, ttl)


def test_ttl_right_after_put(db: bitcask.Bitcask) -> None:
    db.put(b"int", b"v", ttl=10)
    assert_about(db.ttl(b"int"), 10)
    db.put(b"float", b"v", ttl=2.5)
    assert_about(db.ttl(b"float"), 2.5)
    db.put(b"year", b"v", ttl=365 * 86400)
    assert_about(db.ttl(b"year"), 365 * 86400)
    # Not expired yet: an ordinary key for every read.
    assert db[b"int"] == b"v"
    assert b"float" in db
    assert len(db) == 3
    assert list(db) == [b"float", b"int", b"year"]


def test_ttl_takes_any_bytes_like_key(db: bitcask.Bitcask) -> None:
    db.put(bytearray(b"k"), memoryview(b"v"), ttl=5)
    assert_about(db.ttl(memoryview(b"k")), 5)
    assert_about(db.ttl(bytearray(b"k")), 5)
    with pytest.raises(TypeError):
        db.ttl("k")  # type: ignore[arg-type]


def test_plain_put_has_no_ttl(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    db.put(b"b", b"2")
    db.put(b"c", b"3", ttl=None)
    for k in [b"a", b"b", b"c"]:
        assert db.ttl(k) is None
    # Writing a key again without a TTL makes it persistent again, and back.
    db.put(b"a", b"4", ttl=30)
    assert_about(db.ttl(b"a"), 30)
    db[b"a"] = b"5"
    assert db.ttl(b"a") is None
    assert db[b"a"] == b"5"


def test_ttl_of_absent_key_is_key_error(db: bitcask.Bitcask) -> None:
    with pytest.raises(KeyError) as e:
        db.ttl(b"never")
    assert e.value.args == (b"never",)
    db.put(b"gone", b"v", ttl=60)
    del db[b"gone"]
    with pytest.raises(KeyError):
        db.ttl(b"gone")
    db[b"gone2"] = b"v"
    db.delete(b"gone2")
    with pytest.raises(KeyError):
        db.ttl(b"gone2")


def test_ttl_survives_reopen(path: Path) -> None:
    with bitcask.open(path) as db:
        db.put(b"t", b"v", ttl=100)
        db[b"p"] = b"v"
    with bitcask.open(path) as db:
        assert_about(db.ttl(b"t"), 100)
        assert db.ttl(b"p") is None
        assert db[b"t"] == b"v"


def test_batch_with_ttl(db: bitcask.Bitcask) -> None:
    with db.write_batch() as b:
        b.put(b"a", b"1", ttl=20)
        b.put(b"b", b"2")
        b.put(b"c", b"3", ttl=None)
        b.put(b"d", b"4", ttl=7.5)
        b[b"e"] = b"5"
        assert len(b) == 5
    assert_about(db.ttl(b"a"), 20)
    assert db.ttl(b"b") is None
    assert db.ttl(b"c") is None
    assert_about(db.ttl(b"d"), 7.5)
    assert db.ttl(b"e") is None
    assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4", b"e": b"5"}


def test_batch_invalid_ttl(db: bitcask.Bitcask) -> None:
    b = db.write_batch()
    # What no duration can be is refused at once and adds nothing...
    for bad in [-1, -0.5, math.nan, math.inf]:
        with pytest.raises(bitcask.InvalidOptionError) as e:
            b.put(b"x", b"1", ttl=bad)
        assert e.value.option == "ttl"
    with pytest.raises(TypeError):
        b.put(b"x", b"1", ttl="5")  # type: ignore[arg-type]
    assert len(b) == 0
    # ...what the engine refuses is reported by the write, which applies nothing.
    b.put(b"ok", b"1")
    b.put(b"zero", b"2", ttl=0)
    with pytest.raises(bitcask.InvalidOptionError) as e:
        b.write()
    assert e.value.option == "ttl"
    assert len(db) == 0
    with pytest.raises(bitcask.InvalidOptionError):
        with db.write_batch() as b2:
            b2.put(b"ok", b"1")
            b2.put(b"long", b"2", ttl=2**31)
    assert b"ok" not in db


def test_default_ttl(path: Path) -> None:
    with bitcask.open(path, default_ttl=30) as db:
        db[b"plain"] = b"1"
        db.put(b"none", b"2", ttl=None)
        db.put(b"own", b"3", ttl=300)
        with db.write_batch() as b:
            b.put(b"batch", b"4")
            b.put(b"batch-own", b"5", ttl=3)
        assert_about(db.ttl(b"plain"), 30)
        assert_about(db.ttl(b"none"), 30)
        assert_about(db.ttl(b"own"), 300)
        assert_about(db.ttl(b"batch"), 30)
        assert_about(db.ttl(b"batch-own"), 3)
    # Expiry is written with each value: a reopen without the option keeps it,
    # and new plain puts are persistent.
    with bitcask.open(path) as db:
        assert_about(db.ttl(b"plain"), 30)
        db[b"later"] = b"6"
        assert db.ttl(b"later") is None
    with bitcask.open(path, default_ttl=2.5) as db:
        db[b"float"] = b"7"
        assert_about(db.ttl(b"float"), 2.5)


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.25, math.nan, math.inf, 2**31, 10**30])
def test_default_ttl_invalid(path: Path, bad: float) -> None:
    with pytest.raises(bitcask.InvalidOptionError) as e:
        bitcask.open(path, default_ttl=bad)
    assert e.value.option == "default_ttl"
    assert isinstance(e.value, ValueError)
    # Refused before anything was created or locked.
    bitcask.open(path).close()


@pytest.mark.parametrize("bad", ["30", True, b"1", [1]])
def test_default_ttl_wrong_type(path: Path, bad: Any) -> None:
    with pytest.raises(TypeError):
        bitcask.open(path, default_ttl=bad)


@pytest.mark.parametrize(
    "bad", [0, 0.0, -1, -0.5, -math.inf, math.nan, math.inf, 2**31, 10**30, 1e300]
)
def test_invalid_ttl(db: bitcask.Bitcask, bad: float) -> None:
    with pytest.raises(bitcask.InvalidOptionError) as e:
        db.put(b"k", b"v", ttl=bad)
    assert isinstance(e.value, ValueError)
    assert e.value.option == "ttl"
    assert e.value.reason
    assert b"k" not in db
    assert len(db) == 0


@pytest.mark.parametrize("bad", ["1", b"1", True, False, 1j])
def test_ttl_wrong_type(db: bitcask.Bitcask, bad: Any) -> None:
    with pytest.raises(TypeError):
        db.put(b"k", b"v", ttl=bad)
    assert b"k" not in db


def test_longest_ttl(db: bitcask.Bitcask) -> None:
    # u32::MAX / 2 seconds, passed exactly (an int is not rounded through a float).
    longest = 2**31 - 1
    db.put(b"k", b"v", ttl=longest)
    assert_about(db.ttl(b"k"), longest)
    with pytest.raises(bitcask.InvalidOptionError):
        db.put(b"k", b"w", ttl=longest + 1)
    assert db[b"k"] == b"v"


def test_expiry(path: Path) -> None:
    # Small files, so that the expired records end up in a sealed file a merge reads.
    with bitcask.open(path, max_file_size=1024, auto_merge=False) as db:
        db.put(b"a", b"short", ttl=1)
        with db.write_batch() as b:
            b.put(b"c", b"short too", ttl=1)
            b.put(b"p", b"persistent")
        db.put(b"q", b"long", ttl=600)
        for i in range(30):
            db[b"z%02d" % i] = b"filler " * 8
        n = 30 + 4
        assert b"a" in db and b"c" in db
        assert len(db) == n
        assert db.stats().keys == n
        assert len(db.stats().files) > 1

        time.sleep(2.1)

        for k in [b"a", b"c"]:
            with pytest.raises(KeyError):
                db[k]
            with pytest.raises(KeyError):
                db.ttl(k)
            with pytest.raises(KeyError):
                del db[k]
            assert k not in db
            assert db.get(k) is None
            assert db.get(k, b"dflt") == b"dflt"
        assert len(db) == n - 2
        assert db.stats().keys == n - 2
        keys = list(db)
        assert b"a" not in keys and b"c" not in keys
        assert keys[:2] == [b"p", b"q"]
        assert len(keys) == n - 2
        assert dict(db.items())[b"p"] == b"persistent"
        assert len(list(db.values())) == n - 2
        assert [k for k, _ in db.range(b"a", b"d")] == []
        assert [k for k, _ in db.range(b"a", b"d", reverse=True)] == []
        assert list(db.prefix(b"a")) == []
        assert db[b"p"] == b"persistent"
        assert_about(db.ttl(b"q"), 600 - 2.1)

        # A merge drops the expired values and says so.
        m = db.merge()
        assert m.expired_dropped == 2
        s = db.stats()
        assert s.last_merge is not None
        assert s.last_merge.expired_dropped == 2
        assert len(db) == n - 2

    # Expired keys stay gone after a reopen, and reopening does not revive them.
    with bitcask.open(path) as db:
        assert b"a" not in db and b"c" not in db
        assert len(db) == n - 2
        assert db[b"p"] == b"persistent"


def test_rewrite_before_expiry_keeps_key(db: bitcask.Bitcask) -> None:
    db.put(b"k", b"old", ttl=1)
    db[b"k"] = b"new"  # persistent now
    time.sleep(2.1)
    assert db[b"k"] == b"new"
    assert db.ttl(b"k") is None


def test_tombstones_stat_grows_after_delete(db: bitcask.Bitcask) -> None:
    for i in range(5):
        db[b"k%d" % i] = b"v"
    start = db.stats().tombstones
    assert start == 0
    del db[b"k0"]
    assert db.stats().tombstones == 1
    db.delete(b"k1")
    assert db.stats().tombstones == 2
    with db.write_batch() as b:
        b.delete(b"k2")
        b.delete(b"k3")
    assert db.stats().tombstones == 4
    # Puts add none.
    db[b"k0"] = b"again"
    db.put(b"t", b"v", ttl=60)
    assert db.stats().tombstones == 4

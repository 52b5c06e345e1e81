"""The mapping protocol, persistence, batches, iteration, inputs."""

from __future__ import annotations

import collections.abc
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import bitcask


def test_is_a_mutable_mapping(db: bitcask.Bitcask) -> None:
    assert isinstance(db, collections.abc.MutableMapping)


def test_basic_protocol(db: bitcask.Bitcask) -> None:
    assert len(db) == 0
    db[b"a"] = b"1"
    db[b"b"] = b"2"
    assert db[b"a"] == b"1"
    assert b"a" in db and b"zz" not in db
    assert len(db) == 2
    assert list(db) == [b"a", b"b"]
    assert list(db.keys()) == [b"a", b"b"]
    assert list(db.values()) == [b"1", b"2"]
    assert list(db.items()) == [(b"a", b"1"), (b"b", b"2")]
    assert (b"a", b"1") in db.items()
    assert db.get(b"a") == b"1"
    assert db.get(b"x") is None
    assert db.get(b"x", b"d") == b"d"
    with pytest.raises(KeyError):
        db[b"x"]
    del db[b"a"]
    with pytest.raises(KeyError):
        del db[b"a"]
    db.delete(b"a")  # idempotent
    db.put(b"c", b"3")
    assert dict(db) == {b"b": b"2", b"c": b"3"}
    assert db == {b"b": b"2", b"c": b"3"}
    # Mixins from MutableMapping.
    assert db.pop(b"b") == b"2"
    assert db.setdefault(b"d", b"4") == b"4"
    db.update({b"e": b"5"})
    db.update([(b"f", b"6")])
    assert set(db) == {b"c", b"d", b"e", b"f"}
    db.clear()
    assert len(db) == 0 and list(db) == []


def test_empty_value_is_a_value(db: bitcask.Bitcask) -> None:
    db[b"k"] = b""
    assert db[b"k"] == b"" and b"k" in db and db.get(b"k", b"x") == b""


def test_bytes_like_inputs(db: bitcask.Bitcask) -> None:
    db[bytearray(b"k1")] = memoryview(b"v1")
    db[memoryview(b"xk2x")[1:3]] = bytearray(b"v2")
    import array

    db[b"k3"] = array.array("B", b"v3")  # type: ignore[assignment]
    assert db[b"k1"] == b"v1" and type(db[b"k1"]) is bytes
    assert db[memoryview(b"k2")] == b"v2"
    assert db[bytearray(b"k3")] == b"v3"
    assert memoryview(b"k1") in db


def test_str_is_refused_with_a_hint(db: bitcask.Bitcask) -> None:
    with pytest.raises(TypeError, match="encode"):
        db["k"] = b"v"  # type: ignore[index]
    with pytest.raises(TypeError, match="encode"):
        db[b"k"] = "v"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="encode"):
        db.get("k")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="bytes-like"):
        db[b"k"] = 5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        db.write_batch().put("k", b"v")  # type: ignore[arg-type]


def test_persistence_across_reopen(path: Path) -> None:
    with bitcask.open(path, max_file_size=4096) as db:
        for i in range(500):
            db[b"k%04d" % i] = b"v%d" % i
        for i in range(0, 500, 3):
            del db[b"k%04d" % i]
        db[b"k0001"] = b"new"
    with bitcask.Bitcask(path) as db:
        assert len(db) == 500 - 167
        assert db[b"k0001"] == b"new"
        assert b"k0000" not in db
        assert db[b"k0499"] == b"v499"
        assert len(db.stats().files) > 1


def test_batch_commits_on_success(db: bitcask.Bitcask) -> None:
    db[b"gone"] = b"x"
    with db.write_batch() as b:
        b.put(b"a", b"1")
        b[b"b"] = b"2"
        b.delete(b"gone")
        del b[b"b"]
        b.put(b"b", b"3")
        assert len(b) == 5
        assert b"a" not in db  # nothing visible before the block ends
    assert dict(db) == {b"a": b"1", b"b": b"3"}


def test_batch_discarded_when_block_raises(db: bitcask.Bitcask) -> None:
    db[b"keep"] = b"1"
    with pytest.raises(RuntimeError):
        with db.write_batch(sync=True) as b:
            b.put(b"a", b"1")
            b.delete(b"keep")
            raise RuntimeError("boom")
    assert dict(db) == {b"keep": b"1"}


def test_batch_is_all_or_nothing_on_error(db: bitcask.Bitcask) -> None:
    with pytest.raises(bitcask.KeyTooLargeError):
        with db.write_batch() as b:
            b.put(b"ok", b"1")
            b.put(b"x" * 5000, b"2")
    assert len(db) == 0


def test_batch_write_explicitly(db: bitcask.Bitcask) -> None:
    b = db.write_batch()
    b.put(b"a", b"1")
    b.write()
    assert len(b) == 0 and db[b"a"] == b"1"
    b.put(b"b", b"2")
    b.clear()
    b.write()
    assert list(db) == [b"a"]


def test_range_and_prefix(db: bitcask.Bitcask) -> None:
    for k in [b"a", b"b", b"ba", b"bb", b"c", b"\xff", b"\xff\xff"]:
        db[k] = k.upper()
    assert [k for k, _ in db.range()] == [b"a", b"b", b"ba", b"bb", b"c", b"\xff", b"\xff\xff"]
    assert list(db.range(b"b", b"c")) == [(b"b", b"B"), (b"ba", b"BA"), (b"bb", b"BB")]
    assert [k for k, _ in db.range(start=b"bb")] == [b"bb", b"c", b"\xff", b"\xff\xff"]
    assert [k for k, _ in db.range(stop=b"b")] == [b"a"]
    assert [k for k, _ in db.range(b"b", b"c", reverse=True)] == [b"bb", b"ba", b"b"]
    assert [k for k, _ in db.prefix(b"b")] == [b"b", b"ba", b"bb"]
    assert [k for k, _ in db.prefix(bytearray(b"b"), reverse=True)] == [b"bb", b"ba", b"b"]
    assert [k for k, _ in db.prefix(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert list(db.prefix(b"zz")) == []
    assert list(db.range(b"c", b"b")) == []


def test_iteration_in_key_order_over_many_chunks(db: bitcask.Bitcask) -> None:
    keys = [b"%05d" % i for i in range(2000)]
    with db.write_batch() as b:
        for k in reversed(keys):
            b.put(k, k)
    assert list(db) == keys
    assert [k for k, _ in db.range(reverse=True)] == keys[::-1]
    assert list(db.values()) == keys


def test_iterator_keeps_an_unreferenced_handle_open(path: Path) -> None:
    import gc

    with bitcask.open(path) as db:
        db[b"a"] = b"1"
    it = iter(bitcask.open(path).items())
    gc.collect()
    assert list(it) == [(b"a", b"1")]
    del it
    gc.collect()
    # The handle is gone with its last iterator: the lock is free again.
    bitcask.open(path).close()


def test_stats(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    db[b"a"] = b"2"
    s = db.stats()
    assert isinstance(s, bitcask.Stats)
    assert s.keys == 1
    assert s.last_seq == 2
    assert s.data_bytes == sum(f.total_bytes for f in s.files)
    assert all(isinstance(f, bitcask.FileStats) for f in s.files)
    assert s.files[-1].dead_bytes > 0


def test_close_is_idempotent_and_context_manager_closes(path: Path) -> None:
    with bitcask.open(path) as db:
        assert not db.closed
        assert "open" in repr(db)
    assert db.closed
    db.close()
    assert "closed" in repr(db)
    assert db.path == path


def test_version_and_sync(db: bitcask.Bitcask) -> None:
    db[b"a"] = b"1"
    db.sync()
    assert isinstance(bitcask.__version__, str)


def test_sync_policies(tmp_path: Path) -> None:
    for i, policy in enumerate(["always", "never", 5]):
        with bitcask.open(tmp_path / str(i), sync=policy) as db:  # type: ignore[arg-type]
            db[b"k"] = b"v"
            assert db[b"k"] == b"v"


class MappingModel(RuleBasedStateMachine):
    """Random operations against a dict, with reopens in between."""

    keys = st.binary(min_size=1, max_size=6)
    values = st.binary(max_size=40)

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "db"
        self.db = bitcask.open(self.path, max_file_size=1024)
        self.model: dict[bytes, bytes] = {}

    @rule(k=keys, v=values)
    def put(self, k: bytes, v: bytes) -> None:
        self.db[k] = v
        self.model[k] = v

    @rule(k=keys)
    def get(self, k: bytes) -> None:
        assert self.db.get(k) == self.model.get(k)

    @rule(k=keys)
    def delete(self, k: bytes) -> None:
        if k in self.model:
            del self.db[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.db[k]

    @rule(ops=st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=8), fail=st.booleans())
    def batch(self, ops: list[tuple[bytes, Optional[bytes]]], fail: bool) -> None:
        try:
            with self.db.write_batch() as b:
                for k, v in ops:
                    if v is None:
                        b.delete(k)
                    else:
                        b.put(k, v)
                if fail:
                    raise ValueError("rollback")
        except ValueError:
            return
        for k, v in ops:
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def prefix(self, data: st.DataObject) -> None:
        k = data.draw(st.sampled_from(sorted(self.model)))
        p = k[: data.draw(st.integers(0, len(k)))]
        want = sorted((a, b) for a, b in self.model.items() if a.startswith(p))
        assert list(self.db.prefix(p)) == want

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = bitcask.open(self.path, max_file_size=1024)

    @invariant()
    def same_contents(self) -> None:
        assert len(self.db) == len(self.model)
        assert list(self.db.items()) == sorted(self.model.items())

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()


MappingModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_mapping_model = MappingModel.TestCase

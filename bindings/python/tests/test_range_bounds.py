"""Range bounds mean the same in every binding: None is no bound, and an empty
key is an ordinary bound (nothing is below it), as NULL and the empty key in C
and nil and []byte{} in Go."""

from __future__ import annotations

from pathlib import Path

import bitcask


def test_range_none_is_unbounded_and_the_empty_key_is_a_bound(path: Path) -> None:
    with bitcask.open(path) as db:
        for k in (b"a", b"b", b"c"):
            db[k] = b"v"
        assert list(db.range(b"b", None, yields="keys")) == [b"b", b"c"]
        assert list(db.range(b"b", b"", yields="keys")) == []
        assert list(db.range(None, b"c", yields="keys")) == [b"a", b"b"]
        assert list(db.range(b"", b"c", yields="keys")) == [b"a", b"b"]

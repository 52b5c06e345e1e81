"""A small program checked with `mypy --strict` against the package's types."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from typing import Optional


import bitcask


def load(db: MutableMapping[bytes, bytes], rows: dict[bytes, bytes]) -> int:
    for k, v in rows.items():
        db[k] = v
    return len(db)


def main(path: str) -> None:
    db: bitcask.Bitcask
    with bitcask.open(path, sync=100, max_file_size=1 << 20, read_only=False) as db:
        n: int = load(db, {b"a": b"1", b"b": b"2"})
        v: Optional[bytes] = db.get(b"a")
        d: bytes = db.get(b"zz", b"default")
        db.put(bytearray(b"c"), memoryview(b"3"))
        db.delete(b"c")
        with db.write_batch(sync=True) as batch:
            batch.put(b"x", b"y")
            batch.put(b"t", b"y", ttl=2.5)
            batch.delete(b"a")
        db.put(b"e", b"1", ttl=60)
        db.put(b"f", b"1", ttl=None)
        left: Optional[float] = db.ttl(b"e")
        tombstones: int = db.stats().tombstones
        print(left, tombstones)
        pairs: list[tuple[bytes, bytes]] = list(db.range(b"a", b"z", reverse=True))
        pairs += list(db.prefix(b"b"))
        keys: list[bytes] = list(db)
        keys += list(db.range(b"a", b"z", yields="keys"))
        values: list[bytes] = list(db.prefix(b"b", yields="values"))
        pairs += list(db.range(yields="items"))
        what: bitcask.Yields = "keys"
        either: list[object] = list(db.range(yields=what))
        print(values, either)
        with db.range(b"a", b"z") as scan:
            first: tuple[bytes, bytes] = next(scan)
            print(first)
        scan.close()
        key_scan: bitcask.Iter[bytes] = iter(db)
        key_scan.close()
        db.clear()
        stats: bitcask.Stats = db.stats()
        last: Optional[int] = stats.last_seq
        live: int = sum(f.live_bytes for f in stats.files)
        ahead: int = stats.preallocated_bytes + stats.syncs + stats.writes + stats.write_groups
        print(ahead)
        closed: bool = db.closed
        merged: bitcask.MergeStats = db.merge()
        reclaimed: int = merged.bytes_reclaimed
        expired: int = merged.expired_dropped
        print(expired)
        last_merge: Optional[bitcask.MergeStats] = db.stats().last_merge
        print(reclaimed, last_merge)
        with tempfile.TemporaryDirectory() as copy:
            backup_seq: int = db.backup(copy)
            print(backup_seq)
        with db.snapshot() as snap:
            view: Mapping[bytes, bytes] = snap
            at: Optional[bytes] = snap.get(b"a")
            or_default: bytes = snap.get(b"zz", b"default")
            snap_pairs: list[tuple[bytes, bytes]] = list(snap.range(b"a", None, reverse=True))
            snap_keys: list[bytes] = list(snap.prefix(b"b", yields="keys"))
            snap_seq: int = snap.seq
            print(len(view), at, or_default, snap_pairs, snap_keys, snap_seq, b"a" in snap)
        snap_closed: bool = snap.closed
        held: int = stats.snapshots + stats.snapshot_versions
        print(snap_closed, held)
        merges: int = stats.merges
        failures: int = stats.merge_failures
        merge_error: Optional[bitcask.Error] = stats.last_merge_error
        print(merges, failures, merge_error)
        try:
            bitcask.open(path)
        except bitcask.LockedError as e:
            print("locked:", e.path)
        except bitcask.StorageIOError as e:
            print(e.errno, e.filename, e.op)
        print(n, v, d, pairs, keys, last, live, closed, bitcask.__version__)
    db2 = bitcask.Bitcask(path, read_only=True, mmap=False, preallocate=False)
    db2.close()
    with bitcask.open(path, default_ttl=3600) as db3:
        db3[b"session"] = b"s"

    def report(p: bitcask.OpenProgress) -> None:
        files: int = p.files_done + p.files_total
        done: int = p.bytes_done * 100 // max(p.bytes_total, 1)
        print(files, done, p)

    with bitcask.open(path, read_only=True, progress=report) as db4:
        print(len(db4))
    bitcask.open(path, progress=lambda p: p.files_done).close()
    bitcask.open(path, progress=None).close()
    bitcask.open(path, slow_sync_threshold=0.25).close()
    bitcask.open(path, slow_sync_threshold=None, sync="always").close()


if __name__ == "__main__":
    main(sys.argv[1])

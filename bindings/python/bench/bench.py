"""Point workloads through the ``bitcask`` package and its Python peers.

    python bench.py --keys 200000 --runs 3 --durable 2000 --out python.md
    python bench.py --smoke

Peers: py-lmdb, rocksdict (RocksDB), plyvel (LevelDB) and the standard
library's dbm (dbm.gnu when this Python has it, else dbm.dumb). A peer that is
not installed is skipped with a note. Stdlib only besides the engines, so that
it runs in the separate venv that ``make bench-python`` builds: the peers never
become dependencies of the package's tests.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Optional

KEY_SIZE = 16
VALUE_SIZE = 100
BATCH = 1000
# Durable puts per engine per turn.
DURABLE_CHUNK = 20

Put = Callable[[bytes, bytes], Any]
Get = Callable[[bytes], Any]


class Engine:
    """One store, opened per workload. The callables are taken once per loop,
    so that a loop times the engine's own call, not an attribute lookup."""

    name = ""
    version = ""
    durable = ""  # what "each put durable" means for this engine, for the report
    batches = True

    def open(self, path: str, durable: bool) -> None:
        raise NotImplementedError

    def putter(self) -> Put:
        raise NotImplementedError

    def getter(self) -> Get:
        raise NotImplementedError

    def put_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Bitcask(Engine):
    name = "bitcask"
    durable = 'sync="always": fdatasync before each put returns'

    def __init__(self) -> None:
        import bitcask

        self.mod = bitcask
        self.version = "this tree (`pip install ./bindings/python`)"

    def open(self, path: str, durable: bool) -> None:
        self.db = self.mod.open(path, sync="always" if durable else "never")

    def putter(self) -> Put:
        return self.db.put

    def getter(self) -> Get:
        return self.db.get

    def put_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self.db.write_batch() as b:
            for k, v in pairs:
                b.put(k, v)

    def close(self) -> None:
        self.db.close()


class Lmdb(Engine):
    name = "lmdb"
    durable = "sync=True (the default): fsync per committed write transaction, one put each"

    def __init__(self) -> None:
        import lmdb

        self.mod = lmdb
        self.version = importlib.metadata.version("lmdb") + " (LMDB %d.%d.%d)" % lmdb.version()

    def open(self, path: str, durable: bool) -> None:
        # The map is address space, not memory: large enough never to fill.
        self.env = self.mod.open(path, map_size=1 << 32, sync=durable)

    def putter(self) -> Put:
        # A write is a transaction; one per put is the point-write pattern.
        begin = self.env.begin

        def put(k: bytes, v: bytes) -> None:
            with begin(write=True) as txn:
                txn.put(k, v)

        return put

    def getter(self) -> Get:
        begin = self.env.begin

        def get(k: bytes) -> Optional[bytes]:
            with begin() as txn:
                return txn.get(k)  # type: ignore[no-any-return]

        return get

    def put_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in pairs:
                txn.put(k, v)

    def close(self) -> None:
        self.env.close()


class Rocksdict(Engine):
    name = "rocksdict"
    durable = "WriteOptions.sync = True: WAL fsynced per put"

    def __init__(self) -> None:
        import rocksdict

        self.mod = rocksdict
        self.version = importlib.metadata.version("rocksdict")

    def open(self, path: str, durable: bool) -> None:
        # raw_mode stores the bytes as given; the default pickles-with-a-tag.
        self.db = self.mod.Rdict(path, options=self.mod.Options(raw_mode=True))
        if durable:
            wo = self.mod.WriteOptions()
            wo.sync = True
            self.db.set_write_options(wo)

    def putter(self) -> Put:
        return self.db.put

    def getter(self) -> Get:
        return self.db.get

    def put_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        wb = self.mod.WriteBatch(raw_mode=True)
        for k, v in pairs:
            wb.put(k, v)
        self.db.write(wb)

    def close(self) -> None:
        self.db.close()


class Plyvel(Engine):
    name = "plyvel"
    durable = "put(..., sync=True): log fsynced per put"

    def __init__(self) -> None:
        import plyvel

        self.mod = plyvel
        self.version = f"{plyvel.__version__} (LevelDB {plyvel.__leveldb_version__})"

    def open(self, path: str, durable: bool) -> None:
        self.db = self.mod.DB(path, create_if_missing=True)
        self.sync = durable

    def putter(self) -> Put:
        if not self.sync:
            return self.db.put
        put = self.db.put
        return lambda k, v: put(k, v, sync=True)

    def getter(self) -> Get:
        return self.db.get

    def put_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self.db.write_batch() as wb:
            for k, v in pairs:
                wb.put(k, v)

    def close(self) -> None:
        self.db.close()


class Dbm(Engine):
    batches = False

    def __init__(self) -> None:
        try:
            self.mod: Any = importlib.import_module("dbm.gnu")
            self.name = "dbm.gnu"
            # gdbm's 's' flag: every write synced (gdbm_open GDBM_SYNC).
            self.durable = "open flag 's': every write synced"
        except ImportError:
            # This Python was built without _gdbm (and _dbm).
            self.mod = importlib.import_module("dbm.dumb")
            self.name = "dbm.dumb"
            self.durable = ""
        self.version = "stdlib, Python " + platform.python_version()

    def open(self, path: str, durable: bool) -> None:
        os.makedirs(path, exist_ok=True)
        flag = "cs" if durable and self.name == "dbm.gnu" else "c"
        self.db = self.mod.open(os.path.join(path, "db"), flag)

    def putter(self) -> Put:
        return self.db.__setitem__

    def getter(self) -> Get:
        return self.db.get

    def close(self) -> None:
        self.db.close()


ENGINES: list[type[Engine]] = [Bitcask, Lmdb, Rocksdict, Plyvel, Dbm]

WORKLOADS = [
    # id, title, timed per op
    ("fill", "fill: {keys:,} single puts into an empty database, no sync", False),
    ("fill-batch", "fill, batched: {keys:,} puts in batches (transactions) of {batch:,}, no sync", False),
    ("durable", "durable puts: {durable:,} single puts from one thread, each durable before it returns", True),
    ("get", "random gets: {keys:,} gets of present keys, hot cache", True),
    ("mixed", "mixed: {keys:,} ops, 90% gets / 10% overwrites, random keys, no sync", True),
]

Sample = dict[str, float]


def timed(n: int, total_ns: int, lat: list[int]) -> Sample:
    lat.sort()
    return {
        "ops": n / (total_ns / 1e9),
        "p50": lat[int(0.50 * (len(lat) - 1))] / 1e3,
        "p99": lat[int(0.99 * (len(lat) - 1))] / 1e3,
    }


class Bench:
    def __init__(self, n: int, durable: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        # A fixed seed: every engine sees the same keys in the same order.
        blob = rng.randbytes(n * KEY_SIZE)
        self.keys = [blob[i * KEY_SIZE : (i + 1) * KEY_SIZE] for i in range(n)]
        blob = rng.randbytes(n * VALUE_SIZE)
        self.values = [blob[i * VALUE_SIZE : (i + 1) * VALUE_SIZE] for i in range(n)]
        self.durable = min(durable, n)
        self.rng = rng
        self.results: dict[str, dict[str, list[Sample]]] = {w[0]: {} for w in WORKLOADS}

    def record(self, workload: str, engine: str, sample: Sample) -> None:
        self.results[workload].setdefault(engine, []).append(sample)

    def run_engine(self, e: Engine, root: str) -> None:
        """Every workload once on e, each on a database of its own but the
        reads, which need the filled one."""
        keys, values, n = self.keys, self.values, len(self.keys)
        clock = time.perf_counter_ns
        os.makedirs(root)

        e.open(os.path.join(root, "fill"), False)
        put = e.putter()
        t = clock()
        for k, v in zip(keys, values):
            put(k, v)
        self.record("fill", e.name, {"ops": n / ((clock() - t) / 1e9)})

        get = e.getter()
        # Hot cache: every key read once, untimed (and checked), first.
        for k in keys:
            v = get(k)
            if v is None or len(v) != VALUE_SIZE:
                raise RuntimeError(f"{e.name}: warm-up get returned {v!r}")
        order = [keys[i] for i in self.rng.sample(range(n), n)]
        lat = [0] * n
        i = 0
        t = clock()
        for k in order:
            t0 = clock()
            get(k)
            lat[i] = clock() - t0
            i += 1
        self.record("get", e.name, timed(n, clock() - t, lat))

        # The draws are made before the clock starts.
        randrange, random_ = self.rng.randrange, self.rng.random
        ops = [(keys[randrange(n)], values[randrange(n)] if random_() < 0.1 else None) for _ in range(n)]
        i = 0
        t = clock()
        for k, v in ops:
            t0 = clock()
            if v is None:
                get(k)
            else:
                put(k, v)
            lat[i] = clock() - t0
            i += 1
        self.record("mixed", e.name, timed(n, clock() - t, lat))
        e.close()
        shutil.rmtree(os.path.join(root, "fill"))

        if e.batches:
            e.open(os.path.join(root, "batch"), False)
            pairs = list(zip(keys, values))
            t = clock()
            for j in range(0, n, BATCH):
                e.put_batch(pairs[j : j + BATCH])
            self.record("fill-batch", e.name, {"ops": n / ((clock() - t) / 1e9)})
            e.close()
            shutil.rmtree(os.path.join(root, "batch"))

    def run_durable(self, engines: list[Engine], root: str) -> None:
        """The durable puts of every engine, interleaved in chunks: fsync
        latency here swings tenfold with the other jobs' disk traffic, and
        engines that take turns every few milliseconds see the same disk."""
        engines = [e for e in engines if e.durable]
        keys, values, d = self.keys, self.values, self.durable
        clock = time.perf_counter_ns
        puts, lat, total = [], [], []
        for e in engines:
            e.open(os.path.join(root, "durable-" + e.name), True)
            puts.append(e.putter())
            lat.append([0] * d)
            total.append(0)
        for j0 in range(0, d, DURABLE_CHUNK):
            for i, put in enumerate(puts):
                lat_i = lat[i]
                t = clock()
                for j in range(j0, min(j0 + DURABLE_CHUNK, d)):
                    t0 = clock()
                    put(keys[j], values[j])
                    lat_i[j] = clock() - t0
                total[i] += clock() - t
        for i, e in enumerate(engines):
            e.close()
            self.record("durable", e.name, timed(d, total[i], lat[i]))


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> str:
    model, mem = platform.machine(), "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        mem = f"{kb / (1 << 20):.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {mem} memory"


def num(x: float) -> str:
    return f"{x:,.0f}"


def markdown(b: Bench, engines: list[Engine], skipped: list[str], runs: int, argv: list[str],
             load0: str, load1: str, took: float) -> str:
    out: list[str] = []
    p = out.append
    # make supplies --out itself.
    shown: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            shown.append(a)
    args = " ".join(shown)
    p("## Python: the `bitcask` package against Python stores\n\n")
    p(f"Command: `make bench-python BENCH_PY_ARGS='{args}'` (runs `python bindings/python/bench/bench.py {args}` "
      "in the `.venv-bench` venv).\n")
    p(f"Machine: {machine()}; Python {platform.python_version()}. Load average (1, 5, 15 min) {load0} at the start, "
      f"{load1} at the end; {took:.0f} s in all.\n\n")
    p("Engines: " + ", ".join(f"{e.name} {e.version}" for e in engines) + ".\n")
    for note in skipped:
        p(f"Skipped: {note}.\n")
    p(f"\nKeys are {KEY_SIZE} random bytes, values {VALUE_SIZE} random (incompressible) bytes, the same for every "
      f"engine. Each figure is the median of {runs} runs, min and max beside it; the engines take turns within every "
      "run (the order rotates from run to run); in the durable workload they take turns every "
      f"{DURABLE_CHUNK} puts, because fsync latency on a shared disk drifts within seconds. \"vs bitcask\" is the engine's median throughput divided by "
      "bitcask's: under 1 is slower. Latencies are medians over the runs of each run's percentile, timed per "
      "operation with `time.perf_counter_ns` (the clock reads are inside the throughput too). Every call goes "
      "through the engine's public Python API; a get returns `bytes`.\n\n")
    p("Durable mode of each engine:\n\n")
    for e in engines:
        p(f"- {e.name}: {e.durable or 'none: it never fsyncs, so it is left out of the durable workload'}\n")
    p("\nThe other workloads run each engine without sync: bitcask `sync=\"never\"`, lmdb `sync=False` (one write "
      f"transaction per put, or per batch of {BATCH}; a read transaction per get), rocksdict default WriteOptions "
      "(WAL written, not synced), plyvel `sync=False`, dbm without its sync flag. dbm has no batches.\n")
    for wid, title, latency in WORKLOADS:
        res = b.results[wid]
        p("\n### " + title.format(keys=len(b.keys), batch=BATCH, durable=b.durable) + "\n\n")
        if latency:
            p("| engine | ops/s | min | max | vs bitcask | p50 µs | p99 µs |\n|---|--:|--:|--:|--:|--:|--:|\n")
        else:
            p("| engine | ops/s | min | max | vs bitcask |\n|---|--:|--:|--:|--:|\n")
        base = statistics.median(s["ops"] for s in res["bitcask"]) if "bitcask" in res else 0.0
        for e in engines:
            ss = res.get(e.name)
            if not ss:
                p(f"| {e.name} | n/a | | | |" + (" | |" if latency else "") + "\n")
                continue
            ops = [s["ops"] for s in ss]
            m = statistics.median(ops)
            ratio = f"{m / base:.2f}×" if base else "n/a"
            row = f"| {e.name} | {num(m)} | {num(min(ops))} | {num(max(ops))} | {ratio} |"
            if latency:
                row += f" {statistics.median(s['p50'] for s in ss):.1f} | {statistics.median(s['p99'] for s in ss):.1f} |"
            p(row + "\n")
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=200_000, help="keys per database")
    ap.add_argument("--runs", type=int, default=3, help="runs of every engine (median, min and max are reported)")
    ap.add_argument("--durable", type=int, default=2000, help="synced puts per run of the durable workload")
    ap.add_argument("--out", help="write the markdown section here (default: stdout)")
    ap.add_argument("--engines", help="comma-separated subset, e.g. bitcask,lmdb")
    ap.add_argument("--dir", help="where the databases go (default: a temporary directory)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks that every engine works")
    args = ap.parse_args()
    if args.smoke:
        args.keys, args.runs, args.durable = 2000, 1, 50

    engines: list[Engine] = []
    skipped: list[str] = []
    for cls in ENGINES:
        try:
            e = cls()
        except ImportError as exc:
            skipped.append(f"{cls.__name__.lower()} ({exc})")
            print(f"bench: skipping {cls.__name__.lower()}: {exc}", file=sys.stderr)
            continue
        if args.engines is None or e.name in args.engines.split(","):
            engines.append(e)
    if not any(e.name == "bitcask" for e in engines):
        print("bench: the bitcask package is not installed", file=sys.stderr)
        return 1

    b = Bench(args.keys, args.durable)
    root = args.dir or tempfile.mkdtemp(prefix="bitcask-bindbench-")
    load0, start = loadavg(), time.monotonic()
    try:
        for r in range(args.runs):
            # Rotating the order spreads drifts in the machine's load (other
            # jobs, page cache, disk) over every engine instead of one.
            for i in range(len(engines)):
                e = engines[(i + r) % len(engines)]
                print(f"run {r + 1}/{args.runs}: {e.name}", file=sys.stderr)
                d = os.path.join(root, f"{r}-{i}")
                try:
                    b.run_engine(e, d)
                finally:
                    shutil.rmtree(d, ignore_errors=True)
            print(f"run {r + 1}/{args.runs}: durable puts, engines interleaved", file=sys.stderr)
            d = os.path.join(root, f"{r}-durable")
            os.makedirs(d)
            try:
                b.run_durable(engines[r % len(engines) :] + engines[: r % len(engines)], d)
            finally:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    md = markdown(b, engines, skipped, args.runs, sys.argv[1:], load0, loadavg(), time.monotonic() - start)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

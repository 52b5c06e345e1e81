"""Events (merges, refused writes, bytes dropped or salvaged at open, slow
syncs) through the standard logging module: the logger ``bitcask``, at the
event's level, with the one-line message and the fields in ``extra``."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bitcask

FIELDS = ("event", "file", "offset", "bytes", "duration", "error")


class Recorder(logging.Handler):
    """Keeps the records of the ``bitcask`` logger; events arrive from the
    database's background thread, so tests wait for them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def of(self, event: str) -> list[logging.LogRecord]:
        with self.cond:
            return [r for r in self.records if getattr(r, "event", None) == event]

    def wait_for(self, event: str, timeout: float = 20.0) -> logging.LogRecord:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [r for r in self.records if getattr(r, "event", None) == event]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [getattr(r, "event", None) for r in self.records]
                    raise AssertionError(f"no {event!r} event within {timeout} s; saw {seen}")
                self.cond.wait(left)


@pytest.fixture
def events() -> Iterator[Recorder]:
    logger = logging.getLogger("bitcask")
    rec = Recorder()
    old_level = logger.level
    logger.addHandler(rec)
    logger.setLevel(logging.INFO)
    try:
        yield rec
    finally:
        logger.removeHandler(rec)
        logger.setLevel(old_level)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: record.__dict__[name] for name in FIELDS}


def last_data_file(path: Path) -> Path:
    return sorted(path.glob("*.data"))[-1]


def test_bytes_dropped_at_open_are_a_warning_with_file_offset_and_bytes(
    path: Path, events: Recorder
) -> None:
    with bitcask.open(path, auto_merge=False) as db:
        for i in range(100):
            db[b"k%03d" % i] = b"v" * 50
    data = last_data_file(path)
    for hint in path.glob(data.stem + ".hint"):
        hint.unlink()
    size = data.stat().st_size
    # Not a record, and ends with bytes that are not zero (trailing zeros would
    # be taken for preallocated space, not dropped data).
    garbage = b"\xde\xad\xbe\xef" * 9
    with data.open("ab") as out:
        out.write(garbage)

    with bitcask.open(path, auto_merge=False) as db:
        r = events.wait_for("dropped_at_open")
        assert len(db) == 100
        assert db.stats().dropped_bytes_at_open == len(garbage)
    assert r.name == "bitcask"
    assert r.levelno == logging.WARNING
    f = fields(r)
    assert f == {
        "event": "dropped_at_open",
        "file": str(data),
        "offset": size,
        "bytes": len(garbage),
        "duration": None,
        "error": None,
    }
    assert isinstance(f["file"], str)
    assert r.getMessage() == f"dropped_at_open file={data} offset={size} bytes={len(garbage)}"
    assert len(events.of("dropped_at_open")) == 1


def test_a_read_only_open_logs_dropped_bytes_before_it_returns(
    path: Path, events: Recorder
) -> None:
    with bitcask.open(path) as db:
        db[b"k"] = b"v"
    data = last_data_file(path)
    with data.open("ab") as out:
        out.write(b"\x01" * 5)
    # Without a background thread, the opening thread delivers the event,
    # taking the GIL back for it while the open runs without it.
    with bitcask.open(path, read_only=True) as db:
        assert [fields(r)["bytes"] for r in events.of("dropped_at_open")] == [5]
        assert db[b"k"] == b"v"


def test_slow_sync_with_threshold_zero_and_sync_always_is_a_warning_with_a_duration(
    path: Path, events: Recorder
) -> None:
    with bitcask.open(path, sync="always", slow_sync_threshold=0) as db:
        db[b"k"] = b"v"
        r = events.wait_for("slow_sync")
    assert r.levelno == logging.WARNING
    f = fields(r)
    assert f["event"] == "slow_sync"
    assert isinstance(f["duration"], float) and 0 <= f["duration"] < 60
    assert isinstance(f["file"], str) and f["file"].endswith(".data")
    assert Path(f["file"]).parent == path
    assert f["offset"] is None and f["bytes"] is None and f["error"] is None
    assert r.getMessage().startswith(f"slow_sync file={f['file']} duration_ms=")


def test_slow_sync_is_not_reported_when_disabled_or_under_the_threshold(
    path: Path, events: Recorder
) -> None:
    # (The default, 1 s, is left out: a loaded machine's disk may take that.)
    for threshold in (None, math.inf, 3600, 1e9):
        with bitcask.open(path, sync="always", slow_sync_threshold=threshold) as db:
            for i in range(20):
                db[b"k%d" % i] = b"v"
    # Every event queued before a close is delivered by it.
    assert events.of("slow_sync") == []


def test_slow_sync_threshold_is_validated(path: Path) -> None:
    with pytest.raises(bitcask.InvalidOptionError) as e:
        bitcask.open(path, slow_sync_threshold=-1.0)
    assert e.value.option == "slow_sync_threshold"
    with pytest.raises(bitcask.InvalidOptionError):
        bitcask.open(path, slow_sync_threshold=math.nan)
    with pytest.raises(bitcask.InvalidOptionError):
        bitcask.open(path, slow_sync_threshold=-math.inf)
    with pytest.raises(TypeError):
        bitcask.open(path, slow_sync_threshold="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bitcask.open(path, slow_sync_threshold=True)
    assert not path.exists()


def test_a_completed_merge_is_info_with_the_bytes_reclaimed(
    path: Path, events: Recorder
) -> None:
    with bitcask.open(path, max_file_size=16 << 10, auto_merge=False) as db:
        for r in range(3):
            for i in range(300):
                db[b"k%04d" % i] = b"r%d-" % r + b"x" * 100
        m = db.merge()
        rec = events.wait_for("merge_completed")
    assert rec.levelno == logging.INFO
    f = fields(rec)
    assert f["event"] == "merge_completed"
    assert f["bytes"] == m.bytes_reclaimed > 0
    assert isinstance(f["duration"], float)
    assert math.isclose(f["duration"], m.duration, rel_tol=1e-6, abs_tol=1e-6)
    assert f["file"] is None and f["offset"] is None and f["error"] is None
    assert rec.getMessage().startswith(f"merge_completed bytes={m.bytes_reclaimed} duration_ms=")


def test_a_failed_merge_is_a_warning_with_the_error_instance(
    path: Path, events: Recorder
) -> None:
    def value(i: int) -> bytes:
        return b"value of mf:%02d, padded to make the record longer" % i

    # As test_merge's failure: damage in a sealed file that its hint hides
    # from the open, found by the merge.
    with bitcask.open(path, max_file_size=1024, auto_merge=False) as db:
        for i in range(60):
            db[b"mf:%02d" % i] = value(i)
    hint = path / "0000000001.hint"
    for _ in range(50):
        if hint.exists():
            break
        bitcask.open(path, auto_merge=False).close()
    assert hint.exists()
    data = path / "0000000001.data"
    raw = bytearray(data.read_bytes())
    raw[raw.index(value(0)) + len(value(0)) // 2] ^= 0x20
    data.write_bytes(bytes(raw))

    with bitcask.open(path, max_file_size=1024, auto_merge=False) as db:
        for i in range(1, 6):
            db[b"mf:%02d" % i] = b"new"
        with pytest.raises(bitcask.CorruptionError) as raised:
            db.merge()
        rec = events.wait_for("merge_failed")
    assert rec.levelno == logging.WARNING
    f = fields(rec)
    err = f["error"]
    # An instance of the class the call raised, with its attributes; not raised.
    assert isinstance(err, bitcask.CorruptionError)
    assert err is not raised.value and str(err) == str(raised.value)
    assert err.file == data
    assert f["file"] == str(data)
    assert f["offset"] is None and f["bytes"] is None and f["duration"] is None
    assert rec.getMessage() == f'merge_failed file={data} error="{err}"'
    assert rec.exc_info is None


def test_events_below_the_loggers_level_are_not_built(
    path: Path, events: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("bitcask")
    logger.setLevel(logging.WARNING)
    logged: list[int] = []
    real_log = logger.log

    def spy(level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        logged.append(level)
        real_log(level, msg, *args, **kwargs)

    # The binding asks isEnabledFor first: a merge (INFO) never reaches log().
    monkeypatch.setattr(logger, "log", spy)
    with bitcask.open(
        path, max_file_size=16 << 10, auto_merge=False, sync="always", slow_sync_threshold=0
    ) as db:
        for r in range(3):
            with db.write_batch() as b:
                for i in range(300):
                    b.put(b"k%04d" % i, b"r%d-" % r + b"x" * 100)
        db.merge()
        db[b"last"] = b"v"
        events.wait_for("slow_sync")
    assert events.of("merge_completed") == []
    assert logged and set(logged) == {logging.WARNING}


def test_extra_field_names_do_not_collide_with_log_record_attributes() -> None:
    # makeRecord refuses an extra that would overwrite one of these.
    record = logging.LogRecord("bitcask", logging.INFO, __file__, 1, "m", None, None)
    reserved = set(record.__dict__) | {"message", "asctime"}
    assert not reserved & set(FIELDS)


def test_a_raising_logging_setup_is_reported_and_the_database_goes_on(
    path: Path, events: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("bitcask")
    raised: list[str] = []

    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if not raised:
                raised.append(record.getMessage())
                raise RuntimeError("filter broke")
            return True

    broken = Broken()
    logger.addFilter(broken)
    try:
        with bitcask.open(path, sync="always", slow_sync_threshold=0) as db:
            db[b"a"] = b"1"
            # The background thread survived the exception: later events
            # arrive, and the database works.
            db[b"b"] = b"2"
            events.wait_for("slow_sync")
            assert db[b"a"] == b"1"
    finally:
        logger.removeFilter(broken)
    assert raised
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert "RuntimeError: filter broke" in err
    assert "bitcask event: slow_sync" in err


def test_a_raising_logging_setup_is_silent_without_raise_exceptions(
    path: Path,
    events: Recorder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger = logging.getLogger("bitcask")

    def broken(record: logging.LogRecord) -> bool:
        raise RuntimeError("filter broke")

    logger.addFilter(broken)
    try:
        with bitcask.open(path, sync="always", slow_sync_threshold=0) as db:
            db[b"a"] = b"1"
            db.sync()
    finally:
        logger.removeFilter(broken)
    assert "filter broke" not in capsys.readouterr().err


# The handle goes without close() while the background thread is logging
# events: its dealloc closes the database, joining that thread, which needs the
# GIL for each event it delivers. `how` says how the last reference goes.
DROP_SCRIPT = textwrap.dedent(
    """
    import gc, logging, sys, threading, time
    import bitcask

    path, how = sys.argv[1], sys.argv[2]
    delivered = []

    class Slow(logging.Handler):
        def emit(self, record):
            time.sleep(0.0005)   # delivery lags behind the writes
            delivered.append(record.__dict__["event"])

    logger = logging.getLogger("bitcask")
    logger.addHandler(Slow())
    logger.setLevel(logging.INFO)
    logger.propagate = False

    db = bitcask.open(path, sync="always", slow_sync_threshold=0)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            db[b"w%d" % i] = b"x" * 100
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    while len(delivered) < 20:
        time.sleep(0.001)
    if how == "cycle":
        holder = {"db": db}
        holder["self"] = holder
    stop.set()
    t.join()
    for i in range(500):
        db[b"k%d" % i] = b"v"
    queued_before_drop = len(delivered)
    del db
    if how == "cycle":
        del holder
        assert gc.collect() > 0
    # Closed: the directory lock is free, and every queued event was delivered.
    n = len(delivered)
    with bitcask.open(path) as again:
        assert len(again) >= 500
    print("ok", queued_before_drop, n)
    """
)


@pytest.mark.parametrize("how", ["refcount", "cycle"])
def test_dropping_an_open_handle_while_events_are_logged_does_not_hang(
    tmp_path: Path, how: str
) -> None:
    script = tmp_path / "drop.py"
    script.write_text(DROP_SCRIPT)
    try:
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "db"), how],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("dropping the handle hung: dealloc joined the background thread with the GIL")
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[0] == "ok", out.stdout
    before, after = int(words[1]), int(words[2])
    # Every write made a slow_sync event (sync="always", threshold 0): the
    # drop delivered those still queued before the handle went.
    assert before <= after and after >= 520, out.stdout


def test_closing_while_events_are_logged_from_another_thread_does_not_hang(
    path: Path, events: Recorder
) -> None:
    gate = threading.Event()

    class Slow(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            gate.wait(5)

    slow = Slow()
    logger = logging.getLogger("bitcask")
    logger.addHandler(slow)
    try:
        db = bitcask.open(path, sync="always", slow_sync_threshold=0)
        for i in range(50):
            db[b"k%d" % i] = b"v"
        closer = threading.Thread(target=db.close)
        closer.start()
        time.sleep(0.05)
        gate.set()
        closer.join(30)
        assert not closer.is_alive()
        assert db.closed
    finally:
        logger.removeHandler(slow)
    assert len(events.of("slow_sync")) >= 50


# A handle left open at exit: finalization collects it, and its close joins the
# background thread. A thread that asks for the GIL once finalization has begun
# never gets it, so the background thread must not be caught asking then:
# here its periodic sync reports a slow sync while the main thread, in its last
# exit hook (registered first, so run last), keeps the GIL up to finalization.
EXIT_SCRIPT = textwrap.dedent(
    """
    import atexit, ctypes
    # A C call through PyDLL keeps the GIL: 2 s of it, just before finalizing.
    atexit.register(ctypes.PyDLL(None).sleep, 2)
    import logging, sys, time
    import bitcask

    logger = logging.getLogger("bitcask")
    logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    db = bitcask.open(sys.argv[1], sync=1000, slow_sync_threshold=0, auto_merge=False)
    db[b"a"] = b"1"
    time.sleep(1.2)   # that write's background sync is made, and logged
    db[b"b"] = b"2"   # this one's comes during the hold
    print("exiting")
    """
)


def test_exiting_with_a_handle_open_while_an_event_is_due_does_not_hang(
    tmp_path: Path,
) -> None:
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    db = tmp_path / "db"
    try:
        out = subprocess.run(
            [sys.executable, str(script), str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the exit hung: finalization closed the database while its listener waited")
    assert out.returncode == 0 and out.stdout == "exiting\n", out.stderr
    with bitcask.open(db) as again:
        assert dict(again.items()) == {b"a": b"1", b"b": b"2"}


# A fork while the parent's background thread is logging: the child has no
# such thread, and its exit must not wait for that listener.
FORK_SCRIPT = textwrap.dedent(
    """
    import ctypes, logging, os, sys, threading, time
    import bitcask

    inside, release = threading.Event(), threading.Event()

    class Held(logging.Handler):
        def emit(self, record):
            inside.set()
            release.wait(60)

    logger = logging.getLogger("bitcask")
    logger.addHandler(Held())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    db = bitcask.open(sys.argv[1], sync="always", slow_sync_threshold=0)
    db[b"a"] = b"1"
    inside.wait(60)   # a listener is in flight
    pid = os.fork()
    if pid == 0:
        # The inherited handle must not be closed here (its threads are the
        # parent's): kept alive for ever, it is never collected.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))
        sys.exit(0)   # through the exit hooks
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = "hung"
    release.set()
    db.close()
    print("child", status)
    """
)


def test_a_fork_child_exits_while_the_parent_is_logging_an_event(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(FORK_SCRIPT)
    out = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script), str(tmp_path / "db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "child 0\n", out.stdout

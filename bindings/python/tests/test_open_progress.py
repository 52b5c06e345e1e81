"""open(progress=...): a callable told how far an open has got, per data file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import bitcask


def make_many_files(path: Path) -> dict[bytes, bytes]:
    """A closed database of many data files; returns its contents."""
    model: dict[bytes, bytes] = {}
    # Small files so that a few hundred KiB make dozens of them, enough for the
    # open to load several at once on a machine with several cores.
    with bitcask.open(path, max_file_size=16 << 10, auto_merge=False) as db:
        for i in range(2000):
            k, v = b"k%05d" % i, b"v%05d-" % i + b"x" * 100
            db[k] = v
            model[k] = v
    return model


def data_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.data"))


class Recorder:
    """A progress callable that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[bitcask.OpenProgress] = []

    def __call__(self, p: bitcask.OpenProgress) -> None:
        self.calls.append(p)


class Abort(Exception):
    pass


def test_reopen_reports_every_data_file_in_order(path: Path) -> None:
    model = make_many_files(path)
    files = data_files(path)
    n = len(files)
    assert n > 10
    total = sum(f.stat().st_size for f in files)

    rec = Recorder()
    with bitcask.open(path, auto_merge=False, progress=rec) as db:
        assert [p.files_done for p in rec.calls] == list(range(1, n + 1))
        assert all(p.files_total == n for p in rec.calls)
        done = [p.bytes_done for p in rec.calls]
        assert all(a < b for a, b in zip(done, done[1:])), done
        assert all(p.bytes_total == total for p in rec.calls)
        assert done[-1] == total
        assert dict(db.items()) == model
        assert len(db) == len(model)


def test_read_only_open_reports_progress_too(path: Path) -> None:
    model = make_many_files(path)
    n = len(data_files(path))
    rec = Recorder()
    with bitcask.open(path, read_only=True, progress=rec) as db:
        assert len(rec.calls) == n
        assert rec.calls[-1].files_done == rec.calls[-1].files_total == n
        assert db[b"k01999"] == model[b"k01999"]


def test_new_database_has_no_files_to_report(path: Path) -> None:
    rec = Recorder()
    with bitcask.open(path, progress=rec) as db:
        db[b"a"] = b"1"
    assert rec.calls == []


def test_progress_none_is_no_callback(path: Path) -> None:
    make_many_files(path)
    with bitcask.open(path, progress=None) as db:
        assert db[b"k00000"].startswith(b"v00000-")


def test_progress_is_a_frozen_record(path: Path) -> None:
    with bitcask.open(path, max_file_size=1024) as db:
        for i in range(40):
            db[b"%02d" % i] = b"x" * 100
    rec = Recorder()
    bitcask.open(path, progress=rec).close()
    last = rec.calls[-1]
    assert isinstance(last, bitcask.OpenProgress)
    assert repr(last) == (
        f"OpenProgress(files_done={last.files_done}, files_total={last.files_total}, "
        f"bytes_done={last.bytes_done}, bytes_total={last.bytes_total})"
    )
    with pytest.raises(AttributeError):
        last.files_done = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        last.extra = 1  # type: ignore[attr-defined]
    assert last == rec.calls[-1] and last != rec.calls[0]
    assert hash(last) == hash(rec.calls[-1])
    assert type(last).__module__ == "bitcask"
    assert "OpenProgress" in bitcask.__all__


@pytest.mark.parametrize("raise_on_call", [1, 3])
def test_callback_that_raises_aborts_open_and_releases_lock(path: Path, raise_on_call: int) -> None:
    model = make_many_files(path)
    n = len(data_files(path))
    calls: list[bitcask.OpenProgress] = []
    abort = Abort("enough")

    def progress(p: bitcask.OpenProgress) -> None:
        calls.append(p)
        if len(calls) == raise_on_call:
            raise abort

    with pytest.raises(Abort) as e:
        bitcask.open(path, progress=progress)
    assert e.value is abort
    # The first exception ends the reporting: later files load unreported.
    assert len(calls) == raise_on_call < n

    # Closed again, so the writer lock is free; and nothing was lost.
    with bitcask.open(path) as db:
        assert dict(db.items()) == model


def test_keyboard_interrupt_in_callback_aborts_open(path: Path) -> None:
    make_many_files(path)

    def progress(p: bitcask.OpenProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bitcask.open(path, progress=progress)
    bitcask.open(path).close()


def test_callback_raising_on_the_last_file_still_aborts(path: Path) -> None:
    make_many_files(path)

    def progress(p: bitcask.OpenProgress) -> None:
        if p.files_done == p.files_total:
            raise Abort("at the end")

    with pytest.raises(Abort, match="at the end"):
        bitcask.open(path, progress=progress)
    bitcask.open(path).close()


@pytest.mark.parametrize("bad", [42, "report", b"x", [print]])
def test_non_callable_progress_is_type_error(path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match="progress"):
        bitcask.open(path, progress=bad)  # type: ignore[arg-type]
    # Refused before the open: the directory was not even created.
    assert not path.exists()


def test_open_from_another_thread_with_progress(path: Path) -> None:
    model = make_many_files(path)
    n = len(data_files(path))
    rec = Recorder()
    got: dict[bytes, bytes] = {}
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            with bitcask.open(path, progress=rec) as db:
                got.update(db.items())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=opener)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    assert errors == []
    assert [p.files_done for p in rec.calls] == list(range(1, n + 1))
    assert got == model


def test_callback_runs_python_freely(path: Path) -> None:
    """Whichever thread the engine calls from, the callable may use the
    interpreter as any code does: threads, locks, other objects."""
    make_many_files(path)
    n = len(data_files(path))
    lock = threading.Lock()
    seen: list[str] = []

    def progress(p: bitcask.OpenProgress) -> None:
        with lock:
            seen.append(threading.current_thread().name)
        helper = threading.Thread(target=lambda: None)
        helper.start()
        helper.join()

    with bitcask.open(path, progress=progress):
        pass
    assert len(seen) == n

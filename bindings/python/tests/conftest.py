from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bitcask


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def db(path: Path) -> Iterator[bitcask.Bitcask]:
    with bitcask.open(path) as d:
        yield d


#: The type of the ``close_while_reading`` fixture: ``(db, read) -> None``.
CloseWhileReading = Callable[[bitcask.Bitcask, Callable[[], object]], None]


@pytest.fixture
def close_while_reading() -> CloseWhileReading:
    """A function that calls ``read`` over and over on another thread, closes
    ``db`` once a call has returned, and checks that the thread then ends,
    by ClosedError."""

    def run(db: bitcask.Bitcask, read: Callable[[], object]) -> None:
        outcomes: list[str] = []
        started = threading.Event()

        def loop() -> None:
            try:
                while True:
                    read()
                    started.set()
            except bitcask.ClosedError:
                outcomes.append("closed")

        t = threading.Thread(target=loop)
        t.start()
        assert started.wait(10)
        db.close()
        t.join(10)
        assert not t.is_alive()
        assert outcomes == ["closed"]

    return run

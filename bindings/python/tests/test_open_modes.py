"""Open modes: create_if_missing=False refuses a path that holds no database
(DatabaseNotFoundError, a FileNotFoundError) and creates nothing;
error_if_exists=True refuses one that does (DatabaseExistsError, a
FileExistsError) and leaves it untouched."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import bitcask


def make_db(path: Path) -> None:
    with bitcask.open(path) as db:
        db[b"k"] = b"v"


def test_a_missing_path_without_create_if_missing_raises_not_found_and_creates_nothing(
    path: Path,
) -> None:
    with pytest.raises(bitcask.DatabaseNotFoundError) as e:
        bitcask.open(path, create_if_missing=False)
    assert e.value.path == path
    assert not path.exists()


def test_an_empty_directory_without_create_if_missing_raises_not_found_and_stays_empty(
    path: Path,
) -> None:
    path.mkdir()
    with pytest.raises(bitcask.DatabaseNotFoundError):
        bitcask.open(path, create_if_missing=False)
    assert list(path.iterdir()) == []


def test_an_existing_database_opens_without_create_if_missing(path: Path) -> None:
    make_db(path)
    with bitcask.open(path, create_if_missing=False) as db:
        assert db[b"k"] == b"v"
        db[b"k2"] = b"v2"
    with bitcask.open(path, create_if_missing=False, read_only=True) as db:
        assert dict(db.items()) == {b"k": b"v", b"k2": b"v2"}


def test_error_if_exists_on_an_existing_database_raises_exists_and_leaves_it_intact(
    path: Path,
) -> None:
    make_db(path)
    before = sorted((p.name, p.stat().st_size) for p in path.iterdir())
    with pytest.raises(bitcask.DatabaseExistsError) as e:
        bitcask.open(path, error_if_exists=True)
    assert e.value.path == path
    assert sorted((p.name, p.stat().st_size) for p in path.iterdir()) == before
    # The failed open released whatever it took: a plain open works and reads.
    with bitcask.open(path) as db:
        assert dict(db.items()) == {b"k": b"v"}


def test_error_if_exists_on_a_fresh_path_creates_the_database(path: Path) -> None:
    with bitcask.open(path, error_if_exists=True) as db:
        db[b"k"] = b"v"
    assert path.is_dir()
    with bitcask.open(path, create_if_missing=False) as db:
        assert db[b"k"] == b"v"


def test_the_exceptions_are_file_not_found_and_file_exists_errors(path: Path) -> None:
    assert issubclass(bitcask.DatabaseNotFoundError, bitcask.Error)
    assert issubclass(bitcask.DatabaseNotFoundError, FileNotFoundError)
    assert issubclass(bitcask.DatabaseExistsError, bitcask.Error)
    assert issubclass(bitcask.DatabaseExistsError, FileExistsError)

    with pytest.raises(FileNotFoundError) as nf:
        bitcask.open(path, create_if_missing=False)
    assert isinstance(nf.value, bitcask.DatabaseNotFoundError)
    assert nf.value.errno == errno.ENOENT
    assert nf.value.filename == path

    make_db(path)
    with pytest.raises(FileExistsError) as ex:
        bitcask.open(path, error_if_exists=True)
    assert isinstance(ex.value, bitcask.DatabaseExistsError)
    assert ex.value.errno == errno.EEXIST
    assert ex.value.filename == path


@pytest.mark.parametrize("option", ["create_if_missing", "error_if_exists"])
def test_open_mode_options_take_a_bool(path: Path, option: str) -> None:
    for bad in (1, "no"):
        with pytest.raises(TypeError, match=f"option {option} must be a bool"):
            bitcask.open(path, **{option: bad})  # type: ignore[arg-type]
    assert not path.exists()

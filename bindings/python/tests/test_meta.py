"""Packaging facts: the version follows the engine's, typing files ship."""

from __future__ import annotations

import re
from pathlib import Path

import bitcask

ROOT = Path(__file__).resolve().parents[3]


def cargo_version(toml: Path) -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', toml.read_text(), re.M)
    assert m, toml
    return m.group(1)


def test_version_matches_the_engine() -> None:
    assert bitcask.__version__ == cargo_version(ROOT / "Cargo.toml")
    assert bitcask.__version__ == cargo_version(ROOT / "bindings/python/Cargo.toml")


def test_typing_files_are_installed() -> None:
    pkg = Path(bitcask.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_bitcask.pyi").exists()

# One entry point for every check. `make test` is what CI runs (via .ci/run).
CARGO ?= cargo
PREFIX ?= /usr/local
PYTHON ?= python3
VENV := .venv
PYBIND := bindings/python

.PHONY: all build demo test check-fmt clippy rust-test fmt clean python-test python-install

all: build

build:
	$(CARGO) build --release

demo:
	$(CARGO) run --release --example demo

test: check-fmt clippy rust-test python-test
	@echo "make test: all checks passed"

check-fmt:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path $(PYBIND)/Cargo.toml -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path $(PYBIND)/Cargo.toml -- -D warnings

rust-test:
	$(CARGO) test --release

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path $(PYBIND)/Cargo.toml

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path $(PYBIND)/Cargo.toml
	rm -rf $(VENV)
	rm -rf demo-db

# Python package (bindings/python): a venv under .venv, reused between runs; the
# package is rebuilt only when the engine or the bindings changed.
$(VENV)/.tools:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q pytest hypothesis mypy
	touch $@

PY_SOURCES := Cargo.toml $(wildcard src/*.rs) $(PYBIND)/Cargo.toml $(PYBIND)/pyproject.toml \
	$(wildcard $(PYBIND)/src/*.rs) $(wildcard $(PYBIND)/python/bitcask/*)

$(VENV)/.installed: $(VENV)/.tools $(PY_SOURCES)
	$(VENV)/bin/python -m pip install -q ./$(PYBIND)
	touch $@

python-install: $(VENV)/.installed

python-test: python-install
	$(VENV)/bin/python -m pytest -q $(PYBIND)/tests
	# Typed programs against the installed package (its stubs and py.typed)...
	$(VENV)/bin/python -m mypy --strict examples/hello.py $(PYBIND)/tests/typed_usage.py
	# ...then the package's own source and the tests.
	$(VENV)/bin/python -m mypy --strict $(PYBIND)/python/bitcask $(PYBIND)/tests

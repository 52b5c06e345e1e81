# Release artifact and its consumer test: python. Targets dist-python, dist-test-python.
#
# dist-python puts two files in dist/:
#   bitcask-$(VERSION)-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#     one wheel for every CPython >= 3.9 (abi3) on any x86_64 Linux with glibc >= 2.17.
#     This machine's glibc is newer, so the extension is linked by zig (the `ziglang`
#     package) against glibc 2.17's symbol versions; maturin's auditwheel check
#     fails the build if anything newer slips in.
#   bitcask-$(VERSION).tar.gz
#     the sdist: the bindings and, by path, the engine crate; needs Rust to install.
# Every tool comes from PyPI at a pinned version, in a venv under target/: only
# the Rust toolchain and python3 need to be on the machine.
#
# dist-test-python installs the wheel into a fresh venv with no cargo or rustc on
# PATH, then runs bindings/python/tests and mypy against it from outside the
# source tree; it also runs dist-test-sdist (~25 s on 2 cores, a full compile),
# which builds the sdist with pip in another fresh venv, Rust on PATH, and uses it.

MATURIN_VERSION := 1.16.0
ZIGLANG_VERSION := 0.17.0
AUDITWHEEL_VERSION := 6.8.2

DIST_PY_WORK := $(CURDIR)/target/dist-python
DIST_PY_TOOLS := $(DIST_PY_WORK)/tools
DIST_PY_STAMP := $(DIST_PY_TOOLS)/.maturin-$(MATURIN_VERSION)-ziglang-$(ZIGLANG_VERSION)-auditwheel-$(AUDITWHEEL_VERSION)
DIST_PY_TAG := manylinux_2_17_x86_64
DIST_PY_WHEEL := $(DIST)/bitcask-$(VERSION)-cp39-abi3-manylinux2014_x86_64.$(DIST_PY_TAG).whl
DIST_PY_SDIST := $(DIST)/bitcask-$(VERSION).tar.gz
# Interpreters the wheel is tested with, e.g. DIST_PYTHONS="python3.9 python3.13".
DIST_PYTHONS ?= $(PYTHON)
# What the sdist must carry to build: the engine crate as well as the bindings.
DIST_PY_SDIST_FILES := pyproject.toml Cargo.toml src/lib.rs bindings/python/Cargo.toml \
	bindings/python/Cargo.lock bindings/python/src/lib.rs python/bitcask/__init__.py \
	python/bitcask/_bitcask.pyi python/bitcask/py.typed

.PHONY: dist-test-sdist

$(DIST_PY_STAMP):
	rm -rf $(DIST_PY_TOOLS)
	$(PYTHON) -m venv $(DIST_PY_TOOLS)
	$(DIST_PY_TOOLS)/bin/python -m pip install -q --only-binary :all: \
		maturin==$(MATURIN_VERSION) ziglang==$(ZIGLANG_VERSION) auditwheel==$(AUDITWHEEL_VERSION)
	touch $@

# Cargo builds in a target directory of its own, so that this build and the one
# of `make python-test` (another linker) do not undo each other's. maturin finds
# zig as `python3 -m ziglang`, hence the tools venv first on PATH.
dist-python: $(DIST_PY_STAMP)
	@mkdir -p $(DIST)
	rm -f $(DIST)/bitcask-*-abi3-*.whl $(DIST_PY_SDIST)
	cd $(PYBIND) && PATH=$(DIST_PY_TOOLS)/bin:$$PATH maturin build --release --locked \
		--zig --compatibility manylinux_2_17 --auditwheel check \
		--target-dir $(DIST_PY_WORK)/cargo --out $(DIST)
	cd $(PYBIND) && PATH=$(DIST_PY_TOOLS)/bin:$$PATH maturin sdist --out $(DIST)
	@test -f $(DIST_PY_WHEEL) || { echo "dist-python: expected $(DIST_PY_WHEEL), got:"; ls $(DIST); exit 1; }
	@tar tzf $(DIST_PY_SDIST) > $(DIST_PY_WORK)/sdist.list
	@for f in $(DIST_PY_SDIST_FILES); do grep -qxF "bitcask-$(VERSION)/$$f" $(DIST_PY_WORK)/sdist.list || \
		{ echo "dist-python: $(DIST_PY_SDIST) lacks bitcask-$(VERSION)/$$f"; exit 1; }; done
	@echo "dist-python: $(notdir $(DIST_PY_WHEEL)) $(notdir $(DIST_PY_SDIST))"

# The consumer: no Rust on PATH (the directories holding cargo, rustc and rustup
# are taken out of it), binary packages only, and a working directory outside
# the source tree. The same process checks that `bitcask` is the installed one,
# then runs pytest, so the tests cannot import the source tree's package.
dist-test-python: dist-python dist-test-sdist
	@tw=$$($(DIST_PY_TOOLS)/bin/auditwheel show $(DIST_PY_WHEEL) | tr -s ' \n' '  '); \
	echo "$$tw" | grep -qF 'consistent with the following platform tag: "$(DIST_PY_TAG)"' || \
		{ echo "dist-test-python: auditwheel disagrees with the tag $(DIST_PY_TAG): $$tw"; exit 1; }; \
	echo "dist-test-python: auditwheel: the wheel is $(DIST_PY_TAG)"
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	rustdirs=$$(for t in cargo rustc rustup; do p=$$(command -v $$t) && dirname "$$p"; done | sort -u); \
	norust=$$($(CURDIR)/packaging/path-without-rust); \
	n=0; for py in $(DIST_PYTHONS); do n=$$((n+1)); venv=$$tmp/venv$$n; \
		$$py -m venv $$venv; \
		( export PATH="$$norust"; cd $$tmp; \
		  if command -v cargo || command -v rustc; then echo "dist-test-python: Rust still on PATH"; exit 1; fi; \
		  echo "dist-test-python: no cargo or rustc on PATH (left out: $$(echo $$rustdirs))"; \
		  $$venv/bin/python -m pip install -q --disable-pip-version-check --only-binary :all: \
			$(DIST_PY_WHEEL) pytest hypothesis mypy; \
		  $$venv/bin/python -c 'import sys, sysconfig, pathlib, bitcask, pytest; \
			site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve(); \
			f = pathlib.Path(bitcask.__file__).resolve(); \
			assert site in f.parents, f"bitcask imported from {f}, not from {site}"; \
			print(f"dist-test-python: {sys.executable} ({sys.version.split()[0]}), bitcask from {f}"); \
			sys.exit(pytest.main(sys.argv[1:]))' \
			-q -p no:cacheprovider $(CURDIR)/$(PYBIND)/tests; \
		  $$venv/bin/python -m mypy --strict --cache-dir $$tmp/mypy-cache \
			$(CURDIR)/examples/hello.py $(CURDIR)/$(PYBIND)/tests/typed_usage.py ); \
	done

# The sdist as pip builds it for a user with Rust: a fresh venv, build isolation
# (pip fetches maturin), nothing from the source tree but the tarball. pip never
# takes a wheel it built from a local file out of its cache: this always compiles.
dist-test-sdist: dist-python
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	command -v cargo >/dev/null || { echo "dist-test-sdist: needs cargo on PATH"; exit 1; }; \
	$(PYTHON) -m venv $$tmp/venv; \
	cd $$tmp && $$tmp/venv/bin/python -m pip install -q --disable-pip-version-check $(DIST_PY_SDIST); \
	$$tmp/venv/bin/python -c 'import sys, sysconfig, pathlib, bitcask; \
		site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve(); \
		f = pathlib.Path(bitcask.__file__).resolve(); assert site in f.parents, f; \
		db = bitcask.open(sys.argv[1]); db[b"k"] = b"v"; assert db[b"k"] == b"v"; db.close(); \
		print(f"dist-test-sdist: bitcask {bitcask.__version__} built from the sdist, at {f}")' $$tmp/db; \
	echo "dist-test-sdist: 1 passed, 0 failed"

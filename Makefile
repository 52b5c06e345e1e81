# One entry point for every check. `make test` is what CI runs (via .ci/run).
CARGO ?= cargo
CC ?= cc
CXX ?= g++
PREFIX ?= /usr/local
DESTDIR ?=

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
LIBDIR := target/release
# Where the C programs are built; lib/ holds the SONAME link the loader looks for.
CBUILD := target/c
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -g -Iinclude
CXXFLAGS_TEST := -std=c++11 -Wall -Wextra -Werror -g -Iinclude
LINK_SHARED := -L$(LIBDIR) -lbitcask -Wl,-rpath,$(CURDIR)/$(CBUILD)/lib -lpthread
LINK_STATIC := $(LIBDIR)/libbitcask.a -lpthread -ldl -lm
VALGRIND := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect

# cbindgen is pinned: another version may format the header differently, which
# would fail check-header for no reason. One on PATH is used only if it matches.
CBINDGEN_VERSION := 0.29.4
CBINDGEN_LOCAL := $(CURDIR)/target/tools/bin/cbindgen
CBINDGEN := $(shell [ "$$(cbindgen --version 2>/dev/null)" = "cbindgen $(CBINDGEN_VERSION)" ] && command -v cbindgen || echo $(CBINDGEN_LOCAL))

.PHONY: soak fuzz fuzz-smoke fuzz-run
.PHONY: all build demo test check-fmt clippy rust-test fmt clean header check-header \
	c-test cpp-test c-valgrind example install install-test c-tools bench bench-smoke bench-clippy bench-snapshots \
	raft-test go-raftstore-test bench-raftstore
PYTHON ?= python3
VENV := .venv
PYBIND := bindings/python

.PHONY: python-test python-install

all: build

build:
	$(CARGO) build --release

demo:
	$(CARGO) run --release --example demo

test: check-fmt clippy rust-test fuzz-smoke check-header c-test cpp-test c-valgrind install-test example \
	python-test go-test raft-test bench-smoke bench-bindings-smoke dist-test
	@echo "make test: all checks passed"

check-fmt:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path $(PYBIND)/Cargo.toml -- --check

clippy:
	$(CARGO) clippy --all-targets --features fault-injection -- -D warnings
	$(CARGO) clippy --manifest-path $(PYBIND)/Cargo.toml -- -D warnings

# fault-injection builds the in-memory, failing file layer for tests/faults.rs.
rust-test:
	$(CARGO) test --release --features fault-injection

# Replication stores over libbitcask (issue 21): the openraft crate (openraft's
# own storage suite, a SIGKILL crash test, a cluster in one process).
raft-test:
	$(CARGO) clippy -p bitcask-openraft --all-targets -- -D warnings
	$(CARGO) test -p bitcask-openraft
	$(MAKE) go-raftstore-test

# The hashicorp/raft LogStore + StableStore (bindings/go/raftstore, its own
# module): store contracts, a SIGKILL crash test, a 3-node cluster on loopback,
# and one pass of its benchmarks (`make bench-raftstore` for the figures).
go-raftstore-test: build
	@cd $(GOBIND)/raftstore && test -z "$$(gofmt -l .)" || { gofmt -l $(GOBIND)/raftstore; exit 1; }
	cd $(GOBIND)/raftstore && $(GO) mod tidy -diff
	cd $(GOBIND)/raftstore && $(GO) vet ./...
	cd $(GOBIND)/raftstore && $(GO) test -race ./...
	cd $(GOBIND)/raftstore && GODEBUG=cgocheck=1 GOEXPERIMENT=cgocheck2 $(GO) test ./...
	cd $(GOBIND)/raftstore && $(GO) test -run '^$$' -bench . -benchtime 1x ./...

# The figures in docs/benchmarks-bindings.md, "Raft log stores": 5 rounds, both
# stores in each, on the disk of /var/tmp (not tmpfs).
bench-raftstore: build
	cd $(GOBIND)/raftstore && for i in 1 2 3 4 5; do TMPDIR=/var/tmp $(GO) test -run '^$$' -bench . -benchtime 2s ./...; done

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path $(PYBIND)/Cargo.toml

# The long reliability run: 1000 kill -9s per crash scenario, 50 workloads per
# fault scenario, 1000 runs per power-loss pattern and sync policy (make test
# runs 50, 10 and 180).
SOAK_ITERATIONS ?= 1000
SOAK_FAULT_SEEDS ?= 50
SOAK_POWER_LOSS_RUNS ?= 1000
soak:
	BITCASK_CRASH_ITERATIONS=$(SOAK_ITERATIONS) $(CARGO) test --release --features fault-injection --test crash -- --nocapture
	BITCASK_FAULT_SEEDS=$(SOAK_FAULT_SEEDS) $(CARGO) test --release --features fault-injection --test faults -- --nocapture
	BITCASK_POWER_LOSS_RUNS=$(SOAK_POWER_LOSS_RUNS) $(CARGO) test --release --features fault-injection --test power_loss -- --nocapture

# Fuzzing: cargo-fuzz (libFuzzer, AddressSanitizer) on the stable toolchain,
# which RUSTC_BOOTSTRAP lets take the nightly flags it passes (-Zsanitizer).
# Each target starts from fuzz/seeds/<target> and fuzz/regressions/<target> and
# keeps its growing corpus in target/fuzz-corpus; a crash is written to
# fuzz/artifacts/<target>: copy it to fuzz/regressions/<target> so that
# tests/hostile.rs replays it from then on. `make fuzz` runs FUZZ_SECONDS per
# target; `make test` runs FUZZ_SMOKE_SECONDS.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(CURDIR)/target/tools/bin/cargo-fuzz
FUZZ_TARGETS := record_decode hint_decode open_dir ops_model
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(CURDIR)/target/tools

fuzz-run: $(CARGO_FUZZ)
	@set -e; cd fuzz; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t ($(SECONDS_PER_TARGET)s)"; mkdir -p ../target/fuzz-corpus/$$t seeds/$$t regressions/$$t; \
		RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) run --release $$t ../target/fuzz-corpus/$$t seeds/$$t regressions/$$t -- \
			-max_total_time=$(SECONDS_PER_TARGET) -malloc_limit_mb=512 -timeout=10 2>&1 | \
			grep -E '^(Done|==|SUMMARY|thread)' || true; \
		test -z "$$(ls artifacts/$$t 2>/dev/null)" || { echo "fuzz: $$t found a crash in fuzz/artifacts/$$t"; exit 1; }; \
	done

fuzz:
	$(MAKE) --no-print-directory fuzz-run SECONDS_PER_TARGET=$(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) --no-print-directory fuzz-run SECONDS_PER_TARGET=$(FUZZ_SMOKE_SECONDS)

# Benchmarks against the peer engines (bench/, see bench/README.md). The full run
# takes ~40 minutes on 2 cores; put BENCH_DIR on the disk you want to measure.
BENCH_DIR ?= /tmp/bitcask-bench
# The smoke run's own, inside the checkout: two checkouts testing at once on one
# machine (a clone under CI beside a working tree) never share a database.
BENCH_SMOKE_DIR ?= $(CURDIR)/target/bench-smoke
BENCH_ARGS ?= --keys 1000000 --runs 3 --durable-ops 4000 --read-ops 500000 --mixed-ops 200000 \
	--scale-keys 10000000 --scale-engines libbitcask,libbitcask-ttl,fjall,lmdb --scale-workloads open,memory,crash,hot

bench:
	command -v db_bench || (apt-get update && apt-get install -y rocksdb-tools)
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || { apt-get update && apt-get install -y fonts-dejavu-core; }
	$(CARGO) build --release -p bench
	./target/release/bench $(BENCH_ARGS) --dir $(BENCH_DIR) \
		--analysis bench/analysis.md --out docs/benchmarks.md

# Every engine and workload at a tiny size (seconds); RocksDB only if db_bench is
# installed (the harness prints a note and skips it otherwise).
bench-smoke:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || { apt-get update && apt-get install -y fonts-dejavu-core; }
	$(CARGO) build --release -p bench
	./target/release/bench --smoke --dir $(BENCH_SMOKE_DIR) \
		--out $(BENCH_SMOKE_DIR)/report.md
	./target/release/snapshots --keys 20000 --runs 1 --dir $(BENCH_SMOKE_DIR)/snapshots

# What snapshots cost at 1M keys (taking one; writes with 0, 1 and 10 open),
# kept in bench/snapshots.md (with the hand-written bench/snapshots-why.md),
# which `make bench` includes in docs/benchmarks.md.
bench-snapshots:
	$(CARGO) build --release -p bench --bin snapshots
	{ echo '## Snapshots'; echo; echo 'Made by `make bench-snapshots` (`./target/release/snapshots --keys 1000000 --runs 3`), libbitcask alone:'; echo; \
	  ./target/release/snapshots --keys 1000000 --runs 3 --dir $(BENCH_DIR)-snapshots; \
	  echo; cat bench/snapshots-why.md; } > bench/snapshots.md.tmp
	mv bench/snapshots.md.tmp bench/snapshots.md

bench-clippy:
	$(CARGO) clippy -p bench --all-targets -- -D warnings

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path $(PYBIND)/Cargo.toml
	rm -rf demo-db hello-db $(VENV) $(VENV_BENCH) dist

# --- C ABI -------------------------------------------------------------------

$(CBINDGEN_LOCAL):
	$(CARGO) install cbindgen --locked --version $(CBINDGEN_VERSION) --root $(CURDIR)/target/tools

# Regenerates the committed header from src/ffi.
header: $(CBINDGEN)
	$(CBINDGEN) --config cbindgen.toml --quiet --output include/bitcask.h src/ffi/mod.rs

# Fails when include/bitcask.h is not what the sources generate.
check-header: $(CBINDGEN)
	@mkdir -p $(CBUILD)
	$(CBINDGEN) --config cbindgen.toml --quiet --output $(CBUILD)/bitcask.h src/ffi/mod.rs
	@diff -u include/bitcask.h $(CBUILD)/bitcask.h || \
		{ echo "include/bitcask.h is out of date: run 'make header' and commit it"; exit 1; }

# CI runs as root on a machine with only the toolchains.
c-tools:
	@command -v pkg-config >/dev/null && command -v valgrind >/dev/null || \
		{ apt-get update && apt-get install -y pkg-config valgrind; }

$(CBUILD)/lib/libbitcask.so.0: build
	@mkdir -p $(CBUILD)/lib
	ln -sf $(CURDIR)/$(LIBDIR)/libbitcask.so $@

c-test: build $(CBUILD)/lib/libbitcask.so.0
	$(CC) $(CFLAGS_TEST) tests/c/c_test.c -o $(CBUILD)/c_test_shared $(LINK_SHARED)
	$(CC) $(CFLAGS_TEST) tests/c/c_test.c -o $(CBUILD)/c_test_static $(LINK_STATIC)
	$(CBUILD)/c_test_shared $(CURDIR)/$(CBUILD)/work-shared
	$(CBUILD)/c_test_static $(CURDIR)/$(CBUILD)/work-static

cpp-test: build $(CBUILD)/lib/libbitcask.so.0
	$(CXX) $(CXXFLAGS_TEST) tests/c/cpp_test.cpp -o $(CBUILD)/cpp_test $(LINK_SHARED)
	$(CBUILD)/cpp_test $(CURDIR)/$(CBUILD)/work-cpp

c-valgrind: c-tools c-test
	$(VALGRIND) $(CBUILD)/c_test_shared $(CURDIR)/$(CBUILD)/work-valgrind

# The README's C quick start, built against the library in target/release.
example: build $(CBUILD)/lib/libbitcask.so.0
	$(CC) $(CFLAGS_TEST) examples/hello.c -o $(CBUILD)/hello $(LINK_SHARED)
	rm -rf $(CBUILD)/hello-db
	$(CBUILD)/hello $(CBUILD)/hello-db

$(CBUILD)/bitcask.pc: bitcask.pc.in Cargo.toml FORCE
	@mkdir -p $(CBUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

FORCE:

# Installs the libraries (with the SONAME links), the header, bitcask.pc and
# the bitcask command-line tool (cli/).
install: build $(CBUILD)/bitcask.pc
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(LIBDIR)/libbitcask.so $(DESTDIR)$(PREFIX)/lib/libbitcask.so.$(VERSION)
	ln -sf libbitcask.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libbitcask.so.0
	ln -sf libbitcask.so.0 $(DESTDIR)$(PREFIX)/lib/libbitcask.so
	install -m 644 $(LIBDIR)/libbitcask.a $(DESTDIR)$(PREFIX)/lib/libbitcask.a
	install -m 644 include/bitcask.h $(DESTDIR)$(PREFIX)/include/bitcask.h
	install -m 644 $(CBUILD)/bitcask.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/bitcask.pc
	install -m 755 $(LIBDIR)/bitcask $(DESTDIR)$(PREFIX)/bin/bitcask

# Installs into a temporary prefix and builds the example the way a user would.
install-test: c-tools build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory install PREFIX=$$tmp; \
	export PKG_CONFIG_PATH=$$tmp/lib/pkgconfig; \
	echo "pkg-config: $$(pkg-config --cflags --libs bitcask)"; \
	$(CC) -Wall -Werror examples/hello.c -o $$tmp/hello $$(pkg-config --cflags --libs bitcask); \
	readelf -d $$tmp/hello | grep -q 'NEEDED.*\[libbitcask.so.0\]'; \
	LD_LIBRARY_PATH=$$tmp/lib $$tmp/hello $$tmp/db; \
	$$tmp/bin/bitcask get $$tmp/db user:1 | grep -qx alice; \
	echo "install-test: 2 passed, 0 failed"

# Python package (bindings/python): a venv under .venv, reused between runs; the
# package is rebuilt only when the engine or the bindings changed.
$(VENV)/.tools:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q pytest hypothesis mypy
	touch $@

PY_SOURCES := Cargo.toml $(wildcard src/*.rs src/*/*.rs) $(PYBIND)/Cargo.toml $(PYBIND)/pyproject.toml \
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

# --- Go package (bindings/go) -------------------------------------------------

GO ?= go
GOBIND := bindings/go
GO_PREFIX := $(CURDIR)/$(CBUILD)/go-prefix

.PHONY: go-test

# The package links target/release/libbitcask.a by path (Go hashes that file, so
# a rebuilt engine is never hidden by the test cache). The second run checks
# every pointer passed to C (cgocheck2 needs the experiment at build time).
go-test: build c-tools
	@cd $(GOBIND) && test -z "$$(gofmt -l .)" || \
		{ gofmt -l $(GOBIND); echo "gofmt: run 'gofmt -w $(GOBIND)'"; exit 1; }
	cd $(GOBIND) && $(GO) vet ./...
	cd $(GOBIND) && $(GO) test -race ./...
	cd $(GOBIND) && GODEBUG=cgocheck=1 GOEXPERIMENT=cgocheck2 $(GO) test ./...
	# The default build carries the engine: no libbitcask.so needed at run time.
	cd $(GOBIND) && $(GO) test -c -o $(CURDIR)/$(CBUILD)/go_static.test . && \
		! readelf -d $(CURDIR)/$(CBUILD)/go_static.test | grep -q 'NEEDED.*libbitcask'
	# -tags bitcask_pkgconfig against an installed library, as README.md shows.
	# Go's build cache does not hash pkg-config's output: the same -L also goes
	# in CGO_LDFLAGS, which it hashes, or a build for another prefix is reused.
	rm -rf $(GO_PREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(GO_PREFIX) >/dev/null
	cd $(GOBIND) && PKG_CONFIG_PATH=$(GO_PREFIX)/lib/pkgconfig LD_LIBRARY_PATH=$(GO_PREFIX)/lib \
		CGO_LDFLAGS="-L$(GO_PREFIX)/lib" $(GO) test -tags bitcask_pkgconfig -run Example ./...

# --- Benchmarks of the bindings against their peers ---------------------------

# The peers live in a venv and a Go module of their own, so that neither the
# package's tests nor the binding's go.mod ever depend on them.
VENV_BENCH := .venv-bench
BINDBENCH_DIR := target/bench
BENCH_PY_ARGS ?= --keys 200000 --runs 5 --durable 2000
BENCH_GO_ARGS ?= -keys 200000 -runs 5 -durable 2000
BINDBENCH_DOC := docs/benchmarks-bindings.md
# The line of $(BINDBENCH_DOC) after which make bench-bindings rewrites the file.
BINDBENCH_MARK := <!-- make bench-bindings writes everything below this line -->

.PHONY: bench-python bench-go bench-bindings bench-bindings-smoke

# A peer that fails to install is left out with a note, and bench.py skips it.
$(VENV_BENCH)/.tools:
	$(PYTHON) -m venv $(VENV_BENCH)
	@for p in lmdb rocksdict plyvel; do \
		$(VENV_BENCH)/bin/python -m pip install -q $$p || echo "bench: $$p did not install; it will be skipped"; \
	done
	touch $@

$(VENV_BENCH)/.installed: $(VENV_BENCH)/.tools $(PY_SOURCES)
	$(VENV_BENCH)/bin/python -m pip install -q ./$(PYBIND)
	touch $@

bench-python: $(VENV_BENCH)/.installed
	@mkdir -p $(BINDBENCH_DIR)
	$(VENV_BENCH)/bin/python $(PYBIND)/bench/bench.py $(BENCH_PY_ARGS) --out $(BINDBENCH_DIR)/python.md
	@echo "bench-python: $(BINDBENCH_DIR)/python.md"

bench-go: build
	@mkdir -p $(BINDBENCH_DIR)
	cd $(GOBIND)/bench && $(GO) run . $(BENCH_GO_ARGS) -out $(CURDIR)/$(BINDBENCH_DIR)/go.md
	@echo "bench-go: $(BINDBENCH_DIR)/go.md"

# Both, then the generated part of the document replaced; the prose above the
# mark is kept.
bench-bindings: bench-python bench-go
	@grep -qxF '$(BINDBENCH_MARK)' $(BINDBENCH_DOC) || { echo "$(BINDBENCH_DOC) lacks the line '$(BINDBENCH_MARK)'"; exit 1; }
	{ sed '/^$(BINDBENCH_MARK)$$/q' $(BINDBENCH_DOC); echo; cat $(BINDBENCH_DIR)/python.md; echo; cat $(BINDBENCH_DIR)/go.md; } \
		> $(BINDBENCH_DIR)/doc.md
	mv $(BINDBENCH_DIR)/doc.md $(BINDBENCH_DOC)

# Every engine through every workload on a tiny data set: seconds, and it keeps
# the harnesses building and running.
bench-bindings-smoke: $(VENV_BENCH)/.installed build
	@mkdir -p $(BINDBENCH_DIR)
	$(VENV_BENCH)/bin/python -m py_compile $(PYBIND)/bench/bench.py
	$(VENV_BENCH)/bin/python $(PYBIND)/bench/bench.py --smoke --out $(BINDBENCH_DIR)/python-smoke.md
	@cd $(GOBIND)/bench && test -z "$$(gofmt -l .)" || { gofmt -l $(GOBIND)/bench; exit 1; }
	cd $(GOBIND)/bench && $(GO) vet . && $(GO) run . -smoke -out $(CURDIR)/$(BINDBENCH_DIR)/go-smoke.md
	@echo "bench-bindings-smoke: 2 passed, 0 failed"

# --- Release artifacts (dist/) -----------------------------------------------

# `make dist` builds every artifact for this platform into dist/; `make dist-test`
# (part of `make test`) installs each as a user would on a clean consumer, with no
# Rust toolchain on PATH, and runs it. One fragment per language.
DIST := $(CURDIR)/dist
# The platform the artifacts are built for, as in their names.
DIST_PLATFORM := linux-x86_64

.PHONY: dist dist-test dist-c dist-python dist-go dist-test-c dist-test-python dist-test-go

dist: dist-c dist-python dist-go

dist-test: dist-test-c dist-test-python dist-test-go
	@echo "dist-test: C, Python and Go artifacts passed"

include mk/dist-c.mk mk/dist-python.mk mk/dist-go.mk

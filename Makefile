# One entry point for every check. `make test` is what CI runs (via .ci/run).
CARGO ?= cargo
PREFIX ?= /usr/local

.PHONY: all build demo test check-fmt clippy rust-test fmt clean

all: build

build:
	$(CARGO) build --release

demo:
	$(CARGO) run --release --example demo

test: check-fmt clippy rust-test
	@echo "make test: all checks passed"

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

rust-test:
	$(CARGO) test --release

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf demo-db

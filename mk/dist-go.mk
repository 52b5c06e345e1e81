# Release artifact and its consumer test: Go. Targets dist-go, dist-test-go.
#
# dist/goproxy is a Go module proxy tree (GOPROXY=file://..., or the same files
# on any static web server) holding the binding's module at v$(VERSION):
# @v/list, .info, .mod and .zip. The zip is the module as bindings/go has it
# (bench/ is a module of its own and stays out) with two differences: the
# engine comes prebuilt, as the stripped static archive lib/GOOS_GOARCH/
# libbitcask.a beside include/bitcask.h, linked by link_prebuilt_GOOS_GOARCH.go
# (packaging/go/); and link_static.go, which points into ../../target of the
# source tree, is left out. A consumer then needs Go and a C compiler, no Rust:
#   GOPROXY=file://$PWD/dist/goproxy GONOSUMDB=github.com/libbitcask go get MODULE@vVERSION
# -tags bitcask_pkgconfig still selects an installed library instead.

SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
DIST_GO_MODULE := $(shell sed -n 's/^module //p' $(GOBIND)/go.mod)
DIST_GO_VERSION := v$(VERSION)
# linux-x86_64 -> linux amd64
DIST_GO_OS := $(word 1,$(subst -, ,$(DIST_PLATFORM)))
DIST_GO_ARCH := $(patsubst x86_64,amd64,$(patsubst aarch64,arm64,$(word 2,$(subst -, ,$(DIST_PLATFORM)))))
DIST_GO_STAGE := $(CURDIR)/target/dist/go
DIST_GO_ZIP := $(DIST)/goproxy/$(DIST_GO_MODULE)/@v/$(DIST_GO_VERSION).zip
DIST_GO_SOURCES := $(GOBIND)/go.mod $(wildcard $(GOBIND)/go.sum) \
	$(filter-out $(GOBIND)/link_static.go,$(wildcard $(GOBIND)/*.go))
GOMODZIP := $(CURDIR)/target/tools/bin/gomodzip

dist-go: build LICENSE include/bitcask.h
	rm -rf $(DIST_GO_STAGE) $(DIST)/goproxy
	mkdir -p $(DIST_GO_STAGE)/include $(DIST_GO_STAGE)/lib/$(DIST_GO_OS)_$(DIST_GO_ARCH)
	cp $(DIST_GO_SOURCES) $(DIST_GO_STAGE)/
	@set -e; for f in link_prebuilt:link_prebuilt_$(DIST_GO_OS)_$(DIST_GO_ARCH) link_unsupported:link_unsupported; do \
		sed -e 's/@GOOS@/$(DIST_GO_OS)/g' -e 's/@GOARCH@/$(DIST_GO_ARCH)/g' \
			packaging/go/$${f%%:*}.go.in > $(DIST_GO_STAGE)/$${f#*:}.go; \
	done; \
	test -z "$$(gofmt -l $(DIST_GO_STAGE))" || { gofmt -d $(DIST_GO_STAGE); exit 1; }
	install -m 644 include/bitcask.h $(DIST_GO_STAGE)/include/
	strip --strip-debug -o $(DIST_GO_STAGE)/lib/$(DIST_GO_OS)_$(DIST_GO_ARCH)/libbitcask.a $(LIBDIR)/libbitcask.a
	install -m 644 LICENSE $(DIST_GO_STAGE)/
	cd packaging/gomodzip && $(GO) build -o $(GOMODZIP) .
	$(GOMODZIP) -module $(DIST_GO_MODULE) -version $(DIST_GO_VERSION) -dir $(DIST_GO_STAGE) \
		-out $(DIST)/goproxy -time $(SOURCE_DATE_EPOCH)

# A new module in a new directory gets the binding from dist/goproxy alone
# (its own module cache; no checksum database, which has never seen this zip),
# and builds and runs packaging/go-consumer/main.go with no Rust on PATH.
dist-test-go: dist-go
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; fail() { echo "dist-test-go: $$*"; exit 1; }; \
	PATH=$$(packaging/path-without-rust); export PATH; \
	! command -v cargo && ! command -v rustc || fail "Rust is still on PATH"; \
	unzip -Z1 $(DIST_GO_ZIP) > $$tmp/files; \
	p=$(DIST_GO_MODULE)@$(DIST_GO_VERSION); \
	for f in go.mod LICENSE bitcask.go include/bitcask.h lib/$(DIST_GO_OS)_$(DIST_GO_ARCH)/libbitcask.a \
		link_prebuilt_$(DIST_GO_OS)_$(DIST_GO_ARCH).go link_pkgconfig.go link_unsupported.go; do \
		grep -qxF "$$p/$$f" $$tmp/files || fail "the zip lacks $$p/$$f"; \
	done; \
	! grep -E "^$$p/(link_static\.go|bench/)" $$tmp/files || fail "the zip holds the files above"; \
	mkdir $$tmp/consumer; cp packaging/go-consumer/main.go packaging/go-consumer/expected.txt $$tmp/consumer/; \
	cd $$tmp/consumer; \
	export GOENV=off GOTOOLCHAIN=local GOPATH=$$tmp/gopath GOMODCACHE=$$tmp/gopath/pkg/mod \
		GOFLAGS='-mod=mod -modcacherw' GOPROXY=file://$(DIST)/goproxy GONOSUMDB=github.com/libbitcask; \
	$(GO) mod init example.com/consumer 2>/dev/null; \
	echo "go get $(DIST_GO_MODULE)@$(DIST_GO_VERSION)"; \
	$(GO) get $(DIST_GO_MODULE)@$(DIST_GO_VERSION); \
	$(GO) mod verify; \
	cgo=$$($(GO) list -f '{{join .CgoFiles " "}}' $(DIST_GO_MODULE)); echo "cgo files: $$cgo"; \
	case " $$cgo " in *" link_prebuilt_$(DIST_GO_OS)_$(DIST_GO_ARCH).go "*) ;; *) fail "the prebuilt archive is not linked";; esac; \
	$(GO) vet . ; \
	$(GO) build -o consumer .; \
	! readelf -d consumer | grep 'NEEDED.*libbitcask' || fail "the consumer needs libbitcask.so"; \
	./consumer db > out; \
	diff -u expected.txt out; \
	echo "dist-test-go: 1 passed, 0 failed"

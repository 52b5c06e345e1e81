# Release artifact and its consumer test: C. Targets dist-c, dist-test-c.
#
# dist/libbitcask-VERSION-PLATFORM.tar.gz unpacks to one directory holding the
# layout of `make install` (lib/ with the SONAME links, lib/pkgconfig, include/,
# bin/bitcask)
# plus LICENSE and README.md. Its bitcask.pc finds the tree from where it lies
# (prefix=${pcfiledir}/../..), so the tarball may be unpacked anywhere:
#   PKG_CONFIG_PATH=$PWD/libbitcask-VERSION-PLATFORM/lib/pkgconfig cc app.c $(pkg-config --cflags --libs bitcask)
# The libraries are stripped of debug information. Names are sorted and owner
# and times fixed, so the same inputs give the same bytes: every time is the
# last commit's (or SOURCE_DATE_EPOCH).

SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
DIST_C_NAME := libbitcask-$(VERSION)-$(DIST_PLATFORM)
DIST_C_TARBALL := $(DIST)/$(DIST_C_NAME).tar.gz
DIST_C_STAGE := $(CURDIR)/target/dist/c

dist-c: $(DIST_C_TARBALL)

# `build` always runs (cargo decides), so the tarball is always remade; LICENSE
# and README.md are named so that a missing one stops here, by name.
$(DIST_C_TARBALL): build bitcask.pc.in include/bitcask.h LICENSE README.md
	rm -rf $(DIST_C_STAGE) && mkdir -p $(DIST_C_STAGE) $(DIST)
	$(MAKE) --no-print-directory install PREFIX=$(DIST_C_STAGE)/$(DIST_C_NAME) >/dev/null
	@set -e; root=$(DIST_C_STAGE)/$(DIST_C_NAME); \
	sed -e 's|@PREFIX@|$${pcfiledir}/../..|g' -e 's|@VERSION@|$(VERSION)|g' bitcask.pc.in \
		> $$root/lib/pkgconfig/bitcask.pc; \
	strip --strip-unneeded $$root/lib/libbitcask.so.$(VERSION); \
	strip --strip-debug $$root/lib/libbitcask.a; \
	strip --strip-unneeded $$root/bin/bitcask; \
	install -m 644 LICENSE README.md $$root/
	tar -C $(DIST_C_STAGE) --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
		--mtime=@$(SOURCE_DATE_EPOCH) --mode=u=rwX,go=rX -cf - $(DIST_C_NAME) | gzip -n > $@.tmp
	mv $@.tmp $@
	@echo "dist-c: $@ ($$(du -k $@ | cut -f1) KiB)"

# Unpacks the tarball in a new directory, as a user would, and builds and runs
# examples/hello.c against the shared library, then the static one, with only
# pkg-config's flags and no Rust toolchain on PATH.
DIST_C_FILES := LICENSE README.md bin/ bin/bitcask include/ include/bitcask.h lib/ lib/libbitcask.a lib/libbitcask.so \
	lib/libbitcask.so.0 lib/libbitcask.so.$(VERSION) lib/pkgconfig/ lib/pkgconfig/bitcask.pc

dist-test-c: dist-c c-tools
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; fail() { echo "dist-test-c: $$*"; exit 1; }; \
	PATH=$$(packaging/path-without-rust); export PATH; \
	! command -v cargo && ! command -v rustc || fail "Rust is still on PATH"; \
	printf '%s\n' $(DIST_C_NAME)/ $(addprefix $(DIST_C_NAME)/,$(DIST_C_FILES)) | sort > $$tmp/want; \
	tar -tzf $(DIST_C_TARBALL) | sort > $$tmp/got; \
	diff -u $$tmp/want $$tmp/got || fail "the tarball does not hold the files above"; \
	tar -C $$tmp -xzf $(DIST_C_TARBALL); \
	lib=$$tmp/$(DIST_C_NAME)/lib; \
	test "$$(readlink $$lib/libbitcask.so)" = libbitcask.so.0 || fail "libbitcask.so is not a link to libbitcask.so.0"; \
	test "$$(readlink $$lib/libbitcask.so.0)" = libbitcask.so.$(VERSION) || fail "libbitcask.so.0 is not a link to libbitcask.so.$(VERSION)"; \
	readelf -d $$lib/libbitcask.so.$(VERSION) | grep -q 'SONAME.*\[libbitcask.so.0\]' || fail "SONAME is not libbitcask.so.0"; \
	for f in lib/libbitcask.so.$(VERSION) lib/libbitcask.a bin/bitcask; do \
		! readelf -S $$tmp/$(DIST_C_NAME)/$$f | grep -q '\.debug_info' || fail "$$f has debug info"; \
	done; \
	cp examples/hello.c $$tmp/; cd $$tmp; \
	export PKG_CONFIG_PATH=$$lib/pkgconfig; \
	test "$$(pkg-config --modversion bitcask)" = $(VERSION) || fail "pkg-config does not find bitcask $(VERSION)"; \
	printf '%s\n' 'user:1 = alice' 'user:3 is not there' 'user:1 -> alice' 'user:2 -> bob' > want-out; \
	echo "shared: cc hello.c $$(pkg-config --cflags --libs bitcask)"; \
	$(CC) -Wall -Werror hello.c -o hello-shared $$(pkg-config --cflags --libs bitcask); \
	readelf -d hello-shared | grep -q 'NEEDED.*\[libbitcask.so.0\]' || fail "hello-shared does not need libbitcask.so.0"; \
	LD_LIBRARY_PATH=$$lib ./hello-shared db-shared > out-shared; \
	diff -u want-out out-shared; \
	static_libs=$$(pkg-config --static --libs bitcask | sed 's/-lbitcask\b/-Wl,-Bstatic -lbitcask -Wl,-Bdynamic/'); \
	echo "static: cc hello.c $$(pkg-config --cflags bitcask) $$static_libs"; \
	$(CC) -Wall -Werror hello.c -o hello-static $$(pkg-config --cflags bitcask) $$static_libs; \
	! readelf -d hello-static | grep -q 'NEEDED.*libbitcask' || fail "hello-static needs libbitcask.so"; \
	./hello-static db-static > out-static; \
	diff -u want-out out-static; \
	test "$$($$tmp/$(DIST_C_NAME)/bin/bitcask get db-static user:1)" = alice || fail "bin/bitcask does not read the example's database"; \
	echo "dist-test-c: 3 passed, 0 failed"

//go:build !bitcask_pkgconfig

package bitcask

// The archive is named by path, not -lbitcask, so that the linker cannot pick
// the shared library that sits beside it: a Go binary then carries the engine
// and runs without LD_LIBRARY_PATH. `make build` produces the archive.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libbitcask.a -lm -ldl -lpthread
import "C"

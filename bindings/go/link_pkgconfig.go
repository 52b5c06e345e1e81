//go:build bitcask_pkgconfig

package bitcask

// With -tags bitcask_pkgconfig the flags come from an installed bitcask.pc
// (`make install`) instead of this source tree, and the binary links the shared
// library.

// #cgo pkg-config: bitcask
import "C"

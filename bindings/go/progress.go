package bitcask

// A file with //export may only declare in its preamble (the preamble is
// copied into more than one C file), so the C shim that calls back into
// goOpenProgress lives in options.go. The include path comes from
// link_static.go or link_pkgconfig.go, as for every file of the package.

// #include <stdint.h>
// #include <bitcask.h>
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync"
)

// Progress tells how far Open has got loading the data files, as given to the
// function of WithOpenProgress.
type Progress struct {
	// FilesDone is the number of data files loaded so far, 1 to FilesTotal.
	FilesDone uint64
	// FilesTotal is the number of data files the database holds.
	FilesTotal uint64
	// BytesDone is the size of the data files loaded so far.
	BytesDone uint64
	// BytesTotal is the size of all the data files; BytesDone reaches it with
	// the last call.
	BytesTotal uint64
}

// openProgress is what the C user_data of the progress callback stands for,
// through a cgo.Handle: a Go pointer cannot be kept by C.
type openProgress struct {
	fn func(Progress)
	// mu serializes calls even if the library did not, and guards the panic.
	mu       sync.Mutex
	panicked bool
	value    any
}

//export goOpenProgress
func goOpenProgress(p *C.bitcask_progress_t, h C.uintptr_t) {
	cgo.Handle(h).Value().(*openProgress).call(Progress{
		FilesDone:  uint64(p.files_done),
		FilesTotal: uint64(p.files_total),
		BytesDone:  uint64(p.bytes_done),
		BytesTotal: uint64(p.bytes_total),
	})
}

// call runs the user's function. A panic must not leave it: Go cannot unwind
// the library's Rust frames, and on a thread the library started no Go caller
// could recover it, so the process would die. It is kept for Open to report
// instead; the open cannot be stopped from here, so later calls are skipped.
func (op *openProgress) call(p Progress) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.panicked {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			op.panicked, op.value = true, r
		}
	}()
	op.fn(p)
}

// err returns the error Open reports for a panic of the function, or nil; op
// may be nil (no WithOpenProgress).
func (op *openProgress) err() error {
	if op == nil {
		return nil
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if !op.panicked {
		return nil
	}
	if e, ok := op.value.(error); ok {
		return fmt.Errorf("bitcask: open progress callback panicked: %w", e)
	}
	return fmt.Errorf("bitcask: open progress callback panicked: %v", op.value)
}

package bitcask

// #include <bitcask.h>
import "C"

import (
	"bytes"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
)

// openSnapshots counts C snapshots not yet destroyed, so that tests can check
// that every snapshot is released.
var openSnapshots atomic.Int64

// Snapshot is a read view of a DB as of one sequence number (Seq): its reads
// and iterations see exactly the writes up to it, whatever writes and merges
// happen while it lives. Taking one copies nothing. While any snapshot (or
// iterator, which reads from a snapshot of its own) is open, each write also
// keeps what it replaced, a small entry per key changed (the C header's
// bitcask_snapshot_create gives its size), and data files a merge removes
// stay open, their space in use, until no snapshot can read them
// (Stats.Snapshots and Stats.SnapshotVersions count this); Close releases it.
//
// Its methods are those of the DB's reads, with the same signatures and
// bounds: Get, Has, Len, All, Range, Prefix, Keys, KeysRange, KeysPrefix,
// Walk, WalkPrefix and NewIterator. A Snapshot is safe for concurrent use by
// any number of goroutines, Close included: calls after Close fail with
// ErrClosed, and the C snapshot is freed only once no call is using it.
// Iterators made from it read on after its Close. It outlives its DB: once
// the DB is closed, its reads fail with ErrClosed. A Snapshot dropped without
// Close is released by the garbage collector eventually; do not count on it.
type Snapshot struct {
	// mu guards h as DB.mu guards the DB's handle: every call holds it shared
	// while it uses h, and Close holds it exclusively to free h.
	mu      sync.RWMutex
	h       *C.bitcask_snapshot_t
	seq     uint64
	closing *atomic.Bool // the DB's, for the iterators made from it
	cleanup runtime.Cleanup
	// getSize is the size Get tries first, as DB.getSize.
	getSize atomic.Int64
}

var errSnapshotClosed = goError(CodeClosed, "snapshot is closed")

// Snapshot takes a snapshot of the database as of its last write. It must be
// closed.
func (db *DB) Snapshot() (*Snapshot, error) {
	var h *C.bitcask_snapshot_t
	err := db.call(func(dh *C.bitcask_t) C.bitcask_status_t { return C.bitcask_snapshot_create(dh, &h) })
	if err != nil {
		return nil, err
	}
	openSnapshots.Add(1)
	s := &Snapshot{h: h, seq: uint64(C.bitcask_snapshot_seq(h)), closing: db.closing}
	// Only a safety net, as for DB and Iterator. It cannot run while a method
	// runs, since the method keeps s reachable.
	s.cleanup = runtime.AddCleanup(s, func(h *C.bitcask_snapshot_t) {
		C.bitcask_snapshot_destroy(h)
		openSnapshots.Add(-1)
	}, h)
	return s, nil
}

// call runs f with the handle, on a locked OS thread so that a failure's
// message can be read, under the shared lock so that Close waits for it.
func (s *Snapshot) call(f func(h *C.bitcask_snapshot_t) C.bitcask_status_t) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return errSnapshotClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f(s.h)
	runtime.KeepAlive(s)
	if st != C.BITCASK_OK {
		return statusError(st)
	}
	return nil
}

// Seq returns the sequence number of the last write the snapshot sees (0
// before any write); Stats.LastSeq and Backup count the same way. It is
// available after Close too.
func (s *Snapshot) Seq() uint64 { return s.seq }

// Get returns a copy of the value key had in the snapshot, or ErrNotFound.
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.call(func(h *C.bitcask_snapshot_t) C.bitcask_status_t {
		var st C.bitcask_status_t
		out, st = getValue(&s.getSize, nil, h, key)
		return st
	})
	return out, err
}

// Has reports whether key had a value in the snapshot, without reading it.
func (s *Snapshot) Has(key []byte) (bool, error) {
	err := s.call(func(h *C.bitcask_snapshot_t) C.bitcask_status_t {
		return C.bitcask_snapshot_contains(h, bytesPtr(key), C.size_t(len(key)))
	})
	if err == ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// Len returns the number of keys the snapshot sees (keys that have expired
// since it was taken are not counted). No data file is read.
func (s *Snapshot) Len() (int, error) {
	var n C.uint64_t
	err := s.call(func(h *C.bitcask_snapshot_t) C.bitcask_status_t { return C.bitcask_snapshot_count(h, &n) })
	return int(n), err
}

// NewIterator is DB.NewIterator over the snapshot's view. The iterator may
// outlive the snapshot's Close.
func (s *Snapshot) NewIterator(o IterOptions) (*Iterator, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var h *C.bitcask_iterator_t
	err := s.call(func(sh *C.bitcask_snapshot_t) C.bitcask_status_t { return createIter(nil, sh, o, &h) })
	if err != nil {
		return nil, err
	}
	return newIterator(h, s.closing), nil
}

// All is DB.All over the snapshot's view: every key and its value, then the
// error that ended the loop, if any.
func (s *Snapshot) All(opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(s.NewIterator, IterOptions{}, opts)
}

// Range is DB.Range over the snapshot's view (a nil end is no bound, an empty
// non-nil end the empty key).
func (s *Snapshot) Range(start, end []byte, opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(s.NewIterator, IterOptions{Start: bytes.Clone(start), End: bytes.Clone(end)}, opts)
}

// Prefix is DB.Prefix over the snapshot's view.
func (s *Snapshot) Prefix(prefix []byte, opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(s.NewIterator, IterOptions{Prefix: bytes.Clone(prefix)}, opts)
}

// Keys is DB.Keys over the snapshot's view: no data file is read.
func (s *Snapshot) Keys(opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(s.NewIterator, IterOptions{}, opts)
}

// KeysRange is DB.KeysRange over the snapshot's view.
func (s *Snapshot) KeysRange(start, end []byte, opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(s.NewIterator, IterOptions{Start: bytes.Clone(start), End: bytes.Clone(end)}, opts)
}

// KeysPrefix is DB.KeysPrefix over the snapshot's view.
func (s *Snapshot) KeysPrefix(prefix []byte, opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(s.NewIterator, IterOptions{Prefix: bytes.Clone(prefix)}, opts)
}

// Walk is DB.Walk over the snapshot's view.
func (s *Snapshot) Walk(f func(key, value []byte) error) error {
	return walk(s.NewIterator, IterOptions{}, f)
}

// WalkPrefix is DB.WalkPrefix over the snapshot's view.
func (s *Snapshot) WalkPrefix(prefix []byte, f func(key, value []byte) error) error {
	return walk(s.NewIterator, IterOptions{Prefix: prefix}, f)
}

// Close releases the snapshot and what writes kept for it. Closing again is a
// no-op; other calls after Close fail with ErrClosed. It waits for calls in
// progress on other goroutines. Iterators made from the snapshot read on.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		s.cleanup.Stop()
		C.bitcask_snapshot_destroy(s.h)
		openSnapshots.Add(-1)
		s.h = nil
	}
	return nil
}

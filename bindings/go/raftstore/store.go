// Package raftstore is a hashicorp/raft LogStore and StableStore over one
// libbitcask database: pass the same *Store as both to raft.NewRaft.
//
//	store, err := raftstore.New("/var/lib/myapp/raft")
//	if err != nil { ... }
//	defer store.Close()
//	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
//
// Every write (StoreLogs, DeleteRange, Set) is one atomic batch, synced
// (fdatasync) before it returns, so an acknowledged write survives a crash or
// a power loss, and a crash never leaves half of a StoreLogs.
//
// Log entries are kept under keys 'l' + the index in 8 big-endian bytes, so
// that they are one range of the database's ordered keydir, in index order;
// StableStore keys are kept under 's' + the key. Entries are encoded in a small
// binary layout (see appendLog), not msgpack: no reflection, a few bytes of
// overhead instead of the field names, and raft-boltdb's files cannot be
// opened here anyway.
//
// FirstIndex and LastIndex are answered from cached values, which are set
// from the keydir when the store opens (the first key of the log range, and
// the first of the same range reversed: O(log n) each, no scan), moved by
// StoreLogs, and looked up in the keydir again after a DeleteRange.
package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	bitcask "github.com/libbitcask/libbitcask/bindings/go"
)

// ErrKeyNotFound is what Get and GetUint64 return for a key never Set. Its
// text is "not found", which is what raft tests for (as raft-boltdb's
// ErrKeyNotFound, which it mirrors).
var ErrKeyNotFound = errors.New("not found")

// ErrCorruptLog is matched (errors.Is) by the error of GetLog for a stored
// entry that does not decode.
var ErrCorruptLog = errCorruptLog

// Store is a raft.LogStore, raft.StableStore and raft.MonotonicLogStore over
// one libbitcask database. It is safe for concurrent use.
type Store struct {
	db   *bitcask.DB
	sync bool

	// mu serializes StoreLogs and DeleteRange, so that bounds is updated in
	// the order of their writes; batch and buf are theirs, reused.
	mu    sync.Mutex
	batch *bitcask.Batch
	buf   []byte

	// bounds holds the first and last index of the log; nil when they must be
	// looked up again (after a failed write, whose effect is unknown).
	bounds atomic.Pointer[bounds]
	closed atomic.Bool
}

type bounds struct {
	first, last uint64
	empty       bool
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Option configures New.
type Option func(*config)

type config struct {
	noSync  bool
	bitcask []bitcask.Option
}

// WithNoSync makes writes return without waiting for fdatasync: a crash of
// the process still loses nothing acknowledged, but a power loss may, which
// breaks Raft's guarantees. For tests, like raft-boltdb's Options.NoSync.
func WithNoSync() Option { return func(c *config) { c.noSync = true } }

// WithBitcaskOptions passes options to bitcask.Open, after the store's own
// (bitcask.WithSync(bitcask.SyncAlways), or nothing with WithNoSync). The
// store's writes are synced whatever sync policy they set.
func WithBitcaskOptions(opts ...bitcask.Option) Option {
	return func(c *config) { c.bitcask = append(c.bitcask, opts...) }
}

// New opens (or creates) the store in directory dir, which holds a libbitcask
// database of its own. Only one Store, in this or any process, may have dir
// open at a time: another fails with an error matching bitcask.ErrLocked.
func New(dir string, opts ...Option) (*Store, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	var bopts []bitcask.Option
	if !cfg.noSync {
		bopts = append(bopts, bitcask.WithSync(bitcask.SyncAlways))
	}
	db, err := bitcask.Open(dir, append(bopts, cfg.bitcask...)...)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, sync: !cfg.noSync, batch: bitcask.NewBatch()}
	if _, err := s.loadBounds(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database; later calls fail with an error matching
// bitcask.ErrClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	return s.db.Close()
}

// IsMonotonic reports true: raft then removes every log entry after
// installing a snapshot rather than leaving a gap below it, so the log always
// runs from FirstIndex to LastIndex without holes (raft.MonotonicLogStore).
// The store itself would accept gaps.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex returns the index of the oldest entry, or 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	b, err := s.currentBounds()
	return b.first, err
}

// LastIndex returns the index of the newest entry, or 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	b, err := s.currentBounds()
	return b.last, err
}

func (s *Store) currentBounds() (bounds, error) {
	if s.closed.Load() {
		return bounds{}, bitcask.ErrClosed
	}
	if b := s.bounds.Load(); b != nil {
		return *b, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadBounds()
}

// loadBounds returns the bounds, looking them up in the keydir when they are
// not known. Called with mu held, or before the store is shared.
func (s *Store) loadBounds() (bounds, error) {
	if b := s.bounds.Load(); b != nil {
		return *b, nil
	}
	first, ok, err := s.edge(false)
	if err != nil {
		return bounds{}, err
	}
	b := bounds{empty: true}
	if ok {
		last, _, err := s.edge(true)
		if err != nil {
			return bounds{}, err
		}
		b = bounds{first: first, last: last}
	}
	s.bounds.Store(&b)
	return b, nil
}

// edge returns the lowest log index in the keydir, or the highest if reverse:
// the first key of an iterator over the log range, which seeks in the ordered
// keydir and reads no value.
func (s *Store) edge(reverse bool) (index uint64, ok bool, err error) {
	it, err := s.db.NewIterator(bitcask.IterOptions{Start: logKeysStart, End: logKeysEnd, Reverse: reverse})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Valid() {
		return 0, false, it.Err()
	}
	index, err = logIndex(it.Key())
	return index, err == nil, err
}

// GetLog reads the entry at index into l; raft.ErrLogNotFound (itself) when
// there is none.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	k := logKey(index)
	v, err := s.db.Get(k[:])
	if err != nil {
		if err == bitcask.ErrNotFound {
			return raft.ErrLogNotFound
		}
		return err
	}
	// v is a fresh copy: Data and Extensions point into it.
	if err := decodeLog(v, l); err != nil {
		return fmt.Errorf("raftstore: log %d: %w", index, err)
	}
	l.Index = index
	return nil
}

// StoreLog stores one entry, as StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// maxKeptBatch is the most memory the reused batch and buffer keep between
// calls; a larger StoreLogs gets fresh ones next time.
const maxKeptBatch = 4 << 20

// StoreLogs stores the entries in one atomic batch, synced before it returns:
// after a crash either all of them are there or none. An entry already stored
// at an index is replaced.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.batch
	b.Reset()
	lo, hi := logs[0].Index, logs[0].Index
	size := 0
	for _, l := range logs {
		k := logKey(l.Index)
		s.buf = appendLog(s.buf[:0], l)
		b.Put(k[:], s.buf)
		lo, hi = min(lo, l.Index), max(hi, l.Index)
		size += logKeyLen + len(s.buf)
	}
	err := s.write(b)
	if size > maxKeptBatch {
		s.batch, s.buf = bitcask.NewBatch(), nil
	}
	if err != nil {
		s.bounds.Store(nil)
		return err
	}
	if old := s.bounds.Load(); old != nil {
		nb := bounds{first: lo, last: hi}
		if !old.empty {
			nb.first, nb.last = min(old.first, lo), max(old.last, hi)
		}
		s.bounds.Store(&nb)
	}
	return nil
}

// deleteChunk is the most entries one batch of DeleteRange deletes.
const deleteChunk = 1 << 16

// DeleteRange deletes the entries from lo to hi, both included (raft's min
// and max) in one atomic batch, synced before it returns; indexes with no
// entry are skipped. A range of more than 65,536 entries takes several
// batches of that many: from its low end up when it starts at or below the
// first entry (raft's compaction), from its high end down otherwise (raft's
// truncation of a conflicting tail), so that a crash in between leaves the
// log without a hole.
func (s *Store) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.loadBounds()
	if err != nil {
		return err
	}
	if cur.empty || hi < cur.first || lo > cur.last {
		return nil
	}
	start := logKey(lo)
	end := logKeysEnd
	if hi < ^uint64(0) {
		k := logKey(hi + 1)
		end = k[:]
	}
	opts := bitcask.IterOptions{Start: start[:], End: end, Reverse: lo > cur.first}
	b := bitcask.NewBatch()
	deleted := false
	for {
		b.Reset()
		n, err := s.batchDeletes(b, opts)
		if err == nil && n > 0 {
			err = s.write(b)
		}
		if err != nil {
			s.bounds.Store(nil)
			return err
		}
		if n == 0 {
			break
		}
		deleted = true
		if n < deleteChunk {
			break
		}
	}
	if deleted {
		s.bounds.Store(nil)
		_, err = s.loadBounds()
	}
	return err
}

// batchDeletes adds to b a delete of each of the first deleteChunk keys of
// opts' range, and returns how many it added.
func (s *Store) batchDeletes(b *bitcask.Batch, opts bitcask.IterOptions) (int, error) {
	it, err := s.db.NewIterator(opts)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for ; n < deleteChunk && it.Valid(); it.Next() {
		b.Delete(it.Key())
		n++
	}
	return n, it.Err()
}

// write writes b, synced unless WithNoSync.
func (s *Store) write(b *bitcask.Batch) error {
	if s.sync {
		return s.db.WriteSync(b)
	}
	return s.db.Write(b)
}

var batches = sync.Pool{New: func() any { return bitcask.NewBatch() }}

// Set stores v under k, synced before it returns.
func (s *Store) Set(k, v []byte) error {
	b := batches.Get().(*bitcask.Batch)
	defer func() {
		b.Reset()
		batches.Put(b)
	}()
	b.Put(stableKey(k), v)
	return s.write(b)
}

// Get returns the value stored under k, or nil and ErrKeyNotFound.
func (s *Store) Get(k []byte) ([]byte, error) {
	v, err := s.db.Get(stableKey(k))
	if err == bitcask.ErrNotFound {
		return nil, ErrKeyNotFound
	}
	return v, err
}

// SetUint64 stores v under k, as 8 big-endian bytes.
func (s *Store) SetUint64(k []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return s.Set(k, buf[:])
}

// GetUint64 returns the value stored under k by SetUint64, or 0 and
// ErrKeyNotFound.
func (s *Store) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: the value of %q is %d bytes, not a uint64's 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

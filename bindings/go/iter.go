package bitcask

/*
#include <bitcask.h>

// One cgo call per entry instead of two: both slices are borrowed from the
// iterator until its next move, and Go copies them before moving. The value is
// read from its data file here, not by the move; a failure to read it is
// returned (and the iterator stays on its entry).
static bitcask_status_t bk_iter_entry(const bitcask_iterator_t *it,
                                      const uint8_t **key, size_t *key_len,
                                      const uint8_t **value, size_t *value_len) {
	bitcask_status_t s = bitcask_iter_key(it, key, key_len);
	if (s != BITCASK_OK) return s;
	return bitcask_iter_value(it, value, value_len);
}
*/
import "C"

import (
	"bytes"
	"iter"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// openIterators counts C iterators not yet destroyed, so that tests can check
// that every way out of a loop frees its iterator.
var openIterators atomic.Int64

// IterOptions selects the keys an Iterator visits, in key order (bytewise).
type IterOptions struct {
	// Start and End bound the keys k visited to Start <= k < End. A nil End
	// means no upper bound; any other End is a key, the empty key included
	// (then nothing is visited), as None in Python and NULL in C. A nil or
	// empty Start is the smallest key: no lower bound.
	Start, End []byte
	// Prefix restricts the keys to those that start with it. It may not be
	// combined with Start or End.
	Prefix []byte
	// Reverse visits the keys in descending order.
	Reverse bool
}

// Iterator is a cursor over keys in order, with their values. It reads the
// database as of its creation, through a snapshot of its own (or, made by
// Snapshot.NewIterator, as of that snapshot): writes made meanwhile are not
// seen, in either direction or after a seek. While it is open, writes keep
// what they replace for it, as for a Snapshot, so close it when done.
//
// It is the explicit form of iteration, as in pebble or LevelDB: a loop that
// ends on Valid turning false must check Err, which says whether the range
// ended or a move or value read failed:
//
//	for ; it.Valid(); it.Next() { ... }
//	if err := it.Err(); err != nil { ... }
//
// Moves read no value: the library reads an entry's value when Value (or
// ValueAndErr) is first called on it, as it was when the iterator reached the
// entry, even if a merge has since removed its data file. Iterating with Key
// alone does no I/O.
//
// An Iterator is not safe for concurrent use. It must be closed; it stays usable
// (reporting ErrClosed) after its DB is closed.
type Iterator struct {
	h       *C.bitcask_iterator_t
	closing *atomic.Bool // the DB's; see DB.closing
	err     error
	cleanup runtime.Cleanup
	// Out-parameters of the C calls, kept here so that reading an entry does
	// not allocate them; C sees only these fields, which hold no Go pointers.
	kp, vp *C.uint8_t
	kn, vn C.size_t
}

// emptyKey gives the empty key a pointer for C, where NULL means no bound.
var emptyKey [1]byte

// NewIterator returns an iterator positioned on the first entry of o's range
// (check Valid). The bounds are copied.
func (db *DB) NewIterator(o IterOptions) (*Iterator, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var h *C.bitcask_iterator_t
	err := db.call(func(dh *C.bitcask_t) C.bitcask_status_t { return createIter(dh, nil, o, &h) })
	if err != nil {
		return nil, err
	}
	return newIterator(h, db.closing), nil
}

func (o *IterOptions) check() error {
	if len(o.Prefix) > 0 && (len(o.Start) > 0 || o.End != nil) {
		return goError(CodeInvalidArgument, "IterOptions: Prefix may not be combined with Start or End")
	}
	return nil
}

// createIter makes the C iterator of o over the database dh or, when sh is not
// nil, over the snapshot sh, and stores it in *out.
func createIter(dh *C.bitcask_t, sh *C.bitcask_snapshot_t, o IterOptions, out **C.bitcask_iterator_t) C.bitcask_status_t {
	rev := C.bool(o.Reverse)
	if len(o.Prefix) > 0 {
		p, n := bytesPtr(o.Prefix), C.size_t(len(o.Prefix))
		if sh != nil {
			return C.bitcask_snapshot_iter_create_prefix(sh, p, n, rev, out)
		}
		return C.bitcask_iter_create_prefix(dh, p, n, rev, out)
	}
	start, startLen := bytesPtr(o.Start), C.size_t(len(o.Start))
	end, endLen := bytesPtr(o.End), C.size_t(len(o.End))
	if o.End != nil && len(o.End) == 0 {
		// C takes NULL for no bound: the empty key needs a pointer.
		end = (*C.uint8_t)(unsafe.Pointer(&emptyKey[0]))
	}
	if sh != nil {
		return C.bitcask_snapshot_iter_create_range(sh, start, startLen, end, endLen, rev, out)
	}
	return C.bitcask_iter_create_range(dh, start, startLen, end, endLen, rev, out)
}

// newIterator wraps a new C iterator. It holds the engine's internals itself,
// so it needs no lock of its DB or snapshot: it outlives their Close and then
// reports ErrClosed (after the DB's) or reads on (after the snapshot's).
func newIterator(h *C.bitcask_iterator_t, closing *atomic.Bool) *Iterator {
	openIterators.Add(1)
	it := &Iterator{h: h, closing: closing}
	it.cleanup = runtime.AddCleanup(it, func(h *C.bitcask_iterator_t) {
		C.bitcask_iter_destroy(h)
		openIterators.Add(-1)
	}, h)
	return it
}

// move runs one C move and records its error; it reports Valid.
func (it *Iterator) move(s C.bitcask_status_t) bool {
	if s != C.BITCASK_OK {
		it.err = statusError(s)
		return false
	}
	it.err = nil
	valid := bool(C.bitcask_iter_valid(it.h))
	if !valid && it.closing.Load() {
		it.err = errClosed
	}
	return valid
}

// First moves to the first entry in the iteration direction and reports Valid.
func (it *Iterator) First() bool {
	if it.h == nil {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := it.move(C.bitcask_iter_seek_first(it.h))
	runtime.KeepAlive(it)
	return ok
}

// Last moves to the last entry in the iteration direction and reports Valid.
func (it *Iterator) Last() bool {
	if it.h == nil {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := it.move(C.bitcask_iter_seek_last(it.h))
	runtime.KeepAlive(it)
	return ok
}

// Seek moves to the first key at or after key in the iteration direction (at
// or before it when reversed), within the iterator's range, and reports Valid.
func (it *Iterator) Seek(key []byte) bool {
	if it.h == nil {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := it.move(C.bitcask_iter_seek(it.h, bytesPtr(key), C.size_t(len(key))))
	runtime.KeepAlive(it)
	return ok
}

// Next moves to the next entry in the iteration direction and reports Valid.
// On an iterator that is not Valid it does nothing and returns false.
func (it *Iterator) Next() bool {
	if !it.Valid() {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := it.move(C.bitcask_iter_next(it.h))
	runtime.KeepAlive(it)
	return ok
}

// Prev moves to the previous entry (against the iteration direction) and
// reports Valid. On an iterator that is not Valid it does nothing and returns
// false: use Last to come back from past the end.
func (it *Iterator) Prev() bool {
	if !it.Valid() {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := it.move(C.bitcask_iter_prev(it.h))
	runtime.KeepAlive(it)
	return ok
}

// Valid reports whether the iterator is on an entry: false past either end,
// after an error (see Err) and after Close.
func (it *Iterator) Valid() bool {
	if it.h == nil || it.err != nil {
		return false
	}
	ok := bool(C.bitcask_iter_valid(it.h))
	runtime.KeepAlive(it)
	return ok
}

// Key returns a copy of the current key, or nil when not Valid. It reads no
// data file.
func (it *Iterator) Key() []byte {
	defer runtime.KeepAlive(it) // the borrowed bytes live as long as the C iterator
	if it.h == nil || it.err != nil || C.bitcask_iter_key(it.h, &it.kp, &it.kn) != C.BITCASK_OK {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(it.kp), C.int(it.kn))
}

// Value returns a copy of the current value, or nil when not Valid or when the
// value cannot be read (an empty value is a non-nil empty slice). It reads the
// value from its data file on the first call at an entry. A failure to read it
// stops the iterator: Value returns nil, Valid turns false and Err reports
// ErrCorruption or ErrIO, until First, Last or Seek moves it again.
// ValueAndErr returns the error with the value.
func (it *Iterator) Value() []byte {
	v, _ := it.ValueAndErr()
	return v
}

// ValueAndErr is Value that also returns the error that stopped the iterator,
// if any: (nil, nil) when not Valid without an error.
func (it *Iterator) ValueAndErr() ([]byte, error) {
	if it.h == nil || it.err != nil {
		return nil, it.err
	}
	// On the thread of the call, for a failure's message.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer runtime.KeepAlive(it)
	switch s := C.bitcask_iter_value(it.h, &it.vp, &it.vn); s {
	case C.BITCASK_OK:
		return C.GoBytes(unsafe.Pointer(it.vp), C.int(it.vn)), nil
	case C.BITCASK_NOT_FOUND:
		return nil, nil
	default:
		it.err = statusError(s)
		return nil, it.err
	}
}

// entry returns copies of the current key and, if values, its value, or false
// when not Valid or the value could not be read (then Err says why).
func (it *Iterator) entry(values bool) (key, value []byte, ok bool) {
	if it.h == nil || it.err != nil {
		return nil, nil, false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer runtime.KeepAlive(it)
	var s C.bitcask_status_t
	if values {
		s = C.bk_iter_entry(it.h, &it.kp, &it.kn, &it.vp, &it.vn)
	} else {
		s = C.bitcask_iter_key(it.h, &it.kp, &it.kn)
	}
	switch s {
	case C.BITCASK_OK:
	case C.BITCASK_NOT_FOUND:
		return nil, nil, false
	default:
		it.err = statusError(s)
		return nil, nil, false
	}
	key = C.GoBytes(unsafe.Pointer(it.kp), C.int(it.kn))
	if values {
		value = C.GoBytes(unsafe.Pointer(it.vp), C.int(it.vn))
	}
	return key, value, true
}

// Err returns the error that stopped the iterator, if any: ErrClosed once the
// DB was closed, ErrCorruption or ErrIO when a value could not be read. A
// successful move clears it.
func (it *Iterator) Err() error { return it.err }

// Close frees the iterator. Closing again is a no-op.
func (it *Iterator) Close() error {
	if it.h != nil {
		it.cleanup.Stop()
		C.bitcask_iter_destroy(it.h)
		openIterators.Add(-1)
		it.h = nil
	}
	return nil
}

// Entry is a key and its value, as All, Range and Prefix yield them: copies
// owned by the caller.
type Entry struct {
	Key, Value []byte
}

// ScanOption changes how All, Range and Prefix, and Keys, KeysRange and
// KeysPrefix, iterate.
type ScanOption func(*scanConfig)

type scanConfig struct {
	reverse bool
}

// Reverse iterates in descending key order.
func Reverse() ScanOption { return func(c *scanConfig) { c.reverse = true } }

// All iterates over every key and its value in key order. Each step yields an
// Entry and a nil error, or, when the iteration fails (the DB closed
// meanwhile, a value that cannot be read, an I/O error), a zero Entry and the
// error, which is then the last step:
//
//	for e, err := range db.All() {
//		if err != nil {
//			return err
//		}
//		fmt.Printf("%s = %s\n", e.Key, e.Value)
//	}
//
// The keys and values are copies. Breaking out of the loop frees the
// underlying iterator. Every value is read, whether or not the loop uses it:
// Keys iterates without reading any. The iteration reads the database as of
// its start (see NewIterator).
func (db *DB) All(opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(db.NewIterator, IterOptions{}, opts)
}

// Range iterates over the keys k with start <= k < end, as All; a nil end means
// no upper bound, and an empty non-nil end is the empty key (see IterOptions).
func (db *DB) Range(start, end []byte, opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(db.NewIterator, IterOptions{Start: bytes.Clone(start), End: bytes.Clone(end)}, opts)
}

// Prefix iterates over the keys that start with prefix, as All.
func (db *DB) Prefix(prefix []byte, opts ...ScanOption) iter.Seq2[Entry, error] {
	return entries(db.NewIterator, IterOptions{Prefix: bytes.Clone(prefix)}, opts)
}

// Keys iterates over every key in key order, as All but without the values:
// the loop reads no data file, only the in-memory keydir. It yields each key
// with a nil error, or nil and the error that ended the iteration, last:
//
//	for k, err := range db.Keys() {
//		if err != nil {
//			return err
//		}
//		fmt.Printf("%s\n", k)
//	}
func (db *DB) Keys(opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(db.NewIterator, IterOptions{}, opts)
}

// KeysRange iterates over the keys k with start <= k < end, as Keys; bounds as
// Range.
func (db *DB) KeysRange(start, end []byte, opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(db.NewIterator, IterOptions{Start: bytes.Clone(start), End: bytes.Clone(end)}, opts)
}

// KeysPrefix iterates over the keys that start with prefix, as Keys.
func (db *DB) KeysPrefix(prefix []byte, opts ...ScanOption) iter.Seq2[[]byte, error] {
	return keys(db.NewIterator, IterOptions{Prefix: bytes.Clone(prefix)}, opts)
}

// newIterFunc makes an Iterator: DB.NewIterator or Snapshot.NewIterator.
type newIterFunc func(IterOptions) (*Iterator, error)

func scanOptions(o *IterOptions, opts []ScanOption) {
	var cfg scanConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	o.Reverse = cfg.reverse
}

// entries is the sequence of All, Range and Prefix: every entry of o, then the
// error that ended the iteration, if any. Nothing is yielded after yield
// returned false, the error included.
func entries(newIter newIterFunc, o IterOptions, opts []ScanOption) iter.Seq2[Entry, error] {
	scanOptions(&o, opts)
	return func(yield func(Entry, error) bool) {
		stopped := false
		err := each(newIter, o, true, func(k, v []byte) bool {
			stopped = !yield(Entry{Key: k, Value: v}, nil)
			return !stopped
		})
		if err != nil && !stopped {
			yield(Entry{}, err)
		}
	}
}

// keys is entries for Keys, KeysRange and KeysPrefix: no value is read.
func keys(newIter newIterFunc, o IterOptions, opts []ScanOption) iter.Seq2[[]byte, error] {
	scanOptions(&o, opts)
	return func(yield func([]byte, error) bool) {
		stopped := false
		err := each(newIter, o, false, func(k, _ []byte) bool {
			stopped = !yield(k, nil)
			return !stopped
		})
		if err != nil && !stopped {
			yield(nil, err)
		}
	}
}

// each calls f for every entry of o (with a nil value unless values) until f
// returns false, closing the iterator on every way out (including a panic in
// f). It returns the error that ended the iteration, a value that could not
// be read included.
func each(newIter newIterFunc, o IterOptions, values bool, f func(k, v []byte) bool) error {
	it, err := newIter(o)
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		k, v, ok := it.entry(values)
		if !ok || !f(k, v) {
			break
		}
		it.Next()
	}
	return it.Err()
}

// Walk calls f for every key and its value (copies), in key order, and stops
// at the first error f returns, which it returns; otherwise it returns the
// error that ended the iteration, if any. f may use the DB, even write to it;
// the walk reads the database as of its start.
//
// It is not prologic/bitcask's Fold, which calls f with keys alone: Keys is
// that, as a sequence (see the package doc, Iteration).
func (db *DB) Walk(f func(key, value []byte) error) error {
	return walk(db.NewIterator, IterOptions{}, f)
}

// WalkPrefix is Walk over the keys that start with prefix. It is not
// prologic/bitcask's Scan, which calls f with keys alone: KeysPrefix is that.
func (db *DB) WalkPrefix(prefix []byte, f func(key, value []byte) error) error {
	return walk(db.NewIterator, IterOptions{Prefix: prefix}, f)
}

func walk(newIter newIterFunc, o IterOptions, f func(key, value []byte) error) error {
	var ferr error
	err := each(newIter, o, true, func(k, v []byte) bool {
		ferr = f(k, v)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

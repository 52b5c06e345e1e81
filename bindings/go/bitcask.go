package bitcask

/*
#include <stdlib.h>
#include <bitcask.h>

// bitcask_get (or bitcask_snapshot_get when snap is not NULL) with its
// out-parameter returned by value: an out-parameter on the Go side would
// escape to the heap, an allocation for every Get.
typedef struct {
	bitcask_status_t status;
	size_t len;
} bk_get_result;

static bk_get_result bk_get(const bitcask_t *db, const bitcask_snapshot_t *snap,
                            const uint8_t *key, size_t key_len, uint8_t *buf, size_t buf_len) {
	bk_get_result r = {BITCASK_OK, 0};
	if (snap != NULL) {
		r.status = bitcask_snapshot_get(snap, key, key_len, buf, buf_len, &r.len);
	} else {
		r.status = bitcask_get(db, key, key_len, buf, buf_len, &r.len);
	}
	return r;
}

// bitcask_contains, or bitcask_snapshot_contains when snap is not NULL.
static bitcask_status_t bk_contains(const bitcask_t *db, const bitcask_snapshot_t *snap,
                                    const uint8_t *key, size_t key_len) {
	if (snap != NULL) {
		return bitcask_snapshot_contains(snap, key, key_len);
	}
	return bitcask_contains(db, key, key_len);
}
*/
import "C"

import (
	"errors"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// DB is an open database. It is safe for concurrent use by any number of
// goroutines: reads run in parallel and concurrent writes are group-committed
// into one append and one fsync. Close may race with other calls; those then
// fail with ErrClosed, and the C handle is freed only once no call is using it.
type DB struct {
	// mu guards h: every call holds it shared while it uses h, and Close holds it
	// exclusively to free h, so the handle never disappears under a call.
	mu      sync.RWMutex
	h       *C.bitcask_t
	cleanup runtime.Cleanup
	// events is the handle of WithLogger's listener, or 0; released with h.
	events cgo.Handle
	// closing is set before bitcask_close. The engine empties its keydir when
	// closing, so a read racing with Close can see "not found" (or an iteration
	// its end) instead of BITCASK_CLOSED; reads that see closing report
	// ErrClosed instead, which is true of them either way. Separate from DB so
	// that iterators can share it without keeping the DB alive.
	closing *atomic.Bool
	// getSize is the size of the last value Get read if it was larger than
	// getScratchSize, else 0: the size Get tries first.
	getSize atomic.Int64
}

// bytesPtr returns what C expects for a byte slice: NULL for an empty one. The
// pointer must only be used for the duration of one cgo call.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// Open opens the database in directory dir, creating it (and the directory)
// unless WithReadOnly is given. Only one DB, in this or any process, may have a
// directory open for writing: a second Open fails with ErrLocked.
func Open(dir string, opts ...Option) (*DB, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if strings.IndexByte(dir, 0) >= 0 {
		return nil, goError(CodeInvalidArgument, "path contains a NUL byte")
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))

	// The error message is thread-local in the library: it must be read on the
	// thread that made the failing call.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var co *C.bitcask_options_t
	if s := C.bitcask_options_create(&co); s != C.BITCASK_OK {
		return nil, statusError(s)
	}
	defer C.bitcask_options_destroy(co)
	for _, set := range cfg.setters {
		set(co)
	}
	var progress *openProgress
	if cfg.progress != nil {
		progress = &openProgress{fn: cfg.progress}
		ph := cgo.NewHandle(progress)
		// The library calls back only while bitcask_open runs.
		defer ph.Delete()
		if s := setOpenProgress(co, ph); s != C.BITCASK_OK {
			return nil, statusError(s)
		}
	}
	var events cgo.Handle
	if cfg.logger != nil {
		// The library may call the listener until the database is destroyed,
		// so the handle is released with the DB (by Close or the cleanup), or
		// as a failed open returns.
		events = cgo.NewHandle(&eventLogger{logger: cfg.logger})
		if s := setEventListener(co, events); s != C.BITCASK_OK {
			err := statusError(s)
			releaseEvents(events)
			return nil, err
		}
	}
	var h *C.bitcask_t
	s := C.bitcask_open(cdir, co, &h)
	panicErr := progress.err()
	switch {
	case s != C.BITCASK_OK && panicErr != nil:
		err := errors.Join(panicErr, statusError(s))
		releaseEvents(events)
		return nil, err
	case s != C.BITCASK_OK:
		err := statusError(s)
		releaseEvents(events)
		return nil, err
	case panicErr != nil:
		// The caller gets no handle to close, and the directory's lock must
		// be released for the open to be retried.
		C.bitcask_close(h)
		C.bitcask_destroy(h)
		releaseEvents(events)
		return nil, panicErr
	}
	db := &DB{h: h, closing: new(atomic.Bool), events: events}
	// Only a safety net: a DB dropped without Close still releases its lock and
	// memory eventually. It cannot run while a method runs, since the method
	// keeps db reachable.
	db.cleanup = runtime.AddCleanup(db, func(r dbResources) {
		C.bitcask_destroy(r.h)
		releaseEvents(r.events)
	}, dbResources{h, events})
	return db, nil
}

// dbResources is what a DB's cleanup frees.
type dbResources struct {
	h      *C.bitcask_t
	events cgo.Handle
}

// call runs f with the handle, on a locked OS thread so that a failure's
// message can be read, under the shared lock so that Close waits for it.
func (db *DB) call(f func(h *C.bitcask_t) C.bitcask_status_t) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return errClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := f(db.h)
	runtime.KeepAlive(db)
	if s != C.BITCASK_OK {
		return statusError(s)
	}
	return nil
}

// read is call for calls that only read: an empty answer given while Close
// runs may be the keydir being emptied, so it becomes ErrClosed.
func (db *DB) read(f func(h *C.bitcask_t) C.bitcask_status_t) error {
	err := db.call(f)
	if (err == nil || err == ErrNotFound) && db.closing.Load() {
		return errClosed
	}
	return err
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	var out []byte
	err := db.read(func(h *C.bitcask_t) C.bitcask_status_t {
		var s C.bitcask_status_t
		out, s = getValue(&db.getSize, h, nil, key)
		return s
	})
	return out, err
}

// getScratchSize is the size of the pooled buffers that values read by Get
// land in before being copied out at their exact size.
const getScratchSize = 4 << 10

var getScratch = sync.Pool{New: func() any { return new([getScratchSize]byte) }}

// getValue copies the value of key into Go memory with bitcask_get (or, when
// sh is not nil, bitcask_snapshot_get), which allocates nothing: first into a
// pooled buffer (or, when the last value Get saw was larger than that, a fresh
// buffer of that size, *guess), then, only if the value did not fit, into a
// fresh buffer of the size the library reported. The slice returned is the
// caller's alone, with its length as capacity; a fresh buffer more than twice
// the value's size is copied from rather than kept.
func getValue(guess *atomic.Int64, h *C.bitcask_t, sh *C.bitcask_snapshot_t, key []byte) ([]byte, C.bitcask_status_t) {
	kp, kn := bytesPtr(key), C.size_t(len(key))
	size := int(guess.Load())
	if size == 0 {
		sp := getScratch.Get().(*[getScratchSize]byte)
		r := C.bk_get(h, sh, kp, kn, (*C.uint8_t)(unsafe.Pointer(&sp[0])), getScratchSize)
		var out []byte
		if r.status == C.BITCASK_OK {
			out = make([]byte, int(r.len))
			copy(out, sp[:r.len])
		}
		getScratch.Put(sp)
		if r.status != C.BITCASK_BUFFER_TOO_SMALL {
			return out, r.status
		}
		size = int(r.len)
	} else if s := C.bk_contains(h, sh, kp, kn); s != C.BITCASK_OK {
		// No buffer of the guessed size for a key that has no value (the
		// lookup reads no data file).
		return nil, s
	}
	// A loop: the value may be overwritten by a larger one between two calls.
	for {
		buf := make([]byte, size)
		r := C.bk_get(h, sh, kp, kn, bytesPtr(buf), C.size_t(size))
		switch r.status {
		case C.BITCASK_OK:
			n := int(r.len)
			noteGetSize(guess, n)
			if n < size/2 {
				out := make([]byte, n)
				copy(out, buf)
				return out, C.BITCASK_OK
			}
			return buf[:n:n], C.BITCASK_OK
		case C.BITCASK_BUFFER_TOO_SMALL:
			size = int(r.len)
		default:
			return nil, r.status
		}
	}
}

// noteGetSize remembers the size of a value Get read, when larger than the
// pooled buffers, as the guess for the next Get: a database of large values
// then reads each one once (with pread, a value that does not fit is read
// twice). It writes the shared word only when the guess changes.
func noteGetSize(guess *atomic.Int64, n int) {
	if n <= getScratchSize {
		n = 0
	}
	if int64(n) != guess.Load() {
		guess.Store(int64(n))
	}
}

// Has reports whether key has a value, without reading the value.
func (db *DB) Has(key []byte) (bool, error) {
	err := db.read(func(h *C.bitcask_t) C.bitcask_status_t {
		return C.bitcask_contains(h, bytesPtr(key), C.size_t(len(key)))
	})
	if err == ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// Put stores value under key. The write has reached the OS when Put returns
// (unless WithWriteBufferSize), and the disk too under SyncAlways. An empty key
// fails with ErrEmptyKey; an empty value is stored as such.
func (db *DB) Put(key, value []byte) error {
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t {
		return C.bitcask_put(h, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)))
	})
}

// NoExpiry is the TTL of a key that exists and never expires: TTL returns it
// with a nil error. It is negative, so it is never a time left.
const NoExpiry time.Duration = -1

// PutWithTTL stores value under key until ttl from now; from then on the key
// reads as absent everywhere (Get, Has, TTL, Len, iteration), and a merge drops
// the value. Expiry has whole-second granularity, rounded up: the key lives at
// least ttl and less than ttl plus one second. A later Put of the key makes it
// persistent again (unless WithDefaultTTL gives it the default). A ttl that is
// not positive, or above 2^31-1 seconds (about 68 years), fails with
// ErrInvalidOption and writes nothing. Otherwise as Put.
func (db *DB) PutWithTTL(key, value []byte, ttl time.Duration) error {
	if err := negativeTTL("ttl", ttl); err != nil {
		return err
	}
	ms := ttlMillis(ttl)
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t {
		return C.bitcask_put_ttl(h, bytesPtr(key), C.size_t(len(key)),
			bytesPtr(value), C.size_t(len(value)), C.uint64_t(ms))
	})
}

// TTL returns the time left before key expires, to the millisecond: NoExpiry
// (and a nil error) for a key that never expires, and ErrNotFound for one that
// is absent, deleted or expired. No I/O.
func (db *DB) TTL(key []byte) (time.Duration, error) {
	var ms C.uint64_t
	persistent := false
	err := db.read(func(h *C.bitcask_t) C.bitcask_status_t {
		s := C.bitcask_ttl(h, bytesPtr(key), C.size_t(len(key)), &ms)
		if s == C.BITCASK_NO_EXPIRY {
			persistent = true
			return C.BITCASK_OK
		}
		return s
	})
	switch {
	case err != nil:
		return 0, err
	case persistent:
		return NoExpiry, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Delete removes key; deleting a missing key is not an error.
func (db *DB) Delete(key []byte) error {
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t {
		return C.bitcask_delete(h, bytesPtr(key), C.size_t(len(key)))
	})
}

// Len returns the number of keys.
func (db *DB) Len() (int, error) {
	var n C.uint64_t
	err := db.read(func(h *C.bitcask_t) C.bitcask_status_t { return C.bitcask_count(h, &n) })
	return int(n), err
}

// Sync flushes buffered writes and fdatasyncs the active file, whatever the
// sync policy.
func (db *DB) Sync() error {
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t { return C.bitcask_sync(h) })
}

// Merge rewrites the sealed data files that hold dead bytes into files of live
// records and removes the old ones, giving their space back. Reads and writes
// go on meanwhile; merges run one at a time. Merges also run automatically
// (see WithAutoMerge).
func (db *DB) Merge() error {
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t { return C.bitcask_merge(h) })
}

// Backup writes a consistent copy of the database into the new directory dir
// and returns the sequence number it is a copy as of: every write up to that
// number is in it, none after. Reads, writes and merges go on meanwhile.
// Sealed data files are hard-linked when dir is on the same filesystem and
// copied otherwise; the active file is copied up to its last complete write.
// The copy is built beside dir and renamed into place once synced, so dir holds
// a whole backup, to be opened with Open like any database, or does not exist.
// Copies are paced by WithMergeBytesPerSec. A dir that exists and is not empty
// is refused with an error matching ErrIO.
func (db *DB) Backup(dir string) (uint64, error) {
	if strings.IndexByte(dir, 0) >= 0 {
		return 0, goError(CodeInvalidArgument, "path contains a NUL byte")
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var seq C.uint64_t
	err := db.call(func(h *C.bitcask_t) C.bitcask_status_t { return C.bitcask_backup(h, cdir, &seq) })
	if err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// Write applies every operation of b, or none of them, even across a crash.
// The batch is not consumed and may be written again.
func (db *DB) Write(b *Batch) error { return db.write(b, false) }

// WriteSync is Write that also fdatasyncs before returning, whatever the sync
// policy.
func (db *DB) WriteSync(b *Batch) error { return db.write(b, true) }

func (db *DB) write(b *Batch, sync bool) error {
	if b == nil {
		return goError(CodeInvalidArgument, "nil batch")
	}
	if b.err != nil {
		return b.err
	}
	return db.call(func(h *C.bitcask_t) C.bitcask_status_t {
		cb, s := b.toC()
		if s != C.BITCASK_OK {
			return s
		}
		defer C.bitcask_batch_destroy(cb)
		return C.bitcask_write_opt(h, cb, C.bool(sync), nil)
	})
}

// Stats holds the database's counters, read at one moment.
type Stats struct {
	Keys                int   // live keys (expired ones not included)
	KeydirBytes         int64 // approximate heap bytes of the in-memory keydir
	DataBytes           int64 // bytes in data files
	HintBytes           int64 // bytes in hint files
	DiskBytes           int64 // DataBytes + HintBytes
	PreallocatedBytes   int64 // allocated past the data for durable writes (WithPreallocate); not in DiskBytes
	DataFiles           int   // data files, the active one included
	DeadBytes           int64 // bytes of data files that no longer hold a current value
	Tombstones          int64 // delete records in data files (merges drop those no longer needed)
	DroppedBytesAtOpen  int64 // torn tail truncated from the last data file at open
	SalvagedBytesAtOpen int64 // bytes skipped by a WithSalvage open
	// LastSeq is the sequence number of the newest write; 0 when read-only.
	LastSeq uint64
	// LastMerge describes the last merge since open that succeeded and did
	// work, or is nil if none did.
	LastMerge *MergeStats
	// Merges counts the merges that completed since open, manual or automatic
	// (a merge with nothing to reclaim does not run, so it is not counted).
	Merges uint64
	// MergeFailures counts the merges that failed in a row up to now; 0 once a
	// merge succeeds. Automatic merging backs off while it is above 0.
	MergeFailures uint64
	// LastMergeError is the error of the newest failed merge while
	// MergeFailures is above 0, or nil. It is an *Error that matches its
	// sentinel, errors.Is(st.LastMergeError, ErrCorruption), and for an I/O
	// failure its errno, errors.Is(st.LastMergeError, syscall.ENOSPC), as the
	// error Merge returned does.
	LastMergeError error
	// Syncs counts the fdatasyncs of the active file since open (durable
	// writes, Sync, the SyncEvery thread; not those of rotation, hint files or
	// merges).
	Syncs uint64
	// Writes counts the writes (puts, deletes, batches) committed since open.
	Writes uint64
	// WriteGroups counts the appends those writes were committed in: with
	// WithWriteMerging, concurrent writes share one append and one fdatasync,
	// so it is below Writes.
	WriteGroups uint64
	// Snapshots counts the snapshots alive: those of DB.Snapshot not yet
	// closed and those of open iterators, each of which reads from one.
	Snapshots int
	// SnapshotVersions counts the versions writes kept for them: one per key
	// changed since the oldest was taken, at most one per key and snapshot;
	// 0 once none is alive.
	SnapshotVersions int64
	// Files is the space use of every data file, in ascending ID order (the
	// last is the active file): what a merge of each would reclaim. Read in a
	// separate step from the counters above, so a write, rotation or merge
	// running meanwhile can make the two disagree.
	Files []FileStats
}

// FileStats is the space use of one data file.
type FileStats struct {
	ID         uint32 // the file's id (its name is the id in ten digits, ".data")
	TotalBytes int64  // its length, header included (not a preallocated tail)
	LiveBytes  int64  // bytes of records that hold the current value of a key
	DeadBytes  int64  // everything else: overwritten and deleted values, tombstones, the header
}

// MergeStats describes one merge.
type MergeStats struct {
	FilesIn        int   // data files merged and removed
	FilesOut       int   // data files written
	BytesIn        int64 // bytes of the input files
	BytesOut       int64 // bytes of the output files
	BytesReclaimed int64 // BytesIn - BytesOut
	RecordsCopied  int64 // live records copied
	TombstonesKept int64 // tombstones kept for older files outside the merge
	ExpiredDropped int64 // expired values dropped
	Duration       time.Duration
}

// Stats returns the database's counters.
func (db *DB) Stats() (Stats, error) {
	var st Stats
	err := db.read(func(h *C.bitcask_t) C.bitcask_status_t {
		// stat reads one counter; a missing one (NOT_FOUND) reads as absent.
		var failed C.bitcask_status_t
		stat := func(which C.int32_t) (uint64, bool) {
			var v C.uint64_t
			s := C.bitcask_stat(h, which, &v)
			if s != C.BITCASK_OK && s != C.BITCASK_NOT_FOUND && failed == C.BITCASK_OK {
				failed = s
			}
			return uint64(v), s == C.BITCASK_OK
		}
		get := func(which C.int32_t) int64 { v, _ := stat(which); return int64(v) }
		st.Keys = int(get(C.BITCASK_STAT_KEYS))
		st.KeydirBytes = get(C.BITCASK_STAT_KEYDIR_BYTES)
		st.DataBytes = get(C.BITCASK_STAT_DATA_BYTES)
		st.HintBytes = get(C.BITCASK_STAT_HINT_BYTES)
		st.DiskBytes = get(C.BITCASK_STAT_DISK_BYTES)
		st.PreallocatedBytes = get(C.BITCASK_STAT_PREALLOCATED_BYTES)
		st.DataFiles = int(get(C.BITCASK_STAT_DATA_FILES))
		st.DeadBytes = get(C.BITCASK_STAT_DEAD_BYTES)
		st.Tombstones = get(C.BITCASK_STAT_TOMBSTONES)
		st.DroppedBytesAtOpen = get(C.BITCASK_STAT_DROPPED_BYTES_AT_OPEN)
		st.SalvagedBytesAtOpen = get(C.BITCASK_STAT_SALVAGED_BYTES_AT_OPEN)
		st.LastSeq = uint64(get(C.BITCASK_STAT_LAST_SEQ))
		if in, ok := stat(C.BITCASK_STAT_LAST_MERGE_FILES_IN); ok {
			st.LastMerge = &MergeStats{
				FilesIn:        int(in),
				FilesOut:       int(get(C.BITCASK_STAT_LAST_MERGE_FILES_OUT)),
				BytesIn:        get(C.BITCASK_STAT_LAST_MERGE_BYTES_IN),
				BytesOut:       get(C.BITCASK_STAT_LAST_MERGE_BYTES_OUT),
				BytesReclaimed: get(C.BITCASK_STAT_LAST_MERGE_BYTES_RECLAIMED),
				RecordsCopied:  get(C.BITCASK_STAT_LAST_MERGE_RECORDS_COPIED),
				TombstonesKept: get(C.BITCASK_STAT_LAST_MERGE_TOMBSTONES_KEPT),
				ExpiredDropped: get(C.BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED),
				Duration:       time.Duration(get(C.BITCASK_STAT_LAST_MERGE_DURATION_US)) * time.Microsecond,
			}
		}
		st.Merges = uint64(get(C.BITCASK_STAT_MERGES))
		st.MergeFailures = uint64(get(C.BITCASK_STAT_MERGE_FAILURES))
		st.Syncs = uint64(get(C.BITCASK_STAT_SYNCS))
		st.Writes = uint64(get(C.BITCASK_STAT_WRITES))
		st.WriteGroups = uint64(get(C.BITCASK_STAT_WRITE_GROUPS))
		st.Snapshots = int(get(C.BITCASK_STAT_SNAPSHOTS))
		st.SnapshotVersions = get(C.BITCASK_STAT_SNAPSHOT_VERSIONS)
		var fs C.bitcask_status_t
		if st.Files, fs = fileStats(h); fs != C.BITCASK_OK && failed == C.BITCASK_OK {
			failed = fs
		}
		var code C.bitcask_status_t
		var msg *C.char
		var errno C.int
		switch s := C.bitcask_last_merge_error(h, &code, &msg, &errno); s {
		case C.BITCASK_OK:
			// Built like statusError's: the sentinel and the errno both match.
			st.LastMergeError = &Error{
				Code:    Code(code),
				Message: C.GoString(msg),
				Errno:   syscall.Errno(errno),
			}
			C.bitcask_free(unsafe.Pointer(msg))
		case C.BITCASK_NOT_FOUND:
		default:
			if failed == C.BITCASK_OK {
				failed = s
			}
		}
		return failed
	})
	if err != nil {
		return Stats{}, err
	}
	return st, nil
}

// fileStats reads the space use of every data file: it asks the count, then
// reads into a buffer of that size, again while the count grew in between (a
// rotation or a merge adds files).
func fileStats(h *C.bitcask_t) ([]FileStats, C.bitcask_status_t) {
	var n C.size_t
	s := C.bitcask_file_stats(h, nil, 0, &n)
	for s == C.BITCASK_BUFFER_TOO_SMALL {
		buf := make([]C.bitcask_file_stats_t, n)
		s = C.bitcask_file_stats(h, &buf[0], C.size_t(len(buf)), &n)
		if s == C.BITCASK_OK {
			files := make([]FileStats, n)
			for i, f := range buf[:n] {
				files[i] = FileStats{
					ID:         uint32(f.id),
					TotalBytes: int64(f.total_bytes),
					LiveBytes:  int64(f.live_bytes),
					DeadBytes:  int64(f.dead_bytes),
				}
			}
			return files, s
		}
	}
	return nil, s
}

// Close flushes and syncs outstanding writes, stops background work and
// releases the directory's lock. It waits for calls in progress on other
// goroutines; calls after it fail with ErrClosed. Closing again is a no-op that
// returns nil. Iterators and snapshots still open report ErrClosed and must
// still be closed.
func (db *DB) Close() error {
	// bitcask_close may run beside other calls (only destroy may not), so it is
	// done under the shared lock: a long Merge elsewhere is told to stop rather
	// than waited for before closing starts.
	var err error
	db.mu.RLock()
	if db.h != nil {
		db.closing.Store(true)
		runtime.LockOSThread()
		if s := C.bitcask_close(db.h); s != C.BITCASK_OK {
			err = statusError(s)
		}
		runtime.UnlockOSThread()
	}
	db.mu.RUnlock()

	db.mu.Lock()
	defer db.mu.Unlock()
	if db.h != nil {
		db.cleanup.Stop()
		C.bitcask_destroy(db.h)
		db.h = nil
		// Every event has been delivered: bitcask_close waited for the
		// background thread, and the exclusive lock for the other calls.
		releaseEvents(db.events)
		db.events = 0
	}
	return err
}

// Version returns the version of the linked library, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.bitcask_version()) }

// FormatVersion returns the on-disk format version the library reads and writes.
func FormatVersion() int { return int(C.bitcask_format_version()) }

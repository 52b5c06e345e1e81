// Package bitcask is the Go binding of libbitcask, a Bitcask storage engine (a
// log-structured hash table) written in Rust and linked in through cgo.
//
// A database is a directory. Every write appends a checksummed record to the
// active data file and an in-memory keydir maps each key to its newest value,
// so a Get is one lookup plus one read of the value. Keys (only they live in
// memory) are kept in order, which gives range and prefix scans.
//
//	db, err := bitcask.Open("/var/lib/myapp/db", bitcask.WithSync(bitcask.SyncAlways))
//	if err != nil { ... }
//	defer db.Close()
//	err = db.Put([]byte("user:1"), []byte("alice"))
//	v, err := db.Get([]byte("user:1"))        // errors.Is(err, bitcask.ErrNotFound)
//	for e, err := range db.Prefix([]byte("user:")) { ... } // e.Key, e.Value; see Iteration
//	for k, err := range db.KeysPrefix([]byte("user:")) { ... } // no value read
//	err = db.PutWithTTL([]byte("session:9"), token, time.Hour)
//	left, err := db.TTL([]byte("session:9"))  // about an hour
//
// The package is a thin layer over the C API (include/bitcask.h): storage,
// validation and concurrency control are the engine's.
//
// # Memory
//
// Slices passed in are read only during the call; the library copies what it
// keeps. Slices returned (by Get, and the keys and values of every iteration)
// are fresh copies owned by the caller.
//
// # Reads
//
// Values are read through read-only memory maps of the data files by default,
// so a Get is a lookup and a copy with no system call; WithMmap(false) reads
// with pread(2) instead, which turns a failing disk into ErrIO rather than a
// SIGBUS that kills the process (see WithMmap). Iterators read a value only
// when it is asked for: Keys, KeysRange and KeysPrefix, and an Iterator used
// with Key alone, read no data file.
//
// # Iteration
//
// All, Range and Prefix (keys and values) and Keys, KeysRange and KeysPrefix
// (keys alone) are range-over-func sequences that yield the error in the
// loop: iter.Seq2[Entry, error] and iter.Seq2[[]byte, error].
//
//	for e, err := range db.Prefix([]byte("user:")) {
//		if err != nil {
//			return err // ErrClosed, ErrCorruption, ErrIO, ...
//		}
//		fmt.Printf("%s = %s\n", e.Key, e.Value)
//	}
//
// Each step yields an entry and a nil error. A failure (the DB closed
// meanwhile, a value that cannot be read, an I/O error) is yielded once, with
// a zero Entry (a nil key), as the last step; a loop that ends without one
// has seen its whole range. This is the common shape of Go sequences that can
// fail (the Google Cloud client libraries' iter.Seq2[T, error], for one),
// chosen over the two others for what each leaves to the caller: an Err
// method to call after the loop (bufio.Scanner, database/sql.Rows) is easily
// forgotten, and a loop that forgets it ends early on a damaged record as if
// the range were done; a panic would turn a damaged record or a concurrent
// Close into a crash. Here the error is a loop variable, which the compiler
// requires to be used once named. Its one gap is that of every
// iter.Seq2[T, error]: a loop with a single variable, for e := range
// db.All(), compiles and drops the error, so always write two.
//
// Walk and WalkPrefix are the callback form: f(key, value) for each entry,
// stopping at the first error f returns, which they return, as bbolt's
// Bucket.ForEach. They were named Fold and Scan until those names were found
// to mean something else in prologic/bitcask, the best known Go Bitcask,
// whose Fold(func(key []byte) error) and Scan(prefix, func(key []byte) error)
// call back with keys alone (Keys and KeysPrefix here); bbolt's name,
// ForEach, is keys alone in prologic/bitcask v2.
//
// NewIterator is the explicit cursor, as pebble's Iterator or a bbolt Cursor:
// First, Seek, Next and Prev, with Err to check after a loop that ends on
// Valid. Every iteration reads the database as of its start: writes made
// during the loop, by the loop or elsewhere, are not seen.
//
// # Snapshots
//
// DB.Snapshot takes a read view as of the last write, copying nothing: the
// Snapshot's Get, Has, Len and iterations (the DB's, with the same signatures)
// see exactly the writes up to its Seq, whatever writes and merges follow. It
// is safe for concurrent use, outlives its DB (reads then fail with
// ErrClosed) and must be closed: while it is open, writes keep what they
// replace for it (Stats.SnapshotVersions) and merged-away files stay open.
// Every iteration of a DB reads from a snapshot of its own, taken as it
// starts.
//
// # Durable writes
//
// With WithSync(SyncAlways), or a batch written with WriteSync, a write returns
// once fdatasync has made it durable. By default (WithPreallocate) the active
// data file is then kept zero-filled ahead of the writes and the next file is
// made ahead, so that such an fdatasync commits only data, no file metadata;
// Stats.PreallocatedBytes says how much space that holds past the data, and
// files are trimmed to their data when sealed or closed.
//
// # Expiry
//
// PutWithTTL and Batch.PutWithTTL write a key that expires after a time to
// live, and WithDefaultTTL gives one to every plain Put. An expired key reads
// as absent everywhere (Get, Has, Len, iteration) and merges drop its value.
// Expiry has whole-second granularity, rounded up: a key lives at least its
// TTL and less than one second more. TTL reports the time left, NoExpiry for
// a key without a TTL, and ErrNotFound for a key that is absent or expired.
//
// # Events
//
// WithLogger logs what the database does on its own or finds at open on a
// log/slog logger: completed merges (INFO), failed ones, bytes dropped or
// salvaged at open and slow fdatasyncs (WARN), and writes refused after a
// failed write or fdatasync (ERROR). Each record's message is the event's
// name, with the attributes event, file, offset, bytes, duration and error
// (an *Error matching its sentinel) when the event has them; records come from
// the library's threads, all before Close returns. WithSlowSyncThreshold sets
// what counts as a slow fdatasync (default 1s).
//
//	db, err := bitcask.Open(dir, bitcask.WithLogger(slog.Default()))
//
// # Errors
//
// Failures are *Error values carrying the library's message; each matches one
// sentinel (ErrCorruption, ErrLocked, ...) with errors.Is. Get of a missing key
// returns ErrNotFound itself. Open with WithCreateIfMissing(false) fails with
// ErrDatabaseNotFound where there is no database, and with WithErrorIfExists(true)
// with ErrDatabaseExists where there is one; these also match fs.ErrNotExist and
// fs.ErrExist. The one exception is a panic in the function of
// WithOpenProgress, which Open reports as an error of its own.
//
// # Building
//
// By default the package links target/release/libbitcask.a of this source tree
// statically (run `make` at the repository root first), so Go binaries carry the
// engine. To use a library installed with `make install` instead, build with
// -tags bitcask_pkgconfig, which takes the flags from pkg-config's bitcask.pc and
// links libbitcask.so.
//
// A released version (make dist-go) carries the engine itself: a stripped
// libbitcask.a prebuilt for linux/amd64 and the header, linked statically in
// place of target/release, so it builds with Go and a C compiler alone, no
// Rust. On another platform it needs an installed library and
// -tags bitcask_pkgconfig.
package bitcask

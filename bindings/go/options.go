package bitcask

/*
#include <stdint.h>
#include <bitcask.h>

// Exported by progress.go; cgo's prototype of it has no const.
extern void goOpenProgress(bitcask_progress_t *p, uintptr_t h);

static void bk_open_progress(const bitcask_progress_t *p, void *user_data) {
	goOpenProgress((bitcask_progress_t *)p, (uintptr_t)user_data);
}

// The handle crosses as an integer and becomes user_data here: converting it
// to a pointer on the Go side is what go vet (rightly) flags.
static bitcask_status_t bk_set_open_progress(bitcask_options_t *o, uintptr_t h) {
	return bitcask_options_set_open_progress(o, bk_open_progress, (void *)h);
}

// Exported by events.go, as goOpenProgress is by progress.go.
extern void goEvent(bitcask_event_t *e, uintptr_t h);

static void bk_event(const bitcask_event_t *e, void *user_data) {
	goEvent((bitcask_event_t *)e, (uintptr_t)user_data);
}

static bitcask_status_t bk_set_event_listener(bitcask_options_t *o, uintptr_t h) {
	return bitcask_options_set_event_listener(o, bk_event, (void *)h);
}
*/
import "C"

import (
	"fmt"
	"log/slog"
	"runtime/cgo"
	"time"
)

// Option configures Open. Values are checked by the library when the database
// opens: an out-of-range one fails Open with ErrInvalidOption naming the option.
type Option func(*config)

// config collects C option setters so that Open applies them to one
// bitcask_options_t; the Go side only rejects what cannot be converted.
type config struct {
	setters []func(*C.bitcask_options_t)
	err     error
	// progress is kept apart from the setters: its handle must live exactly as
	// long as one bitcask_open call, which only Open sees.
	progress func(Progress)
	// logger is kept apart too: its handle must live as long as the database,
	// which only Open and Close see. nil installs no listener.
	logger *slog.Logger
}

func (c *config) set(f func(*C.bitcask_options_t)) { c.setters = append(c.setters, f) }

// unsigned converts a size option, refusing negatives, which would otherwise
// wrap to a huge number with a confusing message.
func (c *config) unsigned(name string, v int64) uint64 {
	if v < 0 && c.err == nil {
		c.err = goError(CodeInvalidOption, fmt.Sprintf("invalid option %s: %d is negative", name, v))
	}
	return uint64(v)
}

// SyncPolicy decides when writes reach the disk: SyncNever, SyncAlways or
// SyncEvery. Whatever the policy, a write has reached the OS when it returns
// (unless WithWriteBufferSize), so a process crash loses nothing acknowledged;
// the policy decides what a power loss may take.
type SyncPolicy struct {
	mode     C.int32_t
	interval time.Duration
}

var (
	// SyncNever leaves syncing to the OS (the default).
	SyncNever = SyncPolicy{mode: C.BITCASK_SYNC_NEVER}
	// SyncAlways fdatasyncs before every write returns; concurrent writers share
	// one fsync.
	SyncAlways = SyncPolicy{mode: C.BITCASK_SYNC_ALWAYS}
)

// SyncEvery syncs in the background at most d apart, rounded up to whole
// milliseconds; d must be positive.
func SyncEvery(d time.Duration) SyncPolicy {
	return SyncPolicy{mode: C.BITCASK_SYNC_EVERY_MS, interval: d}
}

// WithSync sets the sync policy (default SyncNever).
func WithSync(p SyncPolicy) Option {
	return func(c *config) {
		var ms uint64
		if p.interval > 0 {
			ms = uint64((p.interval + time.Millisecond - 1) / time.Millisecond)
		}
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_sync(o, p.mode, C.uint64_t(ms)) })
	}
}

// WithMaxFileSize sets the size at which the active data file is sealed and a
// new one started (default 128 MiB; 1024 bytes to 2 GiB).
func WithMaxFileSize(n int64) Option {
	return func(c *config) {
		v := c.unsigned("max_file_size", n)
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_max_file_size(o, C.uint64_t(v)) })
	}
}

// WithMaxKeySize sets the largest key accepted (default 4096; 1 to 65535).
func WithMaxKeySize(n int) Option {
	return func(c *config) {
		v := c.unsigned("max_key_size", int64(n))
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_max_key_size(o, C.size_t(v)) })
	}
}

// WithMaxValueSize sets the largest value accepted (default 64 MiB; at most
// 1 GiB).
func WithMaxValueSize(n int) Option {
	return func(c *config) {
		v := c.unsigned("max_value_size", int64(n))
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_max_value_size(o, C.size_t(v)) })
	}
}

// WithWriteBufferSize holds up to n bytes of writes in memory before a write(2)
// (default 0). A buffer speeds bulk loads, at the price of losing at most its
// contents if the process crashes; Sync and Close flush it.
func WithWriteBufferSize(n int) Option {
	return func(c *config) {
		v := c.unsigned("write_buffer_size", int64(n))
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_write_buffer_size(o, C.size_t(v)) })
	}
}

// WithWriteMerging sets whether concurrent writers share one append and one
// fsync (group commit; default true).
func WithWriteMerging(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_write_merging(o, C.bool(on)) })
	}
}

// WithMmap sets whether values are read through read-only memory maps of the
// data files (default true), so that a read makes no system call; false reads
// them with pread(2).
//
// With maps, an I/O error while the kernel pages a file in, or a data file cut
// short by another program, raises SIGBUS instead of returning ErrIO. The
// fault happens in the library's code, where Go cannot recover it (not even
// with debug.SetPanicOnFault): the process dies. Choose false to have such
// failures returned as errors, for instance on an unreliable disk or a network
// filesystem.
func WithMmap(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_mmap(o, C.bool(on)) })
	}
}

// WithPreallocate sets whether durable writes get their space ahead (default
// true): once a durable write is made (SyncAlways, or a batch written with
// sync), the active data file is kept zero-filled ahead of the writes and the
// next file is made ahead, so that a durable write's fdatasync commits no file
// metadata. It costs up to 13 MiB allocated past the data
// (Stats.PreallocatedBytes); files are trimmed to their data when sealed or
// closed. With false every data file grows with its writes.
func WithPreallocate(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_preallocate(o, C.bool(on)) })
	}
}

// WithCreateIfMissing sets whether Open creates the database when the
// directory holds none (default true). With false, an Open that finds no data
// file there (a missing directory included) fails with ErrDatabaseNotFound
// (which also matches fs.ErrNotExist) and creates nothing, so that a mistyped
// path is not a new, empty database.
func WithCreateIfMissing(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_create_if_missing(o, C.bool(on)) })
	}
}

// WithErrorIfExists sets whether Open fails when the directory already holds
// a database (default false). With true, an Open that finds a data file there
// fails with ErrDatabaseExists (which also matches fs.ErrExist) and leaves the
// database untouched.
func WithErrorIfExists(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_error_if_exists(o, C.bool(on)) })
	}
}

// WithReadOnly opens without the writer lock, so that several processes may
// read; every write then fails with ErrReadOnly.
func WithReadOnly() Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_read_only(o, true) })
	}
}

// WithSalvage makes Open skip corrupt records of sealed files instead of
// failing with ErrCorruption; Stats().SalvagedBytesAtOpen says how much.
func WithSalvage() Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_salvage(o, true) })
	}
}

// WithAutoMerge sets whether merges run in the background when a trigger fires
// (default true); DB.Merge works either way.
func WithAutoMerge(on bool) Option {
	return func(c *config) {
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_auto_merge(o, C.bool(on)) })
	}
}

// WithMergeTriggerDeadBytes sets the dead bytes of one file that trigger a
// merge (default 512 MiB).
func WithMergeTriggerDeadBytes(n int64) Option {
	return func(c *config) {
		v := c.unsigned("merge_trigger_dead_bytes", n)
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_merge_trigger_dead_bytes(o, C.uint64_t(v)) })
	}
}

// WithMergeTriggerTotalDeadBytes sets the dead bytes over all sealed files that
// trigger a merge (default 512 MiB).
func WithMergeTriggerTotalDeadBytes(n int64) Option {
	return func(c *config) {
		v := c.unsigned("merge_trigger_total_dead_bytes", n)
		c.set(func(o *C.bitcask_options_t) {
			C.bitcask_options_set_merge_trigger_total_dead_bytes(o, C.uint64_t(v))
		})
	}
}

// WithMergeTriggerFragmentation sets the percentage of dead bytes in one file
// that triggers a merge (default 60; 0 to 100).
func WithMergeTriggerFragmentation(percent int) Option {
	return func(c *config) {
		v := c.unsigned("merge_trigger_fragmentation", int64(percent))
		c.set(func(o *C.bitcask_options_t) {
			C.bitcask_options_set_merge_trigger_fragmentation(o, C.uint32_t(min(v, 1<<32-1)))
		})
	}
}

// WithMergeThresholdDeadBytes sets the dead bytes from which a file is included
// once a merge runs (default 128 MiB).
func WithMergeThresholdDeadBytes(n int64) Option {
	return func(c *config) {
		v := c.unsigned("merge_threshold_dead_bytes", n)
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_merge_threshold_dead_bytes(o, C.uint64_t(v)) })
	}
}

// WithMergeThresholdFragmentation sets the percentage of dead bytes from which
// a file is included once a merge runs (default 40; 0 to 100).
func WithMergeThresholdFragmentation(percent int) Option {
	return func(c *config) {
		v := c.unsigned("merge_threshold_fragmentation", int64(percent))
		c.set(func(o *C.bitcask_options_t) {
			C.bitcask_options_set_merge_threshold_fragmentation(o, C.uint32_t(min(v, 1<<32-1)))
		})
	}
}

// WithMergeBytesPerSec caps merge reads plus writes, in bytes per second
// (default 0: no cap).
func WithMergeBytesPerSec(n int64) Option {
	return func(c *config) {
		v := c.unsigned("merge_bytes_per_sec", n)
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_merge_bytes_per_sec(o, C.uint64_t(v)) })
	}
}

// WithMergeCheckInterval sets how often the background thread checks the merge
// triggers (default 1s; rounded up to whole milliseconds, at least 1ms).
func WithMergeCheckInterval(d time.Duration) Option {
	return func(c *config) {
		var ms uint64
		if d > 0 {
			ms = uint64((d + time.Millisecond - 1) / time.Millisecond)
		}
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_merge_check_interval_ms(o, C.uint64_t(ms)) })
	}
}

// WithDefaultTTL gives every put that names no TTL of its own (Put, Batch.Put)
// an expiry d after its write, as PutWithTTL does; 0 (the default) means none:
// such keys never expire. d is rounded up to whole milliseconds; a negative d,
// or one above 2^31-1 seconds, fails Open with ErrInvalidOption.
func WithDefaultTTL(d time.Duration) Option {
	return func(c *config) {
		if err := negativeTTL("default_ttl", d); err != nil && c.err == nil {
			c.err = err
		}
		ms := ttlMillis(d)
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_default_ttl(o, C.uint64_t(ms)) })
	}
}

// WithOpenProgress makes Open call fn once per data file it has loaded, so that
// a long open can report how far it has got: FilesDone counts from 1 to
// FilesTotal and BytesDone grows to BytesTotal, which the last call reaches. A
// nil fn removes an earlier one.
//
// fn may be called from threads the library starts rather than from the
// goroutine calling Open, so what it shares needs the usual synchronization;
// but it is never called twice at once, and only before Open returns. It must not use the DB being opened (Open has not returned it yet)
// nor call runtime.Goexit (t.FailNow in a test): record what it needs and
// check that after Open.
//
// If fn panics, the open still completes (later calls are skipped), then Open
// closes the database again and returns an error that says so, wrapping the
// panic value when it is an error; the directory can be opened again.
func WithOpenProgress(fn func(Progress)) Option {
	return func(c *config) { c.progress = fn }
}

// WithLogger logs the database's events on logger: merges that completed or
// failed, writes refused after a failed write or fdatasync, bytes dropped (a
// torn tail) or salvaged (WithSalvage) at open, and fdatasyncs of the active
// file slower than WithSlowSyncThreshold. A nil logger removes an earlier
// one; without one (the default) no listener is installed and events cost
// nothing.
//
// Each event is one record whose message is the event's name
// ("dropped_at_open", "merge_completed", "merge_failed", "writes_refused",
// "salvaged_at_open", "slow_sync"), at a level that follows it:
// slog.LevelInfo for merge_completed, slog.LevelError for writes_refused and
// slog.LevelWarn for the others. Its attributes are those the event has:
//
//	event     string         the name again, for handlers that filter on attributes
//	file      string         the data file concerned
//	offset    uint64         a byte offset in file
//	bytes     uint64         bytes dropped, salvaged or given back by a merge
//	duration  time.Duration  of a merge or an fdatasync (microsecond precision)
//	error     error          an *Error matching its sentinel with errors.Is
//	                         (errors.Is(err, ErrCorruption)); it carries no errno
//
// An attribute the event does not have is left out. Use logger.With to tell
// databases apart (logger.With("db", dir)).
//
// Records are made on whichever thread the library reports from (its
// background thread; the goroutine calling Open, for what Open finds). They
// come one at a time per database and may arrive shortly after the call that caused them, but all
// have been handled when Close returns. The logger's handler runs while the
// library waits, so a slow one (a network write) delays the hint files and
// SyncEvery syncs queued behind it; such a handler should hand records off. A
// panic in the handler is recovered and the record dropped; the handler must
// not call runtime.Goexit.
func WithLogger(logger *slog.Logger) Option {
	return func(c *config) { c.logger = logger }
}

// WithSlowSyncThreshold sets how long an fdatasync of the active file must
// take to be logged as a slow_sync event by WithLogger (default 1s); d is
// rounded up to whole milliseconds, 0 reports every such fdatasync and a
// negative d none.
func WithSlowSyncThreshold(d time.Duration) Option {
	return func(c *config) {
		ms := int64(-1)
		if d >= 0 {
			ms = int64(d / time.Millisecond)
			if d%time.Millisecond != 0 {
				ms++
			}
		}
		c.set(func(o *C.bitcask_options_t) { C.bitcask_options_set_slow_sync_ms(o, C.int64_t(ms)) })
	}
}

// setEventListener points the options' event listener at h (goEvent). It is
// here because only this file's preamble defines the C shim.
func setEventListener(o *C.bitcask_options_t, h cgo.Handle) C.bitcask_status_t {
	return C.bk_set_event_listener(o, C.uintptr_t(h))
}

// setOpenProgress points the options' progress callback at h. It is here
// because only this file's preamble defines the C shim.
func setOpenProgress(o *C.bitcask_options_t, h cgo.Handle) C.bitcask_status_t {
	return C.bk_set_open_progress(o, C.uintptr_t(h))
}

// ttlMillis converts a TTL to the C API's milliseconds, rounded up so that a
// positive TTL stays positive; 0 for a TTL that is not positive, which the
// library refuses where a TTL is required.
func ttlMillis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	ms := uint64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// negativeTTL refuses a negative TTL on the Go side, which would otherwise
// reach the library as 0 and be reported as such.
func negativeTTL(name string, d time.Duration) error {
	if d >= 0 {
		return nil
	}
	return goError(CodeInvalidOption, fmt.Sprintf("invalid option %s: %v is negative", name, d))
}

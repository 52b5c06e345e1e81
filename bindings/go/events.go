package bitcask

// As in progress.go, the C shim that calls back into goEvent lives in
// options.go, since a file with //export may only declare in its preamble.

// #include <stdint.h>
// #include <bitcask.h>
import "C"

import (
	"context"
	"log/slog"
	"math"
	"runtime/cgo"
	"time"
)

// eventKind is a bitcask_event_kind_t.
type eventKind int32

const (
	eventMergeCompleted eventKind = C.BITCASK_EVENT_MERGE_COMPLETED
	eventMergeFailed    eventKind = C.BITCASK_EVENT_MERGE_FAILED
	eventWritesRefused  eventKind = C.BITCASK_EVENT_WRITES_REFUSED
	eventDroppedAtOpen  eventKind = C.BITCASK_EVENT_DROPPED_AT_OPEN
	eventSalvagedAtOpen eventKind = C.BITCASK_EVENT_SALVAGED_AT_OPEN
	eventSlowSync       eventKind = C.BITCASK_EVENT_SLOW_SYNC
)

// eventNoValue is BITCASK_EVENT_NO_VALUE: a numeric field the event lacks.
const eventNoValue = uint64(C.BITCASK_EVENT_NO_VALUE)

// level is the slog level of an event of kind k, the engine's own: a completed
// merge is information, refused writes an error of the database, the rest
// (and kinds newer than this package) warnings.
func (k eventKind) level() slog.Level {
	switch k {
	case eventMergeCompleted:
		return slog.LevelInfo
	case eventWritesRefused:
		return slog.LevelError
	default:
		return slog.LevelWarn
	}
}

// event is a bitcask_event_t copied into Go memory.
type event struct {
	kind       eventKind
	name       string
	file       string // "" when none
	offset     uint64 // eventNoValue when none, as bytes and durationUS
	bytes      uint64
	durationUS uint64
	code       Code // CodeOK when none
	errMessage string
}

// copyEvent copies what the record needs out of e, which is valid only during
// the callback.
func copyEvent(e *C.bitcask_event_t) event {
	ev := event{
		kind:       eventKind(e.kind),
		name:       C.GoString(e.name),
		offset:     uint64(e.offset),
		bytes:      uint64(e.bytes),
		durationUS: uint64(e.duration_us),
		code:       Code(e.error),
	}
	if e.file != nil {
		ev.file = C.GoString(e.file)
	}
	if e.error_message != nil {
		ev.errMessage = C.GoString(e.error_message)
	}
	return ev
}

// err is the event's error as the package returns failures (see statusError),
// or nil. The C event carries no errno.
func (ev *event) err() error {
	switch ev.code {
	case CodeOK:
		return nil
	case CodeNotFound:
		return ErrNotFound
	}
	return &Error{Code: ev.code, Message: ev.errMessage}
}

// record is the slog record of the event, with the attributes it has.
func (ev *event) record(t time.Time, level slog.Level) slog.Record {
	r := slog.NewRecord(t, level, ev.name, 0)
	r.AddAttrs(slog.String("event", ev.name))
	if ev.file != "" {
		r.AddAttrs(slog.String("file", ev.file))
	}
	if ev.offset != eventNoValue {
		r.AddAttrs(slog.Uint64("offset", ev.offset))
	}
	if ev.bytes != eventNoValue {
		r.AddAttrs(slog.Uint64("bytes", ev.bytes))
	}
	if ev.durationUS != eventNoValue {
		us := min(ev.durationUS, uint64(math.MaxInt64/time.Microsecond))
		r.AddAttrs(slog.Duration("duration", time.Duration(us)*time.Microsecond))
	}
	if err := ev.err(); err != nil {
		r.AddAttrs(slog.Any("error", err))
	}
	return r
}

// eventLogger is what the C user_data of the event listener stands for,
// through a cgo.Handle that the DB releases once the library is done with it.
type eventLogger struct {
	logger *slog.Logger
}

// log hands the event to the logger if it wants its level.
func (l *eventLogger) log(e *C.bitcask_event_t) {
	ctx := context.Background()
	level := eventKind(e.kind).level()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	ev := copyEvent(e)
	// The handler is called directly rather than through Logger.Log, which
	// would record this function as the source of the record.
	_ = l.logger.Handler().Handle(ctx, ev.record(time.Now(), level))
}

// goEvent is the listener, called by the library from any thread, one call at
// a time per database. A panic must not leave it: Go cannot unwind the
// library's Rust frames, and on the library's thread no Go caller could
// recover it, so the process would die. It is dropped, with the record; so is
// a call for a handle already released, should the library make one.
//
//export goEvent
func goEvent(e *C.bitcask_event_t, h C.uintptr_t) {
	defer func() { _ = recover() }()
	cgo.Handle(h).Value().(*eventLogger).log(e)
}

// releaseEvents releases the event listener's handle, if any, once the
// library can no longer call it: after bitcask_destroy, or a failed
// bitcask_open.
func releaseEvents(h cgo.Handle) {
	if h != 0 {
		h.Delete()
	}
}

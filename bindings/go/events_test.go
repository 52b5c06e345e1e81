package bitcask

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a slog.Handler that keeps the records at or above its level.
// Events come from threads of the library, so it is guarded and tests poll
// it.
type recorder struct {
	level slog.Level

	mu      sync.Mutex
	records []slog.Record
	// enabled counts the calls of Enabled, to see that the listener ran for
	// events below the level.
	enabled int
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enabled++
	return l >= r.level
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// The tests log on the handler itself, not on a derived one.
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { panic("recorder.WithAttrs") }
func (r *recorder) WithGroup(string) slog.Handler      { panic("recorder.WithGroup") }

func newRecorder() (*recorder, *slog.Logger) {
	r := &recorder{level: slog.LevelDebug}
	return r, slog.New(r)
}

// of returns the records of event name.
func (r *recorder) of(name string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.records {
		if attrs(rec)["event"].String() == name {
			out = append(out, rec)
		}
	}
	return out
}

func (r *recorder) all() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.records...)
}

// waitFor polls for the first record of event name: events reach the logger
// from the database's background thread, after the call that caused them.
func (r *recorder) waitFor(t *testing.T, name string) slog.Record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if recs := r.of(name); len(recs) > 0 {
			return recs[0]
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, rec := range r.all() {
				seen = append(seen, rec.Message)
			}
			t.Fatalf("no %s record within 20s; saw %v", name, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attrs returns a record's attributes by key.
func attrs(rec slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value
		return true
	})
	return m
}

// attrKeys returns the sorted keys of a record's attributes.
func attrKeys(rec slog.Record) []string {
	var keys []string
	for k := range attrs(rec) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tornTail writes a database in dir, closes it and appends garbage to its last
// data file (removing that file's hint, so that the open reads the file). It
// returns the file, its size before the garbage and the garbage's length.
func tornTail(t *testing.T, dir string) (file string, size int64, garbage int) {
	t.Helper()
	db, err := Open(dir, WithAutoMerge(false))
	must(t, err)
	for i := range 100 {
		must(t, db.Put(fmt.Appendf(nil, "k%03d", i), bytes.Repeat([]byte{'v'}, 50)))
	}
	must(t, db.Close())
	files, err := filepath.Glob(filepath.Join(dir, "*.data"))
	must(t, err)
	sort.Strings(files)
	file = files[len(files)-1]
	if err := os.Remove(strings.TrimSuffix(file, ".data") + ".hint"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	must(t, err)
	// Not a record, and not zeros either, which would pass for preallocated
	// space rather than dropped data.
	junk := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 9)
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write(junk)
	must(t, err)
	must(t, f.Close())
	return file, fi.Size(), len(junk)
}

func TestEventsBytesDroppedAtOpenAreAWarningWithFileOffsetAndBytes(t *testing.T) {
	dir := t.TempDir()
	file, size, garbage := tornTail(t, dir)

	rec, logger := newRecorder()
	db := open(t, dir, WithAutoMerge(false), WithLogger(logger))
	r := rec.waitFor(t, "dropped_at_open")
	if r.Level != slog.LevelWarn || r.Message != "dropped_at_open" {
		t.Errorf("record %v %q, want WARN dropped_at_open", r.Level, r.Message)
	}
	a := attrs(r)
	if got := strings.Join(attrKeys(r), ","); got != "bytes,event,file,offset" {
		t.Errorf("attributes %s, want bytes,event,file,offset", got)
	}
	if a["file"].Kind() != slog.KindString || a["file"].String() != file {
		t.Errorf("file = %v, want %s", a["file"], file)
	}
	if a["offset"].Kind() != slog.KindUint64 || a["offset"].Uint64() != uint64(size) {
		t.Errorf("offset = %v, want %d (the file's size before the garbage)", a["offset"], size)
	}
	if a["bytes"].Kind() != slog.KindUint64 || a["bytes"].Uint64() != uint64(garbage) {
		t.Errorf("bytes = %v, want %d", a["bytes"], garbage)
	}
	st, err := db.Stats()
	must(t, err)
	if st.DroppedBytesAtOpen != int64(garbage) || st.Keys != 100 {
		t.Errorf("Stats: DroppedBytesAtOpen %d, Keys %d; want %d, 100", st.DroppedBytesAtOpen, st.Keys, garbage)
	}
	must(t, db.Close())
	if n := len(rec.of("dropped_at_open")); n != 1 {
		t.Errorf("%d dropped_at_open records, want 1", n)
	}
}

func TestEventsReadOnlyOpenLogsDroppedBytesBeforeItReturns(t *testing.T) {
	dir := t.TempDir()
	_, _, garbage := tornTail(t, dir)

	// Without a background thread the opening thread delivers the event,
	// calling back into the goroutine that called Open.
	rec, logger := newRecorder()
	db := open(t, dir, WithReadOnly(), WithLogger(logger))
	recs := rec.of("dropped_at_open")
	if len(recs) != 1 || attrs(recs[0])["bytes"].Uint64() != uint64(garbage) {
		t.Fatalf("records when Open returned: %v", rec.all())
	}
	if v, err := db.Get([]byte("k099")); err != nil || len(v) != 50 {
		t.Fatalf("Get(k099) = %q, %v", v, err)
	}
}

func TestEventsReachAJSONHandlerWithTheirAttributes(t *testing.T) {
	dir := t.TempDir()
	file, size, garbage := tornTail(t, dir)

	var out lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	must(t, open(t, dir, WithLogger(logger)).Close())

	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("logged %q, want one line", out.String())
	}
	m := lines[0]
	delete(m, "time")
	want := map[string]any{
		"level":  "WARN",
		"msg":    "dropped_at_open",
		"event":  "dropped_at_open",
		"file":   file,
		"offset": float64(size),
		"bytes":  float64(garbage),
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("logged %v, want %v", m, want)
	}
}

// lockedBuffer is a bytes.Buffer safe for a handler's writes from the
// library's threads beside the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEventsSlowSyncWithThresholdZeroAndSyncAlwaysIsAWarningWithADuration(t *testing.T) {
	dir := t.TempDir()
	rec, logger := newRecorder()
	db := open(t, dir, WithSync(SyncAlways), WithSlowSyncThreshold(0), WithLogger(logger))
	must(t, db.Put([]byte("k"), []byte("v")))
	r := rec.waitFor(t, "slow_sync")
	if r.Level != slog.LevelWarn || r.Message != "slow_sync" {
		t.Errorf("record %v %q, want WARN slow_sync", r.Level, r.Message)
	}
	if got := strings.Join(attrKeys(r), ","); got != "duration,event,file" {
		t.Errorf("attributes %s, want duration,event,file", got)
	}
	a := attrs(r)
	if d := a["duration"]; d.Kind() != slog.KindDuration || d.Duration() < 0 || d.Duration() > time.Minute {
		t.Errorf("duration = %v", d)
	}
	if f := a["file"].String(); filepath.Dir(f) != dir || filepath.Ext(f) != ".data" {
		t.Errorf("file = %q, want a data file of %s", f, dir)
	}
}

func TestEventsSlowSyncIsNotLoggedWhenDisabledOrUnderTheThreshold(t *testing.T) {
	dir := t.TempDir()
	rec, logger := newRecorder()
	for _, d := range []time.Duration{-1, -time.Hour, time.Hour} {
		db := open(t, dir, WithSync(SyncAlways), WithSlowSyncThreshold(d), WithLogger(logger))
		for i := range 20 {
			must(t, db.Put(fmt.Appendf(nil, "k%d", i), []byte("v")))
		}
		// Every event has been handled when Close returns.
		must(t, db.Close())
		if recs := rec.all(); len(recs) != 0 {
			t.Fatalf("threshold %v: logged %v", d, recs)
		}
	}
}

// mergeableDB writes three rounds of the same keys over small files, so that
// the older files are dead and a merge gives them back.
func mergeableDB(t *testing.T, db *DB) {
	t.Helper()
	for round := range 3 {
		for i := range 300 {
			v := fmt.Appendf(nil, "r%d-%s", round, strings.Repeat("x", 100))
			must(t, db.Put(fmt.Appendf(nil, "k%04d", i), v))
		}
	}
}

func TestEventsCompletedMergeIsInfoWithTheBytesReclaimed(t *testing.T) {
	dir := t.TempDir()
	rec, logger := newRecorder()
	db := open(t, dir, WithMaxFileSize(16<<10), WithAutoMerge(false), WithLogger(logger))
	mergeableDB(t, db)
	before, err := db.Stats()
	must(t, err)
	must(t, db.Merge())
	after, err := db.Stats()
	must(t, err)

	r := rec.waitFor(t, "merge_completed")
	if r.Level != slog.LevelInfo || r.Message != "merge_completed" {
		t.Errorf("record %v %q, want INFO merge_completed", r.Level, r.Message)
	}
	if got := strings.Join(attrKeys(r), ","); got != "bytes,duration,event" {
		t.Errorf("attributes %s, want bytes,duration,event", got)
	}
	a := attrs(r)
	reclaimed := before.DiskBytes - after.DiskBytes
	if b := a["bytes"]; b.Kind() != slog.KindUint64 || b.Uint64() == 0 || int64(b.Uint64()) > before.DataBytes {
		t.Errorf("bytes = %v; disk bytes went from %d to %d", b, before.DiskBytes, after.DiskBytes)
	} else if reclaimed <= 0 {
		t.Errorf("merge logged %d bytes reclaimed, but disk bytes went from %d to %d", b.Uint64(), before.DiskBytes, after.DiskBytes)
	}
	if d := a["duration"]; d.Kind() != slog.KindDuration || d.Duration() < 0 || d.Duration() > time.Minute {
		t.Errorf("duration = %v", d)
	}
}

func TestEventsFailedMergeIsAWarningWithAnErrorMatchingItsSentinel(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithMaxFileSize(1024), WithAutoMerge(false)}
	value := func(i int) string {
		return fmt.Sprintf("value of mf:%02d, padded to make the record longer, about ninety bytes", i)
	}
	db := open(t, dir, opts...)
	for i := range 40 {
		must(t, db.Put(fmt.Appendf(nil, "mf:%02d", i), []byte(value(i))))
	}
	must(t, db.Close())
	// A reopen leaves a hint for every sealed file; the next open reads the
	// first file's hint, not the file, so it does not see the damage.
	hint := filepath.Join(dir, "0000000001.hint")
	for range 50 {
		if _, err := os.Stat(hint); err == nil {
			break
		}
		must(t, open(t, dir, opts...).Close())
	}
	if _, err := os.Stat(hint); err != nil {
		t.Fatalf("no hint for the first data file: %v", err)
	}
	first := filepath.Join(dir, "0000000001.data")
	data, err := os.ReadFile(first)
	must(t, err)
	at := bytes.Index(data, []byte(value(0)))
	if at < 0 {
		t.Fatalf("value of mf:00 not in %s", first)
	}
	data[at+len(value(0))/2] ^= 0x20
	must(t, os.WriteFile(first, data, 0o644))

	rec, logger := newRecorder()
	db = open(t, dir, append(opts, WithLogger(logger))...)
	for i := 1; i <= 5; i++ {
		must(t, db.Put(fmt.Appendf(nil, "mf:%02d", i), []byte("new")))
	}
	mergeErr := db.Merge()
	if !errors.Is(mergeErr, ErrCorruption) {
		t.Fatalf("Merge over a corrupt record: %v, want ErrCorruption", mergeErr)
	}
	r := rec.waitFor(t, "merge_failed")
	if r.Level != slog.LevelWarn || r.Message != "merge_failed" {
		t.Errorf("record %v %q, want WARN merge_failed", r.Level, r.Message)
	}
	if got := strings.Join(attrKeys(r), ","); got != "error,event,file" {
		t.Errorf("attributes %s, want error,event,file", got)
	}
	if f := attrs(r)["file"].String(); f != first {
		t.Errorf("file = %q, want the corrupt %s", f, first)
	}
	err, ok := attrs(r)["error"].Any().(error)
	if !ok || !errors.Is(err, ErrCorruption) || errors.Is(err, ErrIO) {
		t.Fatalf("error = %#v, want an error matching ErrCorruption", attrs(r)["error"].Any())
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeCorruption || err.Error() != mergeErr.Error() {
		t.Fatalf("error %#v (%q), want an *Error as Merge's %q", err, err, mergeErr)
	}
}

func TestEventsSalvageOpenIsAWarningWithFileOffsetAndBytes(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithMaxFileSize(1024), WithAutoMerge(false)}
	db := open(t, dir, opts...)
	for i := range 60 {
		must(t, db.Put(fmt.Appendf(nil, "key%02d", i), bytes.Repeat([]byte{'v'}, 40)))
	}
	must(t, db.Close())
	hints, _ := filepath.Glob(filepath.Join(dir, "*.hint"))
	for _, h := range hints {
		must(t, os.Remove(h))
	}
	first := filepath.Join(dir, "0000000001.data")
	data, err := os.ReadFile(first)
	must(t, err)
	at := bytes.Index(data, []byte("key00"))
	if at < 0 {
		t.Fatalf("key00 not in %s", first)
	}
	data[at+len("key00")+1] ^= 0xff
	must(t, os.WriteFile(first, data, 0o644))

	rec, logger := newRecorder()
	db = open(t, dir, append(opts, WithSalvage(), WithLogger(logger))...)
	r := rec.waitFor(t, "salvaged_at_open")
	if r.Level != slog.LevelWarn || r.Message != "salvaged_at_open" {
		t.Errorf("record %v %q, want WARN salvaged_at_open", r.Level, r.Message)
	}
	if got := strings.Join(attrKeys(r), ","); got != "bytes,event,file,offset" {
		t.Errorf("attributes %s, want bytes,event,file,offset", got)
	}
	a := attrs(r)
	st, err := db.Stats()
	must(t, err)
	if a["file"].String() != first || a["offset"].Uint64() > uint64(at) ||
		a["bytes"].Uint64() == 0 || int64(a["bytes"].Uint64()) != st.SalvagedBytesAtOpen {
		t.Errorf("file %v offset %v bytes %v; want %s, at most %d, SalvagedBytesAtOpen %d",
			a["file"], a["offset"], a["bytes"], first, at, st.SalvagedBytesAtOpen)
	}
}

func TestEventsBelowTheLoggersLevelAreNotHandled(t *testing.T) {
	dir := t.TempDir()
	tornTail(t, dir)
	rec := &recorder{level: slog.LevelError}
	must(t, open(t, dir, WithLogger(slog.New(rec))).Close())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.enabled == 0 || len(rec.records) != 0 {
		t.Fatalf("Enabled called %d times, records %v; want a call and no record", rec.enabled, rec.records)
	}
}

func TestEventsWithLoggerNilRemovesAnEarlierLogger(t *testing.T) {
	dir := t.TempDir()
	tornTail(t, dir)
	rec, logger := newRecorder()
	must(t, open(t, dir, WithLogger(logger), WithLogger(nil)).Close())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.enabled != 0 || len(rec.records) != 0 {
		t.Fatalf("Enabled called %d times, records %v; want no listener", rec.enabled, rec.records)
	}
}

// panicker is a handler that panics on every record, counting them.
type panicker struct{ calls atomic.Int64 }

func (p *panicker) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicker) Handle(context.Context, slog.Record) error {
	p.calls.Add(1)
	panic("handler panic")
}
func (p *panicker) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicker) WithGroup(string) slog.Handler      { return p }

func TestEventsPanickingHandlerDropsTheRecordAndTheDatabaseGoesOn(t *testing.T) {
	dir := t.TempDir()
	var p panicker
	db := open(t, dir, WithSync(SyncAlways), WithSlowSyncThreshold(0), WithLogger(slog.New(&p)))
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; p.calls.Load() < 3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d handler calls within 20s, want 3", p.calls.Load())
		}
		must(t, db.Put(fmt.Appendf(nil, "k%d", i), []byte("v")))
		time.Sleep(time.Millisecond)
	}
	if v, err := db.Get([]byte("k0")); err != nil || string(v) != "v" {
		t.Fatalf("Get(k0) = %q, %v", v, err)
	}
	must(t, db.Close())
}

// slowRecorder is a recorder that takes its time, so that events queue up.
type slowRecorder struct{ recorder }

func (s *slowRecorder) Handle(ctx context.Context, rec slog.Record) error {
	time.Sleep(200 * time.Microsecond)
	return s.recorder.Handle(ctx, rec)
}

func TestEventsDBClosedWhileEventsAreInFlightDoesNotCrash(t *testing.T) {
	for round := range 5 {
		dir := t.TempDir()
		rec := &slowRecorder{}
		db, err := Open(dir, WithSync(SyncAlways), WithSlowSyncThreshold(0),
			WithWriteMerging(false), WithLogger(slog.New(rec)))
		must(t, err)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			goWG(&wg, func() {
				for i := 0; ; i++ {
					err := db.Put(fmt.Appendf(nil, "w%d-%d", w, i), []byte("v"))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		// Wait for events to be flowing, then close under the writers.
		for len(rec.of("slow_sync")) == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round) * 2 * time.Millisecond)
		must(t, db.Close())
		handled := len(rec.all())
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Put beside Close: %v", err)
		}
		// Every event was handled before Close returned; none come after.
		time.Sleep(20 * time.Millisecond)
		if n := len(rec.all()); n != handled {
			t.Fatalf("round %d: %d records when Close returned, %d later", round, handled, n)
		}
	}
}

func TestEventsLevelFollowsTheKind(t *testing.T) {
	for k, want := range map[eventKind]slog.Level{
		eventMergeCompleted: slog.LevelInfo,
		eventMergeFailed:    slog.LevelWarn,
		eventWritesRefused:  slog.LevelError,
		eventDroppedAtOpen:  slog.LevelWarn,
		eventSalvagedAtOpen: slog.LevelWarn,
		eventSlowSync:       slog.LevelWarn,
		eventKind(99):       slog.LevelWarn, // a kind newer than the package
	} {
		if got := k.level(); got != want {
			t.Errorf("kind %d: level %v, want %v", k, got, want)
		}
	}
}

func TestEventsRecordCarriesTheErrorAndLeavesOutWhatTheEventLacks(t *testing.T) {
	ev := event{
		kind:       eventWritesRefused,
		name:       "writes_refused",
		file:       "/db/0000000003.data",
		offset:     eventNoValue,
		bytes:      eventNoValue,
		durationUS: eventNoValue,
		code:       CodeIO,
		errMessage: "fdatasync /db/0000000003.data: Input/output error",
	}
	now := time.Now()
	r := ev.record(now, ev.kind.level())
	if r.Level != slog.LevelError || r.Message != "writes_refused" || !r.Time.Equal(now) {
		t.Errorf("record %v %q at %v", r.Level, r.Message, r.Time)
	}
	if got := strings.Join(attrKeys(r), ","); got != "error,event,file" {
		t.Errorf("attributes %s, want error,event,file", got)
	}
	err, _ := attrs(r)["error"].Any().(error)
	var e *Error
	if !errors.Is(err, ErrIO) || !errors.As(err, &e) || e.Message != ev.errMessage ||
		err.Error() != "bitcask: "+ev.errMessage {
		t.Errorf("error = %#v", err)
	}

	ev = event{kind: eventSlowSync, name: "slow_sync", offset: 0, bytes: eventNoValue, durationUS: 1500}
	r = ev.record(now, ev.kind.level())
	if got := strings.Join(attrKeys(r), ","); got != "duration,event,offset" {
		t.Errorf("attributes %s, want duration,event,offset (0 is a value)", got)
	}
	if d := attrs(r)["duration"].Duration(); d != 1500*time.Microsecond {
		t.Errorf("duration %v, want 1.5ms", d)
	}
}

func TestEventsSlowSyncThresholdAcceptsEveryDuration(t *testing.T) {
	// The C option cannot be read back: this checks that no value, the
	// extremes included, is refused.
	for _, d := range []time.Duration{-time.Nanosecond, 0, time.Nanosecond, 1500 * time.Microsecond, time.Hour, 1<<63 - 1} {
		must(t, open(t, t.TempDir(), WithSlowSyncThreshold(d)).Close())
	}
}

package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func open(t testing.TB, dir string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// goWG is sync.WaitGroup.Go, which needs Go 1.25.
func goWG(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkModel compares every read method of db with the model.
func checkModel(t *testing.T, db *DB, model map[string]string) {
	t.Helper()
	n, err := db.Len()
	must(t, err)
	if n != len(model) {
		t.Errorf("Len = %d, want %d", n, len(model))
	}
	for k, want := range model {
		got, err := db.Get([]byte(k))
		if err != nil || string(got) != want {
			t.Errorf("Get(%q) = %q, %v; want %q", k, got, err, want)
		}
		if ok, err := db.Has([]byte(k)); !ok || err != nil {
			t.Errorf("Has(%q) = %v, %v", k, ok, err)
		}
	}
	var keys []string
	for e, err := range db.All() {
		if err != nil {
			t.Fatalf("All: %v", err)
		}
		keys = append(keys, string(e.Key))
		if model[string(e.Key)] != string(e.Value) {
			t.Errorf("All: %q = %q, want %q", e.Key, e.Value, model[string(e.Key)])
		}
	}
	if want := slices.Sorted(maps.Keys(model)); !slices.Equal(keys, want) {
		t.Errorf("All keys = %q, want %q", keys, want)
	}
}

func TestModel(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithAutoMerge(false))
	model := map[string]string{}
	type op struct {
		name  string
		kind  string // put, delete, batch, reopen, merge
		key   string
		value string
	}
	ops := []op{
		{"put new", "put", "a", "1"},
		{"put second", "put", "b", "2"},
		{"overwrite", "put", "a", "one"},
		{"empty value", "put", "empty", ""},
		{"binary key", "put", "\x00\xff\x01", "bin"},
		{"delete present", "delete", "b", ""},
		{"delete missing", "delete", "nope", ""},
		{"batch", "batch", "c", "3"},
		{"reopen", "reopen", "", ""},
		{"put after reopen", "put", "d", "4"},
		{"merge", "merge", "", ""},
		{"reopen after merge", "reopen", "", ""},
	}
	parent := t
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			switch o.kind {
			case "put":
				must(t, db.Put([]byte(o.key), []byte(o.value)))
				model[o.key] = o.value
			case "delete":
				must(t, db.Delete([]byte(o.key)))
				delete(model, o.key)
			case "batch":
				var b Batch
				b.Put([]byte(o.key), []byte(o.value))
				b.Put([]byte("tmp"), []byte("x"))
				b.Delete([]byte("tmp"))
				b.Delete([]byte("a"))
				must(t, db.Write(&b))
				model[o.key] = o.value
				delete(model, "a")
			case "reopen":
				must(t, db.Close())
				db = open(parent, dir, WithAutoMerge(false)) // outlives the subtest
			case "merge":
				must(t, db.Merge())
			}
			checkModel(t, db, model)
			if _, err := db.Get([]byte("never-written")); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(missing) err = %v, want ErrNotFound", err)
			}
			if ok, err := db.Has([]byte("never-written")); ok || err != nil {
				t.Errorf("Has(missing) = %v, %v", ok, err)
			}
		})
	}
}

// TestRandomModel runs random operations against a map, reopening now and then.
func TestRandomModel(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithMaxFileSize(4096), WithAutoMerge(false)}
	db := open(t, dir, opts...)
	model := map[string]string{}
	rng := rand.New(rand.NewSource(1))
	for i := range 1000 {
		k := fmt.Sprintf("k%03d", rng.Intn(200))
		switch r := rng.Intn(100); {
		case r < 60:
			v := strings.Repeat("v", rng.Intn(40)) + fmt.Sprint(i)
			must(t, db.Put([]byte(k), []byte(v)))
			model[k] = v
		case r < 85:
			must(t, db.Delete([]byte(k)))
			delete(model, k)
		case r < 95:
			got, err := db.Get([]byte(k))
			want, ok := model[k]
			if ok != (err == nil) || string(got) != want {
				t.Fatalf("Get(%q) = %q, %v; model %q, %v", k, got, err, want, ok)
			}
		case r < 99:
			must(t, db.Merge())
		default:
			must(t, db.Close())
			db = open(t, dir, opts...)
		}
	}
	checkModel(t, db, model)
}

func TestGetReturnsCallerOwnedCopies(t *testing.T) {
	db := open(t, t.TempDir())
	key, value := []byte("k"), []byte("value")
	must(t, db.Put(key, value))
	key[0], value[0] = 'x', 'x' // Put must have copied
	got, err := db.Get([]byte("k"))
	must(t, err)
	if string(got) != "value" {
		t.Fatalf("Get = %q", got)
	}
	got[0] = 'X'
	again, _ := db.Get([]byte("k"))
	if string(again) != "value" {
		t.Fatalf("Get after mutating a result = %q", again)
	}
	must(t, db.Put([]byte("e"), nil))
	if v, err := db.Get([]byte("e")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get(empty value) = %#v, %v; want non-nil empty", v, err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"sync always", []Option{WithSync(SyncAlways)}},
		{"sync never", []Option{WithSync(SyncNever)}},
		{"sync every", []Option{WithSync(SyncEvery(10 * time.Millisecond))}},
		{"sync every sub-millisecond", []Option{WithSync(SyncEvery(time.Microsecond))}},
		{"mmap off", []Option{WithMmap(false)}},
		{"mmap on", []Option{WithMmap(true)}},
		{"preallocate off", []Option{WithSync(SyncAlways), WithPreallocate(false)}},
		{"preallocate on", []Option{WithSync(SyncAlways), WithPreallocate(true)}},
		{"all", []Option{
			WithMaxFileSize(1 << 20), WithMaxKeySize(64), WithMaxValueSize(1 << 16),
			WithWriteBufferSize(1 << 16), WithWriteMerging(false), WithSalvage(),
			WithAutoMerge(true), WithMergeTriggerDeadBytes(1 << 20),
			WithMergeTriggerTotalDeadBytes(1 << 22), WithMergeTriggerFragmentation(50),
			WithMergeThresholdDeadBytes(1 << 19), WithMergeThresholdFragmentation(30),
			WithMergeBytesPerSec(1 << 24), WithMergeCheckInterval(100 * time.Millisecond),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := open(t, dir, tc.opts...)
			must(t, db.Put([]byte("k"), []byte("v")))
			must(t, db.Sync())
			must(t, db.Close())
			db = open(t, dir, tc.opts...)
			if v, err := db.Get([]byte("k")); err != nil || string(v) != "v" {
				t.Fatalf("Get after reopen = %q, %v", v, err)
			}
		})
	}
}

func TestStats(t *testing.T) {
	db := open(t, t.TempDir(), WithMaxFileSize(1024), WithAutoMerge(false))
	// A live key in the first file, so that the merge has a record to copy.
	must(t, db.Put([]byte("first"), []byte("stays")))
	for i := range 100 {
		must(t, db.Put([]byte(fmt.Sprintf("key%02d", i%10)), bytes.Repeat([]byte{'v'}, 50)))
	}
	st, err := db.Stats()
	must(t, err)
	if st.Keys != 11 || st.DataFiles < 2 || st.DataBytes == 0 || st.DeadBytes == 0 || st.LastSeq != 101 {
		t.Fatalf("Stats = %+v", st)
	}
	if st.LastMerge != nil {
		t.Fatalf("LastMerge before any merge = %+v", st.LastMerge)
	}
	if st.Merges != 0 || st.MergeFailures != 0 || st.LastMergeError != nil {
		t.Fatalf("before any merge: Merges %d, MergeFailures %d, LastMergeError %v",
			st.Merges, st.MergeFailures, st.LastMergeError)
	}
	must(t, db.Merge())
	st, err = db.Stats()
	must(t, err)
	if st.LastMerge == nil || st.LastMerge.FilesIn == 0 || st.LastMerge.RecordsCopied == 0 ||
		st.LastMerge.ExpiredDropped != 0 {
		t.Fatalf("LastMerge after merge = %+v", st.LastMerge)
	}
	if v, err := db.Get([]byte("first")); err != nil || string(v) != "stays" {
		t.Fatalf("Get(first) after merge = %q, %v", v, err)
	}
	if st.Merges < 1 || st.MergeFailures != 0 || st.LastMergeError != nil {
		t.Fatalf("after a merge: Merges %d, MergeFailures %d, LastMergeError %v",
			st.Merges, st.MergeFailures, st.LastMergeError)
	}
	if Version() == "" || FormatVersion() == 0 {
		t.Fatalf("Version %q, FormatVersion %d", Version(), FormatVersion())
	}
}

func TestStatsFilesReportLiveAndDeadBytesPerFile(t *testing.T) {
	db := open(t, t.TempDir(), WithMaxFileSize(1024), WithAutoMerge(false))
	value := bytes.Repeat([]byte{'v'}, 50)
	for i := range 40 {
		must(t, db.Put([]byte(fmt.Sprintf("key%02d", i)), value))
	}
	must(t, db.Delete([]byte("key39")))
	// check verifies the per-file figures against the counters and returns
	// the first file.
	check := func(when string) FileStats {
		t.Helper()
		st, err := db.Stats()
		must(t, err)
		if len(st.Files) != st.DataFiles || st.DataFiles < 3 {
			t.Fatalf("%s: %d Files, DataFiles %d: %+v", when, len(st.Files), st.DataFiles, st.Files)
		}
		var total int64
		for i, f := range st.Files {
			if i > 0 && f.ID <= st.Files[i-1].ID {
				t.Fatalf("%s: ids not ascending: %+v", when, st.Files)
			}
			if f.TotalBytes != f.LiveBytes+f.DeadBytes {
				t.Fatalf("%s: file %d: TotalBytes %d != LiveBytes %d + DeadBytes %d",
					when, f.ID, f.TotalBytes, f.LiveBytes, f.DeadBytes)
			}
			total += f.TotalBytes
		}
		if total != st.DataBytes {
			t.Fatalf("%s: TotalBytes sum to %d, DataBytes %d", when, total, st.DataBytes)
		}
		return st.Files[0]
	}
	before := check("after the writes")
	if before.LiveBytes == 0 {
		t.Fatalf("first file before the overwrites: %+v", before)
	}
	// Overwriting every key overwrites those of the first file too.
	for i := range 39 {
		must(t, db.Put([]byte(fmt.Sprintf("key%02d", i)), value))
	}
	after := check("after the overwrites")
	if after.ID != before.ID || after.LiveBytes >= before.LiveBytes || after.DeadBytes <= before.DeadBytes {
		t.Fatalf("first file: before the overwrites %+v, after %+v", before, after)
	}
	must(t, db.Close())
	if _, err := db.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir)
	must(t, w.Put([]byte("k"), []byte("v")))
	// A reader takes no lock, so it may open beside the writer.
	r := open(t, dir, WithReadOnly())
	if v, err := r.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("read-only Get = %q, %v", v, err)
	}
	st, err := r.Stats()
	must(t, err)
	if st.LastSeq != 0 {
		t.Fatalf("read-only LastSeq = %d", st.LastSeq)
	}
	var b Batch
	b.Put([]byte("k"), []byte("w"))
	for name, err := range map[string]error{
		"Put":    r.Put([]byte("k"), []byte("w")),
		"Delete": r.Delete([]byte("k")),
		"Write":  r.Write(&b),
		"Merge":  r.Merge(),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only %s: %v, want ErrReadOnly", name, err)
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithMaxKeySize(8), WithMaxValueSize(16), WithMaxFileSize(1024))
	var emptyKeyBatch, zeroTTLBatch, negativeTTLBatch Batch
	emptyKeyBatch.Put(nil, []byte("v"))
	zeroTTLBatch.Put([]byte("b1"), []byte("v"))
	zeroTTLBatch.PutWithTTL([]byte("b2"), []byte("v"), 0)
	negativeTTLBatch.PutWithTTL([]byte("b3"), []byte("v"), -time.Nanosecond)
	notDir := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(notDir, []byte("x"), 0o644))
	badFormat := t.TempDir()
	must(t, os.WriteFile(filepath.Join(badFormat, "0000000001.data"), bytes.Repeat([]byte("NOTADATAFILE"), 4), 0o644))

	second := func() error { _, err := Open(dir); return err }
	openWith := func(opts ...Option) func() error {
		return func() error {
			db, err := Open(t.TempDir(), opts...)
			if err == nil {
				db.Close()
			}
			return err
		}
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		want    error
		message string // a part of the library's message
	}{
		{"locked", second, ErrLocked, "locked"},
		{"key too large", func() error { return db.Put([]byte("123456789"), nil) }, ErrKeyTooLarge, "9 bytes"},
		{"value too large", func() error { return db.Put([]byte("k"), make([]byte, 17)) }, ErrValueTooLarge, "17 bytes"},
		{"empty key put", func() error { return db.Put(nil, []byte("v")) }, ErrEmptyKey, "empty"},
		{"empty key delete", func() error { return db.Delete([]byte{}) }, ErrEmptyKey, "empty"},
		{"empty key batch", func() error { return db.Write(&emptyKeyBatch) }, ErrEmptyKey, "empty"},
		{"nil batch", func() error { return db.Write(nil) }, ErrInvalidArgument, "nil batch"},
		{"invalid option", openWith(WithMaxFileSize(10)), ErrInvalidOption, "max_file_size"},
		{"negative option", openWith(WithMaxValueSize(-1)), ErrInvalidOption, "max_value_size"},
		{"invalid sync interval", openWith(WithSync(SyncEvery(0))), ErrInvalidOption, "sync"},
		{"invalid percentage", openWith(WithMergeTriggerFragmentation(101)), ErrInvalidOption, "merge_trigger_fragmentation"},
		{"zero TTL", func() error { return db.PutWithTTL([]byte("k"), []byte("v"), 0) }, ErrInvalidOption, "ttl"},
		{"negative TTL", func() error { return db.PutWithTTL([]byte("k"), []byte("v"), -time.Second) }, ErrInvalidOption, "ttl"},
		{"TTL too long", func() error { return db.PutWithTTL([]byte("k"), []byte("v"), 70*365*24*time.Hour) }, ErrInvalidOption, "ttl"},
		{"zero TTL in a batch", func() error { return db.Write(&zeroTTLBatch) }, ErrInvalidOption, "ttl"},
		{"negative TTL in a batch", func() error { return db.Write(&negativeTTLBatch) }, ErrInvalidOption, "ttl"},
		{"negative default TTL", openWith(WithDefaultTTL(-time.Millisecond)), ErrInvalidOption, "default_ttl"},
		{"default TTL too long", openWith(WithDefaultTTL(70 * 365 * 24 * time.Hour)), ErrInvalidOption, "default_ttl"},
		{"NUL in path", func() error { _, err := Open("a\x00b"); return err }, ErrInvalidArgument, "NUL"},
		{"bad format", func() error { _, err := Open(badFormat); return err }, ErrBadFormat, "0000000001.data"},
		{"I/O: not a directory", func() error { _, err := Open(notDir); return err }, ErrIO, notDir},
		{"iterator options", func() error {
			_, err := db.NewIterator(IterOptions{Prefix: []byte("a"), Start: []byte("b")})
			return err
		}, ErrInvalidArgument, "Prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not an *Error", err)
			}
			if e.Sentinel() != tc.want || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("Error{Code: %v, Message: %q}, want %v containing %q", e.Code, e.Message, tc.want, tc.message)
			}
			for _, other := range sentinels {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("%v also matches %v", err, other)
				}
			}
		})
	}

	_, err := Open(notDir)
	if !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("I/O error %v does not unwrap to its errno", err)
	}
	var e *Error
	if errors.As(err, &e) && e.Errno == 0 {
		t.Errorf("I/O error without errno: %#v", e)
	}
}

func TestCorruptionAndSalvage(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithMaxFileSize(1024), WithAutoMerge(false)}
	db := open(t, dir, opts...)
	for i := range 60 {
		must(t, db.Put([]byte(fmt.Sprintf("key%02d", i)), bytes.Repeat([]byte{'v'}, 40)))
	}
	must(t, db.Close())
	hints, _ := filepath.Glob(filepath.Join(dir, "*.hint"))
	for _, h := range hints {
		must(t, os.Remove(h))
	}
	first := filepath.Join(dir, "0000000001.data")
	data, err := os.ReadFile(first)
	must(t, err)
	// A byte of the first value (right after its key), followed by valid
	// records, so it cannot pass for a torn tail.
	at := bytes.Index(data, []byte("key00"))
	if at < 0 {
		t.Fatalf("key00 not in %s", first)
	}
	data[at+len("key00")+1] ^= 0xff
	must(t, os.WriteFile(first, data, 0o644))

	_, err = Open(dir, opts...)
	if !errors.Is(err, ErrCorruption) {
		t.Fatalf("Open of a corrupt database: %v, want ErrCorruption", err)
	}
	if !strings.Contains(err.Error(), "0000000001.data") {
		t.Fatalf("corruption message %q does not name the file", err)
	}

	db = open(t, dir, append(opts, WithSalvage())...)
	st, err := db.Stats()
	must(t, err)
	if st.SalvagedBytesAtOpen == 0 {
		t.Fatalf("salvage open skipped nothing: %+v", st)
	}
	if _, err := db.Get([]byte("key00")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of the salvaged record: %v, want ErrNotFound", err)
	}
	if v, err := db.Get([]byte("key59")); err != nil || len(v) != 40 {
		t.Fatalf("Get(key59) after salvage = %q, %v", v, err)
	}
}

func TestMergeFailureInStats(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithMaxFileSize(1024), WithAutoMerge(false)}
	value := func(i int) string {
		return fmt.Sprintf("value of mf:%02d, padded to make the record longer, about ninety bytes", i)
	}
	// About 90-byte records: eleven per 1 KiB file, so keys 0 to 5 at least live
	// in the first data file.
	db := open(t, dir, opts...)
	for i := range 40 {
		must(t, db.Put([]byte(fmt.Sprintf("mf:%02d", i)), []byte(value(i))))
	}
	st, err := db.Stats()
	must(t, err)
	if st.DataFiles <= 3 || st.MergeFailures != 0 || st.LastMergeError != nil {
		t.Fatalf("Stats after writing = %+v", st)
	}
	must(t, db.Close())
	// A clean reopen leaves a hint for every sealed file; the next open reads the
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

	db = open(t, dir, opts...)
	// Dead bytes in the first file, so that the merge reads it.
	for i := 1; i <= 5; i++ {
		must(t, db.Put([]byte(fmt.Sprintf("mf:%02d", i)), []byte("new")))
	}
	mergeErr := db.Merge()
	if !errors.Is(mergeErr, ErrCorruption) {
		t.Fatalf("Merge over a corrupt record: %v, want ErrCorruption", mergeErr)
	}
	st, err = db.Stats()
	must(t, err)
	if st.Merges != 0 || st.MergeFailures != 1 {
		t.Fatalf("after a failed merge: Merges %d, MergeFailures %d", st.Merges, st.MergeFailures)
	}
	if !errors.Is(st.LastMergeError, ErrCorruption) || errors.Is(st.LastMergeError, ErrIO) {
		t.Fatalf("LastMergeError = %v, want ErrCorruption", st.LastMergeError)
	}
	var e *Error
	if !errors.As(st.LastMergeError, &e) || e.Code != CodeCorruption {
		t.Fatalf("LastMergeError = %#v, want an *Error with CodeCorruption", st.LastMergeError)
	}
	// A corruption does not come from the operating system: no errno, as on
	// the error Merge returned.
	var me *Error
	if e.Errno != 0 || !errors.As(mergeErr, &me) || me.Errno != e.Errno {
		t.Fatalf("LastMergeError Errno %d, Merge's error %#v, want 0 for both", e.Errno, mergeErr)
	}
	if st.LastMergeError.Error() != mergeErr.Error() ||
		!strings.Contains(e.Message, "0000000001.data") {
		t.Fatalf("LastMergeError %q, Merge returned %q", st.LastMergeError, mergeErr)
	}
}

func TestUseAfterClose(t *testing.T) {
	db := open(t, t.TempDir())
	must(t, db.Put([]byte("k"), []byte("v")))
	it, err := db.NewIterator(IterOptions{})
	must(t, err)
	defer it.Close()
	must(t, db.Close())
	must(t, db.Close()) // idempotent

	var b Batch
	b.Put([]byte("k"), []byte("v"))
	errs := map[string]error{}
	_, errs["Get"] = db.Get([]byte("k"))
	_, errs["Has"] = db.Has([]byte("k"))
	_, errs["Len"] = db.Len()
	_, errs["Stats"] = db.Stats()
	_, errs["TTL"] = db.TTL([]byte("k"))
	errs["PutWithTTL"] = db.PutWithTTL([]byte("k"), []byte("v"), time.Minute)
	_, errs["NewIterator"] = db.NewIterator(IterOptions{})
	errs["Put"] = db.Put([]byte("k"), []byte("v"))
	errs["Delete"] = db.Delete([]byte("k"))
	errs["Write"] = db.Write(&b)
	errs["WriteSync"] = db.WriteSync(&b)
	errs["Sync"] = db.Sync()
	errs["Merge"] = db.Merge()
	_, errs["Backup"] = db.Backup(filepath.Join(t.TempDir(), "backup"))
	errs["Walk"] = db.Walk(func(k, v []byte) error { return nil })
	errs["WalkPrefix"] = db.WalkPrefix(nil, func(k, v []byte) error { return nil })
	// The loops must yield the error: an empty loop would leave nil here.
	errs["All"], errs["Keys"] = nil, nil
	for e, err := range db.All() {
		if err == nil {
			t.Errorf("All yielded %q after Close", e.Key)
		}
		errs["All"] = err
	}
	for k, err := range db.Keys() {
		if err == nil {
			t.Errorf("Keys yielded %q after Close", k)
		}
		errs["Keys"] = err
	}
	// An iterator made before Close outlives it and reports ErrClosed.
	it.Next()
	errs["Iterator.Next"] = it.Err()
	for name, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if it.Valid() {
		t.Error("iterator valid after Close")
	}
}

func TestConcurrent(t *testing.T) {
	db := open(t, t.TempDir(), WithSync(SyncAlways))
	const workers, perWorker = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		goWG(&wg, func() {
			for i := range perWorker {
				k := []byte(fmt.Sprintf("w%d-%03d", w, i))
				if err := db.Put(k, k); err != nil {
					t.Error(err)
					return
				}
				if v, err := db.Get(k); err != nil || !bytes.Equal(v, k) {
					t.Errorf("Get(%s) = %q, %v", k, v, err)
					return
				}
				if i%10 == 0 {
					var b Batch
					b.Put(append(k, 'b'), k)
					b.Delete(append(k, 'b'))
					if err := db.Write(&b); err != nil {
						t.Error(err)
					}
					for _, err := range db.Prefix([]byte(fmt.Sprintf("w%d-", w))) {
						if err != nil {
							t.Error(err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if n, err := db.Len(); err != nil || n != workers*perWorker {
		t.Fatalf("Len = %d, %v; want %d", n, err, workers*perWorker)
	}
}

// Close racing with every kind of call: none may crash, and each either gives
// the right answer or reports ErrClosed (never a key missing, nor a short scan).
func TestCloseRacingCalls(t *testing.T) {
	const keys = 50
	for round := range 30 {
		db, err := Open(t.TempDir())
		must(t, err)
		for i := range keys {
			must(t, db.Put([]byte(fmt.Sprint(i)), []byte("value")))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 7 {
			goWG(&wg, func() {
				<-start
				for i := 0; ; i++ {
					k := []byte(fmt.Sprint(i % keys))
					var err error
					wrong := false
					switch g {
					case 0:
						_, err = db.Get(k)
					case 1:
						var ok bool
						ok, err = db.Has(k)
						wrong = err == nil && !ok
					case 2:
						err = db.Put(k, []byte("new"))
					case 3:
						n := 0
						err = db.Walk(func(k, v []byte) error { n++; return nil })
						wrong = err == nil && n != keys
					case 4:
						var n int
						n, err = db.Len()
						wrong = err == nil && n != keys
					case 5:
						_, err = db.Stats()
					case 6:
						err = db.Merge()
					}
					if wrong || (err != nil && !errors.Is(err, ErrClosed)) {
						t.Errorf("round %d, goroutine %d: wrong answer or error %v", round, g, err)
					}
					if err != nil {
						return
					}
				}
			})
		}
		close(start)
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		must(t, db.Close())
		wg.Wait()
		must(t, db.Close())
	}
}

// backupKeys is the number of keys TestBackup's writer cycles through.
const backupKeys = 300

// backupState is the database TestBackup's writer leaves at sequence number
// seq: base plus its puts numbered up to seq (put i has number first+i).
func backupState(base map[string]string, first, seq uint64) map[string]string {
	model := maps.Clone(base)
	for i := uint64(0); first+i <= seq; i++ {
		model[fmt.Sprintf("k%04d", i%backupKeys)] = fmt.Sprintf("w%06d", i)
	}
	return model
}

func TestBackup(t *testing.T) {
	tmp := t.TempDir()
	db := open(t, filepath.Join(tmp, "db"), WithMaxFileSize(16<<10), WithAutoMerge(false))
	base := map[string]string{}
	var b Batch
	for i := range 200 {
		k, v := fmt.Sprintf("base%03d", i), strings.Repeat("b", 100)
		b.Put([]byte(k), []byte(v))
		base[k] = v
	}
	must(t, db.Write(&b))
	st, err := db.Stats()
	must(t, err)
	first := st.LastSeq + 1

	// Backups while one goroutine writes: each copy is the state at its number.
	const writes = 20000
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	goWG(&wg, func() {
		defer once.Do(func() { close(started) }) // even when a put fails early
		for i := range writes {
			if err := db.Put([]byte(fmt.Sprintf("k%04d", i%backupKeys)), []byte(fmt.Sprintf("w%06d", i))); err != nil {
				t.Error(err)
				return
			}
			if i == 100 {
				once.Do(func() { close(started) })
			}
		}
	})
	<-started
	var seqs []uint64
	for n := range 3 {
		seq, err := db.Backup(filepath.Join(tmp, fmt.Sprint("b", n)))
		must(t, err)
		seqs = append(seqs, seq)
	}
	wg.Wait()
	st, err = db.Stats()
	must(t, err)
	if st.LastSeq != first+writes-1 {
		t.Fatalf("LastSeq = %d, want %d: a put took more than one number", st.LastSeq, first+writes-1)
	}
	for n, seq := range seqs {
		if seq < first-1 || seq > st.LastSeq || (n > 0 && seq < seqs[n-1]) {
			t.Fatalf("backup sequence numbers %v out of [%d, %d]", seqs, first-1, st.LastSeq)
		}
		copyDB := open(t, filepath.Join(tmp, fmt.Sprint("b", n)))
		cst, err := copyDB.Stats()
		must(t, err)
		if cst.LastSeq != seq {
			t.Errorf("backup %d: LastSeq = %d, want %d", n, cst.LastSeq, seq)
		}
		checkModel(t, copyDB, backupState(base, first, seq))
		must(t, copyDB.Close())
	}

	// A non-empty destination is refused and left as it was.
	dest := filepath.Join(tmp, "b0")
	before, err := os.ReadDir(dest)
	must(t, err)
	if _, err := db.Backup(dest); !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("Backup into a non-empty dir: %v, want ErrIO naming it", err)
	}
	after, err := os.ReadDir(dest)
	must(t, err)
	if len(after) != len(before) {
		t.Fatalf("refused Backup changed %s: %d entries, then %d", dest, len(before), len(after))
	}
	if _, err := db.Backup("bad\x00path"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Backup with a NUL byte: %v, want ErrInvalidArgument", err)
	}
	// Nothing hidden is left beside the backups.
	entries, err := os.ReadDir(tmp)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"b0", "b1", "b2", "db"}; !slices.Equal(names, want) {
		t.Fatalf("%s holds %q, want %q", tmp, names, want)
	}

	must(t, db.Close())
	if _, err := db.Backup(filepath.Join(tmp, "after-close")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Backup after Close: %v, want ErrClosed", err)
	}
}

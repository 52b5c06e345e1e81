package bitcask

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// progressKeys is enough writes for a dozen or so data files of 1 KiB.
const progressKeys = 200

// progressOpts returns the options of the many-files database plus extra.
func progressOpts(extra ...Option) []Option {
	return append([]Option{WithMaxFileSize(1024), WithAutoMerge(false)}, extra...)
}

func progressValue(i int) string { return fmt.Sprintf("value %03d %s", i, strings.Repeat("x", 40)) }

// manyFilesDB writes progressKeys keys into a new database in dir over many
// small data files and closes it.
func manyFilesDB(t *testing.T, dir string) {
	t.Helper()
	db, err := Open(dir, progressOpts()...)
	must(t, err)
	for i := range progressKeys {
		must(t, db.Put(fmt.Appendf(nil, "key:%03d", i), []byte(progressValue(i))))
	}
	must(t, db.Close())
}

// dataFiles returns the number of data files in dir and their total size.
func dataFiles(t *testing.T, dir string) (n int, size uint64) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.data"))
	must(t, err)
	for _, p := range paths {
		fi, err := os.Stat(p)
		must(t, err)
		size += uint64(fi.Size())
	}
	return len(paths), size
}

func checkAllKeys(t *testing.T, db *DB) {
	t.Helper()
	for i := range progressKeys {
		got, err := db.Get(fmt.Appendf(nil, "key:%03d", i))
		if err != nil || string(got) != progressValue(i) {
			t.Fatalf("Get(key:%03d) = %q, %v; want %q", i, got, err, progressValue(i))
		}
	}
}

// progressLog records the calls of a WithOpenProgress function. The calls come
// from threads of the library, so the log is guarded even though they never
// overlap.
type progressLog struct {
	mu    sync.Mutex
	calls []Progress
}

func (l *progressLog) record(p Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, p)
}

func (l *progressLog) get() []Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Progress(nil), l.calls...)
}

func TestOpenProgressReportsEveryDataFile(t *testing.T) {
	dir := t.TempDir()
	manyFilesDB(t, dir)
	files, size := dataFiles(t, dir)
	if files < 4 {
		t.Fatalf("only %d data files; the test needs several", files)
	}

	var log progressLog
	db := open(t, dir, progressOpts(WithOpenProgress(log.record))...)
	calls := log.get()
	if len(calls) != files {
		t.Fatalf("%d calls for %d data files: %+v", len(calls), files, calls)
	}
	for i, p := range calls {
		if p.FilesDone != uint64(i+1) || p.FilesTotal != uint64(files) {
			t.Errorf("call %d: files %d of %d, want %d of %d", i, p.FilesDone, p.FilesTotal, i+1, files)
		}
		if p.BytesTotal != size {
			t.Errorf("call %d: BytesTotal = %d, want %d (the size of the data files)", i, p.BytesTotal, size)
		}
		if i > 0 && p.BytesDone <= calls[i-1].BytesDone {
			t.Errorf("call %d: BytesDone = %d after %d", i, p.BytesDone, calls[i-1].BytesDone)
		}
	}
	if last := calls[len(calls)-1]; last.BytesDone != size {
		t.Errorf("last BytesDone = %d, want %d", last.BytesDone, size)
	}
	checkAllKeys(t, db)
}

func TestOpenProgressCalledAgainOnEachOpenWithTheSameOption(t *testing.T) {
	dir := t.TempDir()
	manyFilesDB(t, dir)
	files, _ := dataFiles(t, dir)

	var log progressLog
	opts := progressOpts(WithOpenProgress(log.record))
	for range 2 {
		db, err := Open(dir, opts...)
		must(t, err)
		must(t, db.Close())
	}
	// Nothing is written between the opens, so both load the same files; the
	// option holds no state of an earlier Open.
	if got := len(log.get()); got != 2*files {
		t.Errorf("%d calls over two opens of %d data files, want %d", got, files, 2*files)
	}
}

func TestOpenProgressNilRemovesAnEarlierFunction(t *testing.T) {
	dir := t.TempDir()
	manyFilesDB(t, dir)
	called := false
	db := open(t, dir, progressOpts(WithOpenProgress(func(Progress) { called = true }), WithOpenProgress(nil))...)
	if called {
		t.Error("the removed function was called")
	}
	checkAllKeys(t, db)
}

func TestOpenProgressPanicFailsOpenAndLeavesTheDirectoryOpenable(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		value any
		check func(t *testing.T, err error)
	}{
		{"string", "progress went wrong", func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "progress went wrong") {
				t.Errorf("error %q does not carry the panic value", err)
			}
		}},
		{"error", boom, func(t *testing.T, err error) {
			if !errors.Is(err, boom) {
				t.Errorf("error %q does not wrap the panic's error", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			manyFilesDB(t, dir)
			var mu sync.Mutex
			calls := 0
			db, err := Open(dir, progressOpts(WithOpenProgress(func(Progress) {
				mu.Lock()
				calls++
				mu.Unlock()
				panic(tc.value)
			}))...)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded although the progress function panicked")
			}
			if !strings.Contains(err.Error(), "bitcask: open progress callback panicked") {
				t.Errorf("error %q does not say the callback panicked", err)
			}
			tc.check(t, err)
			mu.Lock()
			if calls != 1 {
				t.Errorf("the function was called %d times; calls after its panic must be skipped", calls)
			}
			mu.Unlock()

			// The failed open released the directory: no ErrLocked.
			checkAllKeys(t, open(t, dir, progressOpts()...))
		})
	}
}

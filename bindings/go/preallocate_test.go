package bitcask

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// durablePuts puts n keys of random sizes and returns them as a model.
func durablePuts(t *testing.T, db *DB, n int) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	model := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("key:%06d", i)
		v := make([]byte, 1+rng.Intn(2000))
		rng.Read(v)
		must(t, db.Put([]byte(k), v))
		model[k] = string(v)
	}
	return model
}

// tmpFiles lists the names in dir that end with .tmp.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	return names
}

// dataFileBytes sums the sizes of dir's data files as the filesystem has them.
func dataFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.data"))
	must(t, err)
	var n int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		must(t, err)
		n += fi.Size()
	}
	return n
}

// preallocatedSoon returns the stats once the background thread has
// preallocated something: the zeros ahead and the spare file are made off the
// write path.
func preallocatedSoon(t *testing.T, db *DB) Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := stats(t, db)
		if st.PreallocatedBytes > 0 || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

func stats(t *testing.T, db *DB) Stats {
	t.Helper()
	st, err := db.Stats()
	must(t, err)
	return st
}

func TestDurablePutsPreallocateByDefaultAndAReopenFindsEveryValueAndNoTmp(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithSync(SyncAlways), WithAutoMerge(false))
	model := durablePuts(t, db, 200)
	st := preallocatedSoon(t, db)
	if st.PreallocatedBytes <= 0 {
		t.Fatalf("PreallocatedBytes after durable puts = %d, want > 0", st.PreallocatedBytes)
	}
	if st.DiskBytes != st.DataBytes+st.HintBytes {
		t.Fatalf("DiskBytes %d != DataBytes %d + HintBytes %d", st.DiskBytes, st.DataBytes, st.HintBytes)
	}
	if st.Writes != 200 || st.WriteGroups < 1 || st.WriteGroups > st.Writes || st.Syncs < st.WriteGroups {
		t.Fatalf("Writes %d, WriteGroups %d, Syncs %d", st.Writes, st.WriteGroups, st.Syncs)
	}
	must(t, db.Close())
	if names := tmpFiles(t, dir); len(names) != 0 {
		t.Fatalf(".tmp files after Close: %q", names)
	}

	db = open(t, dir, WithAutoMerge(false))
	checkModel(t, db, model)
	st = stats(t, db)
	// Closed files were trimmed to their data; nothing is made ahead until a
	// durable write.
	if got := dataFileBytes(t, dir); got != st.DataBytes {
		t.Fatalf("data files hold %d bytes after reopen, DataBytes %d", got, st.DataBytes)
	}
	if st.PreallocatedBytes != 0 {
		t.Fatalf("PreallocatedBytes after reopen = %d, want 0", st.PreallocatedBytes)
	}
}

func TestDurablePutsAcrossManySmallFilesRotateIntoSparesAndReopenIntact(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSync(SyncAlways), WithMaxFileSize(64 << 10), WithAutoMerge(false)}
	db := open(t, dir, opts...)
	model := durablePuts(t, db, 600)
	// Overwrites and deletes too, spread over the files.
	for i := 0; i < 600; i += 3 {
		k := fmt.Sprintf("key:%06d", i)
		v := fmt.Sprintf("again:%d", i)
		must(t, db.Put([]byte(k), []byte(v)))
		model[k] = v
	}
	for i := 1; i < 600; i += 7 {
		k := fmt.Sprintf("key:%06d", i)
		must(t, db.Delete([]byte(k)))
		delete(model, k)
	}
	st := preallocatedSoon(t, db)
	if st.DataFiles <= 3 || st.PreallocatedBytes <= 0 {
		t.Fatalf("DataFiles %d, PreallocatedBytes %d", st.DataFiles, st.PreallocatedBytes)
	}
	must(t, db.Close())
	if names := tmpFiles(t, dir); len(names) != 0 {
		t.Fatalf(".tmp files after Close: %q", names)
	}

	db = open(t, dir, opts...)
	checkModel(t, db, model)
	if got, want := dataFileBytes(t, dir), stats(t, db).DataBytes; got != want {
		t.Fatalf("data files hold %d bytes after reopen, DataBytes %d", got, want)
	}
	// Writable after the reopen, durably, and intact once more.
	must(t, db.Put([]byte("after"), []byte("reopen")))
	model["after"] = "reopen"
	if st := preallocatedSoon(t, db); st.PreallocatedBytes <= 0 {
		t.Fatalf("PreallocatedBytes after a durable put past reopen = %d", st.PreallocatedBytes)
	}
	must(t, db.Close())
	if names := tmpFiles(t, dir); len(names) != 0 {
		t.Fatalf(".tmp files after the second Close: %q", names)
	}
	db = open(t, dir, WithReadOnly())
	checkModel(t, db, model)
}

func TestADurableBatchPreallocatesUnderSyncNever(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	must(t, db.Put([]byte("a"), []byte("1")))
	if st := stats(t, db); st.PreallocatedBytes != 0 {
		t.Fatalf("PreallocatedBytes before any durable write = %d, want 0", st.PreallocatedBytes)
	}
	b := NewBatch()
	b.Put([]byte("b"), []byte("2"))
	must(t, db.WriteSync(b))
	if st := preallocatedSoon(t, db); st.PreallocatedBytes <= 0 {
		t.Fatalf("PreallocatedBytes after WriteSync = %d, want > 0", st.PreallocatedBytes)
	}
	must(t, db.Close())
	if names := tmpFiles(t, dir); len(names) != 0 {
		t.Fatalf(".tmp files after Close: %q", names)
	}
	db = open(t, dir)
	checkModel(t, db, map[string]string{"a": "1", "b": "2"})
}

func TestPreallocateFalseAllocatesNothingPastTheDataAfterDurablePuts(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithSync(SyncAlways), WithPreallocate(false), WithAutoMerge(false))
	model := durablePuts(t, db, 200)
	st := stats(t, db)
	if st.PreallocatedBytes != 0 {
		t.Fatalf("PreallocatedBytes with WithPreallocate(false) = %d, want 0", st.PreallocatedBytes)
	}
	if st.Writes != 200 || st.WriteGroups < 1 || st.Syncs < st.WriteGroups {
		t.Fatalf("Writes %d, WriteGroups %d, Syncs %d", st.Writes, st.WriteGroups, st.Syncs)
	}
	// Every file is as long as its data, even while open.
	if got := dataFileBytes(t, dir); got != st.DataBytes {
		t.Fatalf("data files hold %d bytes while open, DataBytes %d", got, st.DataBytes)
	}
	must(t, db.Close())
	if names := tmpFiles(t, dir); len(names) != 0 {
		t.Fatalf(".tmp files after Close: %q", names)
	}
	db = open(t, dir, WithPreallocate(false))
	checkModel(t, db, model)
}

func TestSyncsCountExplicitSyncsAndWritesCountEveryWrite(t *testing.T) {
	db := open(t, t.TempDir())
	if st := stats(t, db); st.Syncs != 0 || st.Writes != 0 || st.WriteGroups != 0 {
		t.Fatalf("fresh: Syncs %d, Writes %d, WriteGroups %d", st.Syncs, st.Writes, st.WriteGroups)
	}
	must(t, db.Put([]byte("a"), []byte("1")))
	must(t, db.Delete([]byte("a")))
	b := NewBatch()
	b.Put([]byte("b"), []byte("2"))
	b.Put([]byte("c"), []byte("3"))
	must(t, db.Write(b))
	must(t, db.Sync())
	st := stats(t, db)
	if st.Writes != 3 || st.WriteGroups != 3 || st.Syncs < 1 {
		t.Fatalf("Syncs %d, Writes %d, WriteGroups %d; want >=1, 3, 3", st.Syncs, st.Writes, st.WriteGroups)
	}
}

package bitcask

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// checkTTLAbout checks that key, written with ttl a moment ago, has between
// ttl - 1 min (a slow run) and ttl + 1 s (expiry rounds up to the second) left.
func checkTTLAbout(t *testing.T, db *DB, key string, ttl time.Duration) {
	t.Helper()
	left, err := db.TTL([]byte(key))
	if err != nil || left < ttl-time.Minute || left > ttl+time.Second {
		t.Fatalf("TTL(%s) = %v, %v; want about %v", key, left, err, ttl)
	}
}

func checkNoExpiry(t *testing.T, db *DB, key string) {
	t.Helper()
	if left, err := db.TTL([]byte(key)); left != NoExpiry || err != nil {
		t.Fatalf("TTL(%s) = %v, %v; want NoExpiry, nil", key, left, err)
	}
}

// checkGone checks that key reads as absent through Get, Has and TTL.
func checkGone(t *testing.T, db *DB, key string) {
	t.Helper()
	if v, err := db.Get([]byte(key)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%s) = %q, %v; want ErrNotFound", key, v, err)
	}
	if ok, err := db.Has([]byte(key)); ok || err != nil {
		t.Fatalf("Has(%s) = %v, %v; want false, nil", key, ok, err)
	}
	if left, err := db.TTL([]byte(key)); !errors.Is(err, ErrNotFound) || left != 0 {
		t.Fatalf("TTL(%s) = %v, %v; want 0, ErrNotFound", key, left, err)
	}
}

func checkValue(t *testing.T, db *DB, key, want string) {
	t.Helper()
	if v, err := db.Get([]byte(key)); err != nil || string(v) != want {
		t.Fatalf("Get(%s) = %q, %v; want %q", key, v, err, want)
	}
}

func TestTTL(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithAutoMerge(false))

	must(t, db.PutWithTTL([]byte("hour"), []byte("an hour"), time.Hour))
	checkValue(t, db, "hour", "an hour")
	checkTTLAbout(t, db, "hour", time.Hour)
	// Sub-millisecond TTLs round up; expiry rounds up to the second.
	must(t, db.PutWithTTL([]byte("tiny"), []byte("v"), time.Microsecond))
	if left, err := db.TTL([]byte("tiny")); err != nil || left <= 0 || left > 2*time.Second {
		t.Fatalf("TTL(tiny) = %v, %v", left, err)
	}
	must(t, db.Delete([]byte("tiny")))
	checkGone(t, db, "tiny")

	must(t, db.Put([]byte("plain"), []byte("forever")))
	checkNoExpiry(t, db, "plain")
	if _, err := db.TTL([]byte("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TTL(absent): %v, want ErrNotFound", err)
	}

	// A plain Put over a key with a TTL makes it persistent again.
	must(t, db.PutWithTTL([]byte("again"), []byte("v1"), time.Minute))
	checkTTLAbout(t, db, "again", time.Minute)
	must(t, db.Put([]byte("again"), []byte("v2")))
	checkNoExpiry(t, db, "again")

	// A refused TTL writes nothing.
	for _, ttl := range []time.Duration{0, -time.Hour, 100 * 365 * 24 * time.Hour} {
		if err := db.PutWithTTL([]byte("refused"), []byte("v"), ttl); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("PutWithTTL(%v): %v, want ErrInvalidOption", ttl, err)
		}
	}
	checkGone(t, db, "refused")
	// The longest TTL the format holds, 2^31-1 seconds, is accepted.
	longest := time.Duration(1<<31-1) * time.Second
	must(t, db.PutWithTTL([]byte("longest"), []byte("v"), longest))
	checkTTLAbout(t, db, "longest", longest)

	// Expiry survives a reopen.
	must(t, db.Close())
	db = open(t, dir, WithAutoMerge(false))
	checkTTLAbout(t, db, "hour", time.Hour)
	checkTTLAbout(t, db, "longest", longest)
	checkNoExpiry(t, db, "plain")
	checkNoExpiry(t, db, "again")
	if n, err := db.Len(); n != 4 || err != nil {
		t.Fatalf("Len = %d, %v; want 4", n, err)
	}
}

func TestBatchPutWithTTL(t *testing.T) {
	db := open(t, t.TempDir())
	var b Batch
	b.PutWithTTL([]byte("b1"), []byte("one"), 90*time.Second)
	b.Put([]byte("b2"), []byte("two"))
	b.PutWithTTL([]byte("b3"), []byte("three"), time.Hour)
	b.Delete([]byte("b3"))
	if b.Len() != 4 {
		t.Fatalf("Len = %d, want 4", b.Len())
	}
	must(t, db.Write(&b))
	checkValue(t, db, "b1", "one")
	checkTTLAbout(t, db, "b1", 90*time.Second)
	checkNoExpiry(t, db, "b2")
	checkGone(t, db, "b3")

	// One bad TTL refuses the whole batch, until Reset.
	for _, ttl := range []time.Duration{0, -time.Second} {
		b.Reset()
		b.Put([]byte("b4"), []byte("four"))
		b.PutWithTTL([]byte("b5"), []byte("five"), ttl)
		if err := db.Write(&b); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("Write with TTL %v: %v, want ErrInvalidOption", ttl, err)
		}
		checkGone(t, db, "b4")
		checkGone(t, db, "b5")
	}
	b.Reset()
	b.PutWithTTL([]byte("b5"), []byte("five"), time.Minute)
	must(t, db.WriteSync(&b))
	checkTTLAbout(t, db, "b5", time.Minute)
}

func TestDefaultTTL(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithDefaultTTL(2*time.Minute))
	must(t, db.Put([]byte("put"), []byte("v")))
	checkTTLAbout(t, db, "put", 2*time.Minute)
	// A TTL of its own wins over the default.
	must(t, db.PutWithTTL([]byte("own"), []byte("v"), time.Hour))
	checkTTLAbout(t, db, "own", time.Hour)
	var b Batch
	b.Put([]byte("batch"), []byte("v"))
	must(t, db.Write(&b))
	checkTTLAbout(t, db, "batch", 2*time.Minute)
	must(t, db.Close())

	// 0 (the default) turns it off: plain puts never expire.
	db = open(t, dir, WithDefaultTTL(0))
	checkTTLAbout(t, db, "put", 2*time.Minute)
	must(t, db.Put([]byte("plain"), []byte("v")))
	checkNoExpiry(t, db, "plain")
}

// A real second of expiry: written with a 1 s TTL (by PutWithTTL, a batch and
// the default TTL), gone from every read 2.1 s later, and dropped by a merge.
func TestExpiryInRealTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := open(t, dir, WithMaxFileSize(1024), WithAutoMerge(false))
	ddb := open(t, t.TempDir(), WithDefaultTTL(time.Second))

	must(t, db.PutWithTTL([]byte("x:short"), []byte("gone soon"), time.Second))
	var b Batch
	b.PutWithTTL([]byte("x:batch"), []byte("gone soon too"), time.Second)
	must(t, db.Write(&b))
	must(t, db.Put([]byte("x:stays"), []byte("persistent")))
	must(t, db.PutWithTTL([]byte("x:hour"), []byte("an hour"), time.Hour))
	must(t, ddb.Put([]byte("x:default"), []byte("gone soon")))
	checkValue(t, db, "x:short", "gone soon")
	checkValue(t, db, "x:batch", "gone soon too")
	checkValue(t, ddb, "x:default", "gone soon")
	if left, err := db.TTL([]byte("x:short")); err != nil || left <= 0 || left > 2*time.Second {
		t.Fatalf("TTL(x:short) = %v, %v", left, err)
	}
	if n, err := db.Len(); n != 4 || err != nil {
		t.Fatalf("Len = %d, %v; want 4", n, err)
	}
	// Seal the files holding them, so that a merge reads them.
	for i := range 40 {
		must(t, db.Put([]byte(fmt.Sprintf("x:fill%02d", i)), []byte("filler, padded to seal the first data files")))
	}

	// A 1 s TTL lives less than 2 s.
	time.Sleep(2100 * time.Millisecond)
	checkGone(t, db, "x:short")
	checkGone(t, db, "x:batch")
	checkGone(t, ddb, "x:default")
	checkValue(t, db, "x:stays", "persistent")
	checkTTLAbout(t, db, "x:hour", time.Hour)
	if n, err := db.Len(); n != 42 || err != nil {
		t.Fatalf("Len = %d, %v; want 42", n, err)
	}
	if n, err := ddb.Len(); n != 0 || err != nil {
		t.Fatalf("Len with the default TTL = %d, %v; want 0", n, err)
	}
	seen, err := entryKeys(db.Range([]byte("x:"), []byte("x:f")))
	must(t, err)
	if len(seen) != 0 {
		t.Fatalf("Range saw expired keys %q", seen)
	}
	st, err := db.Stats()
	must(t, err)
	if st.Keys != 42 || st.DataFiles <= 2 || st.LastMerge != nil {
		t.Fatalf("Stats before the merge = %+v", st)
	}

	must(t, db.Merge())
	st, err = db.Stats()
	must(t, err)
	if st.LastMerge == nil || st.LastMerge.ExpiredDropped != 2 {
		t.Fatalf("LastMerge = %+v, want ExpiredDropped 2", st.LastMerge)
	}
	checkGone(t, db, "x:short")
	checkGone(t, db, "x:batch")
	checkValue(t, db, "x:stays", "persistent")

	// Still gone after a reopen.
	must(t, db.Close())
	db = open(t, dir)
	checkGone(t, db, "x:short")
	checkGone(t, db, "x:batch")
	checkValue(t, db, "x:fill39", "filler, padded to seal the first data files")
	if n, err := db.Len(); n != 42 || err != nil {
		t.Fatalf("Len after reopen = %d, %v; want 42", n, err)
	}
}

func TestTombstoneStat(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, WithAutoMerge(false))
	tombstones := func() int64 {
		t.Helper()
		st, err := db.Stats()
		must(t, err)
		return st.Tombstones
	}
	must(t, db.Put([]byte("a"), []byte("1")))
	must(t, db.Put([]byte("b"), []byte("2")))
	if n := tombstones(); n != 0 {
		t.Fatalf("Tombstones = %d before any delete", n)
	}
	must(t, db.Delete([]byte("a")))
	if n := tombstones(); n != 1 {
		t.Fatalf("Tombstones = %d after a delete, want 1", n)
	}
	var b Batch
	b.Delete([]byte("b"))
	must(t, db.Write(&b))
	if n := tombstones(); n != 2 {
		t.Fatalf("Tombstones = %d after a batch delete, want 2", n)
	}
	// Counted from the files at open.
	must(t, db.Close())
	db = open(t, dir, WithAutoMerge(false))
	if n := tombstones(); n != 2 {
		t.Fatalf("Tombstones = %d after reopen, want 2", n)
	}
}

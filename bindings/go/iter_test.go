package bitcask

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// entryKeys runs seq in the safe loop shape and returns the keys it yielded
// and the error that ended it.
func entryKeys(seq iter.Seq2[Entry, error]) ([]string, error) {
	var keys []string
	for e, err := range seq {
		if err != nil {
			return keys, err
		}
		keys = append(keys, string(e.Key))
	}
	return keys, nil
}

// keyStrings is entryKeys for a keys-only sequence.
func keyStrings(seq iter.Seq2[[]byte, error]) ([]string, error) {
	var keys []string
	for k, err := range seq {
		if err != nil {
			return keys, err
		}
		keys = append(keys, string(k))
	}
	return keys, nil
}

// keysOf returns the keys seq yields, checking that each value is "v"+key
// (as fill writes them) and that no error ends it.
func keysOf(seq iter.Seq2[Entry, error]) []string {
	var keys []string
	for e, err := range seq {
		if err != nil {
			panic(fmt.Sprintf("after %q: %v", keys, err))
		}
		if string(e.Value) != "v"+string(e.Key) {
			panic(fmt.Sprintf("value of %q is %q", e.Key, e.Value))
		}
		keys = append(keys, string(e.Key))
	}
	return keys
}

func fill(t *testing.T, db *DB, keys ...string) {
	t.Helper()
	var b Batch
	for _, k := range keys {
		b.Put([]byte(k), []byte("v"+k))
	}
	must(t, db.WriteSync(&b))
	if b.Len() != len(keys) {
		t.Fatalf("Batch.Len = %d", b.Len())
	}
}

// noLeakedIterators fails when a C iterator made during the test is not freed.
func noLeakedIterators(t *testing.T) {
	before := openIterators.Load()
	t.Cleanup(func() {
		if n := openIterators.Load(); n != before {
			t.Errorf("%d C iterators left open", n-before)
		}
	})
}

func TestIteration(t *testing.T) {
	noLeakedIterators(t)
	db := open(t, t.TempDir())
	fill(t, db, "a", "b", "user:1", "user:2", "user:3", "user;", "z")
	all := []string{"a", "b", "user:1", "user:2", "user:3", "user;", "z"}
	rev := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"all", keysOf(db.All()), all},
		{"all reverse", keysOf(db.All(Reverse())), rev(all)},
		{"range", keysOf(db.Range([]byte("b"), []byte("user:3"))), []string{"b", "user:1", "user:2"}},
		{"range reverse", keysOf(db.Range([]byte("b"), []byte("user:3"), Reverse())), []string{"user:2", "user:1", "b"}},
		{"range open start", keysOf(db.Range(nil, []byte("b"))), []string{"a"}},
		{"range open end", keysOf(db.Range([]byte("user;"), nil)), []string{"user;", "z"}},
		{"range empty", keysOf(db.Range([]byte("c"), []byte("d"))), nil},
		{"prefix", keysOf(db.Prefix([]byte("user:"))), []string{"user:1", "user:2", "user:3"}},
		{"prefix reverse", keysOf(db.Prefix([]byte("user:"), Reverse())), []string{"user:3", "user:2", "user:1"}},
		{"prefix none", keysOf(db.Prefix([]byte("nobody"))), nil},
		{"prefix empty", keysOf(db.Prefix(nil)), all},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestIterationEarlyBreakFreesIterator(t *testing.T) {
	noLeakedIterators(t)
	db := open(t, t.TempDir())
	fill(t, db, "a", "b", "c", "d")
	for range 3 {
		for e, err := range db.Range([]byte("a"), nil) {
			must(t, err)
			if string(e.Key) == "b" {
				break
			}
		}
	}
	if n := openIterators.Load(); n != 0 {
		t.Fatalf("%d iterators open after break", n)
	}
	// A panic in the loop body frees it too.
	func() {
		defer func() { recover() }()
		for range db.All() {
			panic("boom")
		}
	}()
	if n := openIterators.Load(); n != 0 {
		t.Fatalf("%d iterators open after a panic", n)
	}
}

func TestIterationYieldsCopies(t *testing.T) {
	db := open(t, t.TempDir())
	fill(t, db, "a", "b", "c")
	var keys, values [][]byte
	for e, err := range db.All() {
		must(t, err)
		keys, values = append(keys, e.Key), append(values, e.Value)
	}
	// Had they been borrowed from the C iterator, they would now be garbage.
	for i, k := range keys {
		if string(values[i]) != "v"+string(k) {
			t.Fatalf("entry %d: %q = %q", i, k, values[i])
		}
	}
}

// A database closed in the middle of a loop ends it with ErrClosed, yielded
// as the loop's last step: the loop in its ordinary shape sees it.
func TestIterationSeesCloseAsError(t *testing.T) {
	noLeakedIterators(t)
	for _, tc := range []struct {
		name string
		loop func(db *DB) ([]string, error)
	}{
		{"All", func(db *DB) ([]string, error) {
			var seen []string
			for e, err := range db.All() {
				if err != nil {
					return seen, err
				}
				seen = append(seen, string(e.Key))
				must(t, db.Close())
			}
			return seen, nil
		}},
		{"Range reversed", func(db *DB) ([]string, error) {
			var seen []string
			for e, err := range db.Range([]byte("a"), nil, Reverse()) {
				if err != nil {
					return seen, err
				}
				seen = append(seen, string(e.Key))
				must(t, db.Close())
			}
			return seen, nil
		}},
		{"KeysPrefix", func(db *DB) ([]string, error) {
			var seen []string
			for k, err := range db.KeysPrefix(nil) {
				if err != nil {
					return seen, err
				}
				seen = append(seen, string(k))
				must(t, db.Close())
			}
			return seen, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t, t.TempDir())
			fill(t, db, "a", "b", "c")
			seen, err := tc.loop(db)
			if !errors.Is(err, ErrClosed) || len(seen) != 1 {
				t.Fatalf("seen %q, err %v; want one key, then ErrClosed", seen, err)
			}
		})
	}
	t.Run("clean loop yields no error", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b")
		n := 0
		for _, err := range db.All() {
			must(t, err)
			n++
		}
		if n != 2 {
			t.Fatalf("%d steps, want 2", n)
		}
	})
	t.Run("closed before the loop", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a")
		must(t, db.Close())
		steps := 0
		var last error
		for _, err := range db.Prefix(nil) {
			steps++
			last = err
		}
		if steps != 1 || !errors.Is(last, ErrClosed) {
			t.Fatalf("%d steps, last error %v; want one step with ErrClosed", steps, last)
		}
	})
	t.Run("no step after break", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b")
		for _, err := range db.All() {
			must(t, err)
			must(t, db.Close())
			break // the iterator's ErrClosed must not reach a yield that returned false
		}
	})
}

// Walk and WalkPrefix call back with keys and values and return the first
// error the callback returns (unlike prologic/bitcask's Fold and Scan, which
// give keys alone: hence the names).
func TestWalkAndWalkPrefix(t *testing.T) {
	noLeakedIterators(t)
	db := open(t, t.TempDir())
	fill(t, db, "a", "p1", "p2", "q")
	var got []string
	collect := func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil }
	must(t, db.Walk(collect))
	if !slices.Equal(got, []string{"a=va", "p1=vp1", "p2=vp2", "q=vq"}) {
		t.Fatalf("Walk: %q", got)
	}
	got = nil
	must(t, db.WalkPrefix([]byte("p"), collect))
	if !slices.Equal(got, []string{"p1=vp1", "p2=vp2"}) {
		t.Fatalf("WalkPrefix: %q", got)
	}
	got = nil
	must(t, db.WalkPrefix(nil, collect))
	if len(got) != 4 {
		t.Fatalf("WalkPrefix(nil): %q", got)
	}
	stop := errors.New("stop")
	n := 0
	err := db.Walk(func(k, v []byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("Walk with a failing callback: %v after %d calls", err, n)
	}
	n = 0
	err = db.WalkPrefix([]byte("p"), func(k, v []byte) error {
		n++
		if string(k) == "p2" {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("WalkPrefix with a failing callback: %v after %d calls", err, n)
	}
	// The callback may use the DB, even write to it; the walk reads the
	// database as of its start, so it does not see its own writes.
	n = 0
	must(t, db.WalkPrefix([]byte("p"), func(k, v []byte) error {
		n++
		return db.Put(append([]byte("p-copy-"), k...), v)
	}))
	if ok, _ := db.Has([]byte("p-copy-p2")); !ok || n != 2 {
		t.Fatalf("write from a WalkPrefix callback lost, or seen by the walk (%d calls)", n)
	}
}

func TestIterator(t *testing.T) {
	noLeakedIterators(t)
	db := open(t, t.TempDir())
	fill(t, db, "a", "b", "c", "d")
	it, err := db.NewIterator(IterOptions{Start: []byte("b")})
	must(t, err)
	defer it.Close()
	var got []string
	for ; it.Valid(); it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	if !slices.Equal(got, []string{"b=vb", "c=vc", "d=vd"}) || it.Err() != nil {
		t.Fatalf("forward: %q, %v", got, it.Err())
	}
	if it.Next() || it.Prev() || it.Key() != nil || it.Value() != nil {
		t.Fatal("moves past the end")
	}
	if !it.Last() || string(it.Key()) != "d" {
		t.Fatalf("Last: %q", it.Key())
	}
	if !it.Prev() || string(it.Key()) != "c" {
		t.Fatalf("Prev: %q", it.Key())
	}
	if !it.Seek([]byte("bb")) || string(it.Key()) != "c" {
		t.Fatalf("Seek(bb): %q", it.Key())
	}
	if !it.First() || string(it.Key()) != "b" {
		t.Fatalf("First: %q", it.Key())
	}
	if it.Seek([]byte("e")) {
		t.Fatalf("Seek past the end: %q", it.Key())
	}
	must(t, it.Close())
	must(t, it.Close())
	if it.Valid() || it.First() || it.Key() != nil {
		t.Fatal("closed iterator still moves")
	}

	rit, err := db.NewIterator(IterOptions{Prefix: []byte("c"), Reverse: true})
	must(t, err)
	defer rit.Close()
	if !rit.Valid() || string(rit.Key()) != "c" || rit.Next() {
		t.Fatal("reverse prefix iterator")
	}
}

// An iterator dropped without Close is freed by its cleanup.
func TestIteratorCleanup(t *testing.T) {
	db := open(t, t.TempDir())
	fill(t, db, "a")
	before := openIterators.Load()
	func() {
		_, err := db.NewIterator(IterOptions{})
		must(t, err)
	}()
	for i := 0; i < 50 && openIterators.Load() != before; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := openIterators.Load(); n != before {
		t.Fatalf("dropped iterator not freed: %d open", n-before)
	}
}

func TestBatchReuse(t *testing.T) {
	db := open(t, t.TempDir())
	b := NewBatch()
	b.Put([]byte("k1"), []byte("v1"))
	b.Put([]byte("k2"), []byte("v2"))
	b.Delete([]byte("k1"))
	must(t, db.Write(b))
	if _, err := db.Get([]byte("k1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("later delete in a batch did not win: %v", err)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatalf("Len after Reset = %d", b.Len())
	}
	b.Put([]byte("k3"), nil)
	must(t, db.WriteSync(b))
	must(t, db.Write(b)) // a batch is not consumed
	if n, _ := db.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	// A failing batch applies nothing.
	b.Reset()
	b.Put([]byte("k4"), []byte("v4"))
	b.Put(nil, []byte("empty key"))
	if err := db.Write(b); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Write: %v, want ErrEmptyKey", err)
	}
	if ok, _ := db.Has([]byte("k4")); ok {
		t.Fatal("part of a failed batch was applied")
	}
}

// A nil bound is no bound; an empty non-nil end is the empty key, below every
// key, as None in Python and NULL in C.
func TestRangeBoundsNilIsUnboundedEmptyIsAKey(t *testing.T) {
	db := open(t, t.TempDir())
	for _, k := range []string{"a", "b", "c"} {
		must(t, db.Put([]byte(k), []byte("v")))
	}
	keys := func(start, end []byte) string {
		got, err := keyStrings(db.KeysRange(start, end))
		must(t, err)
		return strings.Join(got, " ")
	}
	cases := []struct {
		name       string
		start, end []byte
		want       string
	}{
		{"nil end", []byte("b"), nil, "b c"},
		{"empty end", []byte("b"), []byte{}, ""},
		{"nil start", nil, []byte("c"), "a b"},
		{"empty start", []byte{}, []byte("c"), "a b"},
	}
	for _, c := range cases {
		if got := keys(c.start, c.end); got != c.want {
			t.Errorf("%s: KeysRange = %q, want %q", c.name, got, c.want)
		}
	}
	it, err := db.NewIterator(IterOptions{Start: []byte("a"), End: []byte{}})
	must(t, err)
	if it.Valid() {
		t.Errorf("NewIterator with an empty End is on %q", it.Key())
	}
	must(t, it.Close())
}

// A value damaged on disk while the database was closed (the clean close left
// hint files, so the reopen reads no record) ends every loop that reads values
// with ErrCorruption, yielded to the loop in its ordinary shape; keys-only
// loops read no value and see every key.
func TestIterationSurfacesCorruptValueAfterReopen(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			noLeakedIterators(t)
			dir := t.TempDir()
			db := open(t, dir, m.opt)
			fill(t, db, "a", "b", "d", "e")
			bad := []byte("the value of c, damaged while the database is closed")
			must(t, db.Put([]byte("c"), bad))
			must(t, db.Close())
			name, at := findValue(t, dir, bad)
			data, err := os.ReadFile(name)
			must(t, err)
			data[at+len(bad)/2] ^= 0xff
			must(t, os.WriteFile(name, data, 0o644))
			db = open(t, dir, m.opt)

			for _, tc := range []struct {
				name string
				seq  iter.Seq2[Entry, error]
				want []string
			}{
				{"All", db.All(), []string{"a", "b"}},
				{"All reversed", db.All(Reverse()), []string{"e", "d"}},
				{"Range", db.Range([]byte("b"), nil), []string{"b"}},
				{"Prefix", db.Prefix([]byte("c")), nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var seen []string
					var loopErr error
					steps := 0
					for e, err := range tc.seq {
						steps++
						if err != nil {
							if e.Key != nil || e.Value != nil {
								t.Errorf("the error came with an entry: %q", e.Key)
							}
							loopErr = err
							continue // nothing may follow the error
						}
						seen = append(seen, string(e.Key))
					}
					if !errors.Is(loopErr, ErrCorruption) || !slices.Equal(seen, tc.want) {
						t.Fatalf("seen %q, err %v; want %q, ErrCorruption", seen, loopErr, tc.want)
					}
					if steps != len(tc.want)+1 {
						t.Fatalf("%d steps, want %d entries and the error", steps, len(tc.want))
					}
				})
			}
			t.Run("Keys", func(t *testing.T) {
				seen, err := keyStrings(db.Keys())
				if err != nil || !slices.Equal(seen, []string{"a", "b", "c", "d", "e"}) {
					t.Fatalf("Keys: %q, %v", seen, err)
				}
			})
		})
	}
}

package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// The two ways the library reads values, for tests that run under both.
var readModes = []struct {
	name string
	opt  Option
}{
	{"mmap on", WithMmap(true)},
	{"mmap off", WithMmap(false)},
}

// sized returns n bytes that depend on tag at every position, so that a value
// read from the wrong key, or a buffer shared between two results, shows.
func sized(tag string, n int) []byte {
	seed := byte(len(tag))
	for _, c := range []byte(tag) {
		seed = seed*31 + c
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// checkGet checks that Get of key returns want in a slice of its own: no
// spare capacity, and not shared with the next Get.
func checkGet(t *testing.T, db *DB, key string, want []byte) {
	t.Helper()
	got, err := db.Get([]byte(key))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes, %v; want %d bytes", key, len(got), err, len(want))
	}
	if got == nil || cap(got) != len(got) {
		t.Fatalf("Get(%q): len %d, cap %d", key, len(got), cap(got))
	}
	if len(got) > 0 {
		got[0] ^= 0xff
		again, err := db.Get([]byte(key))
		if err != nil || !bytes.Equal(again, want) {
			t.Fatalf("Get(%q) after changing an earlier result: %d bytes, %v", key, len(again), err)
		}
	}
}

// checkKeys compares every keys-only iteration with the model's keys.
func checkKeys(t *testing.T, db *DB, model map[string][]byte) {
	t.Helper()
	want := slices.Sorted(maps.Keys(model))
	got, err := keyStrings(db.Keys())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Keys = %q, %v; want %q", got, err, want)
	}
	got, err = keyStrings(db.Keys(Reverse()))
	slices.Reverse(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Keys(Reverse()) = %q, %v; want %q", got, err, want)
	}
}

// readModel runs random puts (of values on both sides of the size Get
// guesses), deletes, merges and reopens against a map, checking reads as it
// goes, and returns the final contents as All sees them.
func readModel(t *testing.T, opt Option) map[string][]byte {
	dir := t.TempDir()
	opts := []Option{opt, WithMaxFileSize(64 << 10), WithAutoMerge(false)}
	db := open(t, dir, opts...)
	model := map[string][]byte{}
	sizes := []int{0, 1, 100, getScratchSize - 1, getScratchSize, getScratchSize + 1, 3 * getScratchSize}
	rng := rand.New(rand.NewSource(7))
	for i := range 1500 {
		k := fmt.Sprintf("k%03d", rng.Intn(120))
		switch r := rng.Intn(100); {
		case r < 50:
			v := sized(fmt.Sprint(k, i), sizes[rng.Intn(len(sizes))])
			must(t, db.Put([]byte(k), v))
			model[k] = v
		case r < 65:
			must(t, db.Delete([]byte(k)))
			delete(model, k)
		case r < 93:
			if want, ok := model[k]; ok {
				checkGet(t, db, k, want)
			} else if _, err := db.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%q) of a missing key: %v", k, err)
			}
		case r < 97:
			must(t, db.Merge())
		case r < 99:
			checkKeys(t, db, model)
		default:
			must(t, db.Close())
			db = open(t, dir, opts...)
		}
	}
	for k, want := range model {
		checkGet(t, db, k, want)
	}
	checkKeys(t, db, model)
	got := map[string][]byte{}
	for e, err := range db.All() {
		must(t, err)
		got[string(e.Key)] = e.Value
	}
	if !maps.EqualFunc(got, model, bytes.Equal) {
		t.Fatalf("All: %d entries, model %d (or a value differs)", len(got), len(model))
	}
	return got
}

func TestMmapOnAndOffMatchTheModel(t *testing.T) {
	results := map[string]map[string][]byte{}
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) { results[m.name] = readModel(t, m.opt) })
	}
	on, off := results["mmap on"], results["mmap off"]
	if on != nil && off != nil && !maps.EqualFunc(on, off, bytes.Equal) {
		t.Fatal("mmap on and off end with different contents")
	}

	t.Run("one directory reopened in both modes", func(t *testing.T) {
		dir := t.TempDir()
		model := map[string][]byte{}
		for i, n := range []int{0, 10, getScratchSize + 1, 100 << 10} {
			k := fmt.Sprintf("k%d", i)
			model[k] = sized(k, n)
		}
		for round, m := range append(readModes, readModes...) {
			db := open(t, dir, m.opt)
			k := fmt.Sprintf("round%d", round)
			model[k] = sized(k, round*1000)
			must(t, db.Put([]byte(k), model[k]))
			for k, v := range model {
				must(t, db.Put([]byte(k), v))
			}
			for k, want := range model {
				checkGet(t, db, k, want)
			}
			checkKeys(t, db, model)
			must(t, db.Close())
		}
	})
}

func TestGetAroundTheGuessedSize(t *testing.T) {
	const big = 1 << 20
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			db := open(t, t.TempDir(), m.opt)
			sizes := map[string]int{
				"empty": 0, "one": 1, "small": 100,
				"scratch-1": getScratchSize - 1, "scratch": getScratchSize, "scratch+1": getScratchSize + 1,
				"3 scratch": 3 * getScratchSize, "big": big, "big-1": big - 1, "half big": big / 2,
				"third big": big / 3, "big+1": big + 1,
			}
			values := map[string][]byte{}
			for k, n := range sizes {
				values[k] = sized(k, n)
				must(t, db.Put([]byte(k), values[k]))
			}
			for _, step := range []struct {
				name string
				keys []string
				// guess is the size Get tries first afterwards (0: the pooled buffer).
				guess int64
			}{
				{"smaller than the guess", []string{"empty", "one", "small", "scratch-1", "scratch"}, 0},
				{"larger than the guess", []string{"scratch+1"}, getScratchSize + 1},
				{"larger again", []string{"big"}, big},
				{"the guess exactly", []string{"big"}, big},
				{"slightly smaller than the guess", []string{"big-1"}, big - 1},
				{"slightly larger than the guess", []string{"big+1"}, big + 1},
				{"half the guess", []string{"half big"}, big / 2},
				{"back up", []string{"big"}, big},
				{"well below the guess, still above the pool", []string{"third big"}, big / 3},
				{"small after large", []string{"small"}, 0},
				{"empty after large", []string{"big", "empty"}, 0},
				{"mixed", []string{"3 scratch", "one", "big", "scratch", "big+1", "empty", "big-1"}, big - 1},
			} {
				t.Run(step.name, func(t *testing.T) {
					for _, k := range step.keys {
						checkGet(t, db, k, values[k])
					}
					if g := db.getSize.Load(); g != step.guess {
						t.Fatalf("guess after %q = %d, want %d", step.keys, g, step.guess)
					}
				})
			}
			t.Run("missing key keeps the guess", func(t *testing.T) {
				checkGet(t, db, "big", values["big"])
				if _, err := db.Get([]byte("missing")); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(missing): %v", err)
				}
				if g := db.getSize.Load(); g != big {
					t.Fatalf("guess = %d", g)
				}
			})
		})
	}
}

// A value that changes size between Get's two calls is read again at its new
// size; readers never see a mix of two values.
func TestGetWhileTheValueChangesSize(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			db := open(t, t.TempDir(), m.opt)
			versions := [][]byte{sized("a", 10), sized("b", getScratchSize+10), sized("c", 40<<10), sized("d", 0)}
			must(t, db.Put([]byte("k"), versions[0]))
			var wg sync.WaitGroup
			var done atomic.Bool
			goWG(&wg, func() {
				defer done.Store(true)
				for i := range 2000 {
					if err := db.Put([]byte("k"), versions[i%len(versions)]); err != nil {
						t.Error(err)
						return
					}
				}
			})
			for range 4 {
				goWG(&wg, func() {
					for !done.Load() {
						got, err := db.Get([]byte("k"))
						if err != nil {
							t.Error(err)
							return
						}
						if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
							t.Errorf("Get read %d bytes that are no version of the value", len(got))
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestKeysOnlyIteration(t *testing.T) {
	noLeakedIterators(t)
	db := open(t, t.TempDir(), WithMaxFileSize(4096), WithAutoMerge(false))
	model := map[string][]byte{}
	for i := range 300 {
		k := fmt.Sprintf("key:%03d", (i*7919)%300) // written out of order
		model[k] = sized(k, i%50)
		must(t, db.Put([]byte(k), model[k]))
	}
	for _, k := range []string{"a", "key:", "key;", "z"} {
		model[k] = []byte(k)
		must(t, db.Put([]byte(k), model[k]))
	}
	all := slices.Sorted(maps.Keys(model))
	between := func(lo, hi string) []string {
		var out []string
		for _, k := range all {
			if k >= lo && (hi == "" || k < hi) {
				out = append(out, k)
			}
		}
		return out
	}
	rev := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	collect := func(seq iter.Seq2[[]byte, error]) []string {
		out, err := keyStrings(seq)
		must(t, err)
		return out
	}
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"all keys in order", collect(db.Keys()), all},
		{"all keys reversed", collect(db.Keys(Reverse())), rev(all)},
		{"range", collect(db.KeysRange([]byte("key:100"), []byte("key:200"))), between("key:100", "key:200")},
		{"range reversed", collect(db.KeysRange([]byte("key:100"), []byte("key:200"), Reverse())), rev(between("key:100", "key:200"))},
		{"range open start", collect(db.KeysRange(nil, []byte("key:"))), []string{"a"}},
		{"range open end", collect(db.KeysRange([]byte("key;"), nil)), []string{"key;", "z"}},
		{"range empty", collect(db.KeysRange([]byte("b"), []byte("c"))), nil},
		{"prefix", collect(db.KeysPrefix([]byte("key:2"))), between("key:2", "key:3")},
		{"prefix reversed", collect(db.KeysPrefix([]byte("key:2"), Reverse())), rev(between("key:2", "key:3"))},
		{"prefix none", collect(db.KeysPrefix([]byte("nobody"))), nil},
		{"prefix empty", collect(db.KeysPrefix(nil)), all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.Equal(tc.got, tc.want) {
				t.Fatalf("%q, want %q", tc.got, tc.want)
			}
		})
	}
	t.Run("same keys as All", func(t *testing.T) {
		var keys []string
		for e, err := range db.All() {
			must(t, err)
			if !bytes.Equal(e.Value, model[string(e.Key)]) {
				t.Fatalf("All: value of %q", e.Key)
			}
			keys = append(keys, string(e.Key))
		}
		if !slices.Equal(keys, collect(db.Keys())) {
			t.Fatal("Keys and All disagree")
		}
	})
	t.Run("break frees the iterator", func(t *testing.T) {
		before := openIterators.Load()
		for k, err := range db.Keys() {
			must(t, err)
			if string(k) == "key:010" {
				break
			}
		}
		if n := openIterators.Load(); n != before {
			t.Fatalf("%d iterators left open", n-before)
		}
	})
	t.Run("yields copies", func(t *testing.T) {
		var keys [][]byte
		for k, err := range db.Keys() {
			must(t, err)
			keys = append(keys, k)
		}
		for i, k := range keys {
			if string(k) != all[i] {
				t.Fatalf("key %d = %q after the loop, want %q", i, k, all[i])
			}
		}
	})
	t.Run("closed database", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b", "c")
		var seen []string
		var err error
		for k, kerr := range db.Keys() {
			if err = kerr; err != nil {
				break
			}
			seen = append(seen, string(k))
			must(t, db.Close())
		}
		if !errors.Is(err, ErrClosed) || !slices.Equal(seen, []string{"a"}) {
			t.Fatalf("seen %q, err %v; want [a], ErrClosed", seen, err)
		}
	})
}

// findValue returns the data file of dir that holds value and its offset there.
func findValue(t *testing.T, dir string, value []byte) (string, int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		must(t, err)
		if at := bytes.Index(data, value); at >= 0 {
			return name, at
		}
	}
	t.Fatalf("value of %d bytes in no data file of %s", len(value), dir)
	return "", 0
}

func dataFileOf(t *testing.T, dir string, value []byte) string {
	name, _ := findValue(t, dir, value)
	return name
}

// corruptValue flips a byte in the middle of value in the data file of dir
// that holds it, in place, under the open database.
func corruptValue(t *testing.T, dir string, value []byte) {
	t.Helper()
	name, at := findValue(t, dir, value)
	at += len(value) / 2
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte{value[len(value)/2] ^ 0xff}, int64(at))
	must(t, err)
}

// A value that cannot be read ends every iteration that reads values with
// ErrCorruption (not as if the keys had run out), while keys-only iteration,
// which reads no data file, sees every key.
func TestValueReadErrorsAreSurfaced(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			noLeakedIterators(t)
			dir := t.TempDir()
			db := open(t, dir, m.opt)
			fill(t, db, "a", "b", "d", "e")
			bad := []byte("the value of c, which will not read back")
			must(t, db.Put([]byte("c"), bad))
			must(t, db.Sync())
			corruptValue(t, dir, bad)
			all := []string{"a", "b", "c", "d", "e"}

			t.Run("Get", func(t *testing.T) {
				if _, err := db.Get([]byte("c")); !errors.Is(err, ErrCorruption) {
					t.Fatalf("Get: %v, want ErrCorruption", err)
				}
				checkGet(t, db, "d", []byte("vd"))
			})
			t.Run("All", func(t *testing.T) {
				seen, err := entryKeys(db.All())
				if !errors.Is(err, ErrCorruption) || !slices.Equal(seen, []string{"a", "b"}) {
					t.Fatalf("seen %q, err %v; want [a b], ErrCorruption", seen, err)
				}
			})
			t.Run("All reversed", func(t *testing.T) {
				seen, err := entryKeys(db.All(Reverse()))
				if !errors.Is(err, ErrCorruption) || !slices.Equal(seen, []string{"e", "d"}) {
					t.Fatalf("seen %q, err %v; want [e d], ErrCorruption", seen, err)
				}
			})
			t.Run("Walk and WalkPrefix", func(t *testing.T) {
				n := 0
				if err := db.Walk(func(k, v []byte) error { n++; return nil }); !errors.Is(err, ErrCorruption) || n != 2 {
					t.Fatalf("Walk: %v after %d entries", err, n)
				}
				if err := db.WalkPrefix([]byte("c"), func(k, v []byte) error { return nil }); !errors.Is(err, ErrCorruption) {
					t.Fatalf("WalkPrefix: %v", err)
				}
			})
			t.Run("keys only", func(t *testing.T) {
				seen, err := keyStrings(db.Keys())
				if err != nil || !slices.Equal(seen, all) {
					t.Fatalf("Keys: %q, %v", seen, err)
				}
				it, err := db.NewIterator(IterOptions{})
				must(t, err)
				defer it.Close()
				seen = nil
				for ; it.Valid(); it.Next() {
					seen = append(seen, string(it.Key()))
				}
				if it.Err() != nil || !slices.Equal(seen, all) {
					t.Fatalf("Iterator with Key alone: %q, %v", seen, it.Err())
				}
			})
			t.Run("Iterator.Value", func(t *testing.T) {
				it, err := db.NewIterator(IterOptions{})
				must(t, err)
				defer it.Close()
				var seen []string
				for ; it.Valid(); it.Next() {
					v, err := it.ValueAndErr()
					if err != nil {
						break
					}
					seen = append(seen, string(it.Key())+"="+string(v))
				}
				if !slices.Equal(seen, []string{"a=va", "b=vb"}) || !errors.Is(it.Err(), ErrCorruption) {
					t.Fatalf("seen %q, Err %v", seen, it.Err())
				}
				var e *Error
				if !errors.As(it.Err(), &e) || e.Message == "" {
					t.Fatalf("Err %#v has no message", it.Err())
				}
				if it.Valid() || it.Key() != nil || it.Value() != nil || it.Next() {
					t.Fatal("iterator still on its entry after a value error")
				}
				if v, err := it.ValueAndErr(); v != nil || err != it.Err() {
					t.Fatalf("ValueAndErr after the error = %q, %v", v, err)
				}
				// A seek moves on, past the bad entry.
				if !it.Seek([]byte("d")) || it.Err() != nil || string(it.Value()) != "vd" {
					t.Fatalf("Seek(d): %q, %v", it.Key(), it.Err())
				}
				if it.Last(); string(it.Key()) != "e" || string(it.Value()) != "ve" {
					t.Fatalf("Last: %q", it.Key())
				}
				if it.Next() || it.Err() != nil {
					t.Fatal("past the end")
				}
				if v, err := it.ValueAndErr(); v != nil || err != nil {
					t.Fatalf("ValueAndErr past the end = %q, %v", v, err)
				}
			})
		})
	}
}

// An iterator reads a value where its key pointed when the iterator reached
// it: a merge that rewrites and removes that data file meanwhile changes
// nothing it reads.
func TestIteratorValueAcrossMerge(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			noLeakedIterators(t)
			dir := t.TempDir()
			// Every sealed file is merged, whatever its dead bytes.
			db := open(t, dir, m.opt, WithMaxFileSize(4096), WithAutoMerge(false),
				WithMergeThresholdFragmentation(0), WithMergeThresholdDeadBytes(0))
			model := map[string][]byte{}
			put := func(k string, v []byte) { must(t, db.Put([]byte(k), v)); model[k] = v }
			for i := range 200 {
				k := fmt.Sprintf("k%03d", i)
				put(k, sized(k, 50+i%3*1000))
			}
			// Overwrite every other key so that the first files hold dead bytes.
			for i := 1; i < 200; i += 2 {
				k := fmt.Sprintf("k%03d", i)
				put(k, sized(k+"'", 60))
			}
			keys := slices.Sorted(maps.Keys(model))
			holding := []string{dataFileOf(t, dir, model["k000"]), dataFileOf(t, dir, model["k100"])}

			first, err := db.NewIterator(IterOptions{})
			must(t, err)
			defer first.Close()
			middle, err := db.NewIterator(IterOptions{})
			must(t, err)
			defer middle.Close()
			if !middle.Seek([]byte("k100")) {
				t.Fatal("Seek(k100)")
			}
			early, err := db.NewIterator(IterOptions{})
			must(t, err)
			defer early.Close()
			if v := early.Value(); !bytes.Equal(v, model["k000"]) {
				t.Fatalf("k000 before the merge: %d bytes", len(v))
			}

			must(t, db.Merge())
			st, err := db.Stats()
			must(t, err)
			if st.LastMerge == nil || st.LastMerge.FilesIn == 0 {
				t.Fatalf("the merge did nothing: %+v", st.LastMerge)
			}
			// The files that held the values of k000 and k100 are gone.
			for _, f := range holding {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s still there after the merge: %v", f, err)
				}
			}

			t.Run("value read before the merge", func(t *testing.T) {
				if string(early.Key()) != "k000" || !bytes.Equal(early.Value(), model["k000"]) {
					t.Fatalf("k000 read again after the merge differs")
				}
			})
			t.Run("value first read after the merge", func(t *testing.T) {
				if string(first.Key()) != "k000" || !bytes.Equal(first.Value(), model["k000"]) {
					t.Fatalf("k000 after the merge differs")
				}
				if string(middle.Key()) != "k100" || !bytes.Equal(middle.Value(), model["k100"]) {
					t.Fatalf("k100 after the merge differs")
				}
			})
			t.Run("the rest of the iteration", func(t *testing.T) {
				for _, it := range []*Iterator{first, middle, early} {
					var seen []string
					for ; it.Valid(); it.Next() {
						k, v := string(it.Key()), it.Value()
						if !bytes.Equal(v, model[k]) {
							t.Fatalf("%q after the merge: %d bytes, want %d", k, len(v), len(model[k]))
						}
						seen = append(seen, k)
					}
					if it.Err() != nil || len(seen) == 0 || !slices.Equal(seen, keys[len(keys)-len(seen):]) {
						t.Fatalf("after the merge: %d keys, %v", len(seen), it.Err())
					}
				}
			})
			t.Run("merge inside a loop", func(t *testing.T) {
				for i := 1; i < 200; i += 2 {
					k := fmt.Sprintf("k%03d", i)
					put(k, sized(k+"''", 70))
				}
				n := 0
				for e, err := range db.All() {
					if err != nil {
						t.Fatalf("after %d entries: %v", n, err)
					}
					if n == 0 {
						must(t, db.Merge())
					}
					if !bytes.Equal(e.Value, model[string(e.Key)]) {
						t.Fatalf("%q in a loop that merged: %d bytes", e.Key, len(e.Value))
					}
					n++
				}
				if n != len(model) {
					t.Fatalf("%d of %d entries", n, len(model))
				}
			})
		})
	}
}

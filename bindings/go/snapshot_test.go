package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// noLeakedSnapshots fails when a C snapshot taken during the test is not freed.
func noLeakedSnapshots(t *testing.T) {
	before := openSnapshots.Load()
	t.Cleanup(func() {
		if n := openSnapshots.Load(); n != before {
			t.Errorf("%d C snapshots left open", n-before)
		}
	})
}

func snapshot(t *testing.T, db *DB) *Snapshot {
	t.Helper()
	s, err := db.Snapshot()
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// between returns the keys k of model with start <= k < end, in order (a nil
// end is no bound), reversed when rev.
func between(model map[string]string, start, end []byte, rev bool) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(model)) {
		if k >= string(start) && (end == nil || k < string(end)) {
			out = append(out, k)
		}
	}
	if rev {
		slices.Reverse(out)
	}
	return out
}

// checkSnapshot compares every read of s with model: Get, Has, Len, every
// iteration (both directions, a range and a prefix taken from the model's
// keys), Walk, WalkPrefix and an Iterator.
func checkSnapshot(t *testing.T, s *Snapshot, model map[string]string) {
	t.Helper()
	n, err := s.Len()
	if err != nil || n != len(model) {
		t.Fatalf("Len = %d, %v; want %d", n, err, len(model))
	}
	for k, want := range model {
		got, err := s.Get([]byte(k))
		if err != nil || string(got) != want {
			t.Fatalf("Get(%q) = %q, %v; want %q", k, got, err, want)
		}
		if ok, err := s.Has([]byte(k)); !ok || err != nil {
			t.Fatalf("Has(%q) = %v, %v", k, ok, err)
		}
	}
	for _, k := range []string{"absent", "k", "k999"} {
		if _, ok := model[k]; ok {
			continue
		}
		if _, err := s.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) of a key the snapshot lacks: %v", k, err)
		}
		if ok, err := s.Has([]byte(k)); ok || err != nil {
			t.Fatalf("Has(%q) of a key the snapshot lacks = %v, %v", k, ok, err)
		}
	}

	entriesOK := func(name string, seq func(yield func(Entry, error) bool), want []string) {
		t.Helper()
		var got []string
		for e, err := range seq {
			if err != nil {
				t.Fatalf("%s: %v after %q", name, err, got)
			}
			if model[string(e.Key)] != string(e.Value) {
				t.Fatalf("%s: %q = %q, want %q", name, e.Key, e.Value, model[string(e.Key)])
			}
			got = append(got, string(e.Key))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", name, got, want)
		}
	}
	keysOK := func(name string, seq func(yield func([]byte, error) bool), want []string) {
		t.Helper()
		got, err := keyStrings(seq)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	all := between(model, nil, nil, false)
	entriesOK("All", s.All(), all)
	entriesOK("All reversed", s.All(Reverse()), between(model, nil, nil, true))
	keysOK("Keys", s.Keys(), all)
	keysOK("Keys reversed", s.Keys(Reverse()), between(model, nil, nil, true))
	if len(all) > 2 {
		lo, hi := []byte(all[len(all)/3]), []byte(all[2*len(all)/3])
		entriesOK("Range", s.Range(lo, hi), between(model, lo, hi, false))
		entriesOK("Range reversed", s.Range(lo, hi, Reverse()), between(model, lo, hi, true))
		keysOK("KeysRange", s.KeysRange(lo, nil), between(model, lo, nil, false))
		// A prefix: the first key but its last byte.
		p := []byte(all[0][:len(all[0])-1])
		var want []string
		for _, k := range all {
			if strings.HasPrefix(k, string(p)) {
				want = append(want, k)
			}
		}
		entriesOK("Prefix", s.Prefix(p), want)
		keysOK("KeysPrefix", s.KeysPrefix(p), want)
		var walked []string
		must(t, s.WalkPrefix(p, func(k, v []byte) error {
			if model[string(k)] != string(v) {
				return fmt.Errorf("WalkPrefix: %q = %q", k, v)
			}
			walked = append(walked, string(k))
			return nil
		}))
		if !slices.Equal(walked, want) {
			t.Fatalf("WalkPrefix: %q, want %q", walked, want)
		}
	}
	var walked []string
	must(t, s.Walk(func(k, v []byte) error {
		if model[string(k)] != string(v) {
			return fmt.Errorf("Walk: %q = %q", k, v)
		}
		walked = append(walked, string(k))
		return nil
	}))
	if !slices.Equal(walked, all) {
		t.Fatalf("Walk: %q, want %q", walked, all)
	}
	it, err := s.NewIterator(IterOptions{Reverse: true})
	must(t, err)
	defer it.Close()
	var got []string
	for ; it.Valid(); it.Next() {
		if model[string(it.Key())] != string(it.Value()) {
			t.Fatalf("Iterator: %q = %q", it.Key(), it.Value())
		}
		got = append(got, string(it.Key()))
	}
	if it.Err() != nil || !slices.Equal(got, between(model, nil, nil, true)) {
		t.Fatalf("Iterator: %q, %v", got, it.Err())
	}
}

// A snapshot keeps its view across overwrites, deletes, new keys and a merge
// that rewrites and removes every file its values lie in.
func TestSnapshotKeepsItsViewAcrossPutsDeletesAndMerge(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			noLeakedIterators(t)
			noLeakedSnapshots(t)
			dir := t.TempDir()
			// Small files, and every sealed file is merged whatever its dead bytes.
			db := open(t, dir, m.opt, WithMaxFileSize(4096), WithAutoMerge(false),
				WithMergeThresholdFragmentation(0), WithMergeThresholdDeadBytes(0))
			model := map[string]string{}
			put := func(k, v string) { must(t, db.Put([]byte(k), []byte(v))); model[k] = v }
			for i := range 200 {
				put(fmt.Sprintf("k%03d", i), fmt.Sprintf("first value of k%03d, ", i)+strings.Repeat("v", i%60))
			}
			st, err := db.Stats()
			must(t, err)
			if st.DataFiles < 3 {
				t.Fatalf("%d data files, want several", st.DataFiles)
			}
			before := maps.Clone(model)
			s := snapshot(t, db)
			if s.Seq() != st.LastSeq {
				t.Fatalf("Seq = %d, Stats.LastSeq %d", s.Seq(), st.LastSeq)
			}
			oldFile := dataFileOf(t, dir, []byte(before["k000"]))

			for i := 0; i < 200; i += 2 {
				put(fmt.Sprintf("k%03d", i), "new value "+fmt.Sprint(i))
			}
			for i := 1; i < 200; i += 3 {
				k := fmt.Sprintf("k%03d", i)
				must(t, db.Delete([]byte(k)))
				delete(model, k)
			}
			put("k", "a key written after the snapshot")
			put("k999", "another")
			var b Batch
			b.Put([]byte("k005"), []byte("from a batch"))
			b.Delete([]byte("k003"))
			must(t, db.Write(&b))
			model["k005"] = "from a batch"
			delete(model, "k003")

			checkSnapshot(t, s, before)
			must(t, db.Merge())
			st, err = db.Stats()
			must(t, err)
			if st.LastMerge == nil || st.LastMerge.FilesIn == 0 {
				t.Fatalf("the merge did nothing: %+v", st.LastMerge)
			}
			// The file that held k000's first value is gone from the directory;
			// the snapshot still reads it.
			if _, err := os.Stat(oldFile); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still there after the merge: %v", oldFile, err)
			}
			checkSnapshot(t, s, before)
			checkModel(t, db, model)
			// A snapshot taken now sees the new state.
			checkSnapshot(t, snapshot(t, db), model)
		})
	}
}

// Random puts, deletes, batches and merges, a snapshot taken now and then with
// a copy of the model: every snapshot reads as its copy, at once and at the end.
func TestSnapshotsMatchCopiesOfTheModel(t *testing.T) {
	noLeakedIterators(t)
	noLeakedSnapshots(t)
	db := open(t, t.TempDir(), WithMaxFileSize(4096), WithAutoMerge(false),
		WithMergeThresholdFragmentation(0), WithMergeThresholdDeadBytes(0))
	model := map[string]string{}
	type taken struct {
		s     *Snapshot
		model map[string]string
	}
	var snaps []taken
	rng := rand.New(rand.NewSource(19))
	lastSeq := uint64(0)
	for i := range 1500 {
		k := fmt.Sprintf("k%03d", rng.Intn(150))
		switch r := rng.Intn(100); {
		case r < 55:
			v := strings.Repeat("x", rng.Intn(80)) + fmt.Sprint(i)
			must(t, db.Put([]byte(k), []byte(v)))
			model[k] = v
		case r < 80:
			must(t, db.Delete([]byte(k)))
			delete(model, k)
		case r < 90:
			var b Batch
			for j := range 3 {
				bk := fmt.Sprintf("k%03d", (rng.Intn(150)+j)%150)
				if rng.Intn(3) == 0 {
					b.Delete([]byte(bk))
					delete(model, bk)
				} else {
					b.Put([]byte(bk), []byte(fmt.Sprint("batch ", i, j)))
					model[bk] = fmt.Sprint("batch ", i, j)
				}
			}
			must(t, db.Write(&b))
		case r < 93:
			must(t, db.Merge())
		default:
			s := snapshot(t, db)
			if s.Seq() < lastSeq {
				t.Fatalf("Seq went back: %d after %d", s.Seq(), lastSeq)
			}
			lastSeq = s.Seq()
			checkSnapshot(t, s, model)
			snaps = append(snaps, taken{s, maps.Clone(model)})
		}
	}
	if len(snaps) < 20 {
		t.Fatalf("only %d snapshots", len(snaps))
	}
	must(t, db.Merge())
	for i, sn := range snaps {
		t.Run(fmt.Sprint("snapshot ", i), func(t *testing.T) { checkSnapshot(t, sn.s, sn.model) })
	}
	st, err := db.Stats()
	must(t, err)
	if st.Snapshots != len(snaps) || st.SnapshotVersions == 0 {
		t.Fatalf("Stats: %d snapshots, %d versions; want %d, some", st.Snapshots, st.SnapshotVersions, len(snaps))
	}
}

// A writer (puts, deletes, merges) runs while readers read one snapshot over
// and over: every read gives the same result, the model's at the snapshot.
func TestSnapshotReadsAreStableUnderAConcurrentWriter(t *testing.T) {
	noLeakedIterators(t)
	noLeakedSnapshots(t)
	db := open(t, t.TempDir(), WithMaxFileSize(8192), WithAutoMerge(false),
		WithMergeThresholdFragmentation(0), WithMergeThresholdDeadBytes(0))
	model := map[string]string{}
	for i := range 300 {
		k, v := fmt.Sprintf("k%03d", i), fmt.Sprint("first ", i)
		must(t, db.Put([]byte(k), []byte(v)))
		model[k] = v
	}
	s := snapshot(t, db)

	stop := make(chan struct{})
	var writes, merges atomic.Int64
	var wg sync.WaitGroup
	goWG(&wg, func() {
		rng := rand.New(rand.NewSource(3))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := []byte(fmt.Sprintf("k%03d", rng.Intn(400)))
			var err error
			switch r := rng.Intn(100); {
			case r < 60:
				err = db.Put(k, []byte(fmt.Sprint("later ", i)))
			case r < 95:
				err = db.Delete(k)
			default:
				err = db.Merge()
				merges.Add(1)
			}
			if err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	})
	var readers sync.WaitGroup
	for r := range 3 {
		goWG(&readers, func() {
			var opts []ScanOption
			if r%2 == 1 {
				opts = append(opts, Reverse())
			}
			// At least 15 rounds, and on while the writer has not yet done
			// 1000 writes and 2 merges (bounded: a loaded CI machine under
			// the race detector is slow, and this checks no speed).
			deadline := time.Now().Add(2 * time.Minute)
			for round := 0; round < 15 || (writes.Load() < 1000 || merges.Load() < 2) && time.Now().Before(deadline); round++ {
				got := map[string]string{}
				for e, err := range s.All(opts...) {
					if err != nil {
						t.Error(err)
						return
					}
					got[string(e.Key)] = string(e.Value)
				}
				if !maps.Equal(got, model) {
					t.Errorf("reader %d, round %d: %d entries differ from the snapshot's %d", r, round, len(got), len(model))
					return
				}
				k := fmt.Sprintf("k%03d", (round*37+r)%300)
				if v, err := s.Get([]byte(k)); err != nil || string(v) != model[k] {
					t.Errorf("Get(%q) = %q, %v; want %q", k, v, err, model[k])
				}
				if n, err := s.Len(); err != nil || n != len(model) {
					t.Errorf("Len = %d, %v; want %d", n, err, len(model))
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	if writes.Load() < 1000 || merges.Load() < 2 {
		t.Fatalf("the writer did %d writes and %d merges while the snapshot was read", writes.Load(), merges.Load())
	}
	checkSnapshot(t, s, model)
	now := map[string]string{}
	for e, err := range db.All() {
		must(t, err)
		now[string(e.Key)] = string(e.Value)
	}
	if maps.Equal(now, model) {
		t.Fatal("the database reads as the snapshot: the writer changed nothing")
	}
}

// Stats count the snapshots alive, iterators' own included, and the versions
// kept for them; both fall to 0 once every snapshot and iterator is closed,
// or dropped and collected.
func TestSnapshotVersionsBackToZeroOnceAllAreClosed(t *testing.T) {
	noLeakedIterators(t)
	noLeakedSnapshots(t)
	db := open(t, t.TempDir(), WithAutoMerge(false))
	fill(t, db, "a", "b", "c")
	stats := func() (int, int64) {
		t.Helper()
		st, err := db.Stats()
		must(t, err)
		return st.Snapshots, st.SnapshotVersions
	}
	if n, v := stats(); n != 0 || v != 0 {
		t.Fatalf("before any snapshot: %d snapshots, %d versions", n, v)
	}
	s1, err := db.Snapshot()
	must(t, err)
	must(t, db.Put([]byte("a"), []byte("a2")))
	must(t, db.Delete([]byte("b")))
	s2, err := db.Snapshot()
	must(t, err)
	it, err := db.NewIterator(IterOptions{})
	must(t, err)
	must(t, db.Put([]byte("a"), []byte("a3")))
	must(t, db.Put([]byte("d"), []byte("new")))
	if n, v := stats(); n != 3 || v == 0 {
		t.Fatalf("two snapshots and an iterator: %d snapshots, %d versions", n, v)
	}
	must(t, s1.Close())
	if n, v := stats(); n != 2 || v == 0 {
		t.Fatalf("after closing the oldest: %d snapshots, %d versions", n, v)
	}
	must(t, it.Close())
	must(t, s2.Close())
	if n, v := stats(); n != 0 || v != 0 {
		t.Fatalf("after closing all: %d snapshots, %d versions", n, v)
	}

	// One dropped without Close is released by its cleanup.
	func() {
		_, err := db.Snapshot()
		must(t, err)
	}()
	must(t, db.Put([]byte("a"), []byte("a4")))
	for i := 0; i < 50; i++ {
		if n, _ := stats(); n == 0 {
			break
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n, v := stats(); n != 0 || v != 0 {
		t.Fatalf("after a dropped snapshot was collected: %d snapshots, %d versions", n, v)
	}
}

// Every call on a closed Snapshot fails with ErrClosed (Seq aside), Close is
// idempotent, and iterators made before Close read on; a snapshot outlives
// its DB, whose Close turns its reads into ErrClosed.
func TestSnapshotUseAfterClose(t *testing.T) {
	noLeakedIterators(t)
	noLeakedSnapshots(t)
	allFail := func(t *testing.T, s *Snapshot) {
		t.Helper()
		errs := map[string]error{}
		_, errs["Get"] = s.Get([]byte("a"))
		_, errs["Has"] = s.Has([]byte("a"))
		_, errs["Len"] = s.Len()
		_, errs["NewIterator"] = s.NewIterator(IterOptions{})
		errs["Walk"] = s.Walk(func(k, v []byte) error { return nil })
		errs["WalkPrefix"] = s.WalkPrefix([]byte("a"), func(k, v []byte) error { return nil })
		errs["All"], errs["Keys"], errs["Range"], errs["KeysPrefix"] = nil, nil, nil, nil
		for _, err := range s.All() {
			errs["All"] = err
		}
		for _, err := range s.Range([]byte("a"), []byte{}) {
			errs["Range"] = err
		}
		for _, err := range s.Keys(Reverse()) {
			errs["Keys"] = err
		}
		for _, err := range s.KeysPrefix([]byte("a")) {
			errs["KeysPrefix"] = err
		}
		for name, err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s: %v, want ErrClosed", name, err)
			}
		}
	}
	t.Run("snapshot closed", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b")
		s, err := db.Snapshot()
		must(t, err)
		seq := s.Seq()
		it, err := s.NewIterator(IterOptions{})
		must(t, err)
		defer it.Close()
		must(t, s.Close())
		must(t, s.Close())
		allFail(t, s)
		if s.Seq() != seq || seq == 0 {
			t.Errorf("Seq after Close = %d, was %d", s.Seq(), seq)
		}
		must(t, db.Put([]byte("c"), []byte("vc")))
		var got []string
		for ; it.Valid(); it.Next() {
			got = append(got, string(it.Key())+"="+string(it.Value()))
		}
		if it.Err() != nil || !slices.Equal(got, []string{"a=va", "b=vb"}) {
			t.Fatalf("iterator after its snapshot's Close: %q, %v", got, it.Err())
		}
	})
	t.Run("database closed", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b")
		s, err := db.Snapshot()
		must(t, err)
		defer s.Close()
		checkSnapshot(t, s, map[string]string{"a": "va", "b": "vb"})
		must(t, db.Close())
		allFail(t, s)
		if _, err := db.Snapshot(); !errors.Is(err, ErrClosed) {
			t.Errorf("Snapshot of a closed DB: %v", err)
		}
		must(t, s.Close())
	})
	t.Run("database closed in a loop over the snapshot", func(t *testing.T) {
		db := open(t, t.TempDir())
		fill(t, db, "a", "b", "c")
		s := snapshot(t, db)
		seen, err := func() ([]string, error) {
			var seen []string
			for e, err := range s.All() {
				if err != nil {
					return seen, err
				}
				seen = append(seen, string(e.Key))
				must(t, db.Close())
			}
			return seen, nil
		}()
		if !errors.Is(err, ErrClosed) || len(seen) != 1 {
			t.Fatalf("seen %q, err %v; want one key, then ErrClosed", seen, err)
		}
	})
}

// Close racing with reads on other goroutines: none may crash, and each read
// either gives the snapshot's answer or ErrClosed.
func TestSnapshotCloseRacingCalls(t *testing.T) {
	noLeakedSnapshots(t)
	db := open(t, t.TempDir())
	const keys = 40
	for i := range keys {
		must(t, db.Put([]byte(fmt.Sprint(i)), []byte("value")))
	}
	for round := range 20 {
		must(t, db.Delete([]byte("later"))) // written after each snapshot
		s, err := db.Snapshot()
		must(t, err)
		must(t, db.Put([]byte("later"), []byte("x")))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 5 {
			goWG(&wg, func() {
				<-start
				for i := 0; ; i++ {
					k := []byte(fmt.Sprint(i % keys))
					var err error
					wrong := false
					switch g {
					case 0:
						var v []byte
						v, err = s.Get(k)
						wrong = err == nil && !bytes.Equal(v, []byte("value"))
					case 1:
						var ok bool
						ok, err = s.Has([]byte("later"))
						wrong = err == nil && ok
					case 2:
						var n int
						n, err = s.Len()
						wrong = err == nil && n != keys
					case 3:
						n := 0
						for _, kerr := range s.Keys() {
							if err = kerr; err != nil {
								break
							}
							n++
						}
						wrong = err == nil && n != keys
					case 4:
						n := 0
						err = s.Walk(func(k, v []byte) error { n++; return nil })
						wrong = err == nil && n != keys
					}
					if wrong || (err != nil && !errors.Is(err, ErrClosed)) {
						t.Errorf("round %d, goroutine %d: wrong answer or error %v", round, g, err)
					}
					if wrong || err != nil {
						return
					}
				}
			})
		}
		close(start)
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		must(t, s.Close())
		wg.Wait()
	}
}

// The bounds of a snapshot's ranges are the DB's: nil is no bound, an empty
// non-nil end is the empty key (nothing below it), and a prefix may not be
// combined with bounds.
func TestSnapshotRangeBoundsAreTheDBs(t *testing.T) {
	db := open(t, t.TempDir())
	fill(t, db, "a", "b", "c")
	s := snapshot(t, db)
	must(t, db.Put([]byte("bb"), []byte("vbb"))) // not in the snapshot
	for _, c := range []struct {
		name       string
		start, end []byte
		want       string
	}{
		{"nil end", []byte("b"), nil, "b c"},
		{"empty end", []byte("b"), []byte{}, ""},
		{"nil start", nil, []byte("c"), "a b"},
		{"empty start", []byte{}, []byte("c"), "a b"},
		{"both nil", nil, nil, "a b c"},
	} {
		got, err := entryKeys(s.Range(c.start, c.end))
		must(t, err)
		keys, err := keyStrings(s.KeysRange(c.start, c.end, Reverse()))
		must(t, err)
		slices.Reverse(keys)
		if strings.Join(got, " ") != c.want || strings.Join(keys, " ") != c.want {
			t.Errorf("%s: Range %q, KeysRange reversed %q; want %q", c.name, got, keys, c.want)
		}
	}
	if _, err := s.NewIterator(IterOptions{Prefix: []byte("a"), End: []byte("b")}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("prefix with a bound: %v", err)
	}
}

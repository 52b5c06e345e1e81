package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bitcask "github.com/libbitcask/libbitcask/bindings/go"
)

func openStore(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := New(dir, opts...)
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openStore(t, t.TempDir(), opts...)
}

// entry is the log at index with a payload derived from it, so that any entry
// read back can be checked.
func entry(index, term uint64) *raft.Log {
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d", index))}
}

func entries(first, last, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, entry(i, term))
	}
	return logs
}

func storeLogs(t testing.TB, s *Store, logs []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

func checkBounds(t testing.TB, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
	// The cached bounds are what the keydir holds.
	kf, ok, err := s.edge(false)
	if err != nil {
		t.Fatal(err)
	}
	kl, _, err := s.edge(true)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		kf, kl = 0, 0
	}
	if kf != first || kl != last {
		t.Fatalf("keydir bounds = %d, %d; cached %d, %d", kf, kl, first, last)
	}
}

// checkLog checks that exactly the indexes from first to last are present,
// each with the payload entry gives it for term (termOf(index)).
func checkLog(t testing.TB, s *Store, first, last uint64, termOf func(uint64) uint64) {
	t.Helper()
	checkBounds(t, s, first, last)
	for i := first; i <= last && last != 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := entry(i, termOf(i))
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("GetLog(%d) = %+v; want %+v", i, got, *want)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		if i == 0 && first == 0 {
			continue
		}
		if err := s.GetLog(i, new(raft.Log)); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) outside the log = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

func term(uint64) uint64 { return 1 }

func TestFirstAndLastIndexOfAnEmptyStoreAreZero(t *testing.T) {
	s := newStore(t)
	checkBounds(t, s, 0, 0)
}

func TestFirstAndLastIndexOfAFilledStore(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 3, 1))
	checkBounds(t, s, 1, 3)
	storeLogs(t, s, entries(4, 10, 2))
	checkBounds(t, s, 1, 10)
}

func TestGetLogOfAMissingIndexIsErrLogNotFound(t *testing.T) {
	s := newStore(t)
	// raft compares with ==: the error must be the sentinel itself.
	if err := s.GetLog(1, new(raft.Log)); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog on an empty store = %v; want raft.ErrLogNotFound", err)
	}
	storeLogs(t, s, entries(5, 7, 1))
	for _, i := range []uint64{0, 4, 8, 1 << 40} {
		if err := s.GetLog(i, new(raft.Log)); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

func TestStoreLogThenGetLogRoundTripsEveryField(t *testing.T) {
	s := newStore(t)
	now := time.Now()
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("config"), Extensions: []byte("ext"), AppendedAt: now},
		{Index: 2, Term: 1<<64 - 1, Type: raft.LogNoop},                                  // nil Data and Extensions, zero time
		{Index: 3, Term: 7, Type: raft.LogBarrier, Data: []byte{}, Extensions: []byte{}}, // empty, not nil
		{Index: 4, Term: 7, Type: raft.LogType(200), Data: bytes.Repeat([]byte{0xAB}, 1<<20), AppendedAt: time.Unix(1, 999_999_999)},
		{Index: 5, Term: 8, Type: raft.LogCommand, Data: []byte("before 1970"), AppendedAt: time.Date(1900, 1, 2, 3, 4, 5, 6, time.UTC)},
		{Index: 6, Term: 8, Type: raft.LogCommand, Data: []byte("far ahead"), AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC)},
	}
	for _, l := range logs {
		if err := s.StoreLog(l); err != nil {
			t.Fatalf("StoreLog(%d): %v", l.Index, err)
		}
	}
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		if !got.AppendedAt.Equal(want.AppendedAt) || got.AppendedAt.IsZero() != want.AppendedAt.IsZero() {
			t.Errorf("GetLog(%d).AppendedAt = %v; want %v", want.Index, got.AppendedAt, want.AppendedAt)
		}
		if want.AppendedAt.IsZero() && got.AppendedAt != (time.Time{}) {
			t.Errorf("GetLog(%d).AppendedAt = %#v; want the zero Time", want.Index, got.AppendedAt)
		}
		w := *want
		got.AppendedAt, w.AppendedAt = time.Time{}, time.Time{}
		// DeepEqual tells a nil slice from an empty one: both round-trip.
		if !reflect.DeepEqual(got, w) {
			t.Errorf("GetLog(%d) = %+v; want %+v", want.Index, got, w)
		}
	}
	// The entry read is the caller's: writing into it changes nothing stored.
	var a, b raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	a.Data[0] = 'X'
	a.Data = append(a.Data, "more"...)
	if err := s.GetLog(1, &b); err != nil {
		t.Fatal(err)
	}
	if string(b.Data) != "config" || string(a.Extensions) != "ext" {
		t.Fatalf("after changing a read entry: stored %q, extensions %q", b.Data, a.Extensions)
	}
}

func TestStoreLogsOfManyEntriesThenGetEach(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 500, 1))
	storeLogs(t, s, entries(501, 501, 1))
	storeLogs(t, s, entries(502, 1000, 1))
	checkLog(t, s, 1, 1000, term)
}

func TestStoreLogsReplacesEntriesAtTheSameIndexes(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 10, 1))
	storeLogs(t, s, entries(6, 12, 2))
	checkLog(t, s, 1, 12, func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i <= 5] })
}

func TestDeleteRangeAtTheHeadCompactsTheLog(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 100, 1))
	// raft's compaction: from FirstIndex up to a snapshot's index.
	if err := s.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 61, 100, term)
	// A range starting below the first entry is clamped to it.
	if err := s.DeleteRange(0, 70); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 71, 100, term)
	storeLogs(t, s, entries(101, 110, 1))
	checkLog(t, s, 71, 110, term)
}

func TestDeleteRangeAtTheTailTruncatesTheLog(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 100, 1))
	// raft's truncation of a conflicting suffix: from the conflict to LastIndex.
	if err := s.DeleteRange(81, 100); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 1, 80, term)
	// Then the leader's entries are appended in their place.
	storeLogs(t, s, entries(81, 90, 2))
	checkLog(t, s, 1, 90, func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i <= 80] })
	// A range running past the end is clamped to it.
	if err := s.DeleteRange(86, 1<<64-1); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 85)
}

func TestDeleteRangeOfTheWholeLogEmptiesIt(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 50, 1))
	// raft's removeOldLogs after restoring a snapshot (MonotonicLogStore).
	if err := s.DeleteRange(1, 50); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 0, 0)
	// The log restarts after the snapshot's index.
	storeLogs(t, s, entries(1001, 1010, 3))
	checkLog(t, s, 1001, 1010, func(uint64) uint64 { return 3 })
}

func TestDeleteRangeOutsideTheLogOrEmptyChangesNothing(t *testing.T) {
	s := newStore(t)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on an empty store: %v", err)
	}
	storeLogs(t, s, entries(10, 20, 1))
	for _, r := range [][2]uint64{{1, 9}, {21, 30}, {15, 14}, {1<<64 - 1, 1<<64 - 1}} {
		if err := s.DeleteRange(r[0], r[1]); err != nil {
			t.Fatalf("DeleteRange(%d, %d): %v", r[0], r[1], err)
		}
	}
	checkLog(t, s, 10, 20, term)
}

func TestDeleteRangeInTheMiddleKeepsBothEnds(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 10, 1))
	if err := s.DeleteRange(4, 6); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 10)
	for i := uint64(1); i <= 10; i++ {
		err := s.GetLog(i, new(raft.Log))
		if (i >= 4 && i <= 6) != (err == raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) = %v", i, err)
		}
	}
}

func TestDeleteRangeLargerThanOneBatchAtTheHeadAndTail(t *testing.T) {
	s := newStore(t, WithNoSync())
	n := uint64(deleteChunk*2 + 100)
	for i := uint64(1); i <= n; i += 4096 {
		storeLogs(t, s, entries(i, min(i+4095, n), 1))
	}
	if err := s.DeleteRange(1, deleteChunk+50); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, deleteChunk+51, n)
	if err := s.DeleteRange(deleteChunk+60, n); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, deleteChunk+51, deleteChunk+59, term)
	keys, err := s.db.Len()
	if err != nil || keys != 9 {
		t.Fatalf("Len = %d, %v; want 9", keys, err)
	}
}

func TestFirstAndLastIndexSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, entries(1, 100, 1))
	if err := s.DeleteRange(1, 30); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(91, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkLog(t, s, 31, 90, term)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("GetUint64 after reopen = %d, %v", v, err)
	}
}

func TestSetThenGet(t *testing.T) {
	s := newStore(t)
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get([]byte("LastVoteCand"))
	if err != nil || string(v) != "node-2" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-3")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-3" {
		t.Fatalf("Get after overwrite = %q, %v", v, err)
	}
}

func TestGetOfAMissingKeyIsNotFoundAsRaftBoltDB(t *testing.T) {
	s := newStore(t)
	v, err := s.Get([]byte("missing"))
	// raft tests err.Error() == "not found", as raft-boltdb returns.
	if v != nil || err != ErrKeyNotFound || err.Error() != "not found" {
		t.Fatalf("Get of a missing key = %q, %v", v, err)
	}
	u, err := s.GetUint64([]byte("missing"))
	if u != 0 || err != ErrKeyNotFound {
		t.Fatalf("GetUint64 of a missing key = %d, %v", u, err)
	}
}

func TestSetUint64ThenGetUint64(t *testing.T) {
	s := newStore(t)
	for _, v := range []uint64{0, 1, 123, 1<<64 - 1} {
		if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUint64([]byte("CurrentTerm"))
		if err != nil || got != v {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
		}
	}
	if err := s.Set([]byte("short"), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("short")); err == nil || err == ErrKeyNotFound {
		t.Fatalf("GetUint64 of a 2-byte value = %v; want an error of its own", err)
	}
}

func TestStableKeysAndLogKeysDoNotMeet(t *testing.T) {
	s := newStore(t)
	storeLogs(t, s, entries(1, 3, 1))
	// A stable key spelled like a log key stays out of the log.
	k := logKey(2)
	if err := s.Set(k[:], []byte("stable")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(k[:1], []byte("stable")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(nil, []byte("empty key")); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 1, 3, term)
	if v, err := s.Get(nil); err != nil || string(v) != "empty key" {
		t.Fatalf("Get(nil) = %q, %v", v, err)
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(k[:]); err != nil || string(v) != "stable" {
		t.Fatalf("Get after DeleteRange = %q, %v", v, err)
	}
}

func TestRaftSeesNoExistingStateInANewStore(t *testing.T) {
	s := newStore(t)
	snaps := raft.NewInmemSnapshotStore()
	// raft's own check: GetUint64's "not found" must read as no state.
	has, err := raft.HasExistingState(s, s, snaps)
	if err != nil || has {
		t.Fatalf("HasExistingState of a new store = %v, %v", has, err)
	}
	storeLogs(t, s, entries(1, 1, 1))
	if has, err := raft.HasExistingState(s, s, snaps); err != nil || !has {
		t.Fatalf("HasExistingState with a log = %v, %v", has, err)
	}
}

func TestCorruptLogValuesAreReportedNotDecoded(t *testing.T) {
	good := appendLog(nil, &raft.Log{Term: 3, Type: raft.LogCommand, Data: []byte("data"), Extensions: []byte("x"), AppendedAt: time.Now()})
	for name, v := range map[string][]byte{
		"empty":          {},
		"unknown format": append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"bad nanos":      {formatV1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0},
	} {
		if err := decodeLog(v, new(raft.Log)); !errors.Is(err, ErrCorruptLog) {
			t.Errorf("%s: decodeLog = %v; want ErrCorruptLog", name, err)
		}
	}
	// Through GetLog, with the index in the message.
	s := newStore(t)
	k := logKey(7)
	if err := s.db.Put(k[:], good[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(7, new(raft.Log)); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("GetLog of a corrupt value = %v", err)
	}
}

func TestEncodingIsCompact(t *testing.T) {
	l := &raft.Log{Index: 1 << 40, Term: 12, Type: raft.LogCommand, Data: make([]byte, 100), AppendedAt: time.Now()}
	// Version, term, type, up to 5 bytes of nanoseconds and 5 of seconds,
	// data length, extensions: at most 15 bytes around the data (msgpack
	// spends about 60 on the field names alone).
	if n := len(appendLog(nil, l)) - len(l.Data); n > 15 {
		t.Fatalf("encoding overhead %d bytes", n)
	}
}

func TestReadersRunDuringWritesAndDeletes(t *testing.T) {
	s := newStore(t, WithNoSync())
	storeLogs(t, s, entries(1, 100, 1))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errs <- err
					return
				}
				if first > last {
					// Bounds read at two moments: a compaction in between
					// may pass last only if the whole log went, which this
					// test never does.
					errs <- fmt.Errorf("first %d > last %d", first, last)
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err == nil && l.Index != last {
					errs <- fmt.Errorf("GetLog(%d) read index %d", last, l.Index)
					return
				}
				if _, err := s.GetUint64([]byte("term")); err != nil && err != ErrKeyNotFound {
					errs <- err
					return
				}
			}
		}()
	}
	next := uint64(101)
	for round := 0; round < 200; round++ {
		storeLogs(t, s, entries(next, next+9, 1))
		next += 10
		if err := s.SetUint64([]byte("term"), uint64(round)); err != nil {
			t.Fatal(err)
		}
		first, _ := s.FirstIndex()
		if err := s.DeleteRange(first, first+4); err != nil {
			t.Fatal(err)
		}
		if round%10 == 9 {
			// Truncate the tail and write it again.
			if err := s.DeleteRange(next-3, next-1); err != nil {
				t.Fatal(err)
			}
			storeLogs(t, s, entries(next-3, next-1, 2))
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	first, _ := s.FirstIndex()
	checkBounds(t, s, first, next-1)
}

func TestAStoreIsOpenOnceAndClosedStoresFail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s := openStore(t, dir)
	if _, err := New(dir); !errors.Is(err, bitcask.ErrLocked) {
		t.Fatalf("second New of %s = %v; want ErrLocked", dir, err)
	}
	storeLogs(t, s, entries(1, 2, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, bitcask.ErrClosed) {
		t.Fatalf("LastIndex after Close = %v", err)
	}
	if err := s.GetLog(1, new(raft.Log)); !errors.Is(err, bitcask.ErrClosed) {
		t.Fatalf("GetLog after Close = %v", err)
	}
	if err := s.StoreLog(entry(3, 1)); !errors.Is(err, bitcask.ErrClosed) {
		t.Fatalf("StoreLog after Close = %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, bitcask.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

func TestIsMonotonic(t *testing.T) {
	var ls raft.LogStore = newStore(t)
	m, ok := ls.(raft.MonotonicLogStore)
	if !ok || !m.IsMonotonic() {
		t.Fatal("Store is not a MonotonicLogStore reporting true")
	}
}

package raftstore

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftbench "github.com/hashicorp/raft/bench"
)

// The benchmarks run this store and raft-boltdb v2 side by side, each opened
// fresh in b.TempDir() (set TMPDIR to put them on the disk to measure) in its
// default, durable mode: SyncAlways for this store, an fdatasync per committed
// transaction for bbolt.
//
//	TMPDIR=/var/tmp go test -run '^$' -bench . -benchtime 2s -count 5

type benchStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

var benchStores = []struct {
	name string
	open func(b *testing.B) benchStore
}{
	{"libbitcask", func(b *testing.B) benchStore {
		s, err := New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"raft-boltdb", func(b *testing.B) benchStore {
		s, err := raftboltdb.NewBoltStore(filepath.Join(b.TempDir(), "raft.db"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

// eachStore runs f as a sub-benchmark per store, on a fresh one each time the
// testing package calls it.
func eachStore(b *testing.B, f func(*testing.B, benchStore)) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			defer s.Close()
			f(b, s)
		})
	}
}

// BenchmarkRaft runs raft's own store benchmarks (github.com/hashicorp/raft/bench).
func BenchmarkRaft(b *testing.B) {
	for _, bm := range []struct {
		name string
		f    func(*testing.B, benchStore)
	}{
		{"FirstIndex", func(b *testing.B, s benchStore) { raftbench.FirstIndex(b, s) }},
		{"LastIndex", func(b *testing.B, s benchStore) { raftbench.LastIndex(b, s) }},
		{"GetLog", func(b *testing.B, s benchStore) { raftbench.GetLog(b, s) }},
		{"StoreLog", func(b *testing.B, s benchStore) { raftbench.StoreLog(b, s) }},
		{"StoreLogs", func(b *testing.B, s benchStore) { raftbench.StoreLogs(b, s) }},
		{"DeleteRange", func(b *testing.B, s benchStore) { raftbench.DeleteRange(b, s) }},
		{"Set", func(b *testing.B, s benchStore) { raftbench.Set(b, s) }},
		{"Get", func(b *testing.B, s benchStore) { raftbench.Get(b, s) }},
		{"SetUint64", func(b *testing.B, s benchStore) { raftbench.SetUint64(b, s) }},
		{"GetUint64", func(b *testing.B, s benchStore) { raftbench.GetUint64(b, s) }},
	} {
		b.Run(bm.name, func(b *testing.B) { eachStore(b, bm.f) })
	}
}

// BenchmarkDurableAppend appends to the log as a Raft leader does: StoreLogs
// of batch entries of size bytes each (random, so incompressible) at the next
// indexes, each call durable before it returns. Both stores run in the same
// benchmark, taking turns every 16 calls, because fsync latency on a shared
// disk drifts within seconds: an op is one StoreLogs on each store, and each
// store's rates are over its own time.
func BenchmarkDurableAppend(b *testing.B) {
	for _, batch := range []int{1, 64} {
		for _, size := range []int{128, 1024} {
			b.Run(fmt.Sprintf("batch=%d/entry=%dB", batch, size), func(b *testing.B) {
				durableAppend(b, batch, size)
			})
		}
	}
}

// appender appends batches at the next indexes of one store.
type appender struct {
	store benchStore
	logs  []*raft.Log
	index uint64
	spent time.Duration
}

func (a *appender) append(b *testing.B) {
	now := time.Now()
	for _, l := range a.logs {
		a.index++
		l.Index, l.AppendedAt = a.index, now
	}
	if err := a.store.StoreLogs(a.logs); err != nil {
		b.Fatal(err)
	}
}

func durableAppend(b *testing.B, batch, size int) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, size*batch)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var apps []*appender
	for _, st := range benchStores {
		a := &appender{store: st.open(b), logs: make([]*raft.Log, batch)}
		defer a.store.Close()
		for i := range a.logs {
			a.logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data[i*size : (i+1)*size]}
		}
		apps = append(apps, a)
	}
	const turn = 16
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(turn, b.N-done)
		for i := range apps {
			// Who goes first alternates, so neither always follows the
			// other's fsyncs.
			a := apps[(i+round)%len(apps)]
			start := time.Now()
			for range n {
				a.append(b)
			}
			a.spent += time.Since(start)
		}
		done += n
	}
	b.StopTimer()
	for i, a := range apps {
		secs := a.spent.Seconds()
		b.ReportMetric(float64(b.N*batch)/secs, benchStores[i].name+"-entries/s")
		b.ReportMetric(float64(b.N)/secs, benchStores[i].name+"-batches/s")
	}
	b.ReportMetric(apps[1].spent.Seconds()/apps[0].spent.Seconds(), "speedup")
}

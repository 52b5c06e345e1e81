package bitcask

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// The benchmarks measure the binding plus the engine through the public API;
// they are the baseline that comparisons with pure-Go engines build on.

const benchValueSize = 100

func benchKey(buf []byte, i uint64) []byte {
	binary.BigEndian.PutUint64(buf[4:], i)
	return buf
}

func benchPut(b *testing.B, opts ...Option) {
	db := open(b, b.TempDir(), opts...)
	key, value := []byte("key:00000000"), make([]byte, benchValueSize)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		i++
		if err := db.Put(benchKey(key, i), value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut: writes that reach the OS, not the disk (SyncNever).
func BenchmarkPut(b *testing.B) { benchPut(b) }

// BenchmarkPutSync: every write fdatasynced before it returns.
func BenchmarkPutSync(b *testing.B) { benchPut(b, WithSync(SyncAlways)) }

func benchPutParallel(b *testing.B, opts ...Option) {
	db := open(b, b.TempDir(), opts...)
	var n atomic.Uint64
	b.SetBytes(12 + benchValueSize)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key, value := []byte("key:00000000"), make([]byte, benchValueSize)
		for pb.Next() {
			if err := db.Put(benchKey(key, n.Add(1)), value); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPutParallel: concurrent writers, merged by the engine's group commit.
func BenchmarkPutParallel(b *testing.B) { benchPutParallel(b) }

// BenchmarkPutSyncParallel: concurrent durable writers sharing fsyncs.
func BenchmarkPutSyncParallel(b *testing.B) { benchPutParallel(b, WithSync(SyncAlways)) }

const benchKeys = 10000

func loadedDB(b *testing.B) *DB {
	db := open(b, b.TempDir())
	var batch Batch
	key, value := []byte("key:00000000"), make([]byte, benchValueSize)
	for i := range uint64(benchKeys) {
		batch.Put(benchKey(key, i), value)
	}
	if err := db.Write(&batch); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkGet: random reads of present keys (in the page cache).
func BenchmarkGet(b *testing.B) {
	db := loadedDB(b)
	key := []byte("key:00000000")
	b.SetBytes(int64(len(key) + benchValueSize))
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		i = (i + 7919) % benchKeys
		if _, err := db.Get(benchKey(key, i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetParallel: concurrent readers, which the engine runs in parallel.
func BenchmarkGetParallel(b *testing.B) {
	db := loadedDB(b)
	b.SetBytes(12 + benchValueSize)
	b.ReportAllocs()
	var seed atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		key := []byte("key:00000000")
		i := seed.Add(1) * 1000
		for pb.Next() {
			i = (i + 7919) % benchKeys
			if _, err := db.Get(benchKey(key, i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkScan: a full scan, per entry.
func BenchmarkScan(b *testing.B) {
	db := loadedDB(b)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range db.All() {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchKeys {
			b.Fatalf("scanned %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/entry")
}

// BenchmarkKeys: a full keys-only scan, per entry; it reads no data file.
func BenchmarkKeys(b *testing.B) {
	db := loadedDB(b)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range db.Keys() {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchKeys {
			b.Fatalf("scanned %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/entry")
}

package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/nutsdb/nutsdb"
	"github.com/rosedblabs/rosedb/v2"
	bolt "go.etcd.io/bbolt"
	prologic "go.mills.io/bitcask/v2"

	bitcask "github.com/libbitcask/libbitcask/bindings/go"
)

// store is the least every engine offers. get must return a value the caller
// owns, as libbitcask's Get does, so that no engine is timed on a borrow that a
// real caller would have to copy.
type store interface {
	put(k, v []byte) error
	get(k []byte) ([]byte, error)
	// putBatch writes all pairs as one unit (one batch or transaction), not
	// synced.
	putBatch(ks, vs [][]byte) error
	close() error
}

type engine struct {
	name string
	// durable says, for the report, what "each put durable" means for it.
	durable string
	open    func(dir string, durable bool) (store, error)
}

var engines = []engine{
	{"libbitcask", "WithSync(SyncAlways): fdatasync before Put returns", openLibbitcask},
	{"rosedb", "a one-put batch with BatchOptions.Sync = true: fsync per put (Options.Sync = true does not sync in v2.3.6: see engines.go)", openRosedb},
	{"nutsdb", "SyncEnable = true: fsync per committed transaction", openNutsdb},
	{"prologic/bitcask", "WithSyncWrites(true) (v2's name for WithSync): fsync per write", openPrologic},
	{"bbolt", "default (NoSync = false): fdatasync per committed Update", openBbolt},
}

// --- libbitcask, through the cgo package ---------------------------------------

type libbitcask struct{ db *bitcask.DB }

func openLibbitcask(dir string, durable bool) (store, error) {
	sync := bitcask.SyncNever
	if durable {
		sync = bitcask.SyncAlways
	}
	db, err := bitcask.Open(dir, bitcask.WithSync(sync))
	return &libbitcask{db}, err
}

func (s *libbitcask) put(k, v []byte) error          { return s.db.Put(k, v) }
func (s *libbitcask) get(k []byte) ([]byte, error)   { return s.db.Get(k) }
func (s *libbitcask) close() error                   { return s.db.Close() }
func (s *libbitcask) putBatch(ks, vs [][]byte) error { return s.db.Write(batchOf(ks, vs)) }

func batchOf(ks, vs [][]byte) *bitcask.Batch {
	var b bitcask.Batch
	for i := range ks {
		b.Put(ks[i], vs[i])
	}
	return &b
}

// --- rosedb ---------------------------------------------------------------------

type rose struct {
	db      *rosedb.DB
	durable bool
}

// rosedb v2.3.6 documents Options.Sync as "write followed by fsync", but DB.Put
// commits through WAL.WriteAll, which never syncs, and Batch.Commit syncs only
// when the batch asks and Options.Sync is false: with Options.Sync true no put
// is ever synced (400,000 "durable" puts/s here). A durable put is therefore a
// one-put batch with BatchOptions.Sync on a database without Options.Sync.
func openRosedb(dir string, durable bool) (store, error) {
	opts := rosedb.DefaultOptions
	opts.DirPath = dir
	opts.Sync = false
	db, err := rosedb.Open(opts)
	return &rose{db, durable}, err
}

func (s *rose) put(k, v []byte) error {
	if !s.durable {
		return s.db.Put(k, v)
	}
	b := s.db.NewBatch(rosedb.BatchOptions{Sync: true})
	if err := b.Put(k, v); err != nil {
		_ = b.Rollback()
		return err
	}
	return b.Commit()
}

func (s *rose) get(k []byte) ([]byte, error) { return s.db.Get(k) }
func (s *rose) close() error                 { return s.db.Close() }

func (s *rose) putBatch(ks, vs [][]byte) error {
	// DefaultBatchOptions syncs; the fill is meant to be non-durable.
	b := s.db.NewBatch(rosedb.BatchOptions{Sync: false})
	for i := range ks {
		if err := b.Put(ks[i], vs[i]); err != nil {
			_ = b.Rollback()
			return err
		}
	}
	return b.Commit()
}

// --- nutsdb ---------------------------------------------------------------------

const bucket = "bench"

type nuts struct{ db *nutsdb.DB }

func openNutsdb(dir string, durable bool) (store, error) {
	db, err := nutsdb.Open(nutsdb.DefaultOptions, nutsdb.WithDir(dir), nutsdb.WithSyncEnable(durable))
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *nutsdb.Tx) error {
		err := tx.NewBucket(nutsdb.DataStructureBTree, bucket)
		if errors.Is(err, nutsdb.ErrBucketAlreadyExist) {
			return nil
		}
		return err
	})
	return &nuts{db}, err
}

func (s *nuts) put(k, v []byte) error {
	return s.db.Update(func(tx *nutsdb.Tx) error { return tx.Put(bucket, k, v, 0) })
}

func (s *nuts) get(k []byte) (v []byte, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		v, err = tx.Get(bucket, k)
		return err
	})
	return v, err
}

func (s *nuts) putBatch(ks, vs [][]byte) error {
	return s.db.Update(func(tx *nutsdb.Tx) error {
		for i := range ks {
			if err := tx.Put(bucket, ks[i], vs[i], 0); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *nuts) close() error { return s.db.Close() }

// --- prologic/bitcask (go.mills.io/bitcask/v2) ----------------------------------

type pro struct{ db *prologic.Bitcask }

func openPrologic(dir string, durable bool) (store, error) {
	db, err := prologic.Open(dir, prologic.WithSyncWrites(durable))
	return &pro{db}, err
}

func (s *pro) put(k, v []byte) error        { return s.db.Put(k, v) }
func (s *pro) get(k []byte) ([]byte, error) { return s.db.Get(k) }
func (s *pro) close() error                 { return s.db.Close() }

func (s *pro) putBatch(ks, vs [][]byte) error {
	b := s.db.Batch()
	for i := range ks {
		if _, err := b.Put(ks[i], vs[i]); err != nil {
			return err
		}
	}
	return s.db.WriteBatch(b)
}

// --- bbolt ----------------------------------------------------------------------

type boltStore struct{ db *bolt.DB }

func openBbolt(dir string, durable bool) (store, error) {
	// bbolt's database is one file; the others make their directory.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{NoSync: !durable})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucket))
		return err
	})
	return &boltStore{db}, err
}

func (s *boltStore) put(k, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(k, v) })
}

func (s *boltStore) get(k []byte) (v []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		// The slice points into the mmap and dies with the transaction.
		if b := tx.Bucket([]byte(bucket)).Get(k); b != nil {
			v = append([]byte(nil), b...)
			return nil
		}
		return errors.New("bbolt: key not found")
	})
	return v, err
}

func (s *boltStore) putBatch(ks, vs [][]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		for i := range ks {
			if err := b.Put(ks[i], vs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) close() error { return s.db.Close() }

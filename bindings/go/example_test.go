package bitcask_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	bitcask "github.com/libbitcask/libbitcask/bindings/go"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := bitcask.Open(filepath.Join(dir, "db"), bitcask.WithSync(bitcask.SyncAlways))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if err := db.Put([]byte("user:1"), []byte("alice")); err != nil {
		log.Fatal(err)
	}
	v, err := db.Get([]byte("user:1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user:1 = %s\n", v)

	var batch bitcask.Batch // applied all or nothing, even across a crash
	batch.Put([]byte("user:2"), []byte("bob"))
	batch.Delete([]byte("user:1"))
	if err := db.Write(&batch); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Get([]byte("user:1")); errors.Is(err, bitcask.ErrNotFound) {
		fmt.Println("user:1 deleted")
	}

	for e, err := range db.Prefix([]byte("user:")) { // key order
		if err != nil { // the iteration failed: the loop's last step
			log.Fatal(err)
		}
		fmt.Printf("%s = %s\n", e.Key, e.Value)
	}
	// Output:
	// user:1 = alice
	// user:1 deleted
	// user:2 = bob
}

func ExampleDB_PutWithTTL() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := bitcask.Open(filepath.Join(dir, "db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Gone a minute from now (to the second, rounded up).
	if err := db.PutWithTTL([]byte("session:9"), []byte("token"), time.Minute); err != nil {
		log.Fatal(err)
	}
	left, err := db.TTL([]byte("session:9"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("session:9 expires in", left.Round(time.Minute))

	if err := db.Put([]byte("user:1"), []byte("alice")); err != nil {
		log.Fatal(err)
	}
	if left, err := db.TTL([]byte("user:1")); err == nil && left == bitcask.NoExpiry {
		fmt.Println("user:1 never expires")
	}
	if _, err := db.TTL([]byte("session:8")); errors.Is(err, bitcask.ErrNotFound) {
		fmt.Println("session:8 is absent or expired")
	}
	// Output:
	// session:9 expires in 1m0s
	// user:1 never expires
	// session:8 is absent or expired
}

func ExampleDB_Keys() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := bitcask.Open(filepath.Join(dir, "db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	for _, k := range []string{"user:2", "user:1", "group:1"} {
		if err := db.Put([]byte(k), []byte("a large value")); err != nil {
			log.Fatal(err)
		}
	}
	// Keys only: the loop reads no data file.
	for k, err := range db.KeysPrefix([]byte("user:")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", k)
	}
	// Output:
	// user:1
	// user:2
}

// Every range-over-func iteration yields its error as its last step, so the
// loop has two variables and checks the second. An error is yielded at most
// once, with a zero Entry, and nothing follows it.
func ExampleDB_All() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := bitcask.Open(filepath.Join(dir, "db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	for _, k := range []string{"b", "a", "c"} {
		if err := db.Put([]byte(k), []byte("value of "+k)); err != nil {
			log.Fatal(err)
		}
	}
	// A function that returns the error, as a loop over a file would.
	count := func(db *bitcask.DB) (int, error) {
		n := 0
		for e, err := range db.All(bitcask.Reverse()) {
			if err != nil {
				return n, err // ErrClosed, ErrCorruption, ErrIO, ...
			}
			fmt.Printf("%s = %s\n", e.Key, e.Value)
			n++
		}
		return n, nil
	}
	n, err := count(db)
	fmt.Println(n, err)

	db.Close()
	n, err = count(db)
	fmt.Println(n, errors.Is(err, bitcask.ErrClosed))
	// Output:
	// c = value of c
	// b = value of b
	// a = value of a
	// 3 <nil>
	// 0 true
}

func ExampleDB_Snapshot() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := bitcask.Open(filepath.Join(dir, "db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if err := db.Put([]byte("user:1"), []byte("alice")); err != nil {
		log.Fatal(err)
	}
	snap, err := db.Snapshot()
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()

	// Writes after the snapshot are not in it.
	if err := db.Put([]byte("user:1"), []byte("alice v2")); err != nil {
		log.Fatal(err)
	}
	if err := db.Put([]byte("user:2"), []byte("bob")); err != nil {
		log.Fatal(err)
	}
	for e, err := range snap.Prefix([]byte("user:")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("snapshot %d: %s = %s\n", snap.Seq(), e.Key, e.Value)
	}
	n, err := db.Len()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("keys now:", n)
	// Output:
	// snapshot 1: user:1 = alice
	// keys now: 2
}

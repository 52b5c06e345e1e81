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

	for k, v := range db.Prefix([]byte("user:")) { // key order
		fmt.Printf("%s = %s\n", k, v)
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
	var iterErr error
	for k := range db.KeysPrefix([]byte("user:"), bitcask.ErrorTo(&iterErr)) {
		fmt.Printf("%s\n", k)
	}
	if iterErr != nil {
		log.Fatal(iterErr)
	}
	// Output:
	// user:1
	// user:2
}

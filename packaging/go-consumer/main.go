// The consumer that make dist-test-go builds in a new module, with the binding
// taken from dist/goproxy and no Rust toolchain on PATH: open, write, read,
// iterate, close. Usage: consumer DIR.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	bitcask "github.com/libbitcask/libbitcask/bindings/go"
)

func main() {
	log.SetFlags(0)
	db, err := bitcask.Open(os.Args[1], bitcask.WithSync(bitcask.SyncAlways))
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range [][2]string{{"user:1", "alice"}, {"user:2", "bob"}, {"zzz", "other"}} {
		if err := db.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
			log.Fatal(err)
		}
	}
	v, err := db.Get([]byte("user:1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user:1 = %s\n", v)
	if _, err := db.Get([]byte("user:3")); errors.Is(err, bitcask.ErrNotFound) {
		fmt.Println("user:3 is not there")
	}
	var batch bitcask.Batch
	batch.Put([]byte("user:3"), []byte("carol"))
	batch.Delete([]byte("user:2"))
	if err := db.Write(&batch); err != nil {
		log.Fatal(err)
	}
	for e, err := range db.Prefix([]byte("user:")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s -> %s\n", e.Key, e.Value)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
}

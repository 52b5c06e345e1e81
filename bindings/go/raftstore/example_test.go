package raftstore_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/libbitcask/libbitcask/bindings/go/raftstore"
)

// counter is the smallest FSM: it counts the commands applied.
type counter struct{ n int }

func (c *counter) Apply(*raft.Log) any                 { c.n++; return c.n }
func (c *counter) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not in this example") }
func (c *counter) Restore(io.ReadCloser) error         { return nil }

// A single-node cluster whose log and stable state live in one libbitcask
// database: the same Store is passed as the LogStore and the StableStore.
func Example() {
	dir, err := os.MkdirTemp("", "raftstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := raftstore.New(filepath.Join(dir, "raft"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), 2, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport("")

	conf := raft.DefaultConfig()
	conf.LocalID = "node1"
	conf.LogOutput = io.Discard
	// Short timeouts, so that the example elects itself at once.
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond

	r, err := raft.NewRaft(conf, &counter{}, store, store, snaps, trans)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Shutdown()
	servers := []raft.Server{{ID: conf.LocalID, Address: addr}}
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		log.Fatal(err)
	}
	<-r.LeaderCh()

	f := r.Apply([]byte("hello"), time.Second)
	if err := f.Error(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied:", f.Response())
	last, _ := store.LastIndex()
	fmt.Println("log entries up to", last, "are on disk")
	// Output:
	// applied: 1
	// log entries up to 3 are on disk
}

package raftstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// kvFSM is a key-value map that commands of the form "key=value" set.
type kvFSM struct {
	mu sync.Mutex
	kv map[string]string
}

func newKVFSM() *kvFSM { return &kvFSM{kv: map[string]string{}} }

func (f *kvFSM) Apply(l *raft.Log) any {
	k, v, ok := strings.Cut(string(l.Data), "=")
	if !ok {
		return fmt.Errorf("bad command %q", l.Data)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[k] = v
	return nil
}

func (f *kvFSM) state() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.kv)
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) { return kvSnapshot(f.state()), nil }

func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	kv := map[string]string{}
	if err := json.NewDecoder(rc).Decode(&kv); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv = kv
	return nil
}

type kvSnapshot map[string]string

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(map[string]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (kvSnapshot) Release() {}

// syncBuffer collects the nodes' logs, shown if the test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// node is one Raft server: its directory holds the store (dir/log) and the
// snapshots (dir/snapshots).
type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *Store
	trans *raft.NetworkTransport
	fsm   *kvFSM
	raft  *raft.Raft
}

type cluster struct {
	t     *testing.T
	logs  *syncBuffer
	nodes []*node
}

// listen makes n's transport, on n.addr or, the first time, a free port.
func (c *cluster) listen(n *node) {
	bind := string(n.addr)
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	trans, err := raft.NewTCPTransport(bind, nil, 3, 2*time.Second, c.logs)
	if err != nil {
		c.t.Fatalf("%s: transport on %s: %v", n.id, bind, err)
	}
	n.trans, n.addr = trans, trans.LocalAddr()
}

// start runs Raft on n, with its store and snapshots from its directory.
func (c *cluster) start(n *node) {
	t := c.t
	var err error
	if n.store, err = New(filepath.Join(n.dir, "log")); err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(n.dir, "snapshots"), 2, c.logs)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	// Snapshots every 40 entries or so, keeping 20 behind: compaction
	// (DeleteRange at the head) runs all along, and a node that was down
	// catches up from a snapshot.
	conf.SnapshotThreshold = 40
	conf.SnapshotInterval = 200 * time.Millisecond
	conf.TrailingLogs = 20
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: string(n.id), Output: c.logs, Level: hclog.Info})
	n.fsm = newKVFSM()
	if n.raft, err = raft.NewRaft(conf, n.fsm, n.store, n.store, snaps, n.trans); err != nil {
		t.Fatalf("%s: NewRaft: %v", n.id, err)
	}
}

// stop shuts n down and closes its store; its directory stays.
func (c *cluster) stop(n *node) {
	if n.raft == nil {
		return
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		c.t.Errorf("%s: Shutdown: %v", n.id, err)
	}
	n.trans.Close()
	if err := n.store.Close(); err != nil {
		c.t.Errorf("%s: closing the store: %v", n.id, err)
	}
	n.raft = nil
}

func (c *cluster) running() []*node {
	var ns []*node
	for _, n := range c.nodes {
		if n.raft != nil {
			ns = append(ns, n)
		}
	}
	return ns
}

// leader waits for one running node to be leader, with the others agreeing.
func (c *cluster) leader() *node {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var leaders []*node
		for _, n := range c.running() {
			if n.raft.State() == raft.Leader {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			agreed := true
			for _, n := range c.running() {
				if addr, _ := n.raft.LeaderWithID(); addr != leaders[0].addr {
					agreed = false
				}
			}
			if agreed {
				return leaders[0]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader elected")
	return nil
}

// apply writes key=value through the leader, retrying across a change of
// leader (the command is idempotent), and records it in want.
func (c *cluster) apply(want map[string]string, key, value string) {
	c.t.Helper()
	for try := 0; ; try++ {
		err := c.leader().raft.Apply([]byte(key+"="+value), 2*time.Second).Error()
		if err == nil {
			want[key] = value
			return
		}
		if try == 20 {
			c.t.Fatalf("Apply %s: %v", key, err)
		}
	}
}

// converge waits until the FSM of every node in ns holds want.
func (c *cluster) converge(want map[string]string, ns ...*node) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range ns {
		for {
			got := n.fsm.state()
			if maps.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				missing := 0
				for k, v := range want {
					if got[k] != v {
						missing++
					}
				}
				c.t.Fatalf("%s: %d of %d committed entries missing from the FSM", n.id, missing, len(want))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// applied waits until every node in ns has applied index.
func (c *cluster) applied(index uint64, ns ...*node) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range ns {
		for n.raft.AppliedIndex() < index {
			if time.Now().After(deadline) {
				c.t.Fatalf("%s: applied %d of %d", n.id, n.raft.AppliedIndex(), index)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// checkStores reopens the stores of stopped nodes and checks that each log
// has no holes and reaches at least index.
func (c *cluster) checkStores(index uint64, ns ...*node) {
	c.t.Helper()
	for _, n := range ns {
		s, err := New(filepath.Join(n.dir, "log"))
		if err != nil {
			c.t.Fatalf("%s: %v", n.id, err)
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if last < index {
			c.t.Errorf("%s: the log ends at %d; %d were committed", n.id, last, index)
		}
		for i := first; i <= last; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil || l.Index != i {
				c.t.Errorf("%s: a hole in the log [%d, %d] at %d: %v", n.id, first, last, i, err)
				break
			}
		}
		if _, err := s.GetUint64([]byte("CurrentTerm")); err != nil {
			c.t.Errorf("%s: CurrentTerm: %v", n.id, err)
		}
		s.Close()
	}
}

func TestThreeNodeClusterSurvivesItsLeaderStoppingAndTheNodeCatchesUpOnRestart(t *testing.T) {
	c := &cluster{t: t, logs: new(syncBuffer)}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
		if t.Failed() {
			t.Logf("raft logs:\n%s", c.logs)
		}
	})
	var servers []raft.Server
	for i := range 3 {
		n := &node{id: raft.ServerID(fmt.Sprintf("node%d", i)), dir: t.TempDir()}
		c.listen(n)
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	// Writes through the first leader.
	want := map[string]string{}
	for i := range 100 {
		c.apply(want, fmt.Sprintf("k%03d", i), "first")
	}
	old := c.leader()
	c.converge(want, c.nodes...)
	t.Logf("%s led the first 100 writes", old.id)

	// The leader stops; the survivors elect another and take writes.
	oldLast := old.raft.LastIndex()
	c.stop(old)
	c.checkStores(oldLast, old)
	next := c.leader()
	if next == old {
		t.Fatal("the stopped node is still leader")
	}
	for i := 50; i < 150; i++ {
		c.apply(want, fmt.Sprintf("k%03d", i), "second")
	}
	if err := next.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	survivors := c.running()
	c.converge(want, survivors...)
	// A snapshot now compacts the log past everything the stopped node has,
	// so it catches up by installing one.
	if err := next.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s leads after %s stopped; the survivors hold all %d keys", next.id, old.id, len(want))

	// The stopped node restarts from its directory, on its address.
	c.listen(old)
	c.start(old)
	c.converge(want, old)
	for i := 150; i < 200; i++ {
		c.apply(want, fmt.Sprintf("k%03d", i), "third")
	}
	leader := c.leader()
	if err := leader.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	committed := leader.raft.AppliedIndex()
	c.converge(want, c.nodes...)
	c.applied(committed, c.nodes...)
	t.Logf("%s caught up; all 3 nodes hold %d keys, last index %d", old.id, len(want), committed)
	// The scenario went as planned: logs were compacted, and the restarted
	// node installed a snapshot, after which raft emptied its log
	// (MonotonicLogStore) before appending again.
	logs := c.logs.String()
	for _, event := range []string{"compacting logs", "Installed remote snapshot", "removing all old logs from log store"} {
		if !strings.Contains(logs, event) {
			t.Errorf("no %q in the raft logs", event)
		}
	}

	for _, n := range c.nodes {
		c.stop(n)
	}
	c.checkStores(committed, c.nodes...)
}

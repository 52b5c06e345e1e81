package raftstore

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The crash test runs its writer in a child process: the test binary itself,
// re-executed with these variables set, which TestMain hands to crashWriter
// instead of running the tests.
const (
	envCrashDir  = "RAFTSTORE_CRASH_DIR"
	envCrashTerm = "RAFTSTORE_CRASH_TERM"
	envCrashSeed = "RAFTSTORE_CRASH_SEED"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		crashWriter(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// payload is the Data of the entry at index written in term, so that any
// entry read back can be checked: 0 to 2,047 bytes.
func payload(index, term uint64) []byte {
	b := make([]byte, (index*2654435761+term)%2048)
	for i := range b {
		b[i] = byte(index + term + uint64(i))
	}
	return b
}

// crashWriter appends to the log of the store in dir until it is killed, as a
// Raft node would: StoreLogs batches of 1 to 64 entries at the next indexes,
// now and then a compaction of the head and a truncation of the tail. Before
// each deletion it prints its intent, after each write its acknowledgement:
//
//	term T          SetUint64("CurrentTerm", T) returned
//	ack I           a StoreLogs ending at index I returned
//	compact I       a DeleteRange(first, I) is about to start
//	truncate I      a DeleteRange(I, last) is about to start
func crashWriter(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash writer:", err)
		os.Exit(2)
	}
	term, _ := strconv.ParseUint(os.Getenv(envCrashTerm), 10, 64)
	seed, _ := strconv.ParseUint(os.Getenv(envCrashSeed), 10, 64)
	rng := rand.New(rand.NewPCG(seed, term))
	s, err := New(dir)
	if err != nil {
		fail(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
		fail(err)
	}
	fmt.Printf("term %d\n", term)
	last, err := s.LastIndex()
	if err != nil {
		fail(err)
	}
	for n := 0; ; n++ {
		logs := make([]*raft.Log, 1+rng.IntN(64))
		for i := range logs {
			last++
			logs[i] = &raft.Log{Index: last, Term: term, Type: raft.LogCommand, Data: payload(last, term), AppendedAt: time.Now()}
		}
		if err := s.StoreLogs(logs); err != nil {
			fail(err)
		}
		fmt.Printf("ack %d\n", last)
		switch {
		case n%16 == 15:
			first, _ := s.FirstIndex()
			if last > first+200 {
				upTo := last - 100
				fmt.Printf("compact %d\n", upTo)
				if err := s.DeleteRange(first, upTo); err != nil {
					fail(err)
				}
			}
		case n%16 == 7:
			from := last - uint64(rng.IntN(5))
			if first, _ := s.FirstIndex(); from > first {
				fmt.Printf("truncate %d\n", from)
				if err := s.DeleteRange(from, last); err != nil {
					fail(err)
				}
				last = from - 1
			}
		}
	}
}

// crashReport is what a killed writer printed: what the store must hold.
type crashReport struct {
	term        uint64 // the CurrentTerm acknowledged, or 0
	acked       uint64 // entries up to here were acknowledged (and not truncated since)
	floor       uint64 // entries below this may be gone (the highest compaction begun)
	acks        int
	compactions int
}

func (r *crashReport) line(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	v, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return fmt.Errorf("writer printed %q", line)
	}
	switch verb {
	case "term":
		r.term = v
	case "ack":
		r.acked = v
		r.acks++
	case "compact":
		r.floor = max(r.floor, v+1)
		r.compactions++
	case "truncate":
		r.acked = min(r.acked, v-1)
	default:
		return fmt.Errorf("writer printed %q", line)
	}
	return nil
}

func TestCrashLosesNoAcknowledgedStoreLogsAndLeavesNoHoles(t *testing.T) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var prev crashReport
	for round := 1; round <= 6; round++ {
		killAfter := 10 + rng.IntN(300)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCrashDir+"="+dir,
			envCrashTerm+"="+strconv.Itoa(round), envCrashSeed+"="+strconv.FormatUint(seed, 10))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// What the store held before this round is still owed.
		rep := crashReport{acked: prev.acked, floor: prev.floor}
		sc := bufio.NewScanner(out)
		killed := false
		for sc.Scan() {
			if err := rep.line(sc.Text()); err != nil {
				t.Error(err)
			}
			if !killed && rep.acks >= killAfter {
				// Whatever the writer is doing now is cut short; every line
				// it printed before dying is still read below.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the writer ended on its own: %v\n%s", round, err, stderr.Bytes())
		}
		if rep.term != uint64(round) {
			t.Fatalf("round %d: the writer acknowledged term %d", round, rep.term)
		}
		checkAfterCrash(t, dir, round, &rep)
		t.Logf("round %d: killed after %d acknowledged StoreLogs (%d compactions), log ends at %d", round, rep.acks, rep.compactions, rep.acked)
		prev = rep
	}
}

// checkAfterCrash reopens the store and checks it against what the writer
// acknowledged: the term, every acknowledged entry, and a log without holes
// whose entries are all intact.
func checkAfterCrash(t *testing.T, dir string, round int, rep *crashReport) {
	t.Helper()
	s, err := New(dir)
	if err != nil {
		t.Fatalf("round %d: reopening after the kill: %v", round, err)
	}
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != rep.term {
		t.Fatalf("round %d: CurrentTerm = %d, %v; acknowledged %d", round, v, err, rep.term)
	}
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last < rep.acked {
		t.Fatalf("round %d: LastIndex %d; StoreLogs up to %d were acknowledged", round, last, rep.acked)
	}
	if rep.acked >= rep.floor && first > rep.floor {
		t.Fatalf("round %d: FirstIndex %d; no compaction past %d began", round, first, rep.floor-1)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("round %d: a hole in the log [%d, %d] at %d: %v", round, first, last, i, err)
		}
		if l.Index != i || l.Term < 1 || l.Term > uint64(round) || !bytes.Equal(l.Data, payload(i, l.Term)) || l.AppendedAt.IsZero() {
			t.Fatalf("round %d: entry %d read back as index %d, term %d, %d bytes", round, i, l.Index, l.Term, len(l.Data))
		}
	}
	n := 0
	for _, err := range s.db.KeysPrefix(logKeysStart) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if uint64(n) != last-first+1 {
		t.Fatalf("round %d: %d log keys for [%d, %d]", round, n, first, last)
	}
	// An entry past what was acknowledged may have survived (its StoreLogs
	// was durable but not yet reported): the next round appends after it.
	rep.acked = last
}

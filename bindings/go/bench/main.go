// Command bench runs the point workloads of docs/benchmarks-bindings.md
// through the cgo package and through four pure-Go peers, and writes the
// markdown section with the figures.
//
//	go run . -keys 200000 -runs 3 -durable 2000 -out go.md
//	go run . -smoke
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

const (
	keySize   = 16
	valueSize = 100
	batchSize = 1000
	// Durable puts per engine per turn.
	durableChunk = 20
)

type sample struct {
	opsPerSec float64
	// Latencies in microseconds; zero where the workload does not time ops
	// one by one.
	p50, p99 float64
}

type workload struct {
	id, title string
	latency   bool
}

func workloads(keys, durable int) []workload {
	return []workload{
		{"fill", fmt.Sprintf("fill: %s single puts into an empty database, no sync", num(keys)), false},
		{"fill-batch", fmt.Sprintf("fill, batched: %s puts in batches (transactions) of %s, no sync", num(keys), num(batchSize)), false},
		{"durable", fmt.Sprintf("durable puts: %s single puts from one goroutine, each durable before it returns", num(durable)), true},
		{"get", fmt.Sprintf("random gets: %s gets of present keys, hot cache", num(keys)), true},
		{"mixed", fmt.Sprintf("mixed: %s ops, 90%% gets / 10%% overwrites, random keys, no sync", num(keys)), true},
	}
}

type bench struct {
	keys, values [][]byte
	durable      int
	rng          *rand.Rand
	// results[workload][engine] holds one sample per run.
	results map[string]map[string][]sample
}

func main() {
	keys := flag.Int("keys", 200000, "keys per database")
	runs := flag.Int("runs", 3, "runs of every engine (the report gives median, min and max)")
	durable := flag.Int("durable", 2000, "synced puts per run of the durable workload")
	out := flag.String("out", "", "write the markdown section to this file (default: stdout)")
	only := flag.String("engines", "", "comma-separated subset of engines")
	smoke := flag.Bool("smoke", false, "tiny sizes, one run: checks that every engine works")
	dir := flag.String("dir", "", "where the databases go (default: a temporary directory)")
	flag.Parse()
	if *smoke {
		*keys, *runs, *durable = 2000, 1, 50
	}
	if err := run(*keys, *runs, *durable, *out, *only, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(nkeys, runs, durable int, out, only, dir string) error {
	selected := engines
	if only != "" {
		want := strings.Split(only, ",")
		selected = slices.DeleteFunc(slices.Clone(engines), func(e engine) bool { return !slices.Contains(want, e.name) })
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "bitcask-bindbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// A fixed seed: every engine sees the same keys in the same order, and so
	// does a rerun.
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'i', 't', 'c', 'a', 's', 'k'}))
	b := &bench{durable: min(durable, nkeys), rng: rng, results: map[string]map[string][]sample{}}
	b.keys, b.values = randomBytes(rng, nkeys, keySize), randomBytes(rng, nkeys, valueSize)

	loadStart := loadavg()
	start := time.Now()
	for r := range runs {
		// Rotating the order spreads drifts in the machine's load (other jobs,
		// page cache, disk) over every engine instead of one.
		for i := range selected {
			e := selected[(i+r)%len(selected)]
			fmt.Fprintf(os.Stderr, "run %d/%d: %s\n", r+1, runs, e.name)
			if err := b.runEngine(e, fmt.Sprintf("%s/%d-%d", dir, r, i)); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
			runtime.GC()
		}
		fmt.Fprintf(os.Stderr, "run %d/%d: durable puts, engines interleaved\n", r+1, runs)
		order := append(slices.Clone(selected[r%len(selected):]), selected[:r%len(selected)]...)
		if err := b.runDurable(order, fmt.Sprintf("%s/%d-durable", dir, r)); err != nil {
			return err
		}
	}
	md := b.markdown(selected, runs, loadStart, loadavg(), time.Since(start))
	if out == "" {
		_, err := os.Stdout.WriteString(md)
		return err
	}
	return os.WriteFile(out, []byte(md), 0o644)
}

func randomBytes(rng *rand.Rand, n, size int) [][]byte {
	buf := make([]byte, n*size)
	for i := 0; i < len(buf); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(buf); j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return out
}

func (b *bench) record(w, engine string, s sample) {
	if b.results[w] == nil {
		b.results[w] = map[string][]sample{}
	}
	b.results[w][engine] = append(b.results[w][engine], s)
}

// runEngine runs the non-durable workloads once on e, each on a database of its
// own but the reads, which need the filled one.
func (b *bench) runEngine(e engine, dir string) error {
	defer os.RemoveAll(dir)
	s, err := e.open(dir+"/fill", false)
	if err != nil {
		return err
	}
	t := time.Now()
	for i, k := range b.keys {
		if err := s.put(k, b.values[i]); err != nil {
			return err
		}
	}
	b.record("fill", e.name, sample{opsPerSec: float64(len(b.keys)) / time.Since(t).Seconds()})

	// Hot cache: every key read once, untimed, before the timed reads.
	for _, k := range b.keys {
		if _, err := s.get(k); err != nil {
			return fmt.Errorf("warm-up get: %w", err)
		}
	}
	order := b.rng.Perm(len(b.keys))
	lat := make([]time.Duration, len(order))
	t = time.Now()
	for i, j := range order {
		t0 := time.Now()
		v, err := s.get(b.keys[j])
		lat[i] = time.Since(t0)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if len(v) != valueSize {
			return fmt.Errorf("get: %d bytes, want %d", len(v), valueSize)
		}
	}
	b.record("get", e.name, timed(len(order), time.Since(t), lat))

	// The draws are made before the clock starts, so that the generator is
	// not part of what is timed.
	n := len(b.keys)
	ops := make([]int32, n)
	for i := range ops {
		ops[i] = int32(b.rng.IntN(n))
		if b.rng.IntN(10) == 0 {
			ops[i] = -ops[i] - 1 // a put
		}
	}
	t = time.Now()
	for i, op := range ops {
		t0 := time.Now()
		if op < 0 {
			j := int(-op - 1)
			err = s.put(b.keys[j], b.values[(j+i)%n])
		} else {
			_, err = s.get(b.keys[op])
		}
		lat[i] = time.Since(t0)
		if err != nil {
			return fmt.Errorf("mixed: %w", err)
		}
	}
	b.record("mixed", e.name, timed(n, time.Since(t), lat))
	if err := s.close(); err != nil {
		return err
	}
	os.RemoveAll(dir + "/fill")

	if s, err = e.open(dir+"/batch", false); err != nil {
		return err
	}
	t = time.Now()
	for i := 0; i < n; i += batchSize {
		end := min(i+batchSize, n)
		if err := s.putBatch(b.keys[i:end], b.values[i:end]); err != nil {
			return err
		}
	}
	b.record("fill-batch", e.name, sample{opsPerSec: float64(n) / time.Since(t).Seconds()})
	return s.close()
}

// runDurable runs the durable puts of every engine, interleaved in chunks:
// fsync latency here swings tenfold with the other jobs' disk traffic, and
// engines that take turns every few milliseconds see the same disk.
func (b *bench) runDurable(sel []engine, dir string) error {
	defer os.RemoveAll(dir)
	stores := make([]store, len(sel))
	lat := make([][]time.Duration, len(sel))
	total := make([]time.Duration, len(sel))
	for i, e := range sel {
		s, err := e.open(fmt.Sprintf("%s/%d", dir, i), true)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		stores[i], lat[i] = s, make([]time.Duration, b.durable)
	}
	for j0 := 0; j0 < b.durable; j0 += durableChunk {
		for i, s := range stores {
			t := time.Now()
			for j := j0; j < min(j0+durableChunk, b.durable); j++ {
				t0 := time.Now()
				err := s.put(b.keys[j], b.values[j])
				lat[i][j] = time.Since(t0)
				if err != nil {
					return fmt.Errorf("%s: %w", sel[i].name, err)
				}
			}
			total[i] += time.Since(t)
		}
	}
	for i, s := range stores {
		if err := s.close(); err != nil {
			return fmt.Errorf("%s: %w", sel[i].name, err)
		}
		b.record("durable", sel[i].name, timed(b.durable, total[i], lat[i]))
	}
	return nil
}

func timed(n int, total time.Duration, lat []time.Duration) sample {
	slices.Sort(lat)
	us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e3 }
	return sample{opsPerSec: float64(n) / total.Seconds(), p50: us(0.50), p99: us(0.99)}
}

// --- the report ---------------------------------------------------------------

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func field(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func (b *bench) markdown(sel []engine, runs int, load0, load1 string, took time.Duration) string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("## Go: the cgo package against pure-Go engines\n\n")
	args := strings.Join(argsBut("-out"), " ")
	p("Command: `make bench-go BENCH_GO_ARGS='%s'` (runs `go run . %s` in `bindings/go/bench`).\n", args, args)
	p("Machine: %s, %d cores, %s memory; %s. Load average (1, 5, 15 min) %s at the start, %s at the end; %s in all.\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(), load0, load1, took.Round(time.Second))
	p("Engines: %s.\n\n", strings.Join(versions(), ", "))
	p("Keys are %d random bytes, values %d random (incompressible) bytes, the same for every engine. "+
		"Each figure is the median of %d runs, min and max beside it; the engines take turns within every run "+
		"(the order rotates from run to run); in the durable workload they take turns every %d puts, "+
		"because fsync latency on a shared disk drifts within seconds. \"vs libbitcask\" is the engine's median throughput divided by "+
		"libbitcask's: under 1 is slower. Latencies are medians over the runs of each run's percentile, "+
		"timed per operation (the clock reads are inside the throughput too).\n\n", keySize, valueSize, runs, durableChunk)
	p("Durable mode of each engine:\n\n")
	for _, e := range sel {
		p("- %s: %s\n", e.name, e.durable)
	}
	p("\nThe other workloads run each engine without sync: libbitcask SyncNever, rosedb Sync false, nutsdb SyncEnable false, "+
		"prologic/bitcask WithSyncWrites(false), bbolt NoSync true (one Update per put, or per batch of %d in the batched fill; "+
		"nutsdb likewise with one transaction per put or per batch).\n", batchSize)
	for _, wl := range workloads(len(b.keys), b.durable) {
		p("\n### %s\n\n", wl.title)
		if wl.latency {
			p("| engine | ops/s | min | max | vs libbitcask | p50 µs | p99 µs |\n|---|--:|--:|--:|--:|--:|--:|\n")
		} else {
			p("| engine | ops/s | min | max | vs libbitcask |\n|---|--:|--:|--:|--:|\n")
		}
		base := median(field(b.results[wl.id]["libbitcask"], func(s sample) float64 { return s.opsPerSec }))
		for _, e := range sel {
			ss := b.results[wl.id][e.name]
			ops := field(ss, func(s sample) float64 { return s.opsPerSec })
			m := median(ops)
			ratio := "n/a"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f×", m/base)
			}
			p("| %s | %s | %s | %s | %s |", e.name, num(m), num(slices.Min(ops)), num(slices.Max(ops)), ratio)
			if wl.latency {
				p(" %.1f | %.1f |", median(field(ss, func(s sample) float64 { return s.p50 })),
					median(field(ss, func(s sample) float64 { return s.p99 })))
			}
			p("\n")
		}
	}
	return w.String()
}

// argsBut returns the command line without flag (and its value), which make
// supplies itself.
func argsBut(flag string) []string {
	var out []string
	for a := os.Args[1:]; len(a) > 0; a = a[1:] {
		switch {
		case a[0] == flag || a[0] == "-"+flag:
			if len(a) > 1 {
				a = a[1:]
			}
		case strings.HasPrefix(a[0], flag+"=") || strings.HasPrefix(a[0], "-"+flag+"="):
		default:
			out = append(out, a[0])
		}
	}
	return out
}

// num prints a count or a throughput with thousands separators: 1234567 ->
// 1,234,567.
func num[T int | float64](x T) string {
	s := fmt.Sprintf("%.0f", float64(x))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func versions() []string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return []string{"(no build info)"}
	}
	var out []string
	for _, d := range info.Deps {
		switch d.Path {
		case "github.com/rosedblabs/rosedb/v2", "github.com/nutsdb/nutsdb", "go.mills.io/bitcask/v2", "go.etcd.io/bbolt":
			out = append(out, "`"+d.Path+"` "+d.Version)
		}
	}
	return append([]string{"libbitcask from this tree (`target/release/libbitcask.a`)"}, out...)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	var kb int
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

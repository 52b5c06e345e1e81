//! Markdown report and SVG/PNG charts from the collected samples.

use crate::util::summarize;
use crate::workloads::Params;
use crate::Result;
use std::fmt::Write as _;
use std::path::Path;

/// One measurement of one engine in one run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub engine: String,
    pub run: usize,
    pub workload: String,
    pub case: String,
    pub metric: String,
    pub value: f64,
}

pub struct Header {
    pub fsync_p50: f64,
    pub fsync_p99: f64,
    pub fsync_n: usize,
    /// fdatasync after a 128-byte append (p50, p99 µs).
    pub fsync_small: (f64, f64),
    /// fdatasync after a 128-byte write into a zero-filled, synced file.
    pub fsync_pre: (f64, f64),
    /// The durable write trace section, when libbitcask ran durable puts.
    pub trace: Option<String>,
    pub cores: usize,
    pub mem: u64,
    pub cpu: String,
    pub kernel: String,
    pub fs: String,
    pub keys: u64,
    pub runs: usize,
    pub params: Params,
    pub elapsed_s: f64,
    pub args: String,
    pub disk: String,
    /// The scale run: keys, engines, workloads.
    pub scale: Option<(u64, Vec<String>, Vec<String>)>,
    /// Hand-written text for the "where libbitcask loses" section.
    pub analysis: Option<String>,
}

/// Workload name of the marker sample a child sends for a workload its engine
/// does not support (case = the CLI workload); never shown in tables.
pub const SKIPPED: &str = "skipped";

/// Whether sample `s` is a result of CLI workload `w`.
pub fn belongs(w: &str, s: &Sample) -> bool {
    match w {
        "concurrent" => s.workload == "concurrent durable",
        "hot" => s.workload == "hot get",
        "cold" => s.workload == "cold get",
        "crash" => s.workload == "open" && s.case.contains("kill"),
        "open" => s.workload == "open" && !s.case.contains("kill"),
        _ => s.workload == w,
    }
}

const ORDER: [&str; 10] = [
    "fill",
    "durable",
    "concurrent durable",
    "hot get",
    "scan",
    "cold get",
    "mixed",
    "open",
    "memory",
    "merge",
];

const BLURB: [(&str, &str); 10] = [
    ("scan", "Forward range scans after the fill (warm cache, same store as the hot gets): each scan starts at a random existing key and reads the next 100 (or 100,000) keys and values in key order; about --read-ops keys per case. keys/s counts the keys read (a scan near the end of the key space reads fewer). libbitcask scans with `Iter::next_ref`, which lends each key (from the chunk's key buffer) and value (from the data file's map, checksum verified) until the next step; the peers' iterators hand out borrowed slices or reference-counted buffers too, which the harness only touches. The \"after merge\" cases follow a tenth of the keys overwritten and a merge, for engines with one (libbitcask: each merged file's records come out in key order); they are libbitcask's scans of merged data beside the peers' scans of their freshly filled stores. Engines without ordered iteration are skipped (RocksDB: db_bench's seekrandom is not wired up)."),
    ("merge", "libbitcask only (the peers compact on their own schedule; their compaction is not driven here). Fill --keys keys, overwrite the first half of them twice (non-durable), then `merge()` while one reader thread does random gets; `get p99 µs idle` is the same reader for 0.3 s before the merge. MB/s is input bytes (the files merged) per second of merge wall time; reclaimed % is allocated disk before vs after. After the merge the store is reopened and sampled keys are checked."),
    ("fill", "Single puts of fresh random keys into an empty store, non-durable mode; plus batches of 1000 (one transaction / write batch each) where the engine has them. Latencies are per put."),
    ("durable", "Puts from one thread, each durable before it returns (fsync / durable commit per put). `dev flushes/write` is the delta of the disk's completed flush requests (/proc/diskstats) divided by writes: machine-wide, so approximate. `engine fdatasyncs/write` and `writes per group` are libbitcask's own counters (`Stats::syncs`, `writes`, `write_groups` since open): exact, and the engine's syncs only."),
    ("concurrent durable", "Durable puts from N threads sharing one store; total writes = --durable-ops. More writers than flushes per write shows group commit. `libbitcask-nomerge` is libbitcask with `write_merging = false` (issue 4's comparison). `dev flushes/write` counts the whole disk's flush requests (other processes and the filesystem journal included), so it is an upper bound of the engine's own syncs; RocksDB's `WAL syncs/write` is its own count, and libbitcask's `engine fdatasyncs/write` (with `writes per group`, the writes that shared one append) comes from its `Stats` counters, for both `libbitcask` (write merging on) and `libbitcask-nomerge` (off)."),
    ("hot get", "Uniform random gets of existing keys after every key was read once (page cache and engine cache warm)."),
    ("cold get", "Store closed, posix_fadvise(DONTNEED) on every file, reopened, then uniform random gets from one thread. An engine that replays its log into memory on open (fjall's journal into its memtable, a RocksDB WAL) serves these from memory: read them together with the open times."),
    ("mixed", "One thread, existing keys, reads verify presence, writes overwrite (non-durable). Zipf = scrambled Zipfian, theta 0.99."),
    ("open", "Time to open a store after a clean fill (warm and cold page cache), and after the filling child process was killed with SIGKILL halfway (recovery). `acked keys found %` samples keys the child had written before the kill (non-durable writes: loss is allowed)."),
    ("memory", "Resident memory growth of the (fresh) process across the fill, divided by keys; peak RSS of the process; allocated disk bytes (st_blocks) after close. Memory-mapped engines (LMDB) count their mapped file pages as resident."),
];

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        // thousands separators
        let s = format!("{:.0}", v);
        let (sign, digits) = s
            .strip_prefix('-')
            .map(|d| ("-", d))
            .unwrap_or(("", &s[..]));
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn uniq<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in it {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    v
}

fn values(samples: &[Sample], engine: &str, wl: &str, case: &str, metric: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.engine == engine && s.workload == wl && s.case == case && s.metric == metric)
        .map(|s| s.value)
        .collect()
}

fn median(samples: &[Sample], engine: &str, wl: &str, case: &str, metric: &str) -> f64 {
    summarize(&values(samples, engine, wl, case, metric)).0
}

fn untrusted(e: &str) -> bool {
    crate::engine::registry()
        .iter()
        .any(|s| s.name == e && !s.durability_trusted)
}

fn engine_modes(e: &str) -> String {
    if e == crate::rocks::NAME {
        return format!(
            "{} (rocksdb-tools {})",
            crate::rocks::MODES,
            crate::rocks::version()
        );
    }
    crate::engine::registry()
        .into_iter()
        .find(|s| s.name == e)
        .map(|s| s.modes.to_string())
        .unwrap_or_default()
}

pub fn write(
    out: &Path,
    h: &Header,
    engines: &[String],
    reference: &str,
    samples: &[Sample],
) -> Result<()> {
    let ref_engine = if engines.iter().any(|e| e == reference) {
        reference.to_string()
    } else {
        engines[0].clone()
    };
    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "# Benchmark report\n")?;
    writeln!(
        w,
        "Generated by `bench {}` in {:.0} s.\n",
        h.args, h.elapsed_s
    )?;
    writeln!(w, "| machine | |\n|---|---|")?;
    writeln!(w, "| cores | {} ({}) |", h.cores, h.cpu)?;
    writeln!(
        w,
        "| memory | {:.1} GiB |",
        h.mem as f64 / (1u64 << 30) as f64
    )?;
    writeln!(w, "| kernel | {} |", h.kernel)?;
    writeln!(w, "| bench filesystem | {} |", h.fs)?;
    writeln!(w, "| disk | {} |", h.disk)?;
    writeln!(
        w,
        "| fdatasync, 4 KiB append | p50 {:.0} µs, p99 {:.0} µs ({} probes) |",
        h.fsync_p50, h.fsync_p99, h.fsync_n
    )?;
    writeln!(
        w,
        "| fdatasync, 128 B append (file grows) | p50 {:.0} µs, p99 {:.0} µs |",
        h.fsync_small.0, h.fsync_small.1
    )?;
    writeln!(
        w,
        "| fdatasync, 128 B write, preallocated (zero-filled) file | p50 {:.0} µs, p99 {:.0} µs |",
        h.fsync_pre.0, h.fsync_pre.1
    )?;
    writeln!(w)?;
    let p = &h.params;
    writeln!(
        w,
        "Keys: {} (16-byte random keys, 100-byte incompressible random values). Runs: {} per engine, engines alternating; cells are the median over runs, with [min–max] for throughput when runs > 1. Durable cases: {} writes; hot gets: {} per case; cold gets: {}; mixed: {} ops per case.\n",
        h.keys, h.runs, p.durable_ops, p.read_ops, p.cold_ops, p.mixed_ops
    )?;
    if let Some((k, es, ws)) = &h.scale {
        writeln!(
            w,
            "Scale run: workloads {} also at {} keys for {}, same runs and alternation; those cases are marked `{}`.\n",
            ws.join(", "),
            k,
            es.join(", "),
            crate::scale_suffix(*k).trim()
        )?;
    }
    if ref_engine == reference {
        writeln!(
            w,
            "Ratios (×) are against **{ref_engine}** (value / {ref_engine}'s value).\n"
        )?;
    } else {
        writeln!(w, "Reference engine `{reference}` was not in this run: ratios (×) are against **{ref_engine}** instead.\n")?;
    }
    writeln!(w, "## Engines and durability modes\n")?;
    for e in engines {
        writeln!(w, "- **{e}**: {}", engine_modes(e))?;
    }
    if engines.iter().any(|e| untrusted(e)) {
        writeln!(w, "\n> **sled** (and any engine marked †): its `flush()` is not a reliable fsync (crash-consistency problems are known in 0.34); its durable numbers are throughput only, not a durability claim.")?;
    }
    if !engines.iter().any(|e| e == crate::rocks::NAME) && !crate::rocks::available() {
        writeln!(w, "\n> **rocksdb** was not measured: `db_bench` is not installed (Debian package rocksdb-tools: `apt-get install -y rocksdb-tools`).")?;
    }
    if engines.iter().any(|e| e == crate::rocks::NAME) {
        writeln!(w, "\n> **rocksdb** runs as a `db_bench` subprocess: keys are db_bench's own 16-byte keys (not the harness's), fills use `filluniquerandom`, hot gets take the second of two `readrandom` passes with a 1 GiB block cache, mixed is `readrandomwriterandom` (no Zipf variant), durable cases are `fillrandom --sync=1` (`WAL syncs/write` from its statistics), open times are a whole `ldb scan --max_keys=1` process (includes process start), and RSS is not measured.")?;
    }
    writeln!(w)?;

    for wl in ORDER {
        let cases = uniq(
            samples
                .iter()
                .filter(|s| s.workload == wl)
                .map(|s| s.case.as_str()),
        );
        if cases.is_empty() {
            continue;
        }
        writeln!(w, "## {wl}\n")?;
        if let Some((_, b)) = BLURB.iter().find(|(n, _)| *n == wl) {
            writeln!(w, "{b}\n")?;
        }
        for case in &cases {
            let metrics = uniq(
                samples
                    .iter()
                    .filter(|s| s.workload == wl && &s.case == case)
                    .map(|s| s.metric.as_str()),
            );
            writeln!(w, "### {wl}: {case}\n")?;
            write!(w, "| engine |")?;
            for m in &metrics {
                write!(w, " {m} |")?;
            }
            writeln!(w)?;
            write!(w, "|---|")?;
            for _ in &metrics {
                write!(w, "---:|")?;
            }
            writeln!(w)?;
            for e in engines {
                let vs: Vec<Vec<f64>> = metrics
                    .iter()
                    .map(|m| values(samples, e, wl, case, m))
                    .collect();
                if vs.iter().all(|v| v.is_empty()) {
                    continue;
                }
                write!(
                    w,
                    "| {e}{} |",
                    if untrusted(e) && wl.contains("durable") {
                        " †"
                    } else {
                        ""
                    }
                )?;
                for (m, v) in metrics.iter().zip(&vs) {
                    let (med, lo, hi) = summarize(v);
                    let mut cell = fmt(med);
                    if (m == "ops/s" || m == "keys/s") && h.runs > 1 && v.len() > 1 {
                        cell += &format!(" [{}–{}]", fmt(lo), fmt(hi));
                    }
                    let r = median(samples, &ref_engine, wl, case, m);
                    if e != &ref_engine && r.is_finite() && r != 0.0 && med.is_finite() {
                        cell += &format!(" ({:.2}×)", med / r);
                    }
                    write!(w, " {cell} |")?;
                }
                writeln!(w)?;
            }
            writeln!(w)?;
        }
        if wl.contains("durable") && engines.iter().any(|e| untrusted(e)) {
            writeln!(
                w,
                "† throughput only: this engine's fsync is not reliable.\n"
            )?;
        }
    }

    // Charts beside the report (its directory may not exist yet).
    if let Some(parent) = out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("bench")
        .to_string();
    let cdir = out.parent().unwrap_or(Path::new("."));
    w.push_str(&charts(cdir, &stem, engines, &p.threads, samples)?);
    if let Some(t) = &h.trace {
        writeln!(w, "{}", t.trim_end())?;
        writeln!(w)?;
    }
    if engines.iter().any(|e| e == "libbitcask") {
        goals(w, h, samples)?;
        losses(w, engines, samples)?;
        if let Some(a) = &h.analysis {
            writeln!(w, "{}\n", a.trim_end())?;
        }
    }
    // `make bench-snapshots` keeps its figures here; each report carries them.
    if let Ok(snap) = std::fs::read_to_string("bench/snapshots.md") {
        writeln!(w, "{}\n", snap.trim_end())?;
    }
    writeln!(w, "## Python and Go bindings\n")?;
    writeln!(w, "Measured separately: [benchmarks-bindings.md](benchmarks-bindings.md) (the Python and Go bindings against their languages' usual embedded stores).\n")?;
    std::fs::write(out, md)?;
    let mut raw = String::from("engine\trun\tworkload\tcase\tmetric\tvalue\n");
    for s in samples {
        writeln!(
            raw,
            "{}\t{}\t{}\t{}\t{}\t{}",
            s.engine, s.run, s.workload, s.case, s.metric, s.value
        )?;
    }
    std::fs::write(cdir.join(format!("{stem}-raw.tsv")), raw)?;
    Ok(())
}

/// Draws the charts into `dir` (`<stem>-durable-writers` and `<stem>-latency`,
/// each as .svg and .png) and returns the report's "## Charts" section, empty
/// when no sample feeds a chart. Series keep their engine's colour (its place in
/// `engines`) in every chart.
pub fn charts(
    dir: &Path,
    stem: &str,
    engines: &[String],
    threads: &[usize],
    samples: &[Sample],
) -> Result<String> {
    let series_of = |f: &dyn Fn(&str) -> Vec<f64>| -> Vec<crate::chart::Series> {
        engines
            .iter()
            .enumerate()
            .map(|(colour, e)| crate::chart::Series {
                name: e.clone(),
                colour,
                values: f(e),
            })
            .filter(|s| s.values.iter().any(|x| x.is_finite()))
            .collect()
    };
    // (file stem, alt text)
    let mut drawn: Vec<(String, &str)> = Vec::new();
    let conc: Vec<String> = threads.iter().map(|t| format!("{t} writer(s)")).collect();
    if samples.iter().any(|s| s.workload == "concurrent durable") {
        let series = series_of(&|e| {
            conc.iter()
                .map(|c| median(samples, e, "concurrent durable", c, "ops/s"))
                .collect()
        });
        let title = "Durable puts: throughput vs writer threads";
        let f = format!("{stem}-durable-writers");
        crate::chart::line_chart(
            &dir.join(&f),
            title,
            "ops/s",
            "writer threads",
            &threads.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            &series,
        )?;
        drawn.push((f, title));
    }
    let groups: [(&str, &str, &str, &str); 8] = [
        ("hot p50", "hot get", "1 thread(s)", "p50 µs"),
        ("hot p99", "hot get", "1 thread(s)", "p99 µs"),
        ("cold p50", "cold get", "1 thread", "p50 µs"),
        ("cold p99", "cold get", "1 thread", "p99 µs"),
        ("fill p50", "fill", "single puts", "p50 µs"),
        ("fill p99", "fill", "single puts", "p99 µs"),
        ("dur p50", "durable", "1 thread", "p50 µs"),
        ("dur p99", "durable", "1 thread", "p99 µs"),
    ];
    let present: Vec<_> = groups
        .iter()
        .filter(|g| {
            samples
                .iter()
                .any(|s| s.workload == g.1 && s.case == g.2 && s.metric == g.3)
        })
        .collect();
    if !present.is_empty() {
        let series = series_of(&|e| {
            present
                .iter()
                .map(|g| median(samples, e, g.1, g.2, g.3))
                .collect()
        });
        let title = "Latency percentiles (log scale)";
        let f = format!("{stem}-latency");
        crate::chart::log_bars(
            &dir.join(&f),
            title,
            "microseconds",
            &present.iter().map(|g| g.0.to_string()).collect::<Vec<_>>(),
            &series,
        )?;
        drawn.push((f, title));
    }
    let mut md = String::new();
    if !drawn.is_empty() {
        writeln!(md, "## Charts\n")?;
        for (f, title) in &drawn {
            writeln!(md, "![{title}]({f}.svg)\n")?;
            writeln!(md, "PNG: [{f}.png]({f}.png)\n")?;
        }
    }
    Ok(md)
}

/// `md` with the section under `heading` (up to the next `## ` heading or the
/// end) replaced by `new`, which starts with its own heading; None without it.
pub fn replace_section(md: &str, heading: &str, new: &str) -> Option<String> {
    let start = if md.starts_with(&format!("{heading}\n")) {
        0
    } else {
        md.find(&format!("\n{heading}\n"))? + 1
    };
    let body = start + heading.len();
    let end = md[body..]
        .find("\n## ")
        .map(|i| body + i + 1)
        .unwrap_or(md.len());
    Some(format!("{}{new}{}", &md[..start], &md[end..]))
}

/// Reads a `<stem>-raw.tsv` written by `write`.
pub fn read_raw(path: &Path) -> Result<Vec<Sample>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("{}:{}: not a raw sample line", path.display(), n + 1);
        if f.len() != 6 {
            return Err(bad().into());
        }
        out.push(Sample {
            engine: f[0].into(),
            run: f[1].parse().map_err(|_| bad())?,
            workload: f[2].into(),
            case: f[3].into(),
            metric: f[4].into(),
            value: f[5].parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// Direction of a metric: Some(true) when higher is better, None when it is
/// informational only.
fn higher_is_better(metric: &str) -> Option<bool> {
    if metric.contains("ops/s")
        || metric.contains("keys/s")
        || metric.contains("MB/s")
        || metric.contains('%')
    {
        Some(true)
    } else if metric.contains("µs")
        || metric.contains(" ms")
        || metric.contains("B/key")
        || metric.contains("/write")
    {
        Some(false)
    } else {
        None
    }
}

/// Issue 8's (and issue 4's) targets, computed from the medians.
fn goals(w: &mut String, h: &Header, samples: &[Sample]) -> Result<()> {
    let m = |e: &str, wl: &str, case: &str, metric: &str| median(samples, e, wl, case, metric);
    let lb = "libbitcask";
    let mut rows: Vec<(String, String, String, Option<bool>)> = Vec::new();
    let ratio_row = |goal: &str, target: f64, a: f64, b: f64, what: &str| {
        let r = a / b;
        let ok = r.is_finite().then_some(r >= target);
        (
            goal.to_string(),
            format!("≥ {target}×"),
            format!("{:.2}× ({} vs {} {what})", r, fmt(a), fmt(b)),
            ok,
        )
    };
    let fj = m("fjall", "fill", "single puts", "ops/s");
    rows.push(ratio_row(
        "fill, no sync, write buffer, vs fjall single puts",
        3.0,
        m("libbitcask-buffered", "fill", "single puts", "ops/s"),
        fj,
        "ops/s",
    ));
    rows.push(ratio_row(
        "fill, no sync, no buffer, vs fjall single puts",
        3.0,
        m(lb, "fill", "single puts", "ops/s"),
        fj,
        "ops/s",
    ));
    let pre = h.fsync_pre.0;
    let d1 = m(lb, "durable", "1 thread", "ops/s");
    let d1p50 = m(lb, "durable", "1 thread", "p50 µs");
    let d1p99 = m(lb, "durable", "1 thread", "p99 µs");
    rows.push((
        "issue 15: durable puts, 1 thread, at the preallocated fdatasync floor".into(),
        format!("p50 ≤ 1.10× the preallocated probe ({pre:.0} µs)"),
        format!(
            "p50 {:.0} µs = {:.2}× the probe; {} ops/s = {:.2}× 1/fdatasync",
            d1p50,
            d1p50 / pre,
            fmt(d1),
            d1 * pre / 1e6
        ),
        d1p50.is_finite().then_some(d1p50 <= 1.10 * pre),
    ));
    if let Some(t) = &h.trace {
        // The trace's own probe ran just before its puts, minutes after the
        // header's: the device's speed drifts between them.
        if let Some(line) = t.lines().find(|l| l.contains("puts: p50")) {
            // The line's first "p50 N µs" is the puts', the second the probe's.
            let p50s: Vec<f64> = line
                .split("p50 ")
                .skip(1)
                .filter_map(|x| x.split(' ').next()?.replace(',', "").parse().ok())
                .collect();
            let ok = match p50s[..] {
                [puts, probe, ..] => Some(puts <= 1.10 * probe),
                _ => None,
            };
            rows.push((
                "issue 15: the same, measured side by side (trace, default files)".into(),
                "p50 ≤ 1.10× the probe run just before".into(),
                line.to_string(),
                ok,
            ));
        }
    }
    rows.push(ratio_row(
        "issue 15: durable puts, 1 thread, vs fjall",
        1.0,
        d1,
        m("fjall", "durable", "1 thread", "ops/s"),
        "ops/s",
    ));
    rows.push((
        "issue 15: durable puts, 1 thread, tail".into(),
        "p99 ≤ 2.5× p50".into(),
        format!("p99 {:.0} µs = {:.2}× p50", d1p99, d1p99 / d1p50),
        d1p99.is_finite().then_some(d1p99 <= 2.5 * d1p50),
    ));
    rows.push(ratio_row(
        "issue 15: 16 durable writers vs RocksDB group commit",
        3.0,
        m(lb, "concurrent durable", "16 writer(s)", "ops/s"),
        m("rocksdb", "concurrent durable", "16 writer(s)", "ops/s"),
        "ops/s",
    ));
    rows.push(ratio_row(
        "issue 15: 16 durable writers vs 1 (group commit)",
        12.0,
        m(lb, "concurrent durable", "16 writer(s)", "ops/s"),
        m(lb, "concurrent durable", "1 writer(s)", "ops/s"),
        "ops/s",
    ));
    let d64 = m(lb, "concurrent durable", "64 writer(s)", "ops/s");
    rows.push((
        "issue 15: 64 durable writers".into(),
        "≥ 120,000 ops/s".into(),
        format!(
            "{} ops/s = {:.1} writes per preallocated fdatasync time ({pre:.0} µs)",
            fmt(d64),
            d64 * pre / 1e6
        ),
        d64.is_finite().then_some(d64 >= 120_000.0),
    ));
    rows.push(ratio_row(
        "issue 14: hot gets, 1 thread, vs LMDB",
        1.5,
        m(lb, "hot get", "1 thread(s)", "ops/s"),
        m("lmdb", "hot get", "1 thread(s)", "ops/s"),
        "ops/s",
    ));
    rows.push(ratio_row(
        "issue 14: hot gets, 2 threads, vs LMDB",
        1.5,
        m(lb, "hot get", "2 thread(s)", "ops/s"),
        m("lmdb", "hot get", "2 thread(s)", "ops/s"),
        "ops/s",
    ));
    rows.push(ratio_row(
        "issue 14: hot gets, 2 threads vs 1",
        1.8,
        m(lb, "hot get", "2 thread(s)", "ops/s"),
        m(lb, "hot get", "1 thread(s)", "ops/s"),
        "ops/s",
    ));
    for len in crate::workloads::SCAN_LENGTHS {
        for after in ["", " after merge"] {
            let case = format!("{len}-key ranges");
            let ours = m(lb, "scan", &format!("{case}{after}"), "keys/s");
            let fresh = if after.is_empty() { "" } else { ", merged" };
            rows.push(ratio_row(
                &format!("issue 14: {len}-key scans{fresh}, vs LMDB"),
                0.5,
                ours,
                m("lmdb", "scan", &case, "keys/s"),
                "keys/s",
            ));
            for peer in ["fjall", "sled"] {
                rows.push(ratio_row(
                    &format!("issue 14: {len}-key scans{fresh}, vs {peer}"),
                    2.0,
                    ours,
                    m(peer, "scan", &case, "keys/s"),
                    "keys/s",
                ));
            }
        }
    }
    let suffix = h
        .scale
        .as_ref()
        .map(|s| crate::scale_suffix(s.0))
        .unwrap_or_default();
    let keys = h.scale.as_ref().map(|s| s.0).unwrap_or(h.keys);
    for cache in ["warm", "cold"] {
        let o = m(
            lb,
            "open",
            &format!("after clean fill{suffix}"),
            &format!("open ms ({cache} cache)"),
        );
        rows.push((
            format!("open with hint files, {keys} keys, {cache} page cache"),
            "< 2000 ms".into(),
            format!("{} ms", fmt(o)),
            o.is_finite().then_some(o < 2000.0),
        ));
    }
    let kd = m(
        lb,
        "memory",
        &format!("after fill{suffix}"),
        "keydir B/key (engine estimate)",
    );
    let rss = m(lb, "memory", &format!("after fill{suffix}"), "RSS B/key");
    rows.push((
        format!("keydir bytes per key, {keys} keys"),
        format!("< {} B (16-byte keys + 32)", crate::util::KEY_LEN + 32),
        format!(
            "{} B (engine estimate); RSS growth over the fill {} B",
            fmt(kd),
            fmt(rss)
        ),
        kd.is_finite()
            .then_some(kd.max(rss) < (crate::util::KEY_LEN + 32) as f64),
    ));
    writeln!(w, "## Targets (issues 4, 8, 14 and 15)\n")?;
    writeln!(w, "Computed from the medians above. The keydir row counts the larger of the engine's estimate and the RSS growth.\n")?;
    writeln!(w, "| goal | target | measured | |\n|---|---|---|---|")?;
    for (g, t, v, ok) in rows {
        let mark = match ok {
            Some(true) => "met",
            Some(false) => "**short**",
            None => "not measured",
        };
        writeln!(w, "| {g} | {t} | {v} | {mark} |")?;
    }
    writeln!(w)?;
    Ok(())
}

/// Every case where some peer beats libbitcask by more than 10%.
fn losses(w: &mut String, engines: &[String], samples: &[Sample]) -> Result<()> {
    writeln!(w, "## Where libbitcask loses, and why\n")?;
    writeln!(w, "Every cell above where a peer's median beats libbitcask's by more than 10% (libbitcask variants are compared with libbitcask's own figure where it exists):\n")?;
    let mut n = 0;
    let keys = uniq(
        samples
            .iter()
            .filter(|s| s.engine == "libbitcask")
            .map(|s| s.workload.as_str()),
    );
    for wl in &keys {
        let cases = uniq(
            samples
                .iter()
                .filter(|s| &s.workload == wl && s.engine == "libbitcask")
                .map(|s| s.case.as_str()),
        );
        for case in &cases {
            let metrics = uniq(
                samples
                    .iter()
                    .filter(|s| &s.workload == wl && &s.case == case && s.engine == "libbitcask")
                    .map(|s| s.metric.as_str()),
            );
            for metric in &metrics {
                let Some(up) = higher_is_better(metric) else {
                    continue;
                };
                let ours = median(samples, "libbitcask", wl, case, metric);
                if !ours.is_finite() {
                    continue;
                }
                let mut beaten: Vec<String> = Vec::new();
                for e in engines.iter().filter(|e| !e.starts_with("libbitcask")) {
                    let v = median(samples, e, wl, case, metric);
                    if !v.is_finite() || (untrusted(e) && wl.contains("durable")) {
                        continue;
                    }
                    let better = if up { v > ours * 1.1 } else { v * 1.1 < ours };
                    if better {
                        beaten.push(format!("{e} {} ({:.2}×)", fmt(v), v / ours));
                    }
                }
                if !beaten.is_empty() {
                    n += 1;
                    writeln!(
                        w,
                        "- {wl} / {case} / {metric}: libbitcask {}; {}",
                        fmt(ours),
                        beaten.join(", ")
                    )?;
                }
            }
        }
    }
    if n == 0 {
        writeln!(w, "- none in this run")?;
    }
    writeln!(w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_named_section() {
        let md = "# R\n\n## Charts\n\n![a](a.png)\n\n## Targets\n\nt\n";
        let new = "## Charts\n\n![a](a.svg)\n\n";
        assert_eq!(
            replace_section(md, "## Charts", new).unwrap(),
            "# R\n\n## Charts\n\n![a](a.svg)\n\n## Targets\n\nt\n"
        );
        assert_eq!(
            replace_section("## Charts\nold\n", "## Charts", new).unwrap(),
            new
        );
        assert!(replace_section(md, "## Nope", new).is_none());
    }

    #[test]
    fn raw_tsv_round_trip() {
        let path = std::env::temp_dir().join(format!("bench-raw-{}.tsv", std::process::id()));
        std::fs::write(
            &path,
            "engine\trun\tworkload\tcase\tmetric\tvalue\nlmdb\t1\tfill\tsingle puts\tops/s\t12.5\nfjall\t0\tskipped\tscan\t\tNaN\n",
        )
        .unwrap();
        let s = read_raw(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].engine.as_str(), s[0].run, s[0].value),
            ("lmdb", 1, 12.5)
        );
        assert!(s[1].value.is_nan() && s[1].metric.is_empty());
    }
}

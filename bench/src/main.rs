//! Benchmark harness: libbitcask against the engines users would pick instead.
//! See README.md for usage and for adding an engine.

mod chart;
mod engine;
mod engines;
mod report;
mod rocks;
mod sys;
#[cfg(feature = "libbitcask")]
mod trace;
mod util;
mod workloads;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use workloads::Params;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Workloads only engines that list them in `EngineSpec::extra` run.
pub const SPECIFIC_WORKLOADS: [&str; 1] = ["merge"];

pub const ALL_WORKLOADS: [&str; 11] = [
    "merge",
    "fill",
    "durable",
    "concurrent",
    "hot",
    "scan",
    "cold",
    "mixed",
    "open",
    "crash",
    "memory",
];

const USAGE: &str = "usage: bench [options]
  --keys N            keys per fill (default 200000)
  --runs R            runs per engine, engines alternate within each run (default 3)
  --engines a,b,c     engines (default: all compiled in, plus rocksdb if db_bench is installed)
  --workloads w,...   of fill,durable,concurrent,hot,scan,cold,mixed,open,crash,memory,merge (default all)
  --reference NAME    engine that ratios are computed against (default libbitcask)
  --out FILE          markdown report (default benchmarks.md); SVG and PNG charts go beside it
  --dir DIR           scratch directory for databases (default /tmp/bitcask-bench)
  --durable-ops N     fsynced puts per durable case (default 2000)
  --read-ops N        gets per hot-cache case (default: keys)
  --cold-ops N        gets in the cold-cache case (default 20000)
  --mixed-ops N       operations per mixed case (default: keys / 2)
  --threads 1,4,...   writer counts of the concurrent durable workload (default 1,4,16,64)
  --fsync-probes N    fdatasyncs timed for the header (default 200)
  --scale-keys N      also run --scale-workloads at N keys for --scale-engines (0 = off)
  --scale-engines a,b engines of the scale run (default libbitcask)
  --scale-workloads w open,memory,crash by default
  --analysis FILE     markdown included verbatim in the report's \"where libbitcask loses\" section
  --smoke             every workload, tiny sizes, 1 run; fails on any engine error
  --charts-from TSV   measure nothing: redraw the charts beside --out from a run's
                      <stem>-raw.tsv and update --out's \"## Charts\" section
                      (engines: --engines, else the TSV's order)
  --list              list the engines compiled in";

struct Cli {
    p: Params,
    runs: usize,
    engines: Vec<String>,
    reference: String,
    out: PathBuf,
    dir: PathBuf,
    probes: usize,
    smoke: bool,
    scale_keys: u64,
    scale_engines: Vec<String>,
    scale_workloads: Vec<String>,
    analysis: Option<PathBuf>,
    charts_from: Option<PathBuf>,
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: not a number: {v}").into())
}

fn parse_cli(args: &[String]) -> Result<Cli> {
    let mut c = Cli {
        p: Params {
            keys: 200_000,
            durable_ops: 2000,
            read_ops: 0,
            cold_ops: 20_000,
            mixed_ops: 0,
            threads: vec![1, 4, 16, 64],
            workloads: ALL_WORKLOADS.iter().map(|s| s.to_string()).collect(),
            seed: 42,
        },
        runs: 3,
        engines: Vec::new(),
        reference: "libbitcask".into(),
        out: "benchmarks.md".into(),
        dir: "/tmp/bitcask-bench".into(),
        probes: 200,
        smoke: false,
        scale_keys: 0,
        scale_engines: vec!["libbitcask".into()],
        scale_workloads: vec!["open".into(), "memory".into(), "crash".into()],
        analysis: None,
        charts_from: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--keys" => c.p.keys = num(a, &val()?)?,
            "--runs" => c.runs = num(a, &val()?)?,
            "--engines" => c.engines = list(&val()?),
            "--workloads" => c.p.workloads = list(&val()?),
            "--reference" => c.reference = val()?,
            "--out" => c.out = val()?.into(),
            "--dir" => c.dir = val()?.into(),
            "--durable-ops" => c.p.durable_ops = num(a, &val()?)?,
            "--read-ops" => c.p.read_ops = num(a, &val()?)?,
            "--cold-ops" => c.p.cold_ops = num(a, &val()?)?,
            "--mixed-ops" => c.p.mixed_ops = num(a, &val()?)?,
            "--seed" => c.p.seed = num(a, &val()?)?,
            "--fsync-probes" => c.probes = num(a, &val()?)?,
            "--threads" => {
                c.p.threads = list(&val()?)
                    .iter()
                    .map(|t| num(a, t))
                    .collect::<Result<_>>()?;
            }
            "--smoke" => c.smoke = true,
            "--analysis" => c.analysis = Some(val()?.into()),
            "--charts-from" => c.charts_from = Some(val()?.into()),
            "--scale-keys" => c.scale_keys = num(a, &val()?)?,
            "--scale-engines" => c.scale_engines = list(&val()?),
            "--scale-workloads" => c.scale_workloads = list(&val()?),
            "--list" => {
                for s in engine::registry() {
                    println!("{}: {}", s.name, s.modes);
                }
                println!(
                    "{}: {}{}",
                    rocks::NAME,
                    rocks::MODES,
                    if rocks::available() {
                        ""
                    } else {
                        " (db_bench NOT installed)"
                    }
                );
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a}\n{USAGE}").into()),
        }
    }
    if c.charts_from.is_some() {
        // Nothing is measured: the engines need not be compiled in or installed.
        return Ok(c);
    }
    if c.smoke {
        c.p.keys = 2000;
        c.runs = 1;
        c.p.durable_ops = 40;
        c.p.cold_ops = 500;
        c.probes = 20;
    }
    if c.p.keys < 10 || c.runs == 0 || c.p.durable_ops == 0 {
        return Err("--keys must be >= 10, --runs and --durable-ops >= 1".into());
    }
    if c.p.read_ops == 0 {
        c.p.read_ops = c.p.keys;
    }
    if c.p.mixed_ops == 0 {
        c.p.mixed_ops = (c.p.keys / 2).max(100);
    }
    c.p.cold_ops = c.p.cold_ops.min(c.p.keys);
    for w in c.p.workloads.iter().chain(&c.scale_workloads) {
        if !ALL_WORKLOADS.contains(&w.as_str()) {
            return Err(format!("unknown workload {w}").into());
        }
    }
    let known: Vec<String> = engine::registry()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    if c.engines.is_empty() {
        c.engines = known.clone();
        if rocks::available() {
            c.engines.push(rocks::NAME.into());
        } else {
            eprintln!("note: db_bench not installed (apt-get install -y rocksdb-tools): rocksdb is not measured");
        }
    }
    if c.scale_keys == 0 {
        c.scale_engines.clear();
    }
    for e in c.engines.iter().chain(&c.scale_engines) {
        if !known.contains(e) && e != rocks::NAME {
            return Err(format!(
                "unknown engine {e}; compiled in: {}, {}",
                known.join(", "),
                rocks::NAME
            )
            .into());
        }
        if e == rocks::NAME && !rocks::available() {
            return Err("rocksdb requested but db_bench is not installed (apt-get install -y rocksdb-tools)".into());
        }
    }
    Ok(c)
}

/// Starts this binary as a child running `kind` for one engine, so that each
/// engine's memory and crashes are its own; its report comes back on stdout.
fn spawn_child(kind: &str, engine: &str, dir: &Path, p: &Params) -> Result<std::process::Child> {
    Ok(Command::new(std::env::current_exe()?)
        .args(["__child", kind, engine])
        .arg(dir)
        .args(params_args(p))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn params_args(p: &Params) -> Vec<String> {
    vec![
        "--keys".into(),
        p.keys.to_string(),
        "--durable-ops".into(),
        p.durable_ops.to_string(),
        "--read-ops".into(),
        p.read_ops.to_string(),
        "--cold-ops".into(),
        p.cold_ops.to_string(),
        "--mixed-ops".into(),
        p.mixed_ops.to_string(),
        "--seed".into(),
        p.seed.to_string(),
        "--threads".into(),
        p.threads
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "--workloads".into(),
        p.workloads.join(","),
    ]
}

fn spec_by_name(name: &str) -> Result<engine::EngineSpec> {
    engine::registry()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("engine {name} not compiled in").into())
}

/// Whether engine `name` takes part in CLI workload `w`.
pub fn engine_runs(name: &str, w: &str) -> bool {
    if name == rocks::NAME {
        // db_bench's seekrandom is not wired up: no range scans for rocksdb.
        return !SPECIFIC_WORKLOADS.contains(&w) && w != "scan";
    }
    engine::registry()
        .iter()
        .find(|s| s.name == name)
        .is_some_and(|s| s.runs(w))
}

/// `p` restricted to the workloads engine `name` runs.
fn params_for(name: &str, p: &Params) -> Params {
    let mut q = p.clone();
    q.workloads.retain(|w| engine_runs(name, w));
    q
}

/// Child entry point: `bench __child run|fill-forever ENGINE DIR [params]`.
fn child_main(args: &[String]) -> Result<()> {
    let (mode, name, dir) = (&args[0], &args[1], PathBuf::from(&args[2]));
    let cli = parse_cli(&args[3..])?;
    if name == rocks::NAME {
        return rocks::run(&dir, &cli.p);
    }
    let spec = spec_by_name(name)?;
    match mode.as_str() {
        "run" => workloads::run_engine(&spec, &dir, &cli.p),
        "fill-forever" => workloads::fill_until_killed(&spec, &dir, cli.p.seed),
        _ => Err(format!("unknown child mode {mode}").into()),
    }
}

/// Run one engine's workloads in a child process; collect its METRIC lines.
fn run_child(
    engine: &str,
    dir: &Path,
    p: &Params,
    run: usize,
    suffix: &str,
    out: &mut Vec<report::Sample>,
) -> Result<()> {
    let child = spawn_child("run", engine, dir, p)?;
    let o = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&o.stdout);
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() == 2 && f[0] == "SKIP" {
            // The engine does not support this workload (e.g. no range scans):
            // recorded so the completeness check accepts the missing tables.
            out.push(report::Sample {
                engine: engine.into(),
                run,
                workload: report::SKIPPED.into(),
                case: f[1].into(),
                metric: String::new(),
                value: f64::NAN,
            });
        }
        if f.len() == 5 && f[0] == "METRIC" {
            out.push(report::Sample {
                engine: engine.into(),
                run,
                workload: f[1].into(),
                case: format!("{}{suffix}", f[2]),
                metric: f[3].into(),
                value: f[4].parse().unwrap_or(f64::NAN),
            });
        }
    }
    if !o.status.success() {
        return Err(format!("engine {engine} failed in run {run} ({})", o.status).into());
    }
    Ok(())
}

/// kill -9 a child that is filling, then time the reopen in this process.
fn crash_test(
    engine: &str,
    dir: &Path,
    p: &Params,
    run: usize,
    suffix: &str,
    out: &mut Vec<report::Sample>,
) -> Result<()> {
    let spec = spec_by_name(engine)?;
    let mut child = spawn_child("fill-forever", engine, dir, p)?;
    let target = (p.keys / 2).max(1000);
    let mut acked = 0u64;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(n) = line.strip_prefix("ACK ") {
            acked = n.parse().unwrap_or(acked);
            if acked >= target {
                break;
            }
        }
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    if acked < target {
        return Err(format!("{engine}: fill child died after {acked} keys").into());
    }
    let t = Instant::now();
    let e = (spec.open)(dir, false)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let sample = 2000.min(acked);
    let mut found = 0;
    for j in 0..sample {
        if e.get(&util::key(j * acked / sample))?.is_some() {
            found += 1;
        }
    }
    e.close()?;
    let mut push = |metric: &str, value: f64| {
        out.push(report::Sample {
            engine: engine.into(),
            run,
            workload: "open".into(),
            case: format!("after kill -9 mid-fill{suffix}"),
            metric: metric.into(),
            value,
        })
    };
    push("open ms (warm cache)", ms);
    push("acked keys found %", 100.0 * found as f64 / sample as f64);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Case-name suffix of the scale run's samples, e.g. " @ 10M keys".
pub fn scale_suffix(keys: u64) -> String {
    if keys.is_multiple_of(1_000_000) {
        format!(" @ {}M keys", keys / 1_000_000)
    } else if keys.is_multiple_of(1000) {
        format!(" @ {}k keys", keys / 1000)
    } else {
        format!(" @ {keys} keys")
    }
}

/// One engine, one run: its child process, then the kill -9 test.
fn run_one(
    engine: &str,
    base: &Path,
    p: &Params,
    run: usize,
    suffix: &str,
    samples: &mut Vec<report::Sample>,
) -> Result<()> {
    let p = params_for(engine, p);
    if p.workloads.is_empty() {
        return Ok(());
    }
    let dir = base.join(format!("{engine}-run{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    run_child(engine, &dir, &p, run, suffix, samples)?;
    if engine != rocks::NAME && p.has("crash") {
        crash_test(engine, &dir.join("crash"), &p, run, suffix, samples)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "run {run} {engine}{suffix}: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main_inner(cli: Cli) -> Result<()> {
    if let Some(tsv) = &cli.charts_from {
        return redraw(&cli, tsv);
    }
    // A missing chart font fails now, not after the measurements.
    chart::init_font()?;
    std::fs::create_dir_all(&cli.dir)?;
    let started = Instant::now();
    let probe = |size, prealloc| -> Result<Vec<f64>> {
        let mut v = sys::fdatasync_probe(&cli.dir, cli.probes, size, prealloc)?;
        v.sort_by(|a, b| a.total_cmp(b));
        Ok(v)
    };
    let lat = probe(4096, false)?;
    let lat_small = probe(128, false)?;
    let lat_pre = probe(128, true)?;
    eprintln!(
        "fdatasync p50 (p99): 4 KiB append {:.0} ({:.0}) µs, 128 B append {:.0} ({:.0}) µs, 128 B preallocated {:.0} ({:.0}) µs; engines {}; {} keys x {} runs",
        util::percentile(&lat, 50.0),
        util::percentile(&lat, 99.0),
        util::percentile(&lat_small, 50.0),
        util::percentile(&lat_small, 99.0),
        util::percentile(&lat_pre, 50.0),
        util::percentile(&lat_pre, 99.0),
        cli.engines.join(","),
        cli.p.keys,
        cli.runs
    );
    let mut samples = Vec::new();
    for run in 0..cli.runs {
        // Alternate engines; rotate the starting engine each run.
        let n = cli.engines.len();
        for i in 0..n {
            let engine = &cli.engines[(i + run) % n];
            run_one(engine, &cli.dir, &cli.p, run, "", &mut samples)?;
        }
        // The scale run (e.g. 10M keys) alternates its engines the same way.
        let m = cli.scale_engines.len();
        for i in 0..m {
            let engine = &cli.scale_engines[(i + run) % m];
            let mut p = cli.p.clone();
            p.keys = cli.scale_keys;
            p.workloads = cli.scale_workloads.clone();
            p.read_ops = p.read_ops.min(p.keys);
            p.mixed_ops = p.mixed_ops.min(p.keys);
            let suffix = scale_suffix(cli.scale_keys);
            run_one(engine, &cli.dir, &p, run, &suffix, &mut samples)?;
        }
    }
    // Every engine must have produced every selected workload (smoke relies on this).
    for e in &cli.engines {
        for w in cli.p.workloads.iter().filter(|w| engine_runs(e, w)) {
            if !samples.iter().any(|s| {
                &s.engine == e
                    && (report::belongs(w, s) || (s.workload == report::SKIPPED && &s.case == w))
            }) {
                return Err(format!("engine {e} produced no result for workload {w}").into());
            }
        }
    }
    #[cfg(feature = "libbitcask")]
    let trace = if cli.engines.iter().any(|e| e == "libbitcask") && cli.p.has("durable") {
        eprintln!("durable write trace (libbitcask)");
        Some(trace::durable_trace(&cli.dir, cli.p.durable_ops)?)
    } else {
        None
    };
    #[cfg(not(feature = "libbitcask"))]
    let trace = None;
    let header = report::Header {
        fsync_p50: util::percentile(&lat, 50.0),
        fsync_p99: util::percentile(&lat, 99.0),
        fsync_n: lat.len(),
        fsync_small: (
            util::percentile(&lat_small, 50.0),
            util::percentile(&lat_small, 99.0),
        ),
        fsync_pre: (
            util::percentile(&lat_pre, 50.0),
            util::percentile(&lat_pre, 99.0),
        ),
        trace,
        cores: sys::cores(),
        mem: sys::mem_total_bytes(),
        cpu: sys::cpu_model(),
        kernel: sys::kernel(),
        fs: sys::fs_type(&cli.dir),
        keys: cli.p.keys,
        runs: cli.runs,
        params: cli.p.clone(),
        elapsed_s: started.elapsed().as_secs_f64(),
        args: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        disk: sys::disk_info(&cli.dir),
        scale: (cli.scale_keys > 0).then(|| {
            (
                cli.scale_keys,
                cli.scale_engines.clone(),
                cli.scale_workloads.clone(),
            )
        }),
        analysis: match &cli.analysis {
            Some(f) => {
                Some(std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?)
            }
            None => None,
        },
    };
    report::write(&cli.out, &header, &cli.engines, &cli.reference, &samples)?;
    eprintln!(
        "report written to {} ({:.1}s)",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--charts-from TSV`: the charts of a finished run, redrawn from its raw
/// samples (every value the charts plot is in the TSV). Engines keep the run's
/// order (run 0 starts with the first engine of `--engines`), writer counts are
/// the TSV's `N writer(s)` cases. The report's other sections need the machine
/// header, which the TSV does not hold: only its "## Charts" section is replaced.
fn redraw(cli: &Cli, tsv: &Path) -> Result<()> {
    chart::init_font()?;
    let samples = report::read_raw(tsv)?;
    let engines = if cli.engines.is_empty() {
        let mut v: Vec<String> = Vec::new();
        for s in samples.iter().filter(|s| s.run == 0).chain(&samples) {
            if !v.contains(&s.engine) {
                v.push(s.engine.clone());
            }
        }
        v
    } else {
        cli.engines.clone()
    };
    let mut threads: Vec<usize> = samples
        .iter()
        .filter(|s| s.workload == "concurrent durable")
        .filter_map(|s| s.case.strip_suffix(" writer(s)")?.parse().ok())
        .collect();
    threads.sort_unstable();
    threads.dedup();
    let stem = cli
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("bench");
    let dir = cli.out.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir)?;
    }
    let section = report::charts(dir, stem, &engines, &threads, &samples)?;
    if section.is_empty() {
        return Err(format!("{}: no samples that a chart plots", tsv.display()).into());
    }
    eprintln!(
        "charts {stem}-durable-writers and {stem}-latency (.svg, .png) written to {}",
        if dir.as_os_str().is_empty() {
            Path::new(".").display()
        } else {
            dir.display()
        }
    );
    match std::fs::read_to_string(&cli.out) {
        Ok(md) => match report::replace_section(&md, "## Charts", &section) {
            Some(new) => {
                std::fs::write(&cli.out, new)?;
                eprintln!("{}: \"## Charts\" section updated", cli.out.display());
            }
            None => eprintln!(
                "{} has no \"## Charts\" section; left as it is",
                cli.out.display()
            ),
        },
        Err(_) => eprintln!("{} does not exist; charts only", cli.out.display()),
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__child") {
        if args.len() < 4 {
            eprintln!("bench __child: bad arguments");
            std::process::exit(2);
        }
        if let Err(e) = child_main(&args[1..]) {
            eprintln!("bench child {} {}: error: {e}", args[1], args[2]);
            std::process::exit(1);
        }
        return;
    }
    let res = parse_cli(&args).and_then(main_inner);
    if let Err(e) = res {
        eprintln!("bench: error: {e}");
        std::process::exit(1);
    }
}

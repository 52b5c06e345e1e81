//! RocksDB through Debian's `db_bench` (package rocksdb-tools), driven as a
//! subprocess with matching parameters. Results are parsed from its output and
//! emitted as the same metrics as the in-process engines.

use crate::sys;
use crate::workloads::Params;
use crate::Result;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const NAME: &str = "rocksdb";
pub const MODES: &str = "db_bench subprocess; durable: --sync=1 (WAL fsync per write); non-durable: --sync=0 (WAL to OS buffers)";

pub fn available() -> bool {
    Command::new("db_bench")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "rocksdb-tools"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn db_bench(dir: &Path, p: &Params, extra: &[String]) -> Result<String> {
    let mut args: Vec<String> = vec![
        format!("--db={}", dir.display()),
        "--key_size=16".into(),
        "--value_size=100".into(),
        "--compression_type=none".into(),
        "--histogram=1".into(),
        "--statistics=1".into(),
        format!("--seed={}", p.seed % 1_000_000 + 1),
    ];
    args.extend_from_slice(extra);
    let out = Command::new("db_bench").args(&args).output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("db_bench {args:?} failed ({}):\n{text}", out.status).into());
    }
    Ok(text)
}

/// (ops/s, p50 µs, p99 µs) of the last report of benchmark `name`.
fn parse(text: &str, name: &str) -> Result<(f64, f64, f64)> {
    let lines: Vec<&str> = text.lines().collect();
    let idx = lines
        .iter()
        .rposition(|l| {
            l.starts_with(name)
                && l[name.len()..].trim_start().starts_with(':')
                && l.contains("ops/sec")
        })
        .ok_or_else(|| format!("db_bench output has no result for {name}:\n{text}"))?;
    let f: Vec<&str> = lines[idx].split_whitespace().collect();
    let ops = f
        .iter()
        .position(|w| *w == "ops/sec")
        .and_then(|i| f[i - 1].parse::<f64>().ok())
        .ok_or("cannot parse db_bench ops/sec")?;
    let pct = lines[idx..]
        .iter()
        .find(|l| l.starts_with("Percentiles:"))
        .ok_or("db_bench printed no percentiles")?;
    let get = |tag: &str| -> f64 {
        let w: Vec<&str> = pct.split_whitespace().collect();
        w.iter()
            .position(|x| *x == tag)
            .and_then(|i| w.get(i + 1))
            .and_then(|x| x.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((ops, get("P50:"), get("P99:")))
}

fn stat(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("COUNT"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|x| x.trim().parse().ok())
}

fn emit3(workload: &str, case: &str, r: (f64, f64, f64)) {
    crate::workloads::emit(workload, case, "ops/s", r.0);
    crate::workloads::emit(workload, case, "p50 µs", r.1);
    crate::workloads::emit(workload, case, "p99 µs", r.2);
}

fn time_open(dir: &Path) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new("ldb")
        .arg(format!("--db={}", dir.display()))
        .args(["scan", "--max_keys=1", "--hex"])
        .output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        return Err(format!("ldb scan failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(ms)
}

fn s(x: impl std::fmt::Display) -> String {
    x.to_string()
}

/// Run the selected workloads for RocksDB (one run). Metrics go to stdout like a child's.
pub fn run(base: &Path, p: &Params) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let main = base.join("main");
    let n = p.keys;
    let needs_fill = ["fill", "hot", "cold", "mixed", "open", "memory"]
        .iter()
        .any(|w| p.has(w));
    if needs_fill {
        let t = db_bench(
            &main,
            p,
            &[
                s("--benchmarks=filluniquerandom"),
                format!("--num={n}"),
                s("--sync=0"),
            ],
        )?;
        if p.has("fill") {
            emit3("fill", "single puts", parse(&t, "filluniquerandom")?);
        }
        if p.has("memory") {
            crate::workloads::emit(
                "memory",
                "after fill",
                "disk B/key",
                sys::disk_bytes(&main) as f64 / n as f64,
            );
        }
        if p.has("fill") {
            let d = base.join("batch");
            let t = db_bench(
                &d,
                p,
                &[
                    s("--benchmarks=filluniquerandom"),
                    format!("--num={n}"),
                    s("--batch_size=1000"),
                ],
            )?;
            crate::workloads::emit(
                "fill",
                "batches of 1000",
                "ops/s",
                parse(&t, "filluniquerandom")?.0,
            );
            std::fs::remove_dir_all(&d)?;
        }
        if p.has("open") {
            let warm = time_open(&main)?;
            sys::evict_files(&sys::list_files(&main))?;
            let cold = time_open(&main)?;
            crate::workloads::emit("open", "after clean fill", "open ms (warm cache)", warm);
            crate::workloads::emit("open", "after clean fill", "open ms (cold cache)", cold);
        }
        let existing = [s("--use_existing_db=1"), format!("--num={n}")];
        if p.has("hot") {
            for threads in [1u64, 2] {
                let mut a = existing.to_vec();
                a.extend([
                    s("--benchmarks=readrandom,readrandom"),
                    format!("--reads={}", p.read_ops.div_ceil(threads)),
                    format!("--threads={threads}"),
                    s("--cache_size=1073741824"),
                ]);
                let t = db_bench(&main, p, &a)?;
                emit3(
                    "hot get",
                    &format!("{threads} thread(s)"),
                    parse(&t, "readrandom")?,
                );
            }
        }
        if p.has("mixed") {
            for read_pct in [90u64, 50] {
                let mut a = existing.to_vec();
                a.extend([
                    s("--benchmarks=readrandomwriterandom"),
                    format!("--reads={}", p.mixed_ops),
                    format!("--readwritepercent={read_pct}"),
                ]);
                let t = db_bench(&main, p, &a)?;
                emit3(
                    "mixed",
                    &format!("{read_pct}/{} r/w, uniform", 100 - read_pct),
                    parse(&t, "readrandomwriterandom")?,
                );
            }
        }
        if p.has("cold") {
            sys::evict_files(&sys::list_files(&main))?;
            let mut a = existing.to_vec();
            a.extend([
                s("--benchmarks=readrandom"),
                format!("--reads={}", p.cold_ops),
            ]);
            let t = db_bench(&main, p, &a)?;
            emit3("cold get", "1 thread", parse(&t, "readrandom")?);
        }
        std::fs::remove_dir_all(&main)?;
    }
    let durable = |threads: u64, workload: &str, case: &str| -> Result<()> {
        let d = base.join(format!("durable{threads}"));
        let per = p.durable_ops.div_ceil(threads).max(2);
        let f0 = sys::device_flushes(base);
        let t = db_bench(
            &d,
            p,
            &[
                s("--benchmarks=fillrandom"),
                format!("--num={per}"),
                s("--sync=1"),
                format!("--threads={threads}"),
            ],
        )?;
        emit3(workload, case, parse(&t, "fillrandom")?);
        let total = (per * threads) as f64;
        if let (Some(a), Some(b)) = (f0, sys::device_flushes(base)) {
            crate::workloads::emit(workload, case, "dev flushes/write", (b - a) as f64 / total);
        }
        if let Some(synced) = stat(&t, "rocksdb.wal.synced") {
            crate::workloads::emit(workload, case, "WAL syncs/write", synced / total);
        }
        std::fs::remove_dir_all(&d)?;
        Ok(())
    };
    if p.has("durable") {
        durable(1, "durable", "1 thread")?;
    }
    if p.has("concurrent") {
        for &t in &p.threads {
            durable(t as u64, "concurrent durable", &format!("{t} writer(s)"))?;
        }
    }
    if p.has("crash") {
        let d = base.join("crash");
        let mut child = Command::new("db_bench")
            .args([
                format!("--db={}", d.display()),
                s("--key_size=16"),
                s("--value_size=100"),
                s("--compression_type=none"),
                s("--benchmarks=fillrandom"),
                format!("--num={}", n * 100),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let target = n / 2 * 116;
        let t0 = Instant::now();
        while sys::apparent_bytes(&d) < target && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill()?;
        child.wait()?;
        crate::workloads::emit(
            "open",
            "after kill -9 mid-fill",
            "open ms (warm cache)",
            time_open(&d)?,
        );
        std::fs::remove_dir_all(&d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_db_bench_output() {
        let t = "fillrandom   :       4.378 micros/op 228279 ops/sec 0.088 seconds 20000 operations;\nCount: 20000 Average: 4.3769\nPercentiles: P50: 3.38 P75: 4.18 P99: 9.27 P99.9: 38.25\nrocksdb.wal.synced COUNT : 17\n";
        let (o, a, b) = super::parse(t, "fillrandom").unwrap();
        assert_eq!((o, a, b), (228279.0, 3.38, 9.27));
        assert_eq!(super::stat(t, "rocksdb.wal.synced"), Some(17.0));
    }
}

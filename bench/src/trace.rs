//! The durable write path's latency trace: libbitcask's durable puts from one
//! thread, each commit timed phase by phase (`Options::commit_trace`), in the
//! bench process itself. Two cases: the default file size (no rotation in a
//! run this short) and 64 KiB files, so that puts cross file boundaries.

use crate::util::{key, percentile, Rng};
use bitcask::{Bitcask, CommitTrace, CommitTracer, Options, SyncPolicy};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Result;

const PHASES: [&str; 8] = [
    "lock",
    "rotate",
    "encode",
    "write",
    "fdatasync",
    "keydir",
    "zero-fill",
    "queue + rest",
];

fn phases(c: &CommitTrace, put: Duration) -> [f64; 8] {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let named = [
        c.lock, c.rotate, c.encode, c.write, c.sync, c.index, c.prealloc,
    ];
    let sum: Duration = named.iter().sum();
    let mut out = [0.0; 8];
    for (o, d) in out.iter_mut().zip(named) {
        *o = us(d);
    }
    out[7] = us(put.saturating_sub(sum));
    out
}

/// One case: `ops` durable puts; returns its markdown rows.
fn case(
    dir: &Path,
    name: &str,
    ops: u64,
    max_file_size: Option<u64>,
    md: &mut String,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    // The device's speed drifts from minute to minute: the probe runs just
    // before the case it is compared with.
    let mut probe = crate::sys::fdatasync_probe(dir, ops as usize, 128, true)?;
    probe.sort_by(f64::total_cmp);
    let traces: Arc<Mutex<Vec<CommitTrace>>> = Default::default();
    let t = traces.clone();
    let mut o = Options::default();
    o.sync = SyncPolicy::Always;
    o.auto_merge = false;
    if let Some(m) = max_file_size {
        o.max_file_size = m;
    }
    o.commit_trace = Some(CommitTracer(Arc::new(move |c: &CommitTrace| {
        t.lock().unwrap().push(c.clone())
    })));
    let db = Bitcask::open(dir, o)?;
    let mut rng = Rng::new(0x7ace);
    let mut puts = Vec::with_capacity(ops as usize);
    for i in 0..ops {
        let v = rng.value();
        let t0 = Instant::now();
        db.put(&key(i), &v)?;
        puts.push(t0.elapsed());
    }
    db.close()?;
    std::fs::remove_dir_all(dir)?;
    let traces = traces.lock().unwrap();
    if traces.len() != puts.len() {
        return Err(format!("{} commits traced for {} puts", traces.len(), puts.len()).into());
    }
    let rows: Vec<[f64; 8]> = traces
        .iter()
        .zip(&puts)
        .map(|(c, &p)| phases(c, p))
        .collect();
    let mut total: Vec<f64> = puts.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    total.sort_by(f64::total_cmp);
    let p99 = percentile(&total, 99.0);
    let slow: Vec<&[f64; 8]> = rows
        .iter()
        .zip(&puts)
        .filter(|(_, p)| p.as_secs_f64() * 1e6 >= p99)
        .map(|(r, _)| r)
        .collect();
    let rotations: Vec<bool> = traces.iter().filter_map(|c| c.rotated_to_spare).collect();
    writeln!(
        md,
        "### {name}\n\n{ops} puts: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; the preallocated fdatasync probe just before ({ops} 128-byte writes): p50 {:.0} µs, p99 {:.0} µs. Rotations: {} ({} renamed the spare in, {} created a file).\n",
        percentile(&total, 50.0),
        p99,
        total.last().copied().unwrap_or(f64::NAN),
        percentile(&probe, 50.0),
        percentile(&probe, 99.0),
        rotations.len(),
        rotations.iter().filter(|&&s| s).count(),
        rotations.iter().filter(|&&s| !s).count(),
    )?;
    writeln!(
        md,
        "| phase | p50 µs | p99 µs | max µs | mean in the slowest 1% of puts, µs |\n|---|---:|---:|---:|---:|"
    )?;
    for (i, ph) in PHASES.iter().enumerate() {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        let slow_mean = slow.iter().map(|r| r[i]).sum::<f64>() / slow.len().max(1) as f64;
        writeln!(
            md,
            "| {ph} | {:.1} | {:.1} | {:.0} | {:.1} |",
            percentile(&v, 50.0),
            percentile(&v, 99.0),
            v.last().copied().unwrap_or(f64::NAN),
            slow_mean
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// The trace section of the report.
pub fn durable_trace(dir: &Path, ops: u64) -> Result<String> {
    let mut md = String::from("## Durable write trace (libbitcask)\n\n");
    md.push_str("Single-writer durable puts (`SyncPolicy::Always`, 16-byte keys, 100-byte values), each commit timed phase by phase on the writer's thread through the engine's commit trace, in the bench process. `queue + rest` is the put's time outside the named phases (the write queue, the call). `zero-fill` is preallocation's page-cache write of zeros ahead of the data; `rotate` seals the full file and renames the spare in.\n\n");
    case(
        &dir.join("trace-default"),
        "default files (128 MiB)",
        ops,
        None,
        &mut md,
    )?;
    case(
        &dir.join("trace-rotating"),
        "64 KiB files (rotations under durable load)",
        ops,
        Some(64 << 10),
        &mut md,
    )?;
    Ok(md)
}

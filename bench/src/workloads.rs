//! In-process workloads for trait engines. They run inside a child process
//! (one per engine per run) so that RSS figures and allocator state are not
//! polluted by the engines that ran before; results go to stdout as METRIC lines.

use crate::engine::{Engine, EngineSpec, Unsupported};
use crate::sys;
use crate::util::{key, percentile, Rng, Zipf};
use crate::Result;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Parameters shared by parent and child (passed on the child's command line).
#[derive(Clone, Debug)]
pub struct Params {
    pub keys: u64,
    pub durable_ops: u64,
    pub read_ops: u64,
    pub cold_ops: u64,
    pub mixed_ops: u64,
    pub threads: Vec<usize>,
    pub workloads: Vec<String>,
    pub seed: u64,
}

impl Params {
    pub fn has(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

/// Emit one measurement on stdout for the parent.
pub fn emit(workload: &str, case: &str, name: &str, value: f64) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "METRIC\t{workload}\t{case}\t{name}\t{value}");
    let _ = o.flush();
}

fn emit_lat(workload: &str, case: &str, ops: u64, secs: f64, lat: &mut [f64]) {
    lat.sort_by(|a, b| a.total_cmp(b));
    emit(workload, case, "ops/s", ops as f64 / secs);
    emit(workload, case, "p50 µs", percentile(lat, 50.0));
    emit(workload, case, "p99 µs", percentile(lat, 99.0));
}

fn flushes_per_write(dir: &Path, before: Option<u64>, writes: u64) -> Option<f64> {
    let after = sys::device_flushes(dir)?;
    Some(after.saturating_sub(before?) as f64 / writes as f64)
}

/// Run every selected in-process workload for one engine (one run).
pub fn run_engine(spec: &EngineSpec, base: &Path, p: &Params) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let main_dir = base.join("main");
    let needs_fill = ["fill", "hot", "scan", "cold", "mixed", "open", "memory"]
        .iter()
        .any(|w| p.has(w));
    let mut rng = Rng::new(p.seed);

    if needs_fill {
        let rss0 = sys::rss_bytes();
        let e = (spec.open)(&main_dir, false)?;
        let mut lat = Vec::with_capacity(p.keys as usize);
        let t0 = Instant::now();
        for i in 0..p.keys {
            let v = rng.value();
            let t = Instant::now();
            e.put(&key(i), &v)?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let secs = t0.elapsed().as_secs_f64();
        e.sync()?;
        let rss1 = sys::rss_bytes();
        let index = e.index_bytes();
        if p.has("fill") {
            emit_lat("fill", "single puts", p.keys, secs, &mut lat);
        }
        if p.has("memory") {
            emit(
                "memory",
                "after fill",
                "RSS B/key",
                rss1.saturating_sub(rss0) as f64 / p.keys as f64,
            );
            emit(
                "memory",
                "after fill",
                "peak RSS B/key",
                sys::peak_rss_bytes() as f64 / p.keys as f64,
            );
            if let Some(b) = index {
                emit(
                    "memory",
                    "after fill",
                    "keydir B/key (engine estimate)",
                    b as f64 / p.keys as f64,
                );
            }
        }
        e.close()?;
        if p.has("memory") {
            emit(
                "memory",
                "after fill",
                "disk B/key",
                sys::disk_bytes(&main_dir) as f64 / p.keys as f64,
            );
        }
        drop(lat);

        if p.has("fill") && spec.batched_fill {
            let dir = base.join("batch");
            let e = (spec.open)(&dir, false)?;
            let t0 = Instant::now();
            let mut i = 0;
            while i < p.keys {
                let n = 1000.min(p.keys - i);
                let vals: Vec<[u8; 100]> = (0..n).map(|_| rng.value()).collect();
                let keys: Vec<[u8; 16]> = (i..i + n).map(key).collect();
                let kvs: Vec<(&[u8], &[u8])> = keys
                    .iter()
                    .zip(vals.iter())
                    .map(|(k, v)| (&k[..], &v[..]))
                    .collect();
                e.put_batch(&kvs)?;
                i += n;
            }
            let secs = t0.elapsed().as_secs_f64();
            emit("fill", "batches of 1000", "ops/s", p.keys as f64 / secs);
            e.close()?;
            std::fs::remove_dir_all(&dir)?;
        }
    }

    if needs_fill {
        // Open after fill: warm page cache, then cold.
        let t = Instant::now();
        let mut e = (spec.open)(&main_dir, false)?;
        let warm_ms = t.elapsed().as_secs_f64() * 1e3;
        if p.has("open") {
            e.close()?;
            sys::evict_files(&sys::list_files(&main_dir))?;
            let t = Instant::now();
            e = (spec.open)(&main_dir, false)?;
            let cold_ms = t.elapsed().as_secs_f64() * 1e3;
            emit("open", "after clean fill", "open ms (warm cache)", warm_ms);
            emit("open", "after clean fill", "open ms (cold cache)", cold_ms);
            if let Some(ext) = spec.hint_ext {
                e.close()?;
                let removed = sys::remove_files_with_ext(&main_dir, ext)?;
                sys::read_files(&sys::list_files(&main_dir))?;
                let t = Instant::now();
                e = (spec.open)(&main_dir, false)?;
                let warm_ms = t.elapsed().as_secs_f64() * 1e3;
                e.close()?;
                sys::remove_files_with_ext(&main_dir, ext)?;
                sys::evict_files(&sys::list_files(&main_dir))?;
                let t = Instant::now();
                e = (spec.open)(&main_dir, false)?;
                let cold_ms = t.elapsed().as_secs_f64() * 1e3;
                let case = format!("without .{ext} files");
                emit("open", &case, "open ms (warm cache)", warm_ms);
                emit("open", &case, "open ms (cold cache)", cold_ms);
                emit("open", &case, "files removed", removed as f64);
            }
        }

        if p.has("hot") {
            // Warm up: touch every key once.
            for i in 0..p.keys {
                if e.get(&key(i))?.is_none() {
                    return Err(format!("{}: key {i} missing after fill", e.name()).into());
                }
            }
            for &threads in &[1usize, 2] {
                let (ops, secs, mut lat) = parallel_gets(&*e, p.keys, p.read_ops, threads, p.seed)?;
                emit_lat(
                    "hot get",
                    &format!("{threads} thread(s)"),
                    ops,
                    secs,
                    &mut lat,
                );
            }
        }

        if p.has("scan") {
            scan_workload(&*e, p, &mut rng)?;
        }

        if p.has("mixed") {
            let zipf = Zipf::new(p.keys, 0.99);
            for read_pct in [90u64, 50] {
                for dist in ["uniform", "zipf"] {
                    let mut lat = Vec::with_capacity(p.mixed_ops as usize);
                    let t0 = Instant::now();
                    for _ in 0..p.mixed_ops {
                        let i = if dist == "zipf" {
                            zipf.sample(&mut rng)
                        } else {
                            rng.below(p.keys)
                        };
                        let k = key(i);
                        let is_read = rng.below(100) < read_pct;
                        let v = rng.value();
                        let t = Instant::now();
                        if is_read {
                            if e.get(&k)?.is_none() {
                                return Err(
                                    format!("{}: key {i} missing in mixed", e.name()).into()
                                );
                            }
                        } else {
                            e.put(&k, &v)?;
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    let secs = t0.elapsed().as_secs_f64();
                    let case = format!("{read_pct}/{} r/w, {dist}", 100 - read_pct);
                    emit_lat("mixed", &case, p.mixed_ops, secs, &mut lat);
                }
            }
        }

        if p.has("cold") {
            e.close()?;
            sys::evict_files(&sys::list_files(&main_dir))?;
            e = (spec.open)(&main_dir, false)?;
            let files = e.files();
            sys::evict_files(&files)?;
            let (ops, secs, mut lat) = parallel_gets(&*e, p.keys, p.cold_ops, 1, p.seed ^ 99)?;
            emit_lat("cold get", "1 thread", ops, secs, &mut lat);
        }
        e.close()?;
        std::fs::remove_dir_all(&main_dir)?;
    }

    if p.has("merge") {
        merge_workload(spec, &base.join("merge"), p, &mut rng)?;
    }

    if p.has("durable") {
        let dir = base.join("durable");
        let e = (spec.open)(&dir, true)?;
        let f0 = sys::device_flushes(&dir);
        let mut lat = Vec::with_capacity(p.durable_ops as usize);
        let t0 = Instant::now();
        for i in 0..p.durable_ops {
            let v = rng.value();
            let t = Instant::now();
            e.put(&key(i), &v)?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let secs = t0.elapsed().as_secs_f64();
        emit_lat("durable", "1 thread", p.durable_ops, secs, &mut lat);
        if let Some(f) = flushes_per_write(&dir, f0, p.durable_ops) {
            emit("durable", "1 thread", "dev flushes/write", f);
        }
        emit_engine_syncs(&*e, "durable", "1 thread");
        e.close()?;
        std::fs::remove_dir_all(&dir)?;
    }

    if p.has("concurrent") {
        for &threads in &p.threads {
            let dir = base.join(format!("conc{threads}"));
            let e = (spec.open)(&dir, true)?;
            let per = p.durable_ops.div_ceil(threads as u64).max(2);
            let total = per * threads as u64;
            let f0 = sys::device_flushes(&dir);
            let t0 = Instant::now();
            let lats: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let e = &*e;
                        s.spawn(move || -> Result<Vec<f64>> {
                            let mut r = Rng::new(p.seed ^ ((t as u64 + 1) * 7919));
                            let mut lat = Vec::with_capacity(per as usize);
                            for j in 0..per {
                                let v = r.value();
                                let t1 = Instant::now();
                                e.put(&key(t as u64 * per + j), &v)?;
                                lat.push(t1.elapsed().as_secs_f64() * 1e6);
                            }
                            Ok(lat)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("writer thread panicked"))
                    .collect()
            });
            let secs = t0.elapsed().as_secs_f64();
            let mut lat = Vec::with_capacity(total as usize);
            for l in lats {
                lat.extend(l?);
            }
            let case = format!("{threads} writer(s)");
            emit_lat("concurrent durable", &case, total, secs, &mut lat);
            if let Some(f) = flushes_per_write(&dir, f0, total) {
                emit("concurrent durable", &case, "dev flushes/write", f);
            }
            emit_engine_syncs(&*e, "concurrent durable", &case);
            e.close()?;
            std::fs::remove_dir_all(&dir)?;
        }
    }
    Ok(())
}

/// Range-scan lengths of the scan workload (capped at --keys).
pub const SCAN_LENGTHS: [u64; 2] = [100, 100_000];

/// Forward range scans from random existing start keys: for each length, about
/// --read-ops keys in total (at least 3 scans). A short scan at the end of the key
/// space counts the keys it read.
fn scan_workload(e: &dyn Engine, p: &Params, rng: &mut Rng) -> Result<()> {
    if !scan_cases(e, p, rng, "")? {
        return Ok(());
    }
    // Then a tenth of the keys overwritten and, where the engine has one, a merge:
    // libbitcask's rewrites each input's live records in key order.
    for _ in 0..p.keys / 10 {
        e.put(&key(rng.below(p.keys)), &rng.value())?;
    }
    if e.merge()?.is_some() {
        scan_cases(e, p, rng, " after merge")?;
    }
    Ok(())
}

/// The scan cases, named with `suffix`; false when the engine cannot scan.
fn scan_cases(e: &dyn Engine, p: &Params, rng: &mut Rng, suffix: &str) -> Result<bool> {
    for len in SCAN_LENGTHS {
        let n = len.min(p.keys);
        let scans = (p.read_ops / n).max(3);
        let mut lat = Vec::with_capacity(scans as usize);
        let mut total = 0u64;
        let t0 = Instant::now();
        for _ in 0..scans {
            let start = key(rng.below(p.keys));
            let t = Instant::now();
            let got = match e.scan(&start, n as usize) {
                Ok(got) => got,
                Err(err) if err.downcast_ref::<Unsupported>().is_some() => {
                    // The parent skips this engine in the scan tables.
                    println!("SKIP\tscan");
                    return Ok(false);
                }
                Err(err) => return Err(err),
            };
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if got == 0 {
                return Err(format!("{}: scan from an existing key read nothing", e.name()).into());
            }
            total += got as u64;
        }
        let secs = t0.elapsed().as_secs_f64();
        lat.sort_by(|a, b| a.total_cmp(b));
        let case = format!("{n}-key ranges{suffix}");
        emit("scan", &case, "keys/s", total as f64 / secs);
        emit("scan", &case, "scans", scans as f64);
        emit("scan", &case, "p50 µs/scan", percentile(&lat, 50.0));
        emit("scan", &case, "p99 µs/scan", percentile(&lat, 99.0));
    }
    Ok(true)
}

/// The engine's own fdatasyncs per write, and writes per append, if it counts them.
fn emit_engine_syncs(e: &dyn Engine, workload: &str, case: &str) {
    if let Some(c) = e.sync_counts() {
        let writes = c.writes.max(1) as f64;
        emit(
            workload,
            case,
            "engine fdatasyncs/write",
            c.syncs as f64 / writes,
        );
        emit(
            workload,
            case,
            "writes per group",
            c.writes as f64 / c.write_groups.max(1) as f64,
        );
    }
}

/// Fill, overwrite half the keys twice, then merge while one reader thread
/// measures get latency (and the same reader alone first, as a baseline).
fn merge_workload(spec: &EngineSpec, dir: &Path, p: &Params, rng: &mut Rng) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = (spec.open)(dir, false)?;
    for i in 0..p.keys {
        e.put(&key(i), &rng.value())?;
    }
    for _ in 0..2 {
        for i in 0..p.keys / 2 {
            e.put(&key(i), &rng.value())?;
        }
    }
    e.sync()?;
    let before = sys::disk_bytes(dir);
    let reader = |stop: &AtomicBool, seed: u64| -> Result<Vec<f64>> {
        let mut r = Rng::new(seed);
        let mut lat = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = r.below(p.keys);
            let t = Instant::now();
            let v = e.get(&key(i))?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if v.is_none() {
                return Err(format!("merge: key {i} missing").into());
            }
        }
        Ok(lat)
    };
    // Baseline: the reader alone for a short while.
    let stop = AtomicBool::new(false);
    let mut idle = std::thread::scope(|s| {
        let h = s.spawn(|| reader(&stop, p.seed ^ 5));
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        h.join().expect("reader panicked")
    })?;
    let stop = AtomicBool::new(false);
    let (outcome, secs, mut during) = std::thread::scope(|s| {
        let h = s.spawn(|| reader(&stop, p.seed ^ 6));
        let t = Instant::now();
        let m = e.merge();
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (m, secs, h.join().expect("reader panicked"))
    });
    let outcome = outcome?.ok_or("engine has no merge")?;
    let during = during.as_mut().map_err(|e| e.to_string())?;
    let after = sys::disk_bytes(dir);
    during.sort_by(|a, b| a.total_cmp(b));
    idle.sort_by(|a, b| a.total_cmp(b));
    let case = "fill, overwrite half twice, merge";
    emit(
        "merge",
        case,
        "MB/s (input)",
        outcome.bytes_in as f64 / secs / 1e6,
    );
    emit("merge", case, "merge s", secs);
    emit("merge", case, "written MB", outcome.bytes_out as f64 / 1e6);
    emit("merge", case, "disk MB before", before as f64 / 1e6);
    emit("merge", case, "disk MB after", after as f64 / 1e6);
    emit(
        "merge",
        case,
        "reclaimed %",
        100.0 * before.saturating_sub(after) as f64 / before.max(1) as f64,
    );
    emit("merge", case, "get p99 µs idle", percentile(&idle, 99.0));
    emit("merge", case, "get p50 µs during", percentile(during, 50.0));
    emit("merge", case, "get p99 µs during", percentile(during, 99.0));
    emit("merge", case, "gets during", during.len() as f64);
    e.close()?;
    // Everything must still be there after the merge.
    let e = (spec.open)(dir, false)?;
    for i in (0..p.keys).step_by((p.keys / 1000).max(1) as usize) {
        if e.get(&key(i))?.is_none() {
            return Err(format!("merge: key {i} missing after reopen").into());
        }
    }
    e.close()?;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// `ops` random gets of existing keys spread over `threads`; every key must be found.
fn parallel_gets(
    e: &dyn Engine,
    keys: u64,
    ops: u64,
    threads: usize,
    seed: u64,
) -> Result<(u64, f64, Vec<f64>)> {
    let per = ops.div_ceil(threads as u64);
    let t0 = Instant::now();
    let res: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<Vec<f64>> {
                    let mut r = Rng::new(seed ^ ((t as u64 + 11) * 104_729));
                    let mut lat = Vec::with_capacity(per as usize);
                    for _ in 0..per {
                        let i = r.below(keys);
                        let k = key(i);
                        let t1 = Instant::now();
                        let v = e.get(&k)?;
                        lat.push(t1.elapsed().as_secs_f64() * 1e6);
                        match v {
                            Some(v) if v.len() == crate::util::VAL_LEN => {}
                            _ => return Err(format!("get of key {i} returned {v:?}").into()),
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("reader thread panicked"))
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for l in res {
        lat.extend(l?);
    }
    Ok((per * threads as u64, secs, lat))
}

/// Child mode for the kill -9 test: fill keys 0.. forever (non-durable),
/// reporting "ACK n" after every 1000 puts, until killed.
pub fn fill_until_killed(spec: &EngineSpec, dir: &Path, seed: u64) -> Result<()> {
    let e = (spec.open)(dir, false)?;
    let mut rng = Rng::new(seed);
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    loop {
        e.put(&key(i), &rng.value())?;
        i += 1;
        if i.is_multiple_of(1000) {
            writeln!(out, "ACK {i}")?;
            out.flush()?;
        }
    }
}

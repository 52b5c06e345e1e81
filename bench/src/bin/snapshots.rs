//! What snapshots cost: taking one, and writing while some are open.
//!
//! `snapshots [--keys N] [--runs R] [--dir D]`: fills N keys (16-byte keys,
//! 100-byte values, the defaults but `SyncPolicy::Never`), then measures
//! - taking and dropping a snapshot, with none and with 10 others open;
//! - N random overwrites from one thread with 0, 1 and 10 snapshots open (each
//!   taken before the writes start and held to the end), the cases alternating
//!   over R rounds; the median per case is printed, with the versions kept.
//!
//! Prints a Markdown table. Run by `make bench-snapshots`.

use bitcask::{Bitcask, Options, Snapshot, SyncPolicy};
use std::path::PathBuf;
use std::time::Instant;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_be_bytes());
    k[8..].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
    k
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut keys = 1_000_000u64;
    let mut runs = 3usize;
    let mut dir = PathBuf::from("/tmp/bitcask-bench-snapshots");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("a value");
        match a.as_str() {
            "--keys" => keys = v.parse().unwrap(),
            "--runs" => runs = v.parse().unwrap(),
            "--dir" => dir = v.into(),
            _ => panic!("unknown argument {a}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = Options::default();
    o.sync = SyncPolicy::Never;
    let db = Bitcask::open(&dir, o).unwrap();
    let value = [7u8; 100];
    for i in 0..keys {
        db.put(&key(i), &value).unwrap();
    }

    // Taking a snapshot: with none open, and with 10 open.
    let take = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            drop(db.snapshot().unwrap());
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let alone = median((0..runs).map(|_| take(100_000)).collect());
    let held: Vec<Snapshot> = (0..10).map(|_| db.snapshot().unwrap()).collect();
    let beside = median((0..runs).map(|_| take(100_000)).collect());
    drop(held);

    // Writes with 0, 1 and 10 snapshots open, alternating.
    let cases = [0usize, 1, 10];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut kept = vec![0u64; cases.len()];
    let mut rng = Rng(42);
    for _ in 0..runs {
        for (c, &n) in cases.iter().enumerate() {
            let snaps: Vec<Snapshot> = (0..n).map(|_| db.snapshot().unwrap()).collect();
            let t = Instant::now();
            for _ in 0..keys {
                db.put(&key(rng.below(keys)), &value).unwrap();
            }
            rates[c].push(keys as f64 / t.elapsed().as_secs_f64());
            kept[c] = db.stats().unwrap().snapshot_versions;
            drop(snaps);
            assert_eq!(db.stats().unwrap().snapshot_versions, 0);
        }
    }
    println!("Snapshots at {keys} keys (16-byte keys, 100-byte values, SyncPolicy::Never, median of {runs}):\n");
    println!("| measure | result |");
    println!("| --- | --- |");
    println!("| take and drop a snapshot, none other open | {alone:.0} ns |");
    println!("| take and drop a snapshot, 10 others open | {beside:.0} ns |");
    let base = median(rates[0].clone());
    for (c, &n) in cases.iter().enumerate() {
        let r = median(rates[c].clone());
        println!(
            "| {keys} random overwrites, {n} snapshot(s) open | {:.0} ops/s ({:.2}x), {} versions kept |",
            r,
            r / base,
            kept[c]
        );
    }
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

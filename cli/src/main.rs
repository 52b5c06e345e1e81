//! `bitcask`: look at and operate on a libbitcask database directory from a shell.
//!
//! Commands that only read open the database read-only (no writer lock), so they
//! work beside a running writer. Exit status: 0 on success, 1 when a key is not
//! found, `verify`/`dump` found damage or `repair` met a file it cannot rewrite,
//! 2 on an error (one line on stderr).

use bitcask::inspect::{self, Problem};
use bitcask::{Bitcask, KeyTtl, OpenProgress, Options, Stats, WriteBatch};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "bitcask",
    version,
    about = "Inspect and operate on a libbitcask database directory",
    after_help = "Exit status: 0 on success; 1 when a key is not found, verify/dump found \
                  damage, or repair met a file it cannot rewrite; 2 on an error (one line on \
                  stderr)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Keys, bytes, per-file live and dead bytes, merges (opens read-only).
    Stats {
        dir: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Prints the value of KEY (opens read-only); exit 1 when absent.
    Get {
        dir: PathBuf,
        key: String,
        /// KEY is hex, and the value is printed as hex.
        #[arg(long)]
        hex: bool,
    },
    /// Stores VALUE under KEY; with `-` or no VALUE, the value is read from stdin.
    Put {
        dir: PathBuf,
        key: String,
        value: Option<String>,
        /// KEY and VALUE are hex (stdin stays raw bytes).
        #[arg(long)]
        hex: bool,
        /// The value expires after this many seconds (fractions allowed).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
    },
    /// Prints the seconds before KEY expires, or `none` for a key without
    /// expiry (opens read-only); exit 1 when absent or expired.
    Ttl {
        dir: PathBuf,
        key: String,
        /// KEY is hex.
        #[arg(long)]
        hex: bool,
    },
    /// Deletes KEY.
    Delete {
        dir: PathBuf,
        key: String,
        /// KEY is hex.
        #[arg(long)]
        hex: bool,
    },
    /// Lists keys and values in key order (opens read-only).
    Scan {
        dir: PathBuf,
        /// Only keys starting with P.
        #[arg(long, value_name = "P", conflicts_with_all = ["start", "end"])]
        prefix: Option<String>,
        /// First key (inclusive).
        #[arg(long, value_name = "S")]
        start: Option<String>,
        /// Last key (exclusive).
        #[arg(long, value_name = "E")]
        end: Option<String>,
        /// Descending key order.
        #[arg(long)]
        reverse: bool,
        /// Keys only (values are not read).
        #[arg(long)]
        keys_only: bool,
        /// At most N entries.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Keys (the bounds and prefix too) and values as hex.
        #[arg(long)]
        hex: bool,
    },
    /// Merges the database's immutable files now.
    Merge {
        dir: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Checks every record and hint file and the format versions; exit 0 only when clean.
    Verify {
        dir: PathBuf,
        /// One JSON object per problem, then a summary object.
        #[arg(long)]
        json: bool,
    },
    /// Every record of every data file in file order, with file, offset, seq and flags.
    Dump {
        dir: PathBuf,
        /// One JSON object per record (keys and values hex): the input of `load`.
        #[arg(long)]
        json: bool,
    },
    /// Reads `dump --json` lines from stdin into a new database DIR.
    Load { dir: PathBuf },
    /// Rewrites damaged data files without the damage (dropping any write the
    /// damage cut into) and sets aside damaged hint files; the originals are
    /// moved into DIR/repair-TIME/, never deleted. Takes the writer lock.
    Repair { dir: PathBuf },
    /// Writes a consistent copy of DIR into the new directory DEST (opens
    /// read-only); prints the sequence number the copy holds.
    Backup {
        dir: PathBuf,
        dest: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// An error for the one line on stderr.
struct Fail(String);

impl From<bitcask::Error> for Fail {
    fn from(e: bitcask::Error) -> Self {
        Fail(e.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail(e.to_string())
    }
}

type Res<T> = Result<T, Fail>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(code) => code,
        // A closed pipe (`bitcask scan db | head`) is not an error.
        Err(Fail(msg)) if msg.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(Fail(msg)) => {
            eprintln!("bitcask: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cmd: Cmd) -> Res<ExitCode> {
    let mut out = BufWriter::new(io::stdout().lock());
    let code = match cmd {
        Cmd::Stats { dir, json } => stats(&mut out, &dir, json)?,
        Cmd::Get { dir, key, hex } => {
            let db = open_read(&dir)?;
            match db.get(&arg_bytes(&key, hex, "KEY")?)? {
                Some(v) => {
                    if hex {
                        writeln!(out, "{}", to_hex(&v))?;
                    } else {
                        out.write_all(&v)?;
                        out.write_all(b"\n")?;
                    }
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("bitcask: key not found in {}", dir.display());
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Put {
            dir,
            key,
            value,
            hex,
            ttl,
        } => {
            let ttl = ttl
                .map(|t| {
                    Duration::try_from_secs_f64(t)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| Fail(format!("--ttl {t}: not a positive number of seconds")))
                })
                .transpose()?;
            let key = arg_bytes(&key, hex, "KEY")?;
            let value = match value.as_deref() {
                None | Some("-") => {
                    let mut v = Vec::new();
                    io::stdin().lock().read_to_end(&mut v)?;
                    v
                }
                Some(v) => arg_bytes(v, hex, "VALUE")?,
            };
            let db = open_write(&dir)?;
            match ttl {
                Some(t) => db.put_with_ttl(&key, &value, t)?,
                None => db.put(&key, &value)?,
            };
            db.close()?;
            ExitCode::SUCCESS
        }
        Cmd::Ttl { dir, key, hex } => {
            let db = open_read(&dir)?;
            match db.key_ttl(&arg_bytes(&key, hex, "KEY")?)? {
                KeyTtl::Remaining(d) => writeln!(out, "{:.3}", d.as_secs_f64())?,
                KeyTtl::Persistent => writeln!(out, "none")?,
                _ => {
                    eprintln!("bitcask: key not found in {}", dir.display());
                    return Ok(ExitCode::from(1));
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Delete { dir, key, hex } => {
            let key = arg_bytes(&key, hex, "KEY")?;
            let db = open_write(&dir)?;
            db.delete(&key)?;
            db.close()?;
            ExitCode::SUCCESS
        }
        Cmd::Scan {
            dir,
            prefix,
            start,
            end,
            reverse,
            keys_only,
            limit,
            json,
            hex,
        } => {
            let db = open_read(&dir)?;
            let mut it = match prefix {
                Some(p) => db.prefix(&arg_bytes(&p, hex, "--prefix")?, reverse)?,
                None => {
                    let bound = |b: Option<String>, name| -> Res<Bound<Vec<u8>>> {
                        Ok(match b {
                            Some(s) => Bound::Included(arg_bytes(&s, hex, name)?),
                            None => Bound::Unbounded,
                        })
                    };
                    let lower = bound(start, "--start")?;
                    let upper = match bound(end, "--end")? {
                        Bound::Included(e) => Bound::Excluded(e),
                        b => b,
                    };
                    db.range::<Vec<u8>>((lower, upper), reverse)?
                }
            };
            let limit = limit.unwrap_or(usize::MAX);
            let mut n = 0;
            while n < limit {
                let (k, v) = if keys_only {
                    match it.next_key() {
                        Some(k) => (k?, None),
                        None => break,
                    }
                } else {
                    match it.next() {
                        Some(kv) => {
                            let (k, v) = kv?;
                            (k, Some(v))
                        }
                        None => break,
                    }
                };
                n += 1;
                if json {
                    let mut o = serde_json::Map::new();
                    put_bytes(&mut o, "key", &k, hex);
                    if let Some(v) = &v {
                        put_bytes(&mut o, "value", v, hex);
                    }
                    writeln!(out, "{}", serde_json::Value::Object(o))?;
                } else {
                    let show = |b: &[u8]| {
                        if hex {
                            to_hex(b)
                        } else {
                            b.escape_ascii().to_string()
                        }
                    };
                    match &v {
                        Some(v) => writeln!(out, "{}\t{}", show(&k), show(v))?,
                        None => writeln!(out, "{}", show(&k))?,
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Merge { dir, json } => {
            let db = open_write(&dir)?;
            let bar = spinner(&format!("merging {}", dir.display()));
            let r = db.merge();
            bar.finish_and_clear();
            let m = r?;
            db.close()?;
            if json {
                let o = serde_json::json!({
                    "files_in": m.files_in,
                    "files_out": m.files_out,
                    "bytes_in": m.bytes_in,
                    "bytes_out": m.bytes_out,
                    "bytes_reclaimed": m.bytes_reclaimed,
                    "records_copied": m.records_copied,
                    "tombstones_kept": m.tombstones_kept,
                    "expired_dropped": m.expired_dropped,
                    "duration_ms": m.duration.as_millis() as u64,
                });
                writeln!(out, "{o}")?;
            } else if m.files_in == 0 {
                writeln!(out, "nothing to merge")?;
            } else {
                writeln!(
                    out,
                    "merged {} files into {}: {} -> {} bytes ({} reclaimed), {} records copied, {} tombstones kept, {:.3}s",
                    m.files_in,
                    m.files_out,
                    m.bytes_in,
                    m.bytes_out,
                    m.bytes_reclaimed,
                    m.records_copied,
                    m.tombstones_kept,
                    m.duration.as_secs_f64()
                )?;
            }
            ExitCode::SUCCESS
        }
        Cmd::Verify { dir, json } => verify(&mut out, &dir, json)?,
        Cmd::Dump { dir, json } => dump(&mut out, &dir, json)?,
        Cmd::Load { dir } => load(&dir)?,
        Cmd::Repair { dir } => repair(&mut out, &dir)?,
        Cmd::Backup { dir, dest, json } => {
            // Read-only, so it works beside a running writer: the copy is the
            // state this handle recovered, from files it holds open (a merge
            // of the writer that removes one meanwhile does not take it away).
            let db = open_read(&dir)?;
            let bar = spinner(&format!("backing up {}", dir.display()));
            let r = db.backup(&dest);
            bar.finish_and_clear();
            let seq = r?;
            db.close()?;
            if json {
                let o = serde_json::json!({"dest": dest.display().to_string(), "seq": seq});
                writeln!(out, "{o}")?;
            } else {
                writeln!(
                    out,
                    "{}: backup as of sequence number {seq}",
                    dest.display()
                )?;
            }
            ExitCode::SUCCESS
        }
    };
    out.flush()?;
    Ok(code)
}

fn open_read(dir: &Path) -> Res<Bitcask> {
    let mut o = Options::default();
    o.read_only = true;
    open(dir, o)
}

/// A writable open with the format's limits (not the defaults), so that any key
/// and value a database can hold can be written back.
fn open_write(dir: &Path) -> Res<Bitcask> {
    let mut o = Options::default();
    o.auto_merge = false;
    o.max_key_size = 65_535;
    o.max_value_size = 1 << 30;
    open(dir, o)
}

fn open(dir: &Path, mut o: Options) -> Res<Bitcask> {
    let read_only = o.read_only;
    // A bar of bytes loaded, on a terminal only; a small database opens before
    // it would show.
    let bar = if io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("opening {msg} [{bar:30}] {percent}% ({bytes}/{total_bytes})")
            .map_err(|e| Fail(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_message(dir.display().to_string());
    let b = bar.clone();
    o.open_progress = Some(OpenProgress(std::sync::Arc::new(move |p| {
        b.set_length(p.bytes_total);
        b.set_position(p.bytes_done);
    })));
    let res = Bitcask::open(dir, o);
    bar.finish_and_clear();
    res.map_err(|e| match e {
        bitcask::Error::Locked { .. } => Fail(format!(
            "{e}: close the other handle first (read-only commands work beside it)"
        )),
        e if read_only && !dir.is_dir() => Fail(format!(
            "{}: no such database directory ({e})",
            dir.display()
        )),
        e => e.into(),
    })
}

fn stats(out: &mut impl Write, dir: &Path, json: bool) -> Res<ExitCode> {
    let db = open_read(dir)?;
    let s: Stats = db.stats()?;
    let merge = s.last_merge.as_ref().map(|m| {
        serde_json::json!({
            "files_in": m.files_in, "files_out": m.files_out,
            "bytes_in": m.bytes_in, "bytes_out": m.bytes_out,
            "bytes_reclaimed": m.bytes_reclaimed, "records_copied": m.records_copied,
            "tombstones_kept": m.tombstones_kept,
            "expired_dropped": m.expired_dropped,
            "duration_ms": m.duration.as_millis() as u64,
        })
    });
    let files: Vec<_> = s
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "id": f.id, "file": format!("{:010}.data", f.id), "total_bytes": f.total_bytes,
                "live_bytes": f.live_bytes, "dead_bytes": f.dead_bytes,
            })
        })
        .collect();
    if json {
        let o = serde_json::json!({
            "dir": dir.display().to_string(),
            "keys": s.keys,
            "data_bytes": s.data_bytes,
            "hint_bytes": s.hint_bytes,
            "disk_bytes": s.disk_bytes,
            "keydir_bytes": s.keydir_bytes,
            "tombstones": s.tombstones,
            "live_bytes": s.files.iter().map(|f| f.live_bytes).sum::<u64>(),
            "dead_bytes": s.files.iter().map(|f| f.dead_bytes).sum::<u64>(),
            "files": files,
            "dropped_bytes_at_open": s.dropped_bytes_at_open,
            "salvaged_bytes_at_open": s.salvaged_bytes_at_open,
            "merges": s.merges,
            "last_merge": merge,
            "merge_failures": s.merge_failures,
            "last_merge_error": s.last_merge_error.as_ref().map(|e| e.to_string()),
        });
        writeln!(out, "{o}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let live: u64 = s.files.iter().map(|f| f.live_bytes).sum();
    let dead: u64 = s.files.iter().map(|f| f.dead_bytes).sum();
    writeln!(out, "database      {}", dir.display())?;
    writeln!(out, "keys          {}", s.keys)?;
    writeln!(
        out,
        "disk bytes    {} (data {}, hints {})",
        s.disk_bytes, s.data_bytes, s.hint_bytes
    )?;
    writeln!(out, "live bytes    {live}")?;
    writeln!(out, "dead bytes    {dead}")?;
    writeln!(out, "keydir bytes  {}", s.keydir_bytes)?;
    writeln!(out, "tombstones    {}", s.tombstones)?;
    if s.dropped_bytes_at_open > 0 {
        writeln!(
            out,
            "torn tail     {} bytes (a writable open truncates them)",
            s.dropped_bytes_at_open
        )?;
    }
    // Merges are counted by the handle that ran them: a read-only handle has none.
    match &s.last_merge {
        Some(m) => writeln!(
            out,
            "last merge    {} files in, {} out, {} bytes reclaimed, {:.3}s",
            m.files_in,
            m.files_out,
            m.bytes_reclaimed,
            m.duration.as_secs_f64()
        )?,
        None => writeln!(out, "last merge    none by this handle")?,
    }
    writeln!(out, "merge failures {}", s.merge_failures)?;
    if let Some(e) = &s.last_merge_error {
        writeln!(out, "last merge error {e}")?;
    }
    writeln!(out, "files         {}", s.files.len())?;
    writeln!(
        out,
        "  {:<16} {:>14} {:>14} {:>14} {:>6}",
        "file", "total", "live", "dead", "dead%"
    )?;
    for f in &s.files {
        let pct = (f.dead_bytes * 100).checked_div(f.total_bytes).unwrap_or(0);
        writeln!(
            out,
            "  {:<16} {:>14} {:>14} {:>14} {:>5}%",
            format!("{:010}.data", f.id),
            f.total_bytes,
            f.live_bytes,
            f.dead_bytes,
            pct
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(out: &mut impl Write, dir: &Path, json: bool) -> Res<ExitCode> {
    if !dir.is_dir() {
        return Err(Fail(format!(
            "{}: no such database directory",
            dir.display()
        )));
    }
    let (data, hints) = inspect::file_ids(dir)?;
    let data_path = |id: u32| dir.join(format!("{id:010}.data"));
    let hint_path = |id: u32| dir.join(format!("{id:010}.hint"));
    let mut total = 0u64;
    for &id in &data {
        total += std::fs::metadata(data_path(id))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    for &id in &hints {
        total += std::fs::metadata(hint_path(id))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let bar = progress(total);
    let (mut records, mut problems) = (0u64, 0u64);
    let mut report = |out: &mut dyn Write, ps: Vec<Problem>| -> io::Result<()> {
        for p in ps {
            problems += 1;
            if json {
                let o = serde_json::json!({
                    "file": p.file.display().to_string(), "offset": p.offset, "problem": p.reason,
                });
                bar.suspend(|| writeln!(out, "{o}"))?;
            } else {
                bar.suspend(|| {
                    writeln!(
                        out,
                        "{}: offset {}: {}",
                        p.file.display(),
                        p.offset,
                        p.reason
                    )
                })?;
            }
        }
        Ok(())
    };
    for &id in &data {
        let path = data_path(id);
        let ps = inspect::scan_data_file(&path, |_| records += 1)?;
        report(out, ps)?;
        bar.inc(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
    }
    for &id in &hints {
        let path = hint_path(id);
        let ps = inspect::check_hint_file(&path, &data_path(id))?;
        report(out, ps)?;
        bar.inc(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
    }
    bar.finish_and_clear();
    if json {
        let o = serde_json::json!({
            "summary": true, "data_files": data.len(), "hint_files": hints.len(),
            "records": records, "problems": problems,
        });
        writeln!(out, "{o}")?;
    } else {
        writeln!(
            out,
            "{}: {} data files, {} hint files, {} valid records, {} problems",
            dir.display(),
            data.len(),
            hints.len(),
            records,
            problems
        )?;
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line of `dump --json`, and of `load`'s input.
#[derive(Serialize, Deserialize)]
struct DumpRecord {
    file: String,
    offset: u64,
    seq: u64,
    /// Format 1 records only: the write time.
    #[serde(default, skip_serializing_if = "is_zero")]
    tstamp: u32,
    /// Seconds since the epoch at which the value expires; absent for never.
    #[serde(default, skip_serializing_if = "is_zero")]
    expires: u32,
    /// A format 2 tombstone's file: the one that held the value it deleted.
    #[serde(default, skip_serializing_if = "is_zero")]
    target: u32,
    flags: u8,
    tombstone: bool,
    write_end: bool,
    /// Hex.
    key: String,
    /// Hex; empty for a tombstone.
    value: String,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

const FLAG_TOMBSTONE: u8 = 0x01;
const FLAG_WRITE_END: u8 = 0x02;
const FLAG_EXPIRES: u8 = 0x04;

fn dump(out: &mut impl Write, dir: &Path, json: bool) -> Res<ExitCode> {
    if !dir.is_dir() {
        return Err(Fail(format!(
            "{}: no such database directory",
            dir.display()
        )));
    }
    let (data, _) = inspect::file_ids(dir)?;
    let mut damaged = false;
    for id in data {
        let name = format!("{id:010}.data");
        let path = dir.join(&name);
        let mut err: io::Result<()> = Ok(());
        let problems = inspect::scan_data_file(&path, |r| {
            if err.is_err() {
                return;
            }
            err = if json {
                let rec = DumpRecord {
                    file: name.clone(),
                    offset: r.offset,
                    seq: r.seq,
                    tstamp: r.tstamp,
                    expires: r.expires,
                    target: r.target,
                    flags: r.flags,
                    tombstone: r.flags & FLAG_TOMBSTONE != 0,
                    write_end: r.flags & FLAG_WRITE_END != 0,
                    key: to_hex(r.key),
                    value: to_hex(r.value),
                };
                serde_json::to_writer(&mut *out, &rec)
                    .map_err(io::Error::from)
                    .and_then(|_| out.write_all(b"\n"))
            } else {
                let mut flags = Vec::new();
                if r.flags & FLAG_TOMBSTONE != 0 {
                    flags.push("TOMBSTONE");
                }
                if r.flags & FLAG_WRITE_END != 0 {
                    flags.push("WRITE_END");
                }
                if r.flags & FLAG_EXPIRES != 0 {
                    flags.push("EXPIRES");
                }
                // Only what the record holds: a write time (format 1), an
                // expiry, a tombstone's target.
                let mut extra = String::new();
                for (name, v) in [
                    ("tstamp", r.tstamp),
                    ("expires", r.expires),
                    ("target", r.target),
                ] {
                    if v != 0 {
                        extra.push_str(&format!(" {name}={v}"));
                    }
                }
                writeln!(
                    out,
                    "{name} {} seq={}{extra} flags={} key={} value_len={}",
                    r.offset,
                    r.seq,
                    if flags.is_empty() {
                        "-".to_string()
                    } else {
                        flags.join("|")
                    },
                    r.key.escape_ascii(),
                    r.value.len()
                )
            };
        })?;
        err?;
        for p in problems {
            damaged = true;
            eprintln!(
                "bitcask: {}: offset {}: {}",
                p.file.display(),
                p.offset,
                p.reason
            );
        }
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn load(dir: &Path) -> Res<ExitCode> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Fail(format!(
            "{}: not empty; load writes only into a new database",
            dir.display()
        )));
    }
    let mut o = Options::default();
    o.auto_merge = false;
    o.max_key_size = 65_535;
    o.max_value_size = 1 << 30;
    o.write_buffer_size = 1 << 20;
    let db = open(dir, o)?;
    let bar = spinner("loading");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut batch = WriteBatch::new();
    let mut pending = 0usize;
    let (mut records, mut writes) = (0u64, 0u64);
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Fail(format!("stdin line {}: {why}", n + 1));
        let r: DumpRecord = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let key = from_hex(&r.key).ok_or_else(|| bad("key is not hex".into()))?;
        // An expiry carries over; a value that has expired by now is loaded
        // as the delete it has become, so an older value of its key stays hidden.
        let left_ms = (r.expires as u64 * 1000).checked_sub(now_ms);
        if r.tombstone || left_ms == Some(0) || (r.expires != 0 && left_ms.is_none()) {
            batch.delete(&key);
        } else {
            let value = from_hex(&r.value).ok_or_else(|| bad("value is not hex".into()))?;
            match left_ms {
                Some(ms) if r.expires != 0 => {
                    batch.put_with_ttl(&key, &value, Duration::from_millis(ms))
                }
                _ => batch.put(&key, &value),
            };
        }
        pending += 1;
        records += 1;
        // A write counts once its last record is read, as at open.
        if r.write_end {
            db.write(&batch)?;
            batch = WriteBatch::new();
            pending = 0;
            writes += 1;
            bar.set_message(format!("loading: {records} records"));
        }
    }
    bar.finish_and_clear();
    if pending > 0 {
        eprintln!("bitcask: stdin ends inside a write: its {pending} records were dropped");
    }
    db.close()?;
    eprintln!(
        "loaded {} records in {writes} writes into {}",
        records - pending as u64,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn repair(out: &mut impl Write, dir: &Path) -> Res<ExitCode> {
    use bitcask::fs::Fs;
    if !dir.is_dir() {
        return Err(Fail(format!(
            "{}: no such database directory",
            dir.display()
        )));
    }
    // The engine's writer lock: no handle may write while files are replaced.
    let lock_path = dir.join("LOCK");
    let _lock = bitcask::fs::RealFs.lock(&lock_path).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            Fail(format!(
                "database {} is locked by another writer: close it first",
                dir.display()
            ))
        } else {
            Fail(format!("{}: {e}", lock_path.display()))
        }
    })?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keep = dir.join(format!("repair-{stamp}"));
    let set_aside = |path: &Path| -> Res<()> {
        std::fs::create_dir_all(&keep).map_err(io_err(&keep))?;
        std::fs::rename(path, keep.join(path.file_name().expect("a file name")))
            .map_err(io_err(path))
    };
    let (data, hints) = inspect::file_ids(dir)?;
    let (mut repaired, mut unrepairable) = (0, 0);
    for id in data {
        let path = dir.join(format!("{id:010}.data"));
        // (offset, end, flags, raw record) of every valid record.
        let mut recs: Vec<(u64, u64, u8, Vec<u8>)> = Vec::new();
        let problems = inspect::scan_data_file(&path, |r| {
            recs.push((
                r.offset,
                r.offset + r.raw.len() as u64,
                r.flags,
                r.raw.to_vec(),
            ))
        })?;
        if problems.is_empty() {
            continue;
        }
        let original = std::fs::read(&path).map_err(io_err(&path))?;
        if problems.iter().any(|p| p.offset == 0) {
            // A header of another version or none at all: nothing to rewrite.
            for p in &problems {
                writeln!(
                    out,
                    "{}: offset 0: {}; left as it is",
                    path.display(),
                    p.reason
                )?;
            }
            unrepairable += 1;
            continue;
        }
        // Keep whole writes only: records of a write that damage cut into, or
        // that ends without its WRITE_END record, are dropped as at open.
        let mut kept = original[..16].to_vec();
        let (mut pending, mut prev_end) = (Vec::new(), 16u64);
        let (mut kept_records, mut dropped_records) = (0u64, 0u64);
        for (offset, end, flags, raw) in &recs {
            if problems
                .iter()
                .any(|p| p.offset >= prev_end && p.offset < *offset)
            {
                dropped_records += pending.len() as u64;
                pending.clear();
            }
            pending.push(raw);
            prev_end = *end;
            if flags & FLAG_WRITE_END != 0 {
                kept_records += pending.len() as u64;
                for r in pending.drain(..) {
                    kept.extend_from_slice(r);
                }
            }
        }
        dropped_records += pending.len() as u64;
        // Written beside the original (open removes a leftover *.tmp), then
        // renamed over it once the original is linked into the keep directory:
        // the directory holds one whole version of the file at every moment.
        let tmp = dir.join(format!("{id:010}.data.tmp"));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&kept).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&keep).map_err(io_err(&keep))?;
        let saved = keep.join(path.file_name().expect("a file name"));
        if std::fs::hard_link(&path, &saved).is_err() {
            std::fs::write(&saved, &original).map_err(io_err(&saved))?;
        }
        let hint = path.with_extension("hint");
        if hint.exists() {
            set_aside(&hint)?;
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        repaired += 1;
        let offsets: Vec<String> = problems.iter().map(|p| p.offset.to_string()).collect();
        writeln!(
            out,
            "{}: dropped {} bytes ({} records) at offsets {}; kept {} records",
            path.display(),
            original.len() - kept.len(),
            dropped_records,
            offsets.join(", "),
            kept_records
        )?;
    }
    for id in hints {
        let hint = dir.join(format!("{id:010}.hint"));
        if !hint.exists() {
            continue; // set aside with its data file above
        }
        let problems = inspect::check_hint_file(&hint, &dir.join(format!("{id:010}.data")))?;
        if let Some(p) = problems.first() {
            set_aside(&hint)?;
            writeln!(
                out,
                "{}: set aside ({}); open scans the data file and writes a new one",
                hint.display(),
                p.reason
            )?;
            repaired += 1;
        }
    }
    if keep.exists() {
        for d in [&keep, dir] {
            std::fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(io_err(d))?;
        }
    }
    drop(_lock);
    if repaired == 0 && unrepairable == 0 {
        writeln!(out, "{}: nothing to repair", dir.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    if repaired > 0 {
        writeln!(
            out,
            "{}: {repaired} files repaired; the originals are in {}",
            dir.display(),
            keep.display()
        )?;
    }
    if unrepairable > 0 {
        return Ok(ExitCode::from(1));
    }
    // The repaired database must open without salvage.
    let db = open_read(dir)?;
    writeln!(out, "{}: opens with {} keys", dir.display(), db.len()?)?;
    Ok(ExitCode::SUCCESS)
}

/// Maps an I/O error to one line naming `p`.
fn io_err(p: &Path) -> impl FnOnce(io::Error) -> Fail + '_ {
    move |e| Fail(format!("{}: {e}", p.display()))
}

fn progress(total: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")
            .expect("a valid template"),
    );
    bar
}

fn spinner(msg: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn arg_bytes(s: &str, hex: bool, name: &str) -> Res<Vec<u8>> {
    if !hex {
        return Ok(s.as_bytes().to_vec());
    }
    from_hex(s).ok_or_else(|| Fail(format!("{name} is not hex: {s:?}")))
}

/// Text when `hex` is off and the bytes are UTF-8, else hex under `<name>_hex`.
fn put_bytes(o: &mut serde_json::Map<String, serde_json::Value>, name: &str, b: &[u8], hex: bool) {
    match std::str::from_utf8(b) {
        Ok(s) if !hex => o.insert(name.into(), s.into()),
        _ => o.insert(format!("{name}_hex"), to_hex(b).into()),
    };
}

fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

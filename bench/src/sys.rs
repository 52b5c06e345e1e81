//! Operating-system probes: /proc readers, page-cache eviction, disk usage,
//! the fdatasync probe and device flush counters.

use crate::Result;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// All regular files below `dir`, recursively.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// Bytes actually allocated on disk below `dir` (st_blocks, so sparse files
/// such as LMDB's map count for what they use).
pub fn disk_bytes(dir: &Path) -> u64 {
    list_files(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Apparent size (st_size) of all files below `dir`: unlike [`disk_bytes`] it
/// does not count preallocated (fallocate'd) space, so it tracks bytes written.
pub fn apparent_bytes(dir: &Path) -> u64 {
    list_files(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Drop the page cache of every file (fdatasync first: dirty pages are not dropped).
pub fn evict_files(files: &[PathBuf]) -> Result<()> {
    for p in files {
        let Ok(f) = File::open(p) else { continue };
        let fd = f.as_raw_fd();
        // SAFETY: fd is a valid open descriptor for the duration of the calls.
        unsafe {
            libc::fdatasync(fd);
            let rc = libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED);
            if rc != 0 {
                return Err(format!("posix_fadvise({}) failed: {rc}", p.display()).into());
            }
        }
    }
    Ok(())
}

/// Resident set size of this process in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let s = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Peak RSS (bytes) of this process (`who` = RUSAGE_SELF) or of waited-for children.
/// Peak resident set of this process's address space (VmHWM). Not
/// getrusage's ru_maxrss: that survives fork + execve, so a child re-exec'd by a
/// parent that once held a large store would report the parent's peak.
pub fn peak_rss_bytes() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn mem_total_bytes() -> u64 {
    let s = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

pub fn cpu_model() -> String {
    let s = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|x| x.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Filesystem type of the mount holding `dir` (longest matching mount point).
pub fn fs_type(dir: &Path) -> String {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best = (0usize, String::from("unknown"));
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 2 && dir.starts_with(f[1]) && f[1].len() >= best.0 {
            best = (f[1].len(), format!("{} on {}", f[2], f[0]));
        }
    }
    best.1
}

/// Latency (µs) of `n` fdatasyncs, each after a write of `size` bytes to a file
/// in `dir`: appended, growing the file, or, with `prealloc`, written over a
/// file zero-filled and synced beforehand (so that the fdatasync commits no
/// metadata, as libbitcask's preallocated active file).
pub fn fdatasync_probe(dir: &Path, n: usize, size: usize, prealloc: bool) -> Result<Vec<f64>> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fdatasync-probe.tmp");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    if prealloc {
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < (n * size) as u64 {
            f.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        f.sync_all()?;
    }
    let buf = vec![0x5au8; size];
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        f.write_all_at(&buf, (i * size) as u64)?;
        let t = Instant::now();
        // SAFETY: valid descriptor.
        if unsafe { libc::fdatasync(f.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    fs::remove_file(&path)?;
    Ok(lat)
}

/// Completed flush requests of the block device holding `dir`, from
/// /proc/diskstats (field 16, kernel >= 5.5). Machine-wide, so approximate.
pub fn device_flushes(dir: &Path) -> Option<u64> {
    let dev = fs::metadata(dir).ok()?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let s = fs::read_to_string("/proc/diskstats").ok()?;
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 20 && f[0] == maj.to_string() && f[1] == min.to_string() {
            return f[18].parse().ok();
        }
    }
    None
}

/// Delete every file below `dir` whose name ends in `.ext`; returns how many.
pub fn remove_files_with_ext(dir: &Path, ext: &str) -> Result<usize> {
    let mut n = 0;
    for p in list_files(dir) {
        if p.extension().and_then(|x| x.to_str()) == Some(ext) {
            fs::remove_file(&p)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Read every file once, so that its pages are in the page cache.
pub fn read_files(files: &[PathBuf]) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for p in files {
        let Ok(mut f) = File::open(p) else { continue };
        while std::io::Read::read(&mut f, &mut buf)? > 0 {}
    }
    Ok(())
}

/// The block device holding `dir`: name, size, rotational or not (from /sys).
pub fn disk_info(dir: &Path) -> String {
    let Ok(m) = fs::metadata(dir) else {
        return "unknown".into();
    };
    let (maj, min) = (libc::major(m.dev()), libc::minor(m.dev()));
    let link = format!("/sys/dev/block/{maj}:{min}");
    let Ok(real) = fs::canonicalize(&link) else {
        return format!("device {maj}:{min}");
    };
    // A partition's queue/ lives in its parent directory.
    let base = if real.join("queue").exists() {
        real.clone()
    } else {
        real.parent().map(Path::to_path_buf).unwrap_or(real.clone())
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let read = |p: &str| {
        fs::read_to_string(base.join(p))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let sectors: u64 = fs::read_to_string(real.join("size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let kind = match read("queue/rotational").as_str() {
        "0" => "non-rotational",
        "1" => "rotational",
        _ => "unknown type",
    };
    let model = read("device/model");
    let driver = if name.starts_with("vd") {
        "virtio block device"
    } else if name.starts_with("nvme") {
        "NVMe"
    } else {
        ""
    };
    format!(
        "/dev/{name}: {:.0} GiB, {kind}{}{}",
        sectors as f64 * 512.0 / (1u64 << 30) as f64,
        if model.is_empty() {
            String::new()
        } else {
            format!(", {model}")
        },
        if driver.is_empty() {
            String::new()
        } else {
            format!(", {driver}")
        },
    )
}

//! An in-memory filesystem that fails on purpose and loses power on demand.
//!
//! Every file keeps two contents: what readers see, and what a completed
//! `sync_data` made durable. Every directory keeps two sets of names: the visible
//! ones, and the durable ones plus the log of changes since its last `sync_dir`.
//! [`MemFs::crash`] is a power loss: each file reverts to its durable bytes (or,
//! in the torn mode, keeps what was written since up to a random point: appends,
//! and writes over durable bytes such as a preallocated tail), each
//! directory to its durable names (or a random prefix of its change log, applied
//! in order as a journaling filesystem would), locks are released and every handle
//! opened before it fails from then on.
//!
//! Faults ([`Fault`]) fail the Nth operation of a kind with an errno, once or from
//! then on, a write optionally after writing part of its bytes.

use super::{FileHandle, Fs, LockGuard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Open,
    Create,
    Write,
    Read,
    Sync,
    SetLen,
    Rename,
    Remove,
    SyncDir,
    List,
    Link,
}

pub const ALL_OPS: [Op; 11] = [
    Op::Open,
    Op::Create,
    Op::Write,
    Op::Read,
    Op::Sync,
    Op::SetLen,
    Op::Rename,
    Op::Remove,
    Op::SyncDir,
    Op::List,
    Op::Link,
];

/// The operations that change what is on disk.
pub const CHANGING_OPS: [Op; 8] = [
    Op::Create,
    Op::Link,
    Op::Write,
    Op::Sync,
    Op::SetLen,
    Op::Rename,
    Op::Remove,
    Op::SyncDir,
];

pub const EIO: i32 = 5;
pub const ENOSPC: i32 = 28;
pub const EROFS: i32 = 30;
/// Not an errno: a fault with this "errno" panics inside the operation, as a bug
/// in the code around it would.
pub const PANIC: i32 = -1;

/// Fail the `nth` (1-based, counted from when it is injected) operation of kind
/// `op` with `errno`; with `sticky`, every later one too. A failed write first
/// writes a random part of its bytes when `short`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub op: Op,
    pub nth: u64,
    pub errno: i32,
    pub sticky: bool,
    pub short: bool,
}

/// What a power loss keeps of what was not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Not a power loss: a process crash (`kill -9`); the OS keeps everything.
    ProcessOnly,
    /// Nothing: files and directories revert to exactly their synced state.
    DropUnsynced,
    /// A random prefix of each file's unsynced appends and of each directory's
    /// unsynced changes, drawn from the seed. Each file is cut on its own, so
    /// unsynced writes to different files survive out of order.
    Torn(u64),
    /// `Torn`, and the rest of the 4 KiB page where a file was cut holds neither
    /// old nor new bytes: zeros or garbage, as a page torn mid-write does.
    TornPage(u64),
}

#[derive(Debug, Default)]
struct Node {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, u64),
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) | DirOp::Rename(_, p, _) => p.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            DirOp::Unlink(p) => {
                names.remove(p);
            }
            DirOp::Rename(from, to, ino) => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
        }
    }
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: u64,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    generation: u64,
    faults: Vec<Armed>,
    fired: u64,
    counts: HashMap<Op, u64>,
    /// Bytes read, by inode.
    bytes_read: HashMap<u64, u64>,
    read_only: bool,
    rng: u64,
}

impl State {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Counts an operation and returns the errno of a fault that fires on it.
    fn check(&mut self, op: Op) -> Option<(i32, bool)> {
        *self.counts.entry(op).or_default() += 1;
        let mut hit = None;
        for a in self.faults.iter_mut().filter(|a| a.fault.op == op) {
            a.seen += 1;
            if a.seen == a.fault.nth || (a.fault.sticky && a.seen > a.fault.nth) {
                hit.get_or_insert((a.fault.errno, a.fault.short));
            }
        }
        if hit.is_some() {
            self.fired += 1;
        }
        if hit.is_some_and(|(errno, _)| errno == PANIC) {
            panic!("injected panic in {op:?}");
        }
        hit
    }

    fn fail(&mut self, op: Op) -> io::Result<()> {
        match self.check(op) {
            Some((errno, _)) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(EROFS));
        }
        Ok(())
    }

    fn parent_exists(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(d) if self.dirs.contains(d) => Ok(()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn link(&mut self, path: &Path, ino: u64) {
        self.names.insert(path.to_path_buf(), ino);
        self.pending.push(DirOp::Link(path.to_path_buf(), ino));
    }

    fn new_node(&mut self) -> u64 {
        self.next_ino += 1;
        self.nodes.insert(self.next_ino, Node::default());
        self.next_ino
    }
}

/// The filesystem. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
    /// A view for one process: every operation fails once power was lost after
    /// it was made, as a dead process does nothing more.
    generation: Option<u64>,
}

fn lock(s: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A view of this filesystem for one "process" (one open of the engine): a
    /// `crash` ends it, so nothing the old engine still does reaches the disk.
    pub fn process(&self) -> MemFs {
        MemFs {
            state: self.state.clone(),
            generation: Some(self.st().generation),
        }
    }

    /// The state, for an operation of this view.
    fn op(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = lock(&self.state);
        if self.generation.is_some_and(|g| g != s.generation) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(s)
    }

    pub fn inject(&self, fault: Fault) {
        self.st().faults.push(Armed { fault, seen: 0 });
    }

    /// Removes every fault (the filesystem works again, as after a reboot).
    pub fn clear_faults(&self) {
        self.st().faults.clear();
    }

    /// How many operations failed on purpose.
    pub fn fired(&self) -> u64 {
        self.st().fired
    }

    /// Operations of kind `op` seen so far.
    pub fn count(&self, op: Op) -> u64 {
        self.st().counts.get(&op).copied().unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        let mut s = self.st();
        s.counts.clear();
        s.bytes_read.clear();
    }

    /// Bytes read from the file now named `path` since the last `reset_counts`.
    pub fn bytes_read(&self, path: &Path) -> u64 {
        let s = self.st();
        s.names
            .get(path)
            .and_then(|ino| s.bytes_read.get(ino))
            .copied()
            .unwrap_or(0)
    }

    /// A read-only mount: every change fails with `EROFS`.
    pub fn set_read_only(&self, ro: bool) {
        self.st().read_only = ro;
    }

    /// Power loss; see the module comment.
    pub fn crash(&self, how: Crash) {
        let mut s = self.st();
        let torn = match how {
            Crash::ProcessOnly => {
                // The OS keeps every byte and name: only the process dies.
                s.locks.clear();
                s.generation += 1;
                return;
            }
            Crash::DropUnsynced => false,
            Crash::Torn(seed) | Crash::TornPage(seed) => {
                s.rng = seed;
                true
            }
        };
        let torn_page = matches!(how, Crash::TornPage(_));
        let pending = std::mem::take(&mut s.pending);
        let keep = if torn && !pending.is_empty() {
            (s.rand() % (pending.len() as u64 + 1)) as usize
        } else {
            0
        };
        let mut names = std::mem::take(&mut s.durable_names);
        for op in &pending[..keep] {
            op.apply(&mut names);
        }
        s.durable_names = names.clone();
        s.names = names;
        let live: BTreeSet<u64> = s.names.values().copied().collect();
        s.nodes.retain(|ino, _| live.contains(ino));
        let inos: Vec<u64> = s.nodes.keys().copied().collect();
        for ino in inos {
            // Unsynced changes start where the visible and durable bytes first
            // differ: appends past the durable end, or writes over durable
            // bytes (a preallocated tail). A torn crash keeps them up to a
            // random point, and the durable bytes past it.
            let (from, extra) = {
                let n = &s.nodes[&ino];
                let same = n
                    .data
                    .iter()
                    .zip(&n.durable)
                    .take_while(|(a, b)| a == b)
                    .count();
                let changed = same < n.data.len() && n.data.len() >= n.durable.len();
                if torn && changed {
                    (same, n.data.len() - same)
                } else {
                    (0, 0)
                }
            };
            let cut = if extra > 0 {
                (s.rand() % (extra as u64 + 1)) as usize
            } else {
                0
            };
            let zeros = s.rand().is_multiple_of(2);
            let noise = s.rand();
            let n = s.nodes.get_mut(&ino).expect("listed");
            if extra == 0 {
                n.data = n.durable.clone();
                continue;
            }
            let keep = from + cut;
            let written = n.data.len();
            let mut data = n.data[..keep].to_vec();
            const PAGE: usize = 4096;
            if torn_page && cut < extra && !keep.is_multiple_of(PAGE) {
                let page_end = (keep / PAGE + 1) * PAGE;
                let mut x = noise | 1;
                for _ in keep..page_end.min(written) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    data.push(if zeros { 0 } else { x as u8 });
                }
            }
            if n.durable.len() > data.len() {
                data.extend_from_slice(&n.durable[data.len()..]);
            }
            n.data = data;
            n.durable = n.data.clone();
        }
        s.locks.clear();
        s.generation += 1;
    }

    /// The visible contents of a file, for tests that damage files on purpose.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.st();
        let ino = s.names.get(path)?;
        Some(s.nodes[ino].data.clone())
    }

    /// Replaces a file's contents, durably (a test's hostile edit).
    pub fn write_file(&self, path: &Path, data: &[u8]) {
        let mut s = self.st();
        if let Some(d) = path.parent() {
            s.dirs.insert(d.to_path_buf());
        }
        let ino = match s.names.get(path) {
            Some(&i) => i,
            None => {
                let i = s.new_node();
                s.names.insert(path.to_path_buf(), i);
                s.durable_names.insert(path.to_path_buf(), i);
                i
            }
        };
        let n = s.nodes.get_mut(&ino).expect("linked");
        n.data = data.to_vec();
        n.durable = data.to_vec();
    }

    /// Visible names in `dir`.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let s = self.st();
        s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect()
    }

    fn handle(&self, ino: u64, writable: bool, generation: u64) -> Box<dyn FileHandle> {
        Box::new(MemFile {
            state: self.state.clone(),
            ino,
            writable,
            generation,
        })
    }
}

#[derive(Debug)]
struct MemFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    writable: bool,
    generation: u64,
}

impl MemFile {
    /// The state, unless this handle belongs to a process that lost power.
    fn st(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = lock(&self.state);
        if s.generation != self.generation {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(s)
    }
}

impl MemFile {
    /// Writes `buf` at `offset`, or at the end when `None`.
    fn write(&self, buf: &[u8], offset: Option<u64>) -> io::Result<()> {
        let mut s = self.st()?;
        if !self.writable {
            return Err(io::Error::from_raw_os_error(9)); // EBADF
        }
        s.writable()?;
        let mut n = buf.len();
        let fault = s.check(Op::Write);
        if let Some((_, short)) = fault {
            n = if short && !buf.is_empty() {
                (s.rand() % buf.len() as u64) as usize
            } else {
                0
            };
        }
        let node = s.nodes.get_mut(&self.ino).ok_or(io::ErrorKind::NotFound)?;
        let at = offset.map_or(node.data.len(), |o| o as usize);
        if node.data.len() < at + n {
            node.data.resize(at + n, 0);
        }
        node.data[at..at + n].copy_from_slice(&buf[..n]);
        match fault {
            Some((errno, _)) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl FileHandle for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.st()?;
        s.fail(Op::Read)?;
        let data = &s.nodes.get(&self.ino).ok_or(io::ErrorKind::NotFound)?.data;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        *s.bytes_read.entry(self.ino).or_default() += n as u64;
        Ok(n)
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.write(buf, None)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write(buf, Some(offset))
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.st()?;
        s.fail(Op::Sync)?;
        let n = s.nodes.get_mut(&self.ino).ok_or(io::ErrorKind::NotFound)?;
        n.durable = n.data.clone();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.st()?;
        if !self.writable {
            return Err(io::Error::from_raw_os_error(22)); // EINVAL, as ftruncate on O_RDONLY
        }
        s.writable()?;
        s.fail(Op::SetLen)?;
        let n = s.nodes.get_mut(&self.ino).ok_or(io::ErrorKind::NotFound)?;
        n.data.resize(len as usize, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let s = self.st()?;
        Ok(s.nodes
            .get(&self.ino)
            .ok_or(io::ErrorKind::NotFound)?
            .data
            .len() as u64)
    }
}

#[derive(Debug)]
struct MemLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl LockGuard for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if s.generation == self.generation {
            s.locks.remove(&self.path);
        }
    }
}

impl Fs for MemFs {
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn FileHandle>> {
        let mut s = self.op()?;
        s.fail(Op::Open)?;
        if writable {
            s.writable()?;
        }
        let ino = *s.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        let generation = s.generation;
        drop(s);
        Ok(self.handle(ino, writable, generation))
    }

    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn FileHandle>> {
        let mut s = self.op()?;
        s.writable()?;
        s.fail(Op::Create)?;
        s.parent_exists(path)?;
        let ino = match s.names.get(path).copied() {
            Some(_) if exclusive => return Err(io::ErrorKind::AlreadyExists.into()),
            Some(ino) => {
                s.nodes.get_mut(&ino).expect("linked").data.clear();
                ino
            }
            None => {
                let ino = s.new_node();
                s.link(path, ino);
                ino
            }
        };
        let generation = s.generation;
        drop(s);
        Ok(self.handle(ino, true, generation))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.writable()?;
        s.fail(Op::Rename)?;
        if s.dirs.contains(from) {
            // Directories are durable at once here, renamed ones too (the engine
            // syncs a directory's files and names before it renames it).
            let under = |p: &Path, d: &Path| p.starts_with(d) && p != d;
            if s.names.keys().any(|p| under(p, to)) {
                return Err(io::Error::from_raw_os_error(39)); // ENOTEMPTY
            }
            let moved = |p: &Path| to.join(p.strip_prefix(from).expect("under from"));
            let st = &mut *s;
            for map in [&mut st.names, &mut st.durable_names] {
                let inside: Vec<PathBuf> = map.keys().filter(|p| under(p, from)).cloned().collect();
                for p in inside {
                    let ino = map.remove(&p).expect("listed");
                    map.insert(moved(&p), ino);
                }
            }
            let dirs: Vec<PathBuf> = s
                .dirs
                .iter()
                .filter(|d| d.starts_with(from))
                .cloned()
                .collect();
            for d in dirs {
                s.dirs.remove(&d);
                s.dirs
                    .insert(to.join(d.strip_prefix(from).expect("under from")));
            }
            return Ok(());
        }
        let ino = s.names.remove(from).ok_or(io::ErrorKind::NotFound)?;
        s.names.insert(to.to_path_buf(), ino);
        s.pending
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf(), ino));
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.writable()?;
        s.fail(Op::Link)?;
        s.parent_exists(to)?;
        if s.names.contains_key(to) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = *s.names.get(from).ok_or(io::ErrorKind::NotFound)?;
        s.link(to, ino);
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.writable()?;
        s.fail(Op::Remove)?;
        if !s.dirs.contains(dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        if s.names.keys().any(|p| p.starts_with(dir))
            || s.dirs.iter().any(|d| d.starts_with(dir) && d != dir)
        {
            return Err(io::Error::from_raw_os_error(39)); // ENOTEMPTY
        }
        s.dirs.remove(dir);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.writable()?;
        s.fail(Op::Remove)?;
        s.names.remove(path).ok_or(io::ErrorKind::NotFound)?;
        s.pending.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.fail(Op::SyncDir)?;
        if !s.dirs.contains(dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let pending = std::mem::take(&mut s.pending);
        let mut names = std::mem::take(&mut s.durable_names);
        for op in pending {
            if op.dir() == Some(dir) {
                op.apply(&mut names);
            } else {
                s.pending.push(op);
            }
        }
        s.durable_names = names;
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.op()?;
        s.fail(Op::List)?;
        if !s.dirs.contains(dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        drop(s);
        Ok(self.names(dir))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        if s.dirs.contains(dir) {
            return Ok(());
        }
        s.writable()?;
        // Directories are durable at once: the engine never creates one it relies
        // on surviving a crash before its first file is synced along with it.
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        let s = self.op()?;
        let ino = s.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(s.nodes[ino].data.len() as u64)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut s = self.op()?;
        if !s.names.contains_key(path) {
            s.writable()?;
            s.fail(Op::Create)?;
            s.parent_exists(path)?;
            let ino = s.new_node();
            s.link(path, ino);
        }
        if !s.locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(MemLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            generation: s.generation,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_keeps_only_synced_bytes_and_names() {
        let fs = MemFs::new();
        let d = Path::new("/db");
        fs.create_dir_all(d).unwrap();
        let f = fs.create(&d.join("a"), true).unwrap();
        f.append(b"synced").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(d).unwrap();
        f.append(b" lost").unwrap();
        let g = fs.create(&d.join("b"), true).unwrap();
        g.append(b"x").unwrap();
        g.sync_data().unwrap();
        fs.rename(&d.join("a"), &d.join("c")).unwrap();
        fs.crash(Crash::DropUnsynced);
        assert_eq!(fs.read_file(&d.join("a")).unwrap(), b"synced");
        assert!(fs.read_file(&d.join("b")).is_none(), "name never synced");
        assert!(fs.read_file(&d.join("c")).is_none(), "rename never synced");
        assert!(f.len().is_err(), "handles die with the power");
    }

    #[test]
    fn nth_operation_fails_once_or_sticky() {
        let fs = MemFs::new();
        let d = Path::new("/db");
        fs.create_dir_all(d).unwrap();
        let f = fs.create(&d.join("a"), true).unwrap();
        fs.inject(Fault {
            op: Op::Write,
            nth: 2,
            errno: ENOSPC,
            sticky: false,
            short: false,
        });
        f.append(b"1").unwrap();
        assert_eq!(f.append(b"2").unwrap_err().raw_os_error(), Some(ENOSPC));
        f.append(b"3").unwrap();
        assert_eq!(fs.read_file(&d.join("a")).unwrap(), b"13");
        assert_eq!(fs.fired(), 1);
    }
}

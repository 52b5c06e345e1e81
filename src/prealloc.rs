//! Preallocation (docs/format.md, *Preallocation*): the zeros written ahead of
//! the active file's data and the spare next file, made on a thread of their
//! own so that durable writes find them ready and never wait behind other
//! background work (a hint file of a sealed 128 MiB file takes a while).
//!
//! The writer decides what to fill and when (it owns the active file's
//! lengths, in `db.rs`); this module does the I/O off the write path and
//! reports back. The thread starts at the first request, so a database that
//! never makes a durable write never has it.

use crate::datafile::{self, DataFile};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{FileHandle, Fs};
use parking_lot::{Condvar, Mutex};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Zeros written ahead of the data per step: a quarter of the data, between
/// these bounds. A step costs one page-cache write of zeros, written back at
/// once and made durable by the next durable write's fdatasync.
pub(crate) const STEP_MIN: u64 = 1 << 20;
pub(crate) const STEP_MAX: u64 = 8 << 20;

/// The next data file, made ahead (header written, zero-filled, synced) under a
/// temporary name: a rotation renames it into place instead of creating,
/// writing and syncing a file.
struct Spare {
    file: Box<dyn FileHandle>,
    /// Its length: header plus zeros.
    len: u64,
}

enum Job {
    /// Zero-fill `from..to` of the file.
    Fill(Arc<DataFile>, u64, u64),
    /// Make the spare, if there is none.
    Spare,
}

/// The outcome of a zero-fill: file id, end, success.
type Filled = Option<(u32, u64, bool)>;

pub(crate) struct Prealloc {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    max_file_size: u64,
    spare: Mutex<Option<Spare>>,
    /// A spare was asked for and not yet taken.
    spare_asked: AtomicBool,
    filled: Mutex<Filled>,
    fill_cv: Condvar,
    worker: Mutex<Option<(mpsc::Sender<Job>, JoinHandle<()>)>>,
    stopped: AtomicBool,
}

impl Prealloc {
    pub fn new(fs: Arc<dyn Fs>, dir: PathBuf, max_file_size: u64) -> Arc<Prealloc> {
        Arc::new(Prealloc {
            fs,
            dir,
            max_file_size,
            spare: Mutex::new(None),
            spare_asked: AtomicBool::new(false),
            filled: Mutex::new(None),
            fill_cv: Condvar::new(),
            worker: Mutex::new(None),
            stopped: AtomicBool::new(false),
        })
    }

    /// Hands `job` to the thread, starting it if needed; false after `stop` or
    /// when no thread can be started.
    fn send(self: &Arc<Self>, job: Job) -> bool {
        let mut w = self.worker.lock();
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        if w.is_none() {
            let (tx, rx) = mpsc::channel();
            let me = self.clone();
            let Ok(h) = std::thread::Builder::new()
                .name("bitcask-prealloc".into())
                .spawn(move || me.run(rx))
            else {
                return false;
            };
            *w = Some((tx, h));
        }
        w.as_ref().is_some_and(|(tx, _)| tx.send(job).is_ok())
    }

    fn run(&self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Fill(file, from, to) => {
                    let ok = zero_fill(&file, from, to);
                    *self.filled.lock() = Some((file.id, to, ok));
                    self.fill_cv.notify_all();
                }
                Job::Spare => {
                    // On failure rotations create files as before, and the
                    // next rotation asks again.
                    if self.make_spare().is_err() {
                        let _ = self.fs.remove(&self.dir.join(SPARE_FILE_NAME));
                    }
                }
            }
        }
    }

    /// Asks for a spare unless one is ready or asked for.
    pub fn ask_spare(self: &Arc<Self>) {
        if !self.spare_asked.swap(true, Ordering::AcqRel) && !self.send(Job::Spare) {
            self.spare_asked.store(false, Ordering::Release);
        }
    }

    fn make_spare(&self) -> Result<()> {
        if self.spare.lock().is_some() || self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self.dir.join(SPARE_FILE_NAME);
        let file = self
            .fs
            .create(&path, false)
            .map_err(|e| Error::io("creating", &path, e))?;
        let len = STEP_MIN.min(self.max_file_size);
        file.append(&file_header(&DATA_MAGIC))
            .and_then(|_| datafile::zero_fill(&*file, FILE_HEADER_LEN as u64, len))
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io("preallocating", &path, e))?;
        *self.spare.lock() = Some(Spare { file, len });
        Ok(())
    }

    pub fn spare_ready(&self) -> bool {
        self.spare.lock().is_some()
    }

    /// Bytes held by the spare.
    pub fn spare_len(&self) -> u64 {
        self.spare.lock().as_ref().map_or(0, |s| s.len)
    }

    /// The spare, renamed to data file `id` (and the rename made durable), with
    /// its length; `None` when there is none. Asks for the next one.
    pub fn take_spare(self: &Arc<Self>, id: u32) -> Result<Option<(DataFile, u64)>> {
        let Some(spare) = self.spare.lock().take() else {
            return Ok(None);
        };
        self.spare_asked.store(false, Ordering::Release);
        let from = self.dir.join(SPARE_FILE_NAME);
        let path = self.dir.join(data_file_name(id));
        if let Err(e) = self.fs.rename(&from, &path) {
            let _ = self.fs.remove(&from);
            return Err(Error::io("renaming", &from, e));
        }
        datafile::sync_dir(&*self.fs, &self.dir)?;
        self.ask_spare();
        let file = DataFile::new(id, path, spare.file, FORMAT_VERSION, true);
        Ok(Some((file, spare.len)))
    }

    /// Starts zero-filling `from..to` of `file`, or fills it on this thread
    /// when there is no preallocation thread. The caller keeps its writes below
    /// `from` until [`Prealloc::await_fill`] returns.
    pub fn fill(self: &Arc<Self>, file: &Arc<DataFile>, from: u64, to: u64) {
        if !self.send(Job::Fill(file.clone(), from, to)) {
            let ok = zero_fill(file, from, to);
            *self.filled.lock() = Some((file.id, to, ok));
        }
    }

    /// Whether the last fill asked for has finished.
    pub fn fill_finished(&self) -> bool {
        self.filled.lock().is_some()
    }

    /// Waits for the fill of file `id` asked for last: its end, or `None` when
    /// it failed.
    pub fn await_fill(&self, id: u32) -> Option<u64> {
        let mut f = self.filled.lock();
        loop {
            match f.take() {
                Some((fid, to, ok)) if fid == id => return ok.then_some(to),
                // A fill is awaited before its file stops being active, so an
                // outcome for another file is stale.
                Some(_) => {}
                None => self.fill_cv.wait(&mut f),
            }
        }
    }

    /// Stops the thread (after the jobs already sent) and removes an unused
    /// spare. Fills asked for before have finished when it returns.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let worker = self.worker.lock().take();
        if let Some((tx, h)) = worker {
            drop(tx);
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        // Left behind by a crash, open removes it.
        if self.spare.lock().take().is_some() || self.spare_asked.load(Ordering::Acquire) {
            let _ = self.fs.remove(&self.dir.join(SPARE_FILE_NAME));
        }
    }
}

/// Writes zeros over `from..to` of `file` and starts writing them back.
fn zero_fill(file: &DataFile, from: u64, to: u64) -> bool {
    let ok = datafile::zero_fill(&*file.file, from, to).is_ok();
    if ok {
        file.file.start_writeback(from, to - from);
    }
    ok
}

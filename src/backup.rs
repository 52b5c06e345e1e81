//! Online backup: a copy of the database as of one sequence number, made while
//! reads, writes and merges go on.
//!
//! The cut is taken under the writer lock: the newest sequence number, and every
//! data file with its length at that moment (the active file's length ends its
//! last complete write). Immutable files never change, so a hard link is a copy;
//! the active file is copied up to its cut length. Each file is held open
//! (`Arc<DataFile>`) from the cut on, so a merge that removes one meanwhile
//! cannot take it away: its name is gone, so it is copied from the handle
//! instead of linked. Hint files are linked or copied when they exist; a missing
//! one costs the copy a scan at open.
//!
//! The copy is built in a hidden sibling directory, synced file by file and as a
//! directory, then renamed to `dest` and the parent synced: `dest` is a whole
//! backup or nothing.

use crate::datafile::sync_dir;
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::format::*;
use crate::merge::Pacer;
use std::path::Path;

/// Copies are made in pieces of this size.
const CHUNK: usize = 1 << 20;

impl Inner {
    pub(crate) fn backup(&self, dest: &Path) -> Result<u64> {
        self.check_open()?;
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(Error::io(
                "backing up into",
                dest,
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(names) = self.fs.list(dest) {
            if !names.is_empty() {
                return Err(Error::io(
                    "backing up into",
                    dest,
                    std::io::Error::from(std::io::ErrorKind::DirectoryNotEmpty),
                ));
            }
        }
        let tmp = parent.join(format!(
            ".{}.backup-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        self.fs
            .create_dir_all(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        let res = self.backup_into(&tmp);
        let res = res.and_then(|seq| {
            self.fs
                .rename(&tmp, dest)
                .map_err(|e| Error::io("renaming backup", &tmp, e))?;
            // A backup whose name may not survive a power loss is reported as
            // failed, so it goes too.
            sync_dir(&*self.fs, parent).inspect_err(|_| self.remove_tree(dest))?;
            Ok(seq)
        });
        if res.is_err() {
            // Best effort: what is left of the unfinished copy is hidden anyway.
            self.remove_tree(&tmp);
        }
        res
    }

    /// Fills `tmp` with the cut's files and syncs them and it.
    fn backup_into(&self, tmp: &Path) -> Result<u64> {
        let (seq, files) = self.cut()?;
        let mut pacer = Pacer::new(self.opts.merge_bytes_per_sec);
        let last = files.last().map(|(id, _, _)| *id);
        for (id, file, len) in &files {
            let to = tmp.join(data_file_name(*id));
            // The last file may still grow: copy its cut, never link it.
            let linked = Some(*id) != last && self.fs.hard_link(&file.path, &to).is_ok();
            if !linked {
                self.copy_prefix(&*file.file, &file.path, *len, &to, &mut pacer)?;
            }
            if Some(*id) == last {
                continue;
            }
            let hint = self.dir.join(hint_file_name(*id));
            let hint_to = tmp.join(hint_file_name(*id));
            if self.fs.hard_link(&hint, &hint_to).is_err() {
                if let Ok(h) = self.fs.open(&hint, false) {
                    let n = h
                        .len()
                        .map_err(|e| Error::io("reading size of", &hint, e))?;
                    self.copy_prefix(&*h, &hint, n, &hint_to, &mut pacer)?;
                }
            }
        }
        sync_dir(&*self.fs, tmp)?;
        Ok(seq)
    }

    /// Copies the first `len` bytes of `from` into a new file `to`, synced.
    fn copy_prefix(
        &self,
        from: &dyn crate::fs::FileHandle,
        from_path: &Path,
        len: u64,
        to: &Path,
        pacer: &mut Pacer,
    ) -> Result<()> {
        let out = self
            .fs
            .create(to, true)
            .map_err(|e| Error::io("creating", to, e))?;
        // Paced, each piece is worth at most ~100 ms of the rate, the most the
        // pacer sleeps at once.
        let chunk = match self.opts.merge_bytes_per_sec {
            0 => CHUNK,
            rate => ((rate / 20) as usize).clamp(4096, CHUNK),
        };
        let mut buf = vec![0u8; chunk];
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(chunk as u64) as usize;
            from.read_exact_at(&mut buf[..n], at)
                .map_err(|e| Error::io("reading", from_path, e))?;
            out.append(&buf[..n])
                .map_err(|e| Error::io("writing", to, e))?;
            at += n as u64;
            pacer.pace(2 * n as u64);
        }
        out.sync_data().map_err(|e| Error::io("syncing", to, e))
    }

    /// Removes a directory this engine filled with files (no subdirectories).
    fn remove_tree(&self, dir: &Path) {
        for name in self.fs.list(dir).unwrap_or_default() {
            let _ = self.fs.remove(&dir.join(name));
        }
        let _ = self.fs.remove_dir(dir);
    }
}

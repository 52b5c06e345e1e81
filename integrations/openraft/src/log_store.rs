//! [`LogStore`]: openraft's log storage over one libbitcask database.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use bitcask::{Bitcask, Options, WriteBatch, WriteOptions};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of every log entry key; the 8 bytes after it are the index, big-endian.
pub const LOG_PREFIX: u8 = b'l';
/// The vote (JSON), written with fdatasync.
pub const VOTE_KEY: &[u8] = b"m:vote";
/// The committed log id (JSON), written with fdatasync; absent when none was saved.
pub const COMMITTED_KEY: &[u8] = b"m:committed";
/// The last purged log id (JSON), written with fdatasync before any entry is purged.
pub const PURGED_KEY: &[u8] = b"m:purged";

/// Entries deleted per batch by `truncate` and `purge`.
const DELETE_CHUNK: usize = 4096;
/// `limited_get_log_entries` stops once it has read this many bytes of entries
/// (it always returns at least one entry when the range holds one).
const READ_LIMIT_BYTES: usize = 8 << 20;

/// The key of the log entry at `index`: [`LOG_PREFIX`] then the index big-endian,
/// so that key order is index order.
pub fn log_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LOG_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn key_index(key: &[u8]) -> Option<u64> {
    match key {
        [LOG_PREFIX, rest @ ..] if rest.len() == 8 => {
            Some(u64::from_be_bytes(rest.try_into().expect("8 bytes")))
        }
        _ => None,
    }
}

/// The inclusive index bounds of `range`, or `None` when it is empty.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let lo = match range.start_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (lo <= hi).then_some((lo, hi))
}

/// openraft's [`RaftLogStorage`] and [`RaftLogReader`] over a libbitcask database
/// of its own (see the crate docs for the key layout and what is durable when).
///
/// Generic over the type config: any `C` whose entries serialize with serde.
/// Clones share the database; [`RaftLogStorage::get_log_reader`] hands out one.
pub struct LogStore<C: RaftTypeConfig> {
    db: Arc<Bitcask>,
    _c: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            _c: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("db", &self.db).finish()
    }
}

type Result<T, C> = std::result::Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;

fn logs_read<C: RaftTypeConfig>(e: impl Into<AnyError>) -> StorageError<C::NodeId> {
    StorageIOError::read_logs(e).into()
}

fn logs_write<C: RaftTypeConfig>(e: impl Into<AnyError>) -> StorageError<C::NodeId> {
    StorageIOError::write_logs(e).into()
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the log database in `dir`. `opts` are the database's
    /// options as given, except that the sync policy does not matter: every write
    /// that must be durable asks for its own fdatasync.
    ///
    /// Completes a purge that a crash interrupted (entries at or below the
    /// recorded purged log id are deleted).
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Self, C> {
        let db = Bitcask::open(dir, opts).map_err(|e| {
            StorageError::from(StorageIOError::new(
                ErrorSubject::Store,
                ErrorVerb::Read,
                &e,
            ))
        })?;
        let store = LogStore {
            db: Arc::new(db),
            _c: PhantomData,
        };
        if let Some(purged) = store.get_meta::<LogId<C::NodeId>>(PURGED_KEY)? {
            store.delete_range(0, purged.index, false, false)?;
        }
        Ok(store)
    }

    /// The underlying database (for statistics, backups, or merges).
    pub fn db(&self) -> &Arc<Bitcask> {
        &self.db
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, C> {
        let subject = |_: ()| meta_subject::<C>(key);
        match self.db.get(key) {
            Ok(None) => Ok(None),
            Ok(Some(v)) => serde_json::from_slice(&v).map(Some).map_err(|e| {
                StorageIOError::new(subject(()), ErrorVerb::Read, AnyError::new(&e)).into()
            }),
            Err(e) => {
                Err(StorageIOError::new(subject(()), ErrorVerb::Read, AnyError::new(&e)).into())
            }
        }
    }

    /// Writes one metadata key with fdatasync.
    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), C> {
        let err = |e: AnyError| -> StorageError<C::NodeId> {
            StorageIOError::new(meta_subject::<C>(key), ErrorVerb::Write, e).into()
        };
        let v = serde_json::to_vec(value).map_err(|e| err(AnyError::new(&e)))?;
        let mut b = WriteBatch::new();
        b.put(key, &v);
        self.db
            .write_opt(&b, WriteOptions { sync: true })
            .map_err(|e| err(AnyError::new(&e)))?;
        Ok(())
    }

    /// Entries with index in `range`, in index order, until `limit` bytes of
    /// serialized entries have been read (at least one entry, if there is one).
    fn read_entries(&self, range: impl RangeBounds<u64>, limit: usize) -> Result<Vec<C::Entry>, C> {
        let Some((lo, hi)) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        let mut it = self
            .db
            .range(log_key(lo)..=log_key(hi), false)
            .map_err(|e| logs_read::<C>(&e))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(kv) = it.next_ref() {
            let (k, v) = kv.map_err(|e| logs_read::<C>(&e))?;
            out.push(decode_entry::<C>(k, v)?);
            bytes += v.len();
            if bytes >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The id of the last entry present, if any.
    fn last_entry_id(&self) -> Result<Option<LogId<C::NodeId>>, C> {
        let view = self.db.snapshot().map_err(|e| logs_read::<C>(&e))?;
        let mut keys = view
            .range(log_key(0)..=log_key(u64::MAX), true)
            .map_err(|e| logs_read::<C>(&e))?
            .keys();
        let Some(key) = keys.next() else {
            return Ok(None);
        };
        let key = key.map_err(|e| logs_read::<C>(&e))?;
        let value = view
            .get(&key)
            .map_err(|e| logs_read::<C>(&e))?
            .ok_or_else(|| logs_read::<C>(AnyError::error("the last log entry vanished")))?;
        Ok(Some(decode_entry::<C>(&key, &value)?.get_log_id().clone()))
    }

    /// Deletes the entries with index in `lo..=hi`, in batches of at most
    /// `DELETE_CHUNK`, from the highest index down when `backwards` (so that a
    /// crash between batches leaves no hole at the end of the log) or from the
    /// lowest up (no hole at its start). With `sync`, fdatasyncs once at the end.
    fn delete_range(&self, lo: u64, hi: u64, backwards: bool, sync: bool) -> Result<(), C> {
        let mut deleted = false;
        loop {
            let keys: Vec<Vec<u8>> = self
                .db
                .range(log_key(lo)..=log_key(hi), backwards)
                .map_err(|e| logs_write::<C>(&e))?
                .keys()
                .take(DELETE_CHUNK)
                .collect::<bitcask::Result<_>>()
                .map_err(|e| logs_write::<C>(&e))?;
            if keys.is_empty() {
                break;
            }
            let mut b = WriteBatch::new();
            for k in &keys {
                b.delete(k);
            }
            self.db.write(&b).map_err(|e| logs_write::<C>(&e))?;
            deleted = true;
            if keys.len() < DELETE_CHUNK {
                break;
            }
        }
        if deleted && sync {
            self.db.sync().map_err(|e| logs_write::<C>(&e))?;
        }
        Ok(())
    }
}

fn meta_subject<C: RaftTypeConfig>(key: &[u8]) -> ErrorSubject<C::NodeId> {
    if key == VOTE_KEY {
        ErrorSubject::Vote
    } else {
        ErrorSubject::Store
    }
}

fn decode_entry<C>(key: &[u8], value: &[u8]) -> Result<C::Entry, C>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let index = key_index(key)
        .ok_or_else(|| logs_read::<C>(AnyError::error(format!("bad log key {key:?}"))))?;
    let entry: C::Entry = serde_json::from_slice(value)
        .map_err(|e| StorageError::from(StorageIOError::read_log_at_index(index, &e)))?;
    if entry.get_log_id().index != index {
        return Err(StorageIOError::read_log_at_index(
            index,
            AnyError::error(format!(
                "the entry stored at index {index} has log id {}",
                entry.get_log_id()
            )),
        )
        .into());
    }
    Ok(entry)
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, C> {
        self.read_entries(range, usize::MAX)
    }

    /// At most about 8 MiB of entries (at least one), for replication.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, C> {
        self.read_entries(start..end, READ_LIMIT_BYTES)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, C> {
        let last_purged_log_id = self.get_meta::<LogId<C::NodeId>>(PURGED_KEY)?;
        let last = self.last_entry_id()?;
        Ok(LogState {
            last_log_id: last.or_else(|| last_purged_log_id.clone()),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), C> {
        self.put_meta(VOTE_KEY, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, C> {
        self.get_meta(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> Result<(), C> {
        self.put_meta(COMMITTED_KEY, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, C> {
        Ok(self
            .get_meta::<Option<LogId<C::NodeId>>>(COMMITTED_KEY)?
            .flatten())
    }

    /// One atomic batch holding every entry, written with fdatasync; the callback
    /// is called after that returns.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::new();
        for entry in entries {
            let index = entry.get_log_id().index;
            let v = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.get_log_id().clone(), &e))?;
            b.put(&log_key(index), &v);
        }
        if !b.is_empty() {
            self.db
                .write_opt(&b, WriteOptions { sync: true })
                .map_err(|e| logs_write::<C>(&e))?;
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    /// Deletes `[log_id.index, ∞)`, from the end backwards, fdatasynced before
    /// returning.
    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), C> {
        self.delete_range(log_id.index, u64::MAX, true, true)
    }

    /// Records `log_id` as purged (fdatasynced), then deletes `[0, log_id.index]`
    /// from the start forwards. The deletes are not synced: open finishes them.
    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), C> {
        let prev = self.get_meta::<LogId<C::NodeId>>(PURGED_KEY)?;
        if prev.as_ref().is_none_or(|p| *p < log_id) {
            self.put_meta(PURGED_KEY, &log_id)?;
        }
        self.delete_range(0, log_id.index, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_in_index_order() {
        let idx = [0u64, 1, 255, 256, 65_535, 1 << 32, u64::MAX - 1, u64::MAX];
        for w in idx.windows(2) {
            assert!(log_key(w[0]) < log_key(w[1]));
        }
        for i in idx {
            assert_eq!(key_index(&log_key(i)), Some(i));
        }
        assert!(log_key(u64::MAX).as_slice() < VOTE_KEY);
        assert!(log_key(u64::MAX).as_slice() < COMMITTED_KEY);
        assert!(log_key(u64::MAX).as_slice() < PURGED_KEY);
    }

    #[test]
    fn range_bounds_at_the_edges_of_u64() {
        assert_eq!(index_bounds(&(3..3)), None);
        assert_eq!(index_bounds(&(3..4)), Some((3, 3)));
        assert_eq!(index_bounds(&(0..0)), None);
        assert_eq!(index_bounds(&(..)), Some((0, u64::MAX)));
        assert_eq!(index_bounds(&(u64::MAX..)), Some((u64::MAX, u64::MAX)));
        assert_eq!(index_bounds(&(5..=u64::MAX)), Some((5, u64::MAX)));
        assert_eq!(
            index_bounds(&(Bound::Excluded(u64::MAX), Bound::Unbounded)),
            None
        );
    }
}

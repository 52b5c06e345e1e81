//! [`StateMachineStore`]: the key-value state machine in a second libbitcask
//! database, with snapshots as files beside it.

use std::collections::HashMap;
use std::error::Error;
use std::fs::{self, File};
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitcask::{Bitcask, Options, WriteBatch, WriteOptions};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};

use crate::snapshot_file::{Reader, Writer};
use crate::{Node, NodeId, Request, Response, TypeConfig};

/// First byte of every application key in the state machine database.
pub const DATA_PREFIX: u8 = b'd';
/// The last applied log id (JSON).
pub const APPLIED_KEY: &[u8] = b"m:applied";
/// The last applied membership (JSON `StoredMembership`).
pub const MEMBERSHIP_KEY: &[u8] = b"m:membership";
/// Present while a snapshot is being loaded: its snapshot id.
pub const INSTALLING_KEY: &[u8] = b"m:installing";
/// The current snapshot's file name in the snapshot directory.
pub const CURRENT_SNAPSHOT: &str = "current";

/// Keys deleted per batch when a snapshot replaces the state.
const DELETE_CHUNK: usize = 4096;
/// Loading a snapshot writes batches of about this many bytes.
const LOAD_BATCH_BYTES: usize = 4 << 20;

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, Node>;

fn sm_read<E: Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write<E: Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

fn snap_read<E: Error + 'static>(meta: Option<&Meta>, e: E) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(meta.map(|m| m.signature()), &e).into()
}

fn snap_write<E: Error + 'static>(meta: Option<&Meta>, e: E) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), &e).into()
}

fn data_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(DATA_PREFIX);
    k.extend_from_slice(key);
    k
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("openraft's ids and memberships serialize to JSON")
}

/// The snapshot directory: the current snapshot file and the metadata of it.
#[derive(Debug)]
struct Snapshots {
    dir: PathBuf,
    /// The current snapshot's meta; the lock also orders replacing the file.
    current: Mutex<Option<Meta>>,
    next_tmp: AtomicU64,
}

impl Snapshots {
    fn open(dir: PathBuf) -> Result<Snapshots> {
        let err = |e: io::Error| snap_read(None, e);
        fs::create_dir_all(&dir).map_err(err)?;
        for ent in fs::read_dir(&dir).map_err(err)? {
            let ent = ent.map_err(err)?;
            if ent.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(ent.path()).map_err(err)?;
            }
        }
        let path = dir.join(CURRENT_SNAPSHOT);
        let current = match Reader::open(&path) {
            Ok(r) => Some(decode_meta(&r.meta_json)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(snap_read(None, e)),
        };
        Ok(Snapshots {
            dir,
            current: Mutex::new(current),
            next_tmp: AtomicU64::new(0),
        })
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT_SNAPSHOT)
    }

    fn tmp_path(&self, kind: &str) -> PathBuf {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{kind}-{n}.tmp"))
    }

    fn current_meta(&self) -> Option<Meta> {
        self.current.lock().expect("not poisoned").clone()
    }

    /// Makes the fsynced file `tmp` the current snapshot: always when `force`
    /// (an install), otherwise only if it is at least as new as the current one
    /// (a build that ran alongside an install must not undo it). Returns whether
    /// it did; when it did not, `tmp` is removed.
    fn publish(&self, tmp: &Path, meta: &Meta, force: bool) -> Result<bool> {
        let err = |e: io::Error| snap_write(Some(meta), e);
        let mut cur = self.current.lock().expect("not poisoned");
        let newer = cur
            .as_ref()
            .is_none_or(|c| c.last_log_id <= meta.last_log_id);
        if !(force || newer) {
            fs::remove_file(tmp).map_err(err)?;
            return Ok(false);
        }
        fs::rename(tmp, self.current_path()).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        *cur = Some(meta.clone());
        Ok(true)
    }

    /// Writes a snapshot of `view` and makes it current (unless a newer one is).
    /// Returns its meta and the file, positioned at its start.
    fn build(&self, view: &bitcask::Snapshot) -> Result<(Meta, File)> {
        if view.contains(INSTALLING_KEY).map_err(sm_read)? {
            return Err(sm_read(AnyError::error("a snapshot is half loaded")));
        }
        let applied: Option<LogId<NodeId>> = read_json(view.get(APPLIED_KEY))?;
        let membership: StoredMembership<NodeId, Node> =
            read_json(view.get(MEMBERSHIP_KEY))?.unwrap_or_default();
        let snapshot_id = match &applied {
            Some(l) => format!("{l}-{}", view.seq()),
            None => format!("none-{}", view.seq()),
        };
        let meta = Meta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let werr = |e: io::Error| snap_write(Some(&meta), e);
        let tmp = self.tmp_path("build");
        let written = (|| {
            let mut w = Writer::create(&tmp, &json(&meta)).map_err(werr)?;
            let mut it = view.prefix(&[DATA_PREFIX], false).map_err(sm_read)?;
            while let Some(kv) = it.next_ref() {
                let (k, v) = kv.map_err(sm_read)?;
                w.record(&k[1..], v).map_err(werr)?;
            }
            w.finish().map_err(werr)
        })();
        let file = written.inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        self.publish(&tmp, &meta, false)?;
        Ok((meta, file))
    }

    /// Copies a received snapshot from `src` into a new file while checking it
    /// (framing, checksum, and that its header's meta is `meta`), then makes it
    /// current.
    fn receive(&self, src: File, meta: &Meta) -> Result<()> {
        let rerr = |e: io::Error| snap_read(Some(meta), e);
        let mut src = src;
        src.seek(SeekFrom::Start(0)).map_err(rerr)?;
        let mut r = Reader::new(BufReader::with_capacity(1 << 16, src)).map_err(rerr)?;
        let got = decode_meta(&r.meta_json)?;
        if got != *meta {
            return Err(snap_read(
                Some(meta),
                AnyError::error(format!("the snapshot data is of {got}, not of {meta}")),
            ));
        }
        let tmp = self.tmp_path("install");
        let copied = (|| {
            let mut w = Writer::create(&tmp, &r.meta_json)?;
            while let Some((k, v)) = r.next_record()? {
                w.record(&k, &v)?;
            }
            w.finish()
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(rerr(e));
        }
        self.publish(&tmp, meta, true)?;
        Ok(())
    }
}

fn decode_meta(bytes: &[u8]) -> Result<Meta> {
    serde_json::from_slice(bytes).map_err(|e| snap_read(None, e))
}

fn read_json<T: serde::de::DeserializeOwned>(
    v: bitcask::Result<Option<Vec<u8>>>,
) -> Result<Option<T>> {
    match v.map_err(sm_read)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(sm_read),
    }
}

/// Replaces the state in `db` with the snapshot file at `path`: marks the load
/// (so that a crash part way is redone at open), deletes every application key,
/// writes the snapshot's records, then the applied log id and membership and
/// unmarks, with fdatasync.
fn load(db: &Bitcask, path: &Path) -> Result<Meta> {
    let mut r = Reader::open(path).map_err(|e| snap_read(None, e))?;
    let meta = decode_meta(&r.meta_json)?;
    let rerr = |e: io::Error| snap_read(Some(&meta), e);

    let mut b = WriteBatch::new();
    b.put(INSTALLING_KEY, meta.snapshot_id.as_bytes())
        .delete(APPLIED_KEY)
        .delete(MEMBERSHIP_KEY);
    db.write(&b).map_err(sm_write)?;
    loop {
        let keys: Vec<Vec<u8>> = db
            .prefix(&[DATA_PREFIX], false)
            .map_err(sm_read)?
            .keys()
            .take(DELETE_CHUNK)
            .collect::<bitcask::Result<_>>()
            .map_err(sm_read)?;
        if keys.is_empty() {
            break;
        }
        b.clear();
        for k in &keys {
            b.delete(k);
        }
        db.write(&b).map_err(sm_write)?;
    }

    b.clear();
    while let Some((k, v)) = r.next_record().map_err(rerr)? {
        b.put(&data_key(&k), &v);
        if b.encoded_len() >= LOAD_BATCH_BYTES {
            db.write(&b).map_err(sm_write)?;
            b.clear();
        }
    }
    if let Some(applied) = &meta.last_log_id {
        b.put(APPLIED_KEY, &json(applied));
    }
    b.put(MEMBERSHIP_KEY, &json(&meta.last_membership))
        .delete(INSTALLING_KEY);
    db.write_opt(&b, WriteOptions { sync: true })
        .map_err(sm_write)?;
    Ok(meta)
}

/// The key-value state machine of [`TypeConfig`]: application data, the last
/// applied log id and the last membership in a libbitcask database, and the
/// current snapshot in a file beside it (see the crate docs).
///
/// Clones share the database: keep one to read the state ([`Self::get`]) after
/// handing the other to `Raft::new`.
#[derive(Clone, Debug)]
pub struct StateMachineStore {
    db: Arc<Bitcask>,
    snapshots: Arc<Snapshots>,
}

impl StateMachineStore {
    /// Opens (or creates) the state machine database in `sm_dir` and the snapshot
    /// directory `snapshot_dir`. If the state machine is behind the current
    /// snapshot, or a snapshot load was interrupted, the snapshot is loaded again
    /// first (openraft then re-applies the log from there).
    pub fn open(
        sm_dir: impl AsRef<Path>,
        snapshot_dir: impl AsRef<Path>,
        opts: Options,
    ) -> Result<Self> {
        let db = Bitcask::open(sm_dir, opts)
            .map_err(|e| StorageIOError::new(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
        let snapshots = Snapshots::open(snapshot_dir.as_ref().to_path_buf())?;
        let applied: Option<LogId<NodeId>> = read_json(db.get(APPLIED_KEY))?;
        let installing = db.contains(INSTALLING_KEY).map_err(sm_read)?;
        if let Some(cur) = snapshots.current_meta() {
            if installing || cur.last_log_id > applied {
                load(&db, &snapshots.current_path())?;
            }
        } else if installing {
            return Err(sm_read(AnyError::error(
                "a snapshot load was interrupted and the snapshot file is missing",
            )));
        }
        Ok(StateMachineStore {
            db: Arc::new(db),
            snapshots: Arc::new(snapshots),
        })
    }

    /// The value of `key` in the applied state.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        match self.db.get(&data_key(key.as_bytes())).map_err(sm_read)? {
            None => Ok(None),
            Some(v) => String::from_utf8(v).map(Some).map_err(sm_read),
        }
    }

    /// The underlying database (for statistics, backups, or merges).
    pub fn db(&self) -> &Arc<Bitcask> {
        &self.db
    }

    /// The value `key` will have once the batch being built is written.
    fn pending(
        &self,
        overlay: &HashMap<String, Option<String>>,
        key: &str,
    ) -> Result<Option<String>> {
        match overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.get(key),
        }
    }
}

/// Builds a snapshot from the consistent view the state machine had when
/// `get_snapshot_builder` was called.
#[derive(Debug)]
pub struct SnapshotBuilder {
    view: bitcask::Result<bitcask::Snapshot>,
    snapshots: Arc<Snapshots>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Streams the view into a new file (fsynced) on a blocking thread and makes
    /// it the current snapshot.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let view = self.view.clone().map_err(sm_read)?;
        let snapshots = self.snapshots.clone();
        let (meta, file) = tokio::task::spawn_blocking(move || snapshots.build(&view))
            .await
            .map_err(|e| snap_write(None, e))??;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        let applied = read_json(self.db.get(APPLIED_KEY))?;
        let membership = read_json(self.db.get(MEMBERSHIP_KEY))?.unwrap_or_default();
        Ok((applied, membership))
    }

    /// One batch per call: the entries' changes, the last applied log id and
    /// (if an entry changed it) the membership. Not synced: see the crate docs.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::new();
        let mut overlay: HashMap<String, Option<String>> = HashMap::new();
        let mut replies = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(Request::Set { key, value }) => {
                    let previous = self.pending(&overlay, &key)?;
                    b.put(&data_key(key.as_bytes()), value.as_bytes());
                    overlay.insert(key, Some(value));
                    Response { previous }
                }
                EntryPayload::Normal(Request::Delete { key }) => {
                    let previous = self.pending(&overlay, &key)?;
                    b.delete(&data_key(key.as_bytes()));
                    overlay.insert(key, None);
                    Response { previous }
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    Response::default()
                }
            };
            replies.push(reply);
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            return Ok(replies);
        };
        b.put(APPLIED_KEY, &json(&last));
        if let Some(m) = &membership {
            b.put(MEMBERSHIP_KEY, &json(m));
        }
        self.db
            .write(&b)
            .map_err(|e| StorageIOError::apply(last, &e))?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            view: self.db.snapshot(),
            snapshots: self.snapshots.clone(),
        }
    }

    /// An anonymous file in the snapshot directory (created, then unlinked).
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>> {
        let path = self.snapshots.tmp_path("receive");
        let err = |e: io::Error| snap_write(None, e);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(err)?;
        fs::remove_file(&path).map_err(err)?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    /// Checks and copies the data into the current snapshot file (fsynced), then
    /// replaces the state with it, on a blocking thread.
    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<()> {
        let src = snapshot.into_std().await;
        let snapshots = self.snapshots.clone();
        let db = self.db.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            snapshots.receive(src, &meta)?;
            load(&db, &snapshots.current_path()).map(drop)
        })
        .await
        .map_err(|e| snap_write(None, e))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let cur = self.snapshots.current.lock().expect("not poisoned");
        let Some(meta) = cur.clone() else {
            return Ok(None);
        };
        let file =
            File::open(self.snapshots.current_path()).map_err(|e| snap_read(Some(&meta), e))?;
        drop(cur);
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

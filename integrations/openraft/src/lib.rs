//! [openraft](https://docs.rs/openraft/0.9) 0.9 storage over libbitcask: a
//! [`LogStore`] implementing `RaftLogStorage` and `RaftLogReader` (generic over
//! the type config), and a [`StateMachineStore`] implementing `RaftStateMachine`
//! for a small key-value application ([`TypeConfig`], [`Request`], [`Response`])
//! that keeps its applied state in a second libbitcask database and builds
//! snapshots from it.
//!
//! ```no_run
//! # use openraft::network::RaftNetworkFactory;
//! # async fn node(node_id: u64, network: impl RaftNetworkFactory<bitcask_openraft::TypeConfig>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bitcask_openraft::{Request, TypeConfig};
//! use openraft::{Config, Raft};
//!
//! // log/, sm/ and snapshot/ under one directory. A clone of the state
//! // machine reads the applied state.
//! let (log_store, state_machine) = bitcask_openraft::open("/var/lib/myapp/raft")?;
//! let kv = state_machine.clone();
//!
//! let config = Arc::new(Config::default().validate()?);
//! let raft = Raft::<TypeConfig>::new(node_id, config, network, log_store, state_machine).await?;
//!
//! // On the leader: replicated, committed, applied, then answered.
//! raft.client_write(Request::Set { key: "user:1".into(), value: "alice".into() }).await?;
//! assert_eq!(kv.get("user:1")?.as_deref(), Some("alice"));
//! # Ok(()) }
//! ```
//!
//! # Directories
//!
//! [`open`]`(dir)` uses three directories under `dir`: `log/` (the log
//! database), `sm/` (the state machine database) and `snapshot/` (the current
//! snapshot file). [`LogStore::open`] and [`StateMachineStore::open`] take them
//! separately, with the databases' [`bitcask::Options`].
//!
//! # Key layout
//!
//! Log database (`log/`):
//!
//! | key | value |
//! | --- | --- |
//! | `l` + index as 8 bytes big-endian | the entry, JSON (serde_json) |
//! | `m:vote` | the vote, JSON |
//! | `m:committed` | the committed log id (`Option`), JSON |
//! | `m:purged` | the last purged log id, JSON |
//!
//! Big-endian indexes make key order index order, so the first and last entries
//! are the ends of one ordered range (`range(.., reverse)`, O(log n), no scan)
//! and reading `[start, end)` is one range scan. Metadata keys start with `m`,
//! after every log key.
//!
//! State machine database (`sm/`):
//!
//! | key | value |
//! | --- | --- |
//! | `d` + application key | application value (UTF-8) |
//! | `m:applied` | the last applied log id, JSON |
//! | `m:membership` | the last applied membership (`StoredMembership`), JSON |
//! | `m:installing` | present only while a snapshot is being loaded: its id |
//!
//! # What is durable when
//!
//! "Durable" means fdatasynced: it survives a power failure. Every write is
//! handed to the OS before the call returns, so a killed process loses nothing
//! that a call returned for.
//!
//! - `append`: the entries of one call are one atomic batch, written with
//!   fdatasync; the callback is called after the write returns, so an entry is
//!   durable when its callback fires, and readable from then on. The call
//!   blocks its task for the write, as openraft's example stores do. Appends
//!   made at once through clones of a store share one fdatasync (libbitcask's
//!   group commit), but openraft 0.9 makes one append at a time per node, one
//!   per client write, so there each append has its own.
//! - `save_vote`, `save_committed`: durable before they return. With the
//!   append, a client write on a single node costs two fdatasyncs.
//! - `truncate(log_id)`: deletes `[log_id.index, ∞)` in batches from the end
//!   backwards, so a crash part way leaves no hole; durable before it returns.
//! - `purge(log_id)`: records the purged log id durably first, then deletes
//!   `[0, log_id.index]` from the start forwards, not synced; opening the log
//!   finishes an interrupted purge. `get_log_state` is right at every point.
//! - `apply`: the changes of one call, the last applied log id and the
//!   membership are one atomic batch, not synced. After a power failure the
//!   state machine may be back at an earlier batch: openraft re-applies the log
//!   from the last applied id up to the durable committed id, and opening the
//!   state machine first reloads the current snapshot if the state machine is
//!   behind it (openraft purges the log only up to a snapshot, so the log holds
//!   everything after it).
//! - `build_snapshot`: streams a consistent view of the state machine (a
//!   libbitcask snapshot taken in `get_snapshot_builder`) into a new file,
//!   fsyncs it, renames it to `snapshot/current` and fsyncs the directory; a
//!   build never replaces a newer snapshot (one installed meanwhile).
//! - `install_snapshot`: checks the received data (framing, CRC, the header's
//!   meta equal to the one given) while copying it into a new file, makes that
//!   `snapshot/current` as above, then replaces the state: marks the load
//!   (`m:installing`), deletes every application key, writes the snapshot's
//!   records, and writes the applied id and membership while unmarking, with
//!   fdatasync. A crash part way is redone from `snapshot/current` at open.
//!
//! # Snapshot files
//!
//! The snapshot data type is `tokio::fs::File`: openraft sends it in chunks and
//! nothing holds a whole snapshot in memory. A file is the state machine's
//! application keys and values in key order, framed so that a damaged or
//! truncated file is refused (all integers little-endian):
//!
//! ```text
//! magic      8 bytes   "BCOSNAP1"
//! meta_len   u32       length of meta
//! meta       openraft's SnapshotMeta (last log id, membership, snapshot id), JSON
//! records    each: key_len u32, key (without the `d` prefix), value_len u32, value;
//!            keys strictly ascending
//! end        u32 0xFFFF_FFFF
//! count      u64       number of records
//! crc        u32       CRC-32 (IEEE) of every byte before it
//! ```
//!
//! The snapshot id is the last log id and the sequence number of the view it
//! was built from, `T<term>-N<node>-<index>-<seq>` (`none-<seq>` before any
//! entry was applied).
//! Files ending in `.tmp` in the snapshot directory are unfinished and removed
//! at open.
//!
//! # Encoding
//!
//! Entries and metadata are JSON (serde_json), as in openraft's own examples:
//! self-describing, so a value can be read with any tool and a field added to an
//! application type with `#[serde(default)]` still reads old entries. Its cost
//! is small beside the fdatasync of each append: under half a microsecond to
//! encode or decode a 200-byte entry, against about 150 µs for an append.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// openraft's traits return its `StorageError` (about 200 bytes); the helpers
// here return it too rather than box it only to unbox it at the trait.
#![allow(clippy::result_large_err)]

mod log_store;
mod snapshot_file;
mod state_machine;

use std::path::Path;

pub use log_store::{log_key, LogStore, COMMITTED_KEY, LOG_PREFIX, PURGED_KEY, VOTE_KEY};
pub use state_machine::{
    SnapshotBuilder, StateMachineStore, APPLIED_KEY, CURRENT_SNAPSHOT, DATA_PREFIX, INSTALLING_KEY,
    MEMBERSHIP_KEY,
};

use serde::{Deserialize, Serialize};

/// Node ids of [`TypeConfig`].
pub type NodeId = u64;
/// Node addresses of [`TypeConfig`].
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// The type configuration of the key-value application that
    /// [`StateMachineStore`] runs: [`Request`] in, [`Response`] out, `u64` node
    /// ids, snapshots as files.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = tokio::fs::File,
);

/// A write to the key-value state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key` (removing a missing key is not an error).
    Delete {
        /// The key.
        key: String,
    },
}

/// The result of applying one entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The value the key had before a `Set` or `Delete`; `None` for entries
    /// that are not requests.
    pub previous: Option<String>,
}

/// Opens (or creates) the log store and the state machine under `dir`
/// (`dir/log`, `dir/sm`, `dir/snapshot`) with default database options.
pub fn open(
    dir: impl AsRef<Path>,
) -> Result<(LogStore<TypeConfig>, StateMachineStore), openraft::StorageError<NodeId>> {
    let dir = dir.as_ref();
    let log = LogStore::open(dir.join("log"), bitcask::Options::default())?;
    let sm = StateMachineStore::open(
        dir.join("sm"),
        dir.join("snapshot"),
        bitcask::Options::default(),
    )?;
    Ok((log, sm))
}

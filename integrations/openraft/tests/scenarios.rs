//! Scenarios beyond openraft's suite: reopening, crash states built by hand,
//! snapshots moved between state machines, damaged snapshots.

use std::path::Path;

use bitcask::Bitcask;
use bitcask_openraft::{
    log_key, LogStore, Request, Response, StateMachineStore, TypeConfig, APPLIED_KEY,
    CURRENT_SNAPSHOT, INSTALLING_KEY, PURGED_KEY,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StoredMembership, Vote,
};
use std::collections::BTreeSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn set(term: u64, index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request::Set {
            key: key.into(),
            value: value.into(),
        }),
    }
}

fn del(term: u64, index: u64, key: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request::Delete { key: key.into() }),
    }
}

fn membership(term: u64, index: u64) -> Entry<TypeConfig> {
    let voters: BTreeSet<u64> = [1, 2, 3].into();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
    }
}

fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn open_log(dir: &Path) -> LogStore<TypeConfig> {
    LogStore::open(dir, bitcask::Options::default()).unwrap()
}

fn open_sm(dir: &Path) -> StateMachineStore {
    StateMachineStore::open(
        dir.join("sm"),
        dir.join("snapshot"),
        bitcask::Options::default(),
    )
    .unwrap()
}

async fn indexes(log: &mut LogStore<TypeConfig>) -> Vec<u64> {
    let entries = log.try_get_log_entries(..).await.unwrap();
    entries.iter().map(|e| e.log_id.index).collect()
}

/// Every key `k0..k{n-1}` set to `v{i}` at indexes 1..=n, after a membership at 0.
async fn fill(sm: &mut StateMachineStore, n: u64) {
    let mut entries = vec![membership(1, 0)];
    entries.extend((0..n).map(|i| set(1, i + 1, &format!("k{i}"), &format!("v{i}"))));
    sm.apply(entries).await.unwrap();
}

/// Fills `sm` with `n` keys, builds a snapshot of it and reads it back.
async fn filled_snapshot(
    sm: &mut StateMachineStore,
    n: u64,
) -> (openraft::SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>) {
    fill(sm, n).await;
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    snapshot_bytes(sm).await
}

async fn snapshot_bytes(
    sm: &mut StateMachineStore,
) -> (openraft::SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>) {
    let mut snap = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a snapshot");
    let mut bytes = Vec::new();
    snap.snapshot.read_to_end(&mut bytes).await.unwrap();
    (snap.meta, bytes)
}

async fn install(
    sm: &mut StateMachineStore,
    meta: &openraft::SnapshotMeta<u64, openraft::BasicNode>,
    bytes: &[u8],
) -> Result<(), openraft::StorageError<u64>> {
    let mut rx = sm.begin_receiving_snapshot().await?;
    rx.write_all(bytes).await.unwrap();
    rx.flush().await.unwrap();
    sm.install_snapshot(meta, rx).await
}

#[tokio::test]
async fn vote_committed_purge_truncate_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open_log(dir.path());
        log.blocking_append((0..20).map(|i| blank(1, i)))
            .await
            .unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        log.save_committed(Some(log_id(1, 12))).await.unwrap();
        log.purge(log_id(1, 4)).await.unwrap();
        log.truncate(log_id(1, 15)).await.unwrap();
        log.blocking_append([blank(3, 15)]).await.unwrap();
    }
    let mut log = open_log(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 12)));
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(st.last_log_id, Some(log_id(3, 15)));
    assert_eq!(indexes(&mut log).await, (5..=15).collect::<Vec<_>>());
    let some = log.try_get_log_entries(7..9).await.unwrap();
    assert_eq!(
        some.iter().map(|e| e.log_id).collect::<Vec<_>>(),
        [log_id(1, 7), log_id(1, 8)]
    );
}

#[tokio::test]
async fn open_finishes_a_purge_that_a_crash_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open_log(dir.path());
        log.blocking_append((0..10).map(|i| blank(1, i)))
            .await
            .unwrap();
    }
    // The state a crash leaves between purge's durable purged id and its deletes.
    {
        let db = Bitcask::open(dir.path(), bitcask::Options::default()).unwrap();
        db.put(PURGED_KEY, &serde_json::to_vec(&log_id(1, 6)).unwrap())
            .unwrap();
        assert!(db.contains(&log_key(3)).unwrap());
    }
    let mut log = open_log(dir.path());
    assert_eq!(indexes(&mut log).await, [7, 8, 9]);
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 6)));
    assert_eq!(st.last_log_id, Some(log_id(1, 9)));
}

#[tokio::test]
async fn purge_past_the_last_entry_leaves_the_purged_id_as_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path());
    log.blocking_append((0..3).map(|i| blank(1, i)))
        .await
        .unwrap();
    log.purge(log_id(2, 10)).await.unwrap();
    let st = log.get_log_state().await.unwrap();
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (Some(log_id(2, 10)), Some(log_id(2, 10)))
    );
    log.blocking_append([blank(2, 11)]).await.unwrap();
    drop(log);
    let mut log = open_log(dir.path());
    assert_eq!(indexes(&mut log).await, [11]);
}

#[tokio::test]
async fn limited_reads_return_a_prefix_and_at_least_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path());
    let big = "x".repeat(3 << 20);
    log.blocking_append((0..6).map(|i| set(1, i, "k", &big)))
        .await
        .unwrap();
    let got = log.limited_get_log_entries(1, 6).await.unwrap();
    assert!(!got.is_empty() && got.len() < 5, "{} entries", got.len());
    assert_eq!(got[0].log_id.index, 1);
    assert!(log.limited_get_log_entries(4, 4).await.unwrap().is_empty());
    assert_eq!(log.try_get_log_entries(u64::MAX..).await.unwrap().len(), 0);
}

#[tokio::test]
async fn apply_answers_previous_values_within_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open_sm(dir.path());
    let replies = sm
        .apply([
            set(1, 1, "a", "1"),
            set(1, 2, "a", "2"),
            del(1, 3, "a"),
            del(1, 4, "a"),
            blank(1, 5),
        ])
        .await
        .unwrap();
    let prev: Vec<Option<&str>> = replies
        .iter()
        .map(|r: &Response| r.previous.as_deref())
        .collect();
    assert_eq!(prev, [None, Some("1"), Some("2"), None, None]);
    assert_eq!(sm.get("a").unwrap(), None);
}

#[tokio::test]
async fn applied_state_and_data_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut sm = open_sm(dir.path());
        fill(&mut sm, 50).await;
        sm.apply([del(1, 51, "k7"), blank(2, 52)]).await.unwrap();
    }
    let mut sm = open_sm(dir.path());
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 52)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 0)));
    assert_eq!(sm.get("k3").unwrap().as_deref(), Some("v3"));
    assert_eq!(sm.get("k7").unwrap(), None);
}

#[tokio::test]
async fn a_snapshot_moves_the_whole_state_to_another_state_machine() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_sm(a_dir.path());
    fill(&mut a, 300).await;
    let built = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 300)));
    let (meta, bytes) = snapshot_bytes(&mut a).await;
    assert_eq!(meta, built.meta);

    let mut b = open_sm(b_dir.path());
    b.apply([set(1, 0, "only-on-b", "x"), set(1, 1, "k1", "old")])
        .await
        .unwrap();
    install(&mut b, &meta, &bytes).await.unwrap();
    assert_eq!(
        b.get("only-on-b").unwrap(),
        None,
        "install replaces the state"
    );
    assert_eq!(b.get("k1").unwrap().as_deref(), Some("v1"));
    assert_eq!(b.get("k299").unwrap().as_deref(), Some("v299"));
    assert_eq!(
        b.applied_state().await.unwrap(),
        a.applied_state().await.unwrap()
    );
    assert_eq!(snapshot_bytes(&mut b).await, (meta.clone(), bytes.clone()));
    drop(b);
    let mut b = open_sm(b_dir.path());
    assert_eq!(b.applied_state().await.unwrap().0, Some(log_id(1, 300)));
    assert_eq!(b.get("k42").unwrap().as_deref(), Some("v42"));
    assert_eq!(snapshot_bytes(&mut b).await.0, meta);
}

#[tokio::test]
async fn a_damaged_or_mismatched_snapshot_is_refused_and_changes_nothing() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_sm(a_dir.path());
    let (meta, bytes) = filled_snapshot(&mut a, 20).await;

    let mut b = open_sm(b_dir.path());
    b.apply([set(1, 0, "mine", "yes")]).await.unwrap();
    let before = b.applied_state().await.unwrap();

    let mut flipped = bytes.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 1;
    let short = &bytes[..bytes.len() - 1];
    let mut other_meta = meta.clone();
    other_meta.last_log_id = Some(log_id(1, 7));
    for (what, m, data) in [
        ("a flipped byte", &meta, &flipped[..]),
        ("a truncated file", &meta, short),
        ("another snapshot's meta", &other_meta, &bytes[..]),
    ] {
        assert!(
            install(&mut b, m, data).await.is_err(),
            "{what} was accepted"
        );
        assert_eq!(b.get("mine").unwrap().as_deref(), Some("yes"), "{what}");
        assert_eq!(b.applied_state().await.unwrap(), before, "{what}");
        assert!(b.get_current_snapshot().await.unwrap().is_none(), "{what}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(b_dir.path().join("snapshot"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

#[tokio::test]
async fn a_snapshot_load_cut_short_by_a_crash_is_redone_at_open() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_sm(a_dir.path());
    let (meta, bytes) = filled_snapshot(&mut a, 100).await;
    {
        let mut b = open_sm(b_dir.path());
        install(&mut b, &meta, &bytes).await.unwrap();
    }
    // The state a crash leaves part way through the load: marked, half the keys
    // written, no applied id.
    {
        let db = Bitcask::open(b_dir.path().join("sm"), bitcask::Options::default()).unwrap();
        let mut batch = bitcask::WriteBatch::new();
        batch.put(INSTALLING_KEY, b"x").delete(APPLIED_KEY);
        for i in 50..100 {
            batch.delete(format!("dk{i}").as_bytes());
        }
        db.write(&batch).unwrap();
    }
    let mut b = open_sm(b_dir.path());
    assert_eq!(b.get("k77").unwrap().as_deref(), Some("v77"));
    assert_eq!(
        b.applied_state().await.unwrap(),
        a.applied_state().await.unwrap()
    );
    assert!(!b.db().contains(INSTALLING_KEY).unwrap());
}

#[tokio::test]
async fn a_state_machine_behind_its_snapshot_reloads_it_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut sm = open_sm(dir.path());
        fill(&mut sm, 30).await;
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }
    // What a power failure can leave when applies were not synced: an older
    // prefix of the applied state.
    {
        let db = Bitcask::open(dir.path().join("sm"), bitcask::Options::default()).unwrap();
        let mut batch = bitcask::WriteBatch::new();
        batch.put(APPLIED_KEY, &serde_json::to_vec(&log_id(1, 10)).unwrap());
        for i in 10..30 {
            batch.delete(format!("dk{i}").as_bytes());
        }
        db.write(&batch).unwrap();
    }
    let mut sm = open_sm(dir.path());
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 30)));
    assert_eq!(sm.get("k29").unwrap().as_deref(), Some("v29"));
}

#[tokio::test]
async fn a_build_never_replaces_a_newer_installed_snapshot() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_sm(a_dir.path());
    let (meta, bytes) = filled_snapshot(&mut a, 40).await;

    let mut b = open_sm(b_dir.path());
    b.apply([set(1, 1, "old", "state")]).await.unwrap();
    let mut stale = b.get_snapshot_builder().await; // a view of the old state
    install(&mut b, &meta, &bytes).await.unwrap();
    let built = stale.build_snapshot().await.unwrap();
    assert_eq!(
        built.meta.last_log_id,
        Some(log_id(1, 1)),
        "built from its view"
    );
    assert_eq!(
        snapshot_bytes(&mut b).await.0,
        meta,
        "the installed one stays current"
    );
    let names: Vec<String> = std::fs::read_dir(b_dir.path().join("snapshot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [CURRENT_SNAPSHOT]);
}

#[tokio::test]
async fn an_empty_state_machine_snapshots_and_installs() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open_sm(a_dir.path());
    let built = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, None);
    assert_eq!(built.meta.last_membership, StoredMembership::default());
    let (meta, bytes) = snapshot_bytes(&mut a).await;
    let mut b = open_sm(b_dir.path());
    b.apply([set(1, 0, "gone", "soon")]).await.unwrap();
    install(&mut b, &meta, &bytes).await.unwrap();
    assert_eq!(b.get("gone").unwrap(), None);
    assert_eq!(b.applied_state().await.unwrap().0, None);
}

//! Real openraft nodes on these stores, connected in-process: a node that
//! restarts keeps its state, and a learner that joins after the log was purged
//! catches up from a snapshot sent in chunks from the leader's snapshot file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcask_openraft::{Node, NodeId, Request, Response, StateMachineStore, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};

type Rpc<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, Node, E>>;

/// Every node of the test, by id.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<NodeId, Raft<TypeConfig>>>>);

impl Router {
    fn node(&self, id: NodeId) -> Result<Raft<TypeConfig>, NetworkError> {
        self.0
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or_else(|| NetworkError::new(&std::io::Error::other(format!("no node {id}"))))
    }
}

struct Conn {
    target: NodeId,
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Conn;
    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Conn {
        Conn {
            target,
            router: self.clone(),
        }
    }
}

impl Conn {
    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        let raft = self.router.node(self.target).map_err(RPCError::Network)?;
        raft.append_entries(rpc).await.map_err(|e| self.remote(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let raft = self.router.node(self.target).map_err(RPCError::Network)?;
        raft.install_snapshot(rpc).await.map_err(|e| self.remote(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        let raft = self.router.node(self.target).map_err(RPCError::Network)?;
        raft.vote(rpc).await.map_err(|e| self.remote(e))
    }
}

fn config() -> Arc<Config> {
    let c = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshot every 50 applied entries, keep no log behind it, purge at once.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(50),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        // Small chunks, so that a snapshot travels in several.
        snapshot_max_chunk_size: 4096,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

async fn start(id: NodeId, dir: &Path, router: &Router) -> (Raft<TypeConfig>, StateMachineStore) {
    let (log, sm) = bitcask_openraft::open(dir).unwrap();
    let reader = sm.clone();
    let raft = Raft::new(id, config(), router.clone(), log, sm)
        .await
        .unwrap();
    router.0.lock().unwrap().insert(id, raft.clone());
    (raft, reader)
}

async fn stop(id: NodeId, raft: Raft<TypeConfig>, router: &Router) {
    router.0.lock().unwrap().remove(&id);
    raft.shutdown().await.unwrap();
}

async fn set(raft: &Raft<TypeConfig>, key: &str, value: &str) -> Response {
    let req = Request::Set {
        key: key.into(),
        value: value.into(),
    };
    raft.client_write(req).await.unwrap().data
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_with_its_log_snapshot_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::default();
    let (raft, sm) = start(1, dir.path(), &router).await;
    raft.initialize(BTreeMap::from([(1, BasicNode::default())]))
        .await
        .unwrap();
    raft.wait(WAIT).current_leader(1, "leader").await.unwrap();
    for i in 0..120 {
        set(&raft, &format!("k{i}"), &format!("v{i}")).await;
    }
    assert_eq!(
        set(&raft, "k5", "again").await.previous.as_deref(),
        Some("v5")
    );
    let last = raft.metrics().borrow().last_applied.unwrap().index;
    raft.wait(WAIT)
        .metrics(
            |m| m.purged.is_some() && m.snapshot.is_some(),
            "snapshot and purge",
        )
        .await
        .unwrap();
    stop(1, raft, &router).await;
    drop(sm);

    let (raft, sm) = start(1, dir.path(), &router).await;
    raft.wait(WAIT)
        .applied_index_at_least(Some(last), "re-applied")
        .await
        .unwrap();
    raft.wait(WAIT)
        .current_leader(1, "leader again")
        .await
        .unwrap();
    assert_eq!(sm.get("k5").unwrap().as_deref(), Some("again"));
    assert_eq!(sm.get("k119").unwrap().as_deref(), Some("v119"));
    assert_eq!(
        set(&raft, "k119", "new").await.previous.as_deref(),
        Some("v119")
    );
    stop(1, raft, &router).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_from_a_snapshot_after_the_log_was_purged() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let router = Router::default();
    let (leader, _sm1) = start(1, d1.path(), &router).await;
    leader.initialize(BTreeSet::from([1])).await.unwrap();
    leader.wait(WAIT).current_leader(1, "leader").await.unwrap();
    let value = "x".repeat(100); // ~20 KB of state: several 4 KiB chunks
    for i in 0..200 {
        set(&leader, &format!("key{i:03}"), &value).await;
    }
    leader
        .wait(WAIT)
        .metrics(|m| m.purged.is_some_and(|p| p.index >= 150), "purged")
        .await
        .unwrap();

    let (learner, sm2) = start(2, d2.path(), &router).await;
    leader
        .add_learner(2, BasicNode::default(), true)
        .await
        .unwrap();
    let last = leader.metrics().borrow().last_log_index;
    learner
        .wait(WAIT)
        .applied_index_at_least(last, "caught up")
        .await
        .unwrap();
    let m = learner.metrics().borrow().clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index >= 150),
        "the learner installed a snapshot: {:?}",
        m.snapshot
    );
    assert_eq!(sm2.get("key000").unwrap().as_deref(), Some(value.as_str()));
    assert_eq!(sm2.get("key199").unwrap().as_deref(), Some(value.as_str()));
    stop(2, learner, &router).await;
    stop(1, leader, &router).await;
}

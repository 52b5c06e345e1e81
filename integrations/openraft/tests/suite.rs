//! openraft's own storage test suite, run against fresh directories.

use bitcask_openraft::{LogStore, NodeId, StateMachineStore, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

struct FreshDirs;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, StateMachineStore, TempDir> for FreshDirs {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TypeConfig>, StateMachineStore), StorageError<NodeId>> {
        let dir = TempDir::new().expect("a temporary directory");
        let (log, sm) = bitcask_openraft::open(dir.path())?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_fresh_directories() {
    Suite::test_all(FreshDirs).unwrap();
}

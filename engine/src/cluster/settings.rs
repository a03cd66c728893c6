//! What each of our settings means on a Ballista cluster.
//!
//! A setting either becomes Ballista's or DataFusion's key on the cluster session (sent with
//! every job), applies in this process as it does locally (the client collects results), or
//! has no meaning there. A setting of the last kind is an error when a statement sets it in
//! cluster mode and a warning when it comes from startup (a properties file shared with local
//! runs), never silently ignored. docs/cluster.md carries the same table.

use crate::config::keys::{self, parse_bytes};

/// What a setting means in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Becomes these keys of the cluster session.
    Mapped(&'static [&'static str]),
    /// Applies in this process, as in local mode.
    Client,
    /// Has no meaning on the cluster, for this reason.
    Unsupported(&'static str),
}

const EXECUTORS: &str = "a cluster's executors have the cores and memory they were started with (`stagesql cluster executor --cores N --memory SIZE`)";
const NO_RULE: &str = "Ballista's adaptive planner has no such rule";
const LOCAL_ONLY: &str = "it governs jobs run in this process";

/// What `key` (one of ours) means in cluster mode.
pub fn meaning(key: &str) -> Meaning {
    use Meaning::*;
    match key {
        keys::SHUFFLE_PARTITIONS => Mapped(&["datafusion.execution.target_partitions"]),
        keys::ADAPTIVE_ENABLED => Mapped(&["ballista.planner.adaptive.enabled"]),
        keys::COALESCE_ENABLED => Mapped(&["ballista.planner.coalesce.enabled"]),
        keys::ADVISORY_PARTITION_SIZE => {
            Mapped(&["ballista.planner.coalesce.target_partition_bytes"])
        }
        keys::AUTO_BROADCAST_JOIN_THRESHOLD => Mapped(&[
            "ballista.optimizer.broadcast_join_threshold_bytes",
            "datafusion.optimizer.hash_join_single_partition_threshold",
        ]),
        keys::DRIVER_MEMORY
        | keys::DRIVER_MAX_RESULT_SIZE
        | keys::MASTER
        | keys::CLUSTER_STALL_TIMEOUT => Client,
        keys::EXECUTOR_INSTANCES
        | keys::EXECUTOR_CORES
        | keys::EXECUTOR_MEMORY
        | keys::MEMORY_FRACTION
        | keys::MEMORY_STORAGE_FRACTION => Unsupported(EXECUTORS),
        keys::LOCAL_DIR => {
            Unsupported("each executor keeps its shuffle files in its own --work-dir")
        }
        keys::TASK_MAX_FAILURES | keys::STAGE_MAX_CONSECUTIVE_ATTEMPTS => Unsupported(
            "the scheduler's --task-max-failures and --stage-max-failures govern retries on a cluster",
        ),
        keys::MAX_PARTITION_BYTES | keys::OPEN_COST_IN_BYTES => Unsupported(
            "Ballista splits a scan into datafusion.execution.target_partitions (spark.sql.shuffle.partitions) tasks",
        ),
        keys::COALESCE_PARALLELISM_FIRST
        | keys::COALESCE_MIN_PARTITION_SIZE
        | keys::COALESCE_INITIAL_PARTITION_NUM
        | keys::ADAPTIVE_BROADCAST_THRESHOLD
        | keys::SKEW_JOIN_ENABLED
        | keys::SKEW_JOIN_FACTOR
        | keys::SKEW_JOIN_THRESHOLD => Unsupported(NO_RULE),
        keys::SCHEDULER_MODE | keys::SCHEDULER_POOL => {
            Unsupported("Ballista's scheduler has no scheduler pools")
        }
        keys::EXECUTION_MODE => Unsupported("cluster mode runs every query on the cluster"),
        keys::WAREHOUSE_DIR | keys::PARTITION_OVERWRITE_MODE | keys::CHECKPOINT_DIR => {
            Unsupported("managed tables and checkpoints are written in local mode only")
        }
        keys::EVENT_LOG_ENABLED | keys::EVENT_LOG_DIR | keys::REPORT_DIR => Unsupported(
            "the event log records jobs run in this process; a cluster's jobs are in its scheduler's REST API",
        ),
        keys::SPARK_FUNCTIONS => {
            Unsupported("the cluster's scheduler and executors plan with DataFusion's functions")
        }
        _ => Unsupported(LOCAL_ONLY),
    }
}

/// The cluster session's keys for our current settings (`setting` gives a key's value).
pub fn cluster_keys(setting: impl Fn(&str) -> String) -> Vec<(&'static str, String)> {
    let bytes = |key: &str| parse_bytes(&setting(key)).unwrap_or(0).to_string();
    let broadcast = match setting(keys::AUTO_BROADCAST_JOIN_THRESHOLD).trim() {
        "-1" => "0".to_string(),
        _ => bytes(keys::AUTO_BROADCAST_JOIN_THRESHOLD),
    };
    vec![
        (
            "datafusion.execution.target_partitions",
            setting(keys::SHUFFLE_PARTITIONS),
        ),
        (
            "ballista.planner.adaptive.enabled",
            setting(keys::ADAPTIVE_ENABLED),
        ),
        (
            "ballista.planner.coalesce.enabled",
            setting(keys::COALESCE_ENABLED),
        ),
        (
            "ballista.planner.coalesce.target_partition_bytes",
            bytes(keys::ADVISORY_PARTITION_SIZE),
        ),
        (
            "ballista.optimizer.broadcast_join_threshold_bytes",
            broadcast.clone(),
        ),
        (
            "datafusion.optimizer.hash_join_single_partition_threshold",
            broadcast,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_setting_is_sent_and_every_key_has_a_meaning() {
        let sent: Vec<_> = cluster_keys(|key| {
            keys::definition(key)
                .map(|d| d.default.to_string())
                .unwrap_or_default()
        });
        for definition in keys::DEFINITIONS {
            if let Meaning::Mapped(targets) = meaning(definition.key) {
                for target in targets {
                    assert!(
                        sent.iter().any(|(key, _)| key == target),
                        "{} maps to {target}, which is not sent",
                        definition.key
                    );
                }
            }
        }
        let broadcast_off = cluster_keys(|key| match key {
            keys::AUTO_BROADCAST_JOIN_THRESHOLD => "-1".into(),
            _ => "1".into(),
        });
        assert!(broadcast_off.contains(&(
            "ballista.optimizer.broadcast_join_threshold_bytes",
            "0".into()
        )));
    }
}

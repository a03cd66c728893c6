//! Planning for the stage model: DataFusion's physical plan with Spark's settings applied,
//! file scans split the way Spark splits them, then cut into a [`StageGraph`].
//!
//! DataFusion uses `target_partitions` both for scan parallelism and for hash repartition
//! counts; here those are two settings. The plan is made with `target_partitions` =
//! `spark.sql.shuffle.partitions` (so every hash exchange has R buckets), then every file
//! scan is re-split by Spark's rule ([`split_scans`]).

mod cut;
mod splits;

pub use cut::cut_stages;
pub use splits::{SplitScans, split_count, split_scans, split_size};

use datafusion::config::ConfigOptions;

/// Settings of one planning run in stages mode.
#[derive(Debug, Clone, Copy)]
pub struct StagePlanning {
    pub slots: usize,
    pub shuffle_partitions: usize,
    pub max_partition_bytes: u64,
    pub open_cost_in_bytes: u64,
    /// `None` when broadcast joins are disabled (`-1`).
    pub broadcast_threshold: Option<u64>,
}

impl StagePlanning {
    /// DataFusion options for planning a query that runs in stages.
    pub fn apply(&self, options: &mut ConfigOptions) {
        options.execution.target_partitions = self.shuffle_partitions;
        // Scans are split by `split_scans`; round-robin repartitioning is what Spark avoids
        // by splitting files.
        options.optimizer.repartition_file_scans = false;
        options.optimizer.enable_round_robin_repartition = false;
        // A hash join's dynamic filter reaches into a probe scan that runs in an earlier stage
        // than the join, so it would never be filled in time.
        options.optimizer.enable_dynamic_filter_pushdown = false;
        options.optimizer.enable_join_dynamic_filter_pushdown = false;
        options.optimizer.enable_topk_dynamic_filter_pushdown = false;
        options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        // Each task reads its own splits: no stealing of a sibling task's files, which would
        // make tasks depend on each other and lose data when an attempt is retried.
        options.execution.enable_file_stream_work_stealing = false;
        // Spark's broadcast rule: by estimated bytes, against autoBroadcastJoinThreshold.
        options.optimizer.hash_join_single_partition_threshold = self
            .broadcast_threshold
            .map_or(0, |t| usize::try_from(t).unwrap_or(usize::MAX));
        options.optimizer.hash_join_single_partition_threshold_rows = 0;
    }
}

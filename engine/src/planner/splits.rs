//! Splitting file scans into tasks the way Spark does.
//!
//! Spark's split size is `min(maxPartitionBytes, max(openCostInBytes, totalBytes / slots))`,
//! where every file counts `openCostInBytes` extra; a scan gets about `totalBytes / split`
//! tasks, so at least as many as there are slots whenever the files are large enough.
//! DataFusion then cuts the files into that many contiguous byte ranges.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use super::StagePlanning;

/// [`split_scans`] as the first physical optimizer rule, so that DataFusion's distribution
/// enforcement sees the final number of scan partitions (an operator that needs one
/// partition gets its merge even when a file is cut into several tasks).
#[derive(Debug)]
pub struct SplitScans(pub StagePlanning);

impl PhysicalOptimizerRule for SplitScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        split_scans(plan, &self.0)
    }

    fn name(&self) -> &str {
        "SplitScans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Spark's maximum split size for files totalling `total_bytes` over `files` files.
pub fn split_size(settings: &StagePlanning, total_bytes: u64, files: u64) -> u64 {
    let with_open_cost = total_bytes + files * settings.open_cost_in_bytes;
    let per_slot = with_open_cost / settings.slots.max(1) as u64;
    settings
        .max_partition_bytes
        .min(settings.open_cost_in_bytes.max(per_slot))
        .max(1)
}

/// How many tasks a scan of files of `sizes` bytes gets, by Spark's packing: each file is
/// cut into chunks of the split size; chunks, largest first, fill a task while it stays
/// within the split size, each chunk costing `openCostInBytes` on top of its length.
/// DataFusion's byte-range split then evens the tasks out.
pub fn split_count(settings: &StagePlanning, sizes: &[u64]) -> usize {
    let total: u64 = sizes.iter().sum();
    let split = split_size(settings, total, sizes.len() as u64);
    let mut chunks: Vec<u64> = sizes
        .iter()
        .flat_map(|&size| {
            let full = size / split;
            let rest = size % split;
            std::iter::repeat_n(split, full as usize).chain((rest > 0 || size == 0).then_some(rest))
        })
        .collect();
    chunks.sort_unstable_by(|a, b| b.cmp(a));
    let (mut tasks, mut current, mut open) = (0, 0, false);
    for chunk in chunks {
        if open && current + chunk > split {
            tasks += 1;
            current = 0;
        }
        current += chunk + settings.open_cost_in_bytes;
        open = true;
    }
    (tasks + usize::from(open)).max(1)
}

/// Re-splits every file scan in `plan` into Spark's number of splits.
pub fn split_scans(
    plan: Arc<dyn ExecutionPlan>,
    settings: &StagePlanning,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        let sizes: Vec<u64> = files
            .file_groups
            .iter()
            .flat_map(|group| group.iter())
            .map(|file| file.effective_size())
            .collect();
        let splits = split_count(settings, &sizes);
        if splits < files.file_groups.len() && files.output_ordering.is_empty() {
            // More groups than Spark would make tasks (DataFusion groups files by its own
            // partition count): whole files packed into `splits` tasks instead.
            return Ok(Transformed::yes(pack_files(files, splits)));
        }
        if splits <= files.file_groups.len() {
            // As parallel as Spark would be; whole files read as DataFusion reads them.
            return Ok(Transformed::no(node));
        }
        let mut options = ConfigOptions::default();
        options.optimizer.repartition_file_min_size = 0;
        match scan.repartitioned(splits, &options)? {
            Some(resplit) => Ok(Transformed::yes(resplit)),
            None => Ok(Transformed::no(node)),
        }
    })
    .map(|t| t.data)
}

/// The scan with its files in `groups` groups: largest file first into the group with the
/// fewest bytes.
fn pack_files(files: &FileScanConfig, groups: usize) -> Arc<dyn ExecutionPlan> {
    let mut all: Vec<PartitionedFile> = files
        .file_groups
        .iter()
        .flat_map(|group| group.iter().cloned())
        .collect();
    all.sort_by_key(|file| std::cmp::Reverse(file.effective_size()));
    let mut packed: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups.max(1)];
    for file in all {
        let lightest = packed
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.effective_size();
        lightest.1.push(file);
    }
    let mut config = files.clone();
    config.file_groups = packed
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect();
    DataSourceExec::from_data_source(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn settings(slots: usize) -> StagePlanning {
        StagePlanning {
            slots,
            shuffle_partitions: 200,
            max_partition_bytes: 128 * MB,
            open_cost_in_bytes: 4 * MB,
            broadcast_threshold: Some(10 * MB),
        }
    }

    #[test]
    fn split_size_follows_spark() {
        // Large data: capped at maxPartitionBytes.
        assert_eq!(split_size(&settings(8), 10_000 * MB, 10), 128 * MB);
        // Medium data: spread over the slots.
        assert_eq!(split_size(&settings(8), 796 * MB, 1), 100 * MB);
        // Tiny data: never below openCostInBytes.
        assert_eq!(split_size(&settings(8), MB, 1), 4 * MB);
    }

    #[test]
    fn small_files_are_not_cut_and_large_ones_fill_the_slots() {
        assert_eq!(split_count(&settings(8), &[8]), 1);
        // Each 1 MiB file plus its open cost exceeds the 4 MiB split: one task per file.
        assert_eq!(split_count(&settings(8), &[MB; 3]), 3);
        assert_eq!(split_count(&settings(8), &[MB / 4; 12]), 6);
        assert_eq!(split_count(&settings(8), &[800 * MB]), 8);
        assert_eq!(split_count(&settings(2), &[1000 * MB]), 8);
    }
}

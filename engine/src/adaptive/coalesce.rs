//! Coalescing shuffle partitions: Spark's `ShufflePartitionsUtil.coalescePartitions`.
//!
//! All shuffles read by one stage are coalesced together, so both sides of a join keep the
//! same grouping of reduce partitions:
//!
//! ```text
//!   bytes per reduce partition   shuffle A: 100  20 100  10  30   (MiB)
//!                                shuffle B:  10  10  70   5   5
//!   summed                                  110  30 170  15  35   target 128
//!   groups                                  {0} {1} {2}  {3, 4}
//! ```

use std::ops::Range;

/// Spark's `SMALL_PARTITION_FACTOR`: a group below this share of the target merges into its
/// smaller neighbour.
pub(crate) const SMALL_PARTITION_FACTOR: f64 = 0.2;

/// The size a coalesced partition aims for:
/// `max(min(ceil(total / min_partitions), advisory), min_partition_size)`.
pub fn target_size(
    total: u64,
    min_partitions: usize,
    advisory: u64,
    min_partition_size: u64,
) -> u64 {
    let max_target = total.div_ceil(min_partitions.max(1) as u64);
    max_target.min(advisory).max(min_partition_size)
}

/// Groups reduce partitions `0..n` of the shuffles whose per-partition sizes are `sizes`
/// (one vector per shuffle, all of length n): greedy left to right, a group closes when
/// adding the next partition would exceed `target`; groups of no bytes are skipped (at least
/// one group is kept); a group smaller than a fifth of the target merges into its smaller
/// neighbour. Returns the groups with their sizes.
pub fn coalesce(sizes: &[Vec<u64>], target: u64) -> Vec<(Range<usize>, u64)> {
    let partitions = sizes.first().map_or(0, Vec::len);
    if sizes.iter().any(|s| s.len() != partitions) || partitions == 0 {
        return Vec::new();
    }
    let total_at = |i: usize| sizes.iter().map(|s| s[i]).sum::<u64>();
    let mut groups: Vec<(Range<usize>, u64)> = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for i in 0..partitions {
        let current = total_at(i);
        if i > start && size + current > target {
            if size > 0 {
                groups.push((start..i, size));
            }
            start = i;
            size = current;
        } else {
            size += current;
        }
    }
    if size > 0 || groups.is_empty() {
        groups.push((start..partitions, size));
    }
    merge_small(groups, target)
}

fn merge_small(mut groups: Vec<(Range<usize>, u64)>, target: u64) -> Vec<(Range<usize>, u64)> {
    let small = (target as f64 * SMALL_PARTITION_FACTOR) as u64;
    let mut i = 0;
    while groups.len() > 1 && i < groups.len() {
        if groups[i].1 >= small {
            i += 1;
            continue;
        }
        // Merge into the smaller neighbour; only contiguous groups merge (skipped empty
        // partitions between them belong to neither, so the range simply spans them).
        let left = i.checked_sub(1).map(|l| groups[l].1);
        let right = groups.get(i + 1).map(|r| r.1);
        let into_left = match (left, right) {
            (Some(l), Some(r)) => l <= r,
            (Some(_), None) => true,
            _ => false,
        };
        let (a, b) = if into_left { (i - 1, i) } else { (i, i + 1) };
        let merged = (
            groups[a].0.start..groups[b].0.end,
            groups[a].1 + groups[b].1,
        );
        groups.splice(a..=b, [merged]);
        i = a;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ranges(groups: Vec<(Range<usize>, u64)>) -> Vec<Range<usize>> {
        groups.into_iter().map(|(r, _)| r).collect()
    }

    #[test]
    fn sparks_documented_example() {
        let a = [100, 20, 100, 10, 30].map(|m| m * MIB).to_vec();
        let b = [10, 10, 70, 5, 5].map(|m| m * MIB).to_vec();
        assert_eq!(
            ranges(coalesce(&[a, b], 128 * MIB)),
            vec![0..1, 1..2, 2..3, 3..5]
        );
    }

    #[test]
    fn target_follows_parallelism_first_and_the_floor() {
        // 200 MiB over 8 slots: 25 MiB per partition, below the 64 MiB advisory.
        assert_eq!(target_size(200 * MIB, 8, 64 * MIB, MIB), 25 * MIB);
        // Large data: the advisory size.
        assert_eq!(target_size(10_000 * MIB, 8, 64 * MIB, MIB), 64 * MIB);
        // Tiny data: never below the minimum partition size.
        assert_eq!(target_size(100, 8, 64 * MIB, MIB), MIB);
    }

    #[test]
    fn empty_partitions_are_skipped_and_all_empty_keeps_one() {
        assert_eq!(ranges(coalesce(&[vec![0, 0, 0]], 10)), vec![0..3]);
        assert_eq!(
            ranges(coalesce(&[vec![5, 0, 0, 0, 6]], 10)),
            vec![0..4, 4..5]
        );
    }

    #[test]
    fn a_single_huge_partition_takes_in_its_tiny_neighbours() {
        assert_eq!(ranges(coalesce(&[vec![1, 1000, 1]], 10)), vec![0..3]);
        assert_eq!(
            ranges(coalesce(&[vec![50, 1000, 50]], 100)),
            vec![0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn mismatched_partition_counts_are_not_coalesced() {
        assert!(coalesce(&[vec![1, 2], vec![1, 2, 3]], 10).is_empty());
    }

    #[test]
    fn small_groups_merge_into_the_smaller_neighbour() {
        // Target 100: greedy groups 95 | 10 | 95; the 10 is under a fifth of the target and
        // joins a neighbour (the left one on a tie).
        assert_eq!(ranges(coalesce(&[vec![95, 10, 95]], 100)), vec![0..2, 2..3]);
        assert_eq!(ranges(coalesce(&[vec![95, 10, 60]], 100)), vec![0..1, 1..3]);
    }
}

//! Skew join: Spark's `OptimizeSkewedJoin` and `ShufflePartitionsUtil.createSkewPartitionSpecs`.
//!
//! A reduce partition of a partitioned join is skewed on one side when it is larger than
//! `max(skewedPartitionThresholdInBytes, skewedPartitionFactor × median)` of that side. It is
//! split by ranges of whole map outputs, each range aiming at
//! `max(advisoryPartitionSizeInBytes, mean of the side's non-skewed partitions)`; the other
//! side's partition is read whole once per range:
//!
//! ```text
//!   left partition 3, 4 map outputs   30 | 28 | 31 | 29  MiB   target 64 MiB
//!   split by map ranges               maps 0..2 | maps 2..4
//!   tasks                             (left maps 0..2, right 3) (left maps 2..4, right 3)
//! ```

use std::ops::Range;

use super::coalesce::SMALL_PARTITION_FACTOR;

/// Spark's `MERGED_PARTITION_FACTOR`: two neighbouring ranges whose sum stays under this
/// share of the target are merged.
const MERGED_PARTITION_FACTOR: f64 = 1.2;

/// Median of the partition sizes as Spark computes it (mean of the middle two for an even
/// count), at least 1 so that factors of it mean something.
pub fn median(sizes: &[u64]) -> u64 {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let median = match n {
        0 => 0,
        _ if n.is_multiple_of(2) => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        _ => sorted[n / 2],
    };
    median.max(1)
}

/// What decides skew on one side of a join.
#[derive(Debug, Clone, PartialEq)]
pub struct SideSkew {
    pub median: u64,
    /// A partition larger than this is skewed.
    pub threshold: u64,
    /// The size the ranges of a split partition aim for.
    pub target: u64,
    /// Reduce partitions above the threshold.
    pub skewed: Vec<usize>,
}

impl SideSkew {
    /// Analyses one side's bytes per reduce partition.
    pub fn new(sizes: &[u64], factor: f64, threshold_bytes: u64, advisory: u64) -> Self {
        let median = median(sizes);
        let threshold = threshold_bytes.max((median as f64 * factor) as u64);
        let normal: Vec<u64> = sizes.iter().copied().filter(|&s| s <= threshold).collect();
        let target = match normal.len() {
            0 => advisory,
            n => advisory.max(normal.iter().sum::<u64>() / n as u64),
        };
        let skewed = (0..sizes.len()).filter(|&r| sizes[r] > threshold).collect();
        Self {
            median,
            threshold,
            target,
            skewed,
        }
    }
}

/// Spark's `splitSizeListByTargetSize`: the start indices of ranges of `sizes` that aim at
/// `target`. Greedy left to right; when a range closes, it merges into the previous one if
/// either is under a fifth of the target or both together stay under 1.2 × the target.
pub fn split_sizes(sizes: &[u64], target: u64) -> Vec<usize> {
    let target = target as f64;
    let mut starts = vec![0];
    let mut current = 0u64;
    let mut last: Option<u64> = None;
    let close = |starts: &mut Vec<usize>, current: u64, last: &mut Option<u64>| {
        let merge = last.is_some_and(|last| {
            ((current + last) as f64) < target * MERGED_PARTITION_FACTOR
                || (current as f64) < target * SMALL_PARTITION_FACTOR
                || (last as f64) < target * SMALL_PARTITION_FACTOR
        });
        if merge {
            starts.pop();
            *last = last.map(|l| l + current);
        } else {
            *last = Some(current);
        }
    };
    for (i, &size) in sizes.iter().enumerate() {
        if i > 0 && (current + size) as f64 > target {
            close(&mut starts, current, &mut last);
            starts.push(i);
            current = size;
        } else {
            current += size;
        }
    }
    close(&mut starts, current, &mut last);
    starts
}

/// The ranges of map outputs a skewed reduce partition is read in, given the bytes each map
/// task wrote for it; `None` when it cannot be split (one range).
pub fn split_partition(map_sizes: &[u64], target: u64) -> Option<Vec<Range<usize>>> {
    let starts = split_sizes(map_sizes, target);
    if starts.len() < 2 {
        return None;
    }
    let ends = starts.iter().skip(1).copied().chain([map_sizes.len()]);
    Some(
        starts
            .iter()
            .copied()
            .zip(ends)
            .map(|(s, e)| s..e)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Spark's ShufflePartitionsUtilSuite, "splitSizeListByTargetSize", target 100.
    #[test]
    fn sparks_split_examples() {
        // Small ranges at the beginning and end merge into their neighbours.
        assert_eq!(
            split_sizes(&[15, 90, 15, 15, 15, 90, 15], 100),
            vec![0, 2, 5]
        );
        // Small ranges in the middle.
        assert_eq!(
            split_sizes(&[30, 15, 90, 10, 90, 15, 30], 100),
            vec![0, 2, 4, 5]
        );
        // A range under a fifth of the target merges even into a huge neighbour.
        assert_eq!(split_sizes(&[15, 1000, 15, 1000], 100), vec![0, 3]);
        // Neighbours whose sum stays under 1.2 × the target merge.
        assert_eq!(
            split_sizes(&[35, 75, 90, 20, 35, 25, 35], 100),
            vec![0, 2, 3]
        );
    }

    #[test]
    fn a_skewed_partition_splits_into_map_ranges() {
        let mib = 1u64 << 20;
        let maps = [30, 28, 31, 29].map(|m| m * mib);
        assert_eq!(split_partition(&maps, 64 * mib), Some(vec![0..2, 2..4]));
        // One map output cannot be split, however large.
        assert_eq!(split_partition(&[1000 * mib], 64 * mib), None);
        // Nothing written at all.
        assert_eq!(split_partition(&[0, 0, 0], 64 * mib), None);
        assert_eq!(split_partition(&[], 64 * mib), None);
    }

    #[test]
    fn skew_needs_both_the_factor_and_the_threshold() {
        // Median 10; threshold max(100, 5 × 10) = 100: only the 400 is skewed.
        let side = SideSkew::new(&[10, 10, 400, 10, 60], 5.0, 100, 20);
        assert_eq!((side.median, side.threshold), (10, 100));
        assert_eq!(side.skewed, vec![2]);
        // The split target is the mean of the other partitions (22), above the advisory 20.
        assert_eq!(side.target, 22);
        // Same sizes with a higher byte threshold: nothing is skewed.
        assert!(
            SideSkew::new(&[10, 10, 400, 10, 60], 5.0, 500, 20)
                .skewed
                .is_empty()
        );
    }

    #[test]
    fn edge_cases() {
        // All empty: the median is taken as 1 and nothing is skewed.
        let side = SideSkew::new(&[0, 0, 0, 0], 5.0, 0, 64);
        assert_eq!(side.median, 1);
        assert!(side.skewed.is_empty());
        // A single huge partition among empty ones is skewed; the empty ones are the normal
        // partitions, so the split aims at the advisory size.
        let side = SideSkew::new(&[0, 0, 5000, 0], 5.0, 100, 64);
        assert_eq!(side.skewed, vec![2]);
        assert_eq!(side.target, 64);
        // A single partition is its own median: never skewed by the factor.
        assert!(SideSkew::new(&[5000], 5.0, 100, 64).skewed.is_empty());
        // Even count: the median is the mean of the middle two.
        assert_eq!(median(&[1, 3, 5, 100]), 4);
    }
}

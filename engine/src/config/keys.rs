//! The keys stagesql defines itself: Spark's names where Spark has the concept, `stagesql.*`
//! for our own. Each has a default, a description and a value type that validates input.

use crate::error::{Error, Result};

/// What values a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueType {
    /// A whole number at least `min`.
    Integer { min: i64 },
    /// A number (fractions allowed) at least `min`.
    Number { min: f64 },
    /// A number from 0 to 1.
    Fraction,
    /// A size in bytes: `134217728`, `128m`, `1g`, `64MiB`; `-1` where the key allows "off".
    Bytes { allow_negative_one: bool },
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Any text.
    Text,
    /// A master: `local[N]` or `df://host:port` ([`super::master::Master`]).
    Master,
}

/// A key of ours with its default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct KeyDefinition {
    pub key: &'static str,
    pub default: &'static str,
    pub value_type: ValueType,
    pub description: &'static str,
}

pub const SHUFFLE_PARTITIONS: &str = "spark.sql.shuffle.partitions";
pub const EXECUTOR_INSTANCES: &str = "spark.executor.instances";
pub const EXECUTOR_CORES: &str = "spark.executor.cores";
pub const EXECUTOR_MEMORY: &str = "spark.executor.memory";
pub const MEMORY_FRACTION: &str = "spark.memory.fraction";
pub const MEMORY_STORAGE_FRACTION: &str = "spark.memory.storageFraction";
pub const MAX_PARTITION_BYTES: &str = "spark.sql.files.maxPartitionBytes";
pub const OPEN_COST_IN_BYTES: &str = "spark.sql.files.openCostInBytes";
pub const AUTO_BROADCAST_JOIN_THRESHOLD: &str = "spark.sql.autoBroadcastJoinThreshold";
pub const TASK_MAX_FAILURES: &str = "spark.task.maxFailures";
pub const LOCAL_DIR: &str = "spark.local.dir";
pub const EXECUTION_MODE: &str = "stagesql.execution.mode";
pub const ADAPTIVE_ENABLED: &str = "spark.sql.adaptive.enabled";
pub const COALESCE_ENABLED: &str = "spark.sql.adaptive.coalescePartitions.enabled";
pub const COALESCE_PARALLELISM_FIRST: &str =
    "spark.sql.adaptive.coalescePartitions.parallelismFirst";
pub const COALESCE_MIN_PARTITION_SIZE: &str =
    "spark.sql.adaptive.coalescePartitions.minPartitionSize";
pub const COALESCE_INITIAL_PARTITION_NUM: &str =
    "spark.sql.adaptive.coalescePartitions.initialPartitionNum";
pub const ADVISORY_PARTITION_SIZE: &str = "spark.sql.adaptive.advisoryPartitionSizeInBytes";
pub const ADAPTIVE_BROADCAST_THRESHOLD: &str = "spark.sql.adaptive.autoBroadcastJoinThreshold";
pub const SKEW_JOIN_ENABLED: &str = "spark.sql.adaptive.skewJoin.enabled";
pub const SKEW_JOIN_FACTOR: &str = "spark.sql.adaptive.skewJoin.skewedPartitionFactor";
pub const SKEW_JOIN_THRESHOLD: &str = "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes";
pub const TEST_FAIL_TASKS: &str = "stagesql.test.fail_tasks";
pub const STAGE_MAX_CONSECUTIVE_ATTEMPTS: &str = "spark.stage.maxConsecutiveAttempts";
pub const TEST_FAULT_SEED: &str = "stagesql.test.fault_seed";
pub const TEST_FAULT_PROBABILITY: &str = "stagesql.test.fault_probability";
pub const TEST_LOSE_SHUFFLE_OUTPUT: &str = "stagesql.test.lose_shuffle_output";
pub const SCHEDULER_MODE: &str = "spark.scheduler.mode";
pub const SCHEDULER_POOL: &str = "spark.scheduler.pool";
pub const DRIVER_MEMORY: &str = "spark.driver.memory";
pub const DRIVER_MAX_RESULT_SIZE: &str = "spark.driver.maxResultSize";
pub const WAREHOUSE_DIR: &str = "spark.sql.warehouse.dir";
pub const PARTITION_OVERWRITE_MODE: &str = "spark.sql.sources.partitionOverwriteMode";
pub const CHECKPOINT_DIR: &str = "spark.checkpoint.dir";
pub const TEST_SLOW_WRITE_TASKS: &str = "stagesql.test.slow_write_tasks";
pub const TEST_SLOW_COMMIT_MS: &str = "stagesql.test.slow_commit_ms";
pub const EVENT_LOG_ENABLED: &str = "spark.eventLog.enabled";
pub const EVENT_LOG_DIR: &str = "spark.eventLog.dir";
pub const REPORT_DIR: &str = "stagesql.report.dir";
pub const SPARK_FUNCTIONS: &str = "stagesql.sql.sparkFunctions";
pub const MASTER: &str = "spark.master";
pub const CLUSTER_STALL_TIMEOUT: &str = "stagesql.cluster.stallTimeout";

/// Keys fixed when the session starts, as Spark's core settings are: they describe the
/// executors and the driver, which exist for the whole session. `SET` rejects them; they
/// come from the properties file or the command line.
pub const STATIC_KEYS: &[&str] = &[
    MASTER,
    EXECUTOR_INSTANCES,
    EXECUTOR_CORES,
    EXECUTOR_MEMORY,
    MEMORY_FRACTION,
    MEMORY_STORAGE_FRACTION,
    DRIVER_MEMORY,
    DRIVER_MAX_RESULT_SIZE,
    LOCAL_DIR,
    WAREHOUSE_DIR,
    EVENT_LOG_ENABLED,
    EVENT_LOG_DIR,
    SPARK_FUNCTIONS,
];

/// Whether `key` is fixed when the session starts ([`STATIC_KEYS`]).
pub fn is_static(key: &str) -> bool {
    STATIC_KEYS.contains(&key)
}

/// `0` for `spark.executor.cores` means "all cores of this machine".
pub const ALL_CORES: &str = "0";

pub const DEFINITIONS: &[KeyDefinition] = &[
    KeyDefinition {
        key: MASTER,
        default: "local[*]",
        value_type: ValueType::Master,
        description: "Where jobs run: local[N] (this process, N slots; local[*] all cores, sized by spark.executor.*) or df://host:port, the scheduler of an Apache DataFusion Ballista 55 cluster (docs/cluster.md). `--master` sets it.",
    },
    KeyDefinition {
        key: SHUFFLE_PARTITIONS,
        default: "200",
        value_type: ValueType::Integer { min: 1 },
        description: "Reduce partitions (tasks) of every shuffle: the number of buckets each map task writes.",
    },
    KeyDefinition {
        key: EXECUTOR_INSTANCES,
        default: "1",
        value_type: ValueType::Integer { min: 1 },
        description: "Executors. Slots (tasks that run at once) = executor instances x executor cores.",
    },
    KeyDefinition {
        key: EXECUTOR_CORES,
        default: ALL_CORES,
        value_type: ValueType::Integer { min: 0 },
        description: "Slots per executor; 0 means all cores of this machine. `--master local[N]` sets N.",
    },
    KeyDefinition {
        key: EXECUTOR_MEMORY,
        default: "4g",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "Memory per executor, shared by the tasks running on its cores. As in Spark, 300 MiB of it is reserved (a third of it below 900 MiB), and spark.memory.fraction of the rest is for data: operators (sorts, aggregations, joins spill to spark.local.dir beyond their share) and the block store's shuffle output (spilled beyond its share). The remainder covers what is not accounted: batches in flight, decoding buffers, the allocator.",
    },
    KeyDefinition {
        key: MEMORY_FRACTION,
        default: "0.6",
        value_type: ValueType::Fraction,
        description: "Share of (spark.executor.memory - reserved memory) for execution and storage: the operators of running tasks and the block store. Lower means more spilling and more room for what is not accounted.",
    },
    KeyDefinition {
        key: MEMORY_STORAGE_FRACTION,
        default: "0.5",
        value_type: ValueType::Fraction,
        description: "Share of spark.memory.fraction's memory for the block store (shuffle output kept in memory); the rest is for operators.",
    },
    KeyDefinition {
        key: DRIVER_MEMORY,
        default: "1g",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "Memory of the driver: what it collects (query results, broadcast sides, scalar subquery values) and the merge of a job's result. A result larger than spark.driver.maxResultSize fails before the driver runs out of it.",
    },
    KeyDefinition {
        key: DRIVER_MAX_RESULT_SIZE,
        default: "1g",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "Largest result a query may return to the driver (the in-memory size of its rows); a larger one fails the job with an error naming this key. 0 means no limit, bounded by spark.driver.memory only.",
    },
    KeyDefinition {
        key: MAX_PARTITION_BYTES,
        default: "128m",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "Largest file split a scan task reads.",
    },
    KeyDefinition {
        key: OPEN_COST_IN_BYTES,
        default: "4m",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "Estimated cost of opening a file, in bytes: the smallest split size (Spark's split size is min(maxPartitionBytes, max(openCostInBytes, total bytes / slots))).",
    },
    KeyDefinition {
        key: AUTO_BROADCAST_JOIN_THRESHOLD,
        default: "10m",
        value_type: ValueType::Bytes {
            allow_negative_one: true,
        },
        description: "A join side estimated below this size is broadcast to every task of the other side instead of shuffling both; -1 disables broadcast joins.",
    },
    KeyDefinition {
        key: TASK_MAX_FAILURES,
        default: "4",
        value_type: ValueType::Integer { min: 1 },
        description: "Attempts of a task before its job fails.",
    },
    KeyDefinition {
        key: STAGE_MAX_CONSECUTIVE_ATTEMPTS,
        default: "4",
        value_type: ValueType::Integer { min: 1 },
        description: "Attempts of a stage whose reads failed because a parent's shuffle output was lost (each makes the parent run its lost map tasks again) before the job fails.",
    },
    KeyDefinition {
        key: WAREHOUSE_DIR,
        default: "spark-warehouse",
        value_type: ValueType::Text,
        description: "Directory of the managed tables (CREATE TABLE … USING parquet) and of the catalog that keeps tables and databases across sessions; relative to the directory the session starts in. Created when the first table is.",
    },
    KeyDefinition {
        key: PARTITION_OVERWRITE_MODE,
        default: "static",
        value_type: ValueType::Choice(&["static", "dynamic"]),
        description: "What INSERT OVERWRITE of a partitioned table replaces: static, the partitions its PARTITION clause names (every partition without one); dynamic, only the partitions the query writes rows to.",
    },
    KeyDefinition {
        key: CHECKPOINT_DIR,
        default: "",
        value_type: ValueType::Text,
        description: "Directory CHECKPOINT writes its Parquet files to; empty means _checkpoints under spark.sql.warehouse.dir.",
    },
    KeyDefinition {
        key: TEST_SLOW_WRITE_TASKS,
        default: "",
        value_type: ValueType::Text,
        description: "Testing only: write tasks that wait after writing their files and before reporting them, as `task:milliseconds` pairs separated by commas (e.g. `1:60000`); tasks count from 0 in the write's last stage.",
    },
    KeyDefinition {
        key: TEST_SLOW_COMMIT_MS,
        default: "0",
        value_type: ValueType::Integer { min: 0 },
        description: "Testing only: how long a table write's commit waits between moving its files into the table and recording them in the catalog.",
    },
    KeyDefinition {
        key: EVENT_LOG_ENABLED,
        default: "false",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "Writes every job, stage, task, cache and advisory event of the session to a file under spark.eventLog.dir, one JSON object per line (docs/report.md); `stagesql report` renders it.",
    },
    KeyDefinition {
        key: EVENT_LOG_DIR,
        default: "stagesql-events",
        value_type: ValueType::Text,
        description: "Directory of the event logs (one file per session, `<app id>.jsonl`, with `.inprogress` while the session runs); relative to the working directory.",
    },
    KeyDefinition {
        key: SPARK_FUNCTIONS,
        default: "false",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "Apache Spark's functions, from DataFusion's datafusion-spark crate: Spark's semantics where Spark and DataFusion share a name (e.g. `concat` returning NULL on a NULL argument, `sha2`, `hex`, `date_add`), and Spark-only functions (`crc32`, `bit_count`, `format_string` …). Fixed when the session starts.",
    },
    KeyDefinition {
        key: CLUSTER_STALL_TIMEOUT,
        default: "60",
        value_type: ValueType::Integer { min: 0 },
        description: "Cluster mode: seconds a job may go without any change in its tasks, none of them running, after the cluster lost an executor it ran on, before the statement fails and the job is cancelled; 0 waits for ever. Ballista 55 does not always run a lost executor's work again (docs/cluster.md, Failures).",
    },
    KeyDefinition {
        key: REPORT_DIR,
        default: "stagesql-reports",
        value_type: ValueType::Text,
        description: "Directory where EXPLAIN ANALYZE FORMAT HTML writes its report (`job-<id>.html`); relative to the working directory.",
    },
    KeyDefinition {
        key: LOCAL_DIR,
        default: "",
        value_type: ValueType::Text,
        description: "Directory for spill files of shuffles and operators; empty means the system temporary directory.",
    },
    KeyDefinition {
        key: ADAPTIVE_ENABLED,
        default: "true",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "Adaptive query execution: rules applied to each stage when its parents have finished, on the exact sizes of the shuffles it reads.",
    },
    KeyDefinition {
        key: COALESCE_ENABLED,
        default: "true",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "Merge contiguous small shuffle partitions read by a stage into fewer tasks.",
    },
    KeyDefinition {
        key: COALESCE_PARALLELISM_FIRST,
        default: "true",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "When coalescing, keep at least as many partitions as slots (ignoring the advisory size if needed).",
    },
    KeyDefinition {
        key: COALESCE_MIN_PARTITION_SIZE,
        default: "1m",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "The smallest size a coalesced partition aims for.",
    },
    KeyDefinition {
        key: COALESCE_INITIAL_PARTITION_NUM,
        default: "0",
        value_type: ValueType::Integer { min: 0 },
        description: "Shuffle partitions before coalescing when adaptive execution is on; 0 means spark.sql.shuffle.partitions.",
    },
    KeyDefinition {
        key: ADVISORY_PARTITION_SIZE,
        default: "64m",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "The size adaptive execution aims for when coalescing shuffle partitions.",
    },
    KeyDefinition {
        key: ADAPTIVE_BROADCAST_THRESHOLD,
        default: "",
        value_type: ValueType::Bytes {
            allow_negative_one: true,
        },
        description: "At runtime, a partitioned join whose build side turned out smaller than this becomes a broadcast join; -1 disables; empty means spark.sql.autoBroadcastJoinThreshold.",
    },
    KeyDefinition {
        key: SKEW_JOIN_ENABLED,
        default: "true",
        value_type: ValueType::Choice(&["true", "false"]),
        description: "Split skewed partitions of a partitioned join into several tasks, each reading a range of the skewed side's map outputs and the other side's partition whole.",
    },
    KeyDefinition {
        key: SKEW_JOIN_FACTOR,
        default: "5.0",
        value_type: ValueType::Number { min: 0.0 },
        description: "A join partition is skewed when larger than this many times the median partition of its side (and than skewedPartitionThresholdInBytes).",
    },
    KeyDefinition {
        key: SKEW_JOIN_THRESHOLD,
        default: "256m",
        value_type: ValueType::Bytes {
            allow_negative_one: false,
        },
        description: "A join partition is skewed when larger than this (and than skewedPartitionFactor times the median).",
    },
    KeyDefinition {
        key: SCHEDULER_MODE,
        default: "fifo",
        value_type: ValueType::Choice(&["fifo", "fair"]),
        description: "How tasks of jobs running at once share the slots: fifo gives them to the earliest job first; fair to the scheduler pool with the fewest running tasks (FIFO within a pool).",
    },
    KeyDefinition {
        key: SCHEDULER_POOL,
        default: "default",
        value_type: ValueType::Text,
        description: "The scheduler pool of this session's (or file's) jobs under spark.scheduler.mode = fair.",
    },
    KeyDefinition {
        key: EXECUTION_MODE,
        default: "stages",
        value_type: ValueType::Choice(&["stages", "pipelined"]),
        description: "stages: jobs, stages cut at exchanges, tasks on slots, materialized shuffles (Spark's model). pipelined: DataFusion's streaming execution of the same physical plan.",
    },
    KeyDefinition {
        key: TEST_FAIL_TASKS,
        default: "",
        value_type: ValueType::Text,
        description: "Testing only: task attempts that fail on purpose, as `stage.task.attempt` triples separated by commas (e.g. `1.0.1,2.3.1`); stage ids count per session from 1, tasks from 0, attempts from 1.",
    },
    KeyDefinition {
        key: TEST_FAULT_SEED,
        default: "",
        value_type: ValueType::Text,
        description: "Testing only: a whole number that turns on random task failures. Each task attempt but the last allowed one (spark.task.maxFailures) fails after its work is done with probability stagesql.test.fault_probability, decided by the seed, stage, task and attempt, so a run repeats exactly. Empty: off.",
    },
    KeyDefinition {
        key: TEST_FAULT_PROBABILITY,
        default: "0.1",
        value_type: ValueType::Fraction,
        description: "Testing only: probability (0 to 1) that a task attempt fails when stagesql.test.fault_seed is set.",
    },
    KeyDefinition {
        key: TEST_LOSE_SHUFFLE_OUTPUT,
        default: "",
        value_type: ValueType::Text,
        description: "Testing only: map outputs lost before the stages reading them start, as `stage.map` or `stage.map.attempt` (the stage attempt that wrote it, 1 if left out) separated by commas. In memory the output is dropped, on disk its spill file deleted; readers fail to fetch it and the map stage runs the lost tasks again.",
    },
];

/// The definition of one of our keys.
pub fn definition(key: &str) -> Option<&'static KeyDefinition> {
    DEFINITIONS.iter().find(|d| d.key == key)
}

/// Checks `value` against the key's type; returns the value in its canonical form.
pub fn validate(definition: &KeyDefinition, value: &str) -> Result<String> {
    // A key's default is valid, also where it means "not set" (empty).
    if value.trim() == definition.default {
        return Ok(definition.default.to_string());
    }
    let invalid = |expected: &str| {
        Error::Config(format!(
            "invalid value '{value}' for '{}': expected {expected}",
            definition.key
        ))
    };
    match definition.value_type {
        ValueType::Integer { min } => match value.trim().parse::<i64>() {
            Ok(n) if n >= min => Ok(n.to_string()),
            _ => Err(invalid(&format!("a whole number of at least {min}"))),
        },
        ValueType::Number { min } => match value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= min => Ok(value.trim().to_string()),
            _ => Err(invalid(&format!("a number of at least {min}"))),
        },
        ValueType::Fraction => match value.trim().parse::<f64>() {
            Ok(n) if (0.0..=1.0).contains(&n) => Ok(value.trim().to_string()),
            _ => Err(invalid("a number from 0 to 1")),
        },
        ValueType::Bytes { allow_negative_one } => {
            if allow_negative_one && value.trim() == "-1" {
                return Ok("-1".into());
            }
            parse_bytes(value)
                .map(|_| value.trim().to_string())
                .ok_or_else(|| invalid("a size such as 1048576, 512k, 64m or 2g"))
        }
        ValueType::Choice(choices) => {
            let lower = value.trim().to_ascii_lowercase();
            match choices.contains(&lower.as_str()) {
                true => Ok(lower),
                false => Err(invalid(&format!("one of {}", choices.join(", ")))),
            }
        }
        ValueType::Text => Ok(value.to_string()),
        ValueType::Master => super::master::Master::parse(value)
            .map(|master| master.to_string())
            .map_err(|e| Error::Config(format!("invalid value for '{}': {e}", definition.key))),
    }
}

/// Parses a size the way Spark does: a number with an optional unit (`b`, `k`/`kb`/`kib`,
/// `m`, `g`, `t`), units in powers of 1024.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_spark() {
        assert_eq!(parse_bytes("128m"), Some(128 << 20));
        assert_eq!(parse_bytes("4g"), Some(4 << 30));
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("12 kb"), Some(12 << 10));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-5"), None);
    }

    #[test]
    fn values_are_checked_against_their_type() {
        let partitions = definition(SHUFFLE_PARTITIONS).unwrap();
        assert_eq!(validate(partitions, " 8 ").unwrap(), "8");
        assert!(
            validate(partitions, "0")
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
        let threshold = definition(AUTO_BROADCAST_JOIN_THRESHOLD).unwrap();
        assert_eq!(validate(threshold, "-1").unwrap(), "-1");
        assert!(validate(definition(EXECUTOR_MEMORY).unwrap(), "-1").is_err());
        assert_eq!(
            validate(definition(EXECUTION_MODE).unwrap(), "Pipelined").unwrap(),
            "pipelined"
        );
        assert!(validate(definition(EXECUTION_MODE).unwrap(), "fast").is_err());
    }
}

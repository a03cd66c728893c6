//! Writing a warehouse table: tasks write Parquet files into a staging directory, one
//! directory per task attempt; the driver commits once every task has succeeded.
//!
//! ```text
//!  task 3, attempt 1 ──▶ <table>/.stagesql-staging-<write>/attempt-p3-…/day=1/part-00003-<write>.c000.snappy.parquet
//!  task 3, attempt 2 ──▶ <table>/.stagesql-staging-<write>/attempt-p3-…/day=1/…   (a retry: its own directory)
//!                                │
//!  driver, after the job ────────┴─ renames the files of the attempts whose output the job
//!                                   kept into <table>/day=1/, links the table's next catalog
//!                                   version (the commit), deletes the files it replaced
//! ```
//!
//! A failed attempt's directory is never read: the driver learns which files to commit from
//! the rows the job returned, and the job returns the rows of exactly one attempt per task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, RecordBatch, StringArray, StringBuilder, UInt32Array, UInt64Array,
    UInt64Builder,
};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use super::layout::parse_partition_dir;
use super::recovery::{WriteInProgress, remove_files};
use super::{DataFile, Partition, TableMeta, Warehouse, now_ms, partition_dir};
use crate::error::Error;

/// How a write changes its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `INSERT INTO`: the files are added.
    Append,
    /// `INSERT OVERWRITE` with `spark.sql.sources.partitionOverwriteMode=STATIC`: the
    /// partitions the PARTITION clause names (every partition without one) are replaced.
    OverwriteStatic,
    /// `INSERT OVERWRITE` with `…=DYNAMIC`: only the partitions the query writes are replaced.
    OverwriteDynamic,
    /// `CREATE TABLE … AS SELECT`: the table appears with its rows, or not at all.
    Create,
}

impl WriteMode {
    /// The statement kind the catalog records for the commit.
    pub fn operation(self) -> &'static str {
        match self {
            WriteMode::Append => "INSERT INTO",
            WriteMode::OverwriteStatic | WriteMode::OverwriteDynamic => "INSERT OVERWRITE",
            WriteMode::Create => "CREATE TABLE AS SELECT",
        }
    }
}

/// The PARTITION clause of an INSERT: each partition column with its value when static
/// (`PARTITION (day='2024-01-01')`), `None` when dynamic (`PARTITION (day)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionSpec(pub Vec<(String, Option<String>)>);

impl PartitionSpec {
    /// The static value given for `column`.
    pub fn static_value(&self, column: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(column))
            .and_then(|(_, v)| v.as_deref())
    }

    /// The static value given for `column` as a partition value: `Some(None)` for NULL
    /// (`c = NULL`, or `__HIVE_DEFAULT_PARTITION__` as Spark writes it).
    pub fn static_partition_value(&self, column: &str) -> Option<Option<&str>> {
        self.static_value(column)
            .map(|value| Some(value).filter(|v| *v != super::NULL_PARTITION))
    }

    /// Whether the partition with `values` of `columns` is one the static values name.
    pub fn matches(&self, columns: &[String], values: &[Option<String>]) -> bool {
        columns.iter().zip(values).all(|(column, value)| {
            self.static_partition_value(column)
                .is_none_or(|wanted| value.as_deref() == wanted)
        })
    }
}

/// What the tasks of a write need to know.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The write's staging directory; each task attempt writes under its own subdirectory.
    pub staging: PathBuf,
    /// A name shared by the write's files (unique per write).
    pub write_id: String,
    /// How many of the input's last columns are partition columns.
    pub partition_columns: Vec<String>,
    /// The files' compression (the table's `compression` option; Snappy, Spark's default).
    pub compression: Compression,
    /// Testing only (`stagesql.test.slow_write_tasks`): tasks that wait this long after
    /// writing their files, before they report them.
    pub slow_tasks: Vec<(usize, Duration)>,
}

/// The operator at the top of a write's last stage: each task writes its partition of the
/// input as Parquet files and returns one row per file ([`WriteFilesExec::output_schema`]).
#[derive(Debug)]
pub struct WriteFilesExec {
    input: Arc<dyn ExecutionPlan>,
    options: WriteOptions,
    properties: Arc<PlanProperties>,
}

impl WriteFilesExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, options: WriteOptions) -> Self {
        let schema = Self::output_schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            options,
            properties: Arc::new(properties),
        }
    }

    /// One row per written file: the attempt directory, the file's path under it, the
    /// partition directory (`c=v/d=w`, empty when unpartitioned), rows and bytes.
    pub fn output_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("attempt", DataType::Utf8, false),
            Field::new("file", DataType::Utf8, false),
            Field::new("partition", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
        ]))
    }
}

impl DisplayAs for WriteFilesExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WriteFilesExec: staging={}",
            self.options.staging.display()
        )?;
        if !self.options.partition_columns.is_empty() {
            write!(
                f,
                ", partitioned by ({})",
                self.options.partition_columns.join(", ")
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for WriteFilesExec {
    fn name(&self) -> &str {
        "WriteFilesExec"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children[0].clone(),
            self.options.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let attempt = format!(
            "attempt-p{partition}-{}-{}",
            context
                .task_id()
                .unwrap_or_default()
                .replace(['/', '\\'], "_"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let options = self.options.clone();
        let schema = Self::output_schema();
        let output = futures::stream::once(async move {
            let delay = options
                .slow_tasks
                .iter()
                .find(|(task, _)| *task == partition)
                .map(|(_, delay)| *delay);
            let mut writer = PartitionWriters::new(&options, &attempt, partition);
            let mut input = input;
            while let Some(batch) = input.next().await {
                writer.write(&batch?)?;
            }
            let written = writer.finish()?;
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            written_batch(&attempt, written)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, output)))
    }
}

/// The open files of one task attempt, one per partition directory, at most
/// [`MAX_OPEN_FILES`] at a time (each buffers a row group): opening one more closes them
/// all, and later rows of a partition go to its next file (`c001`, …), as Spark's writer
/// does past `spark.sql.maxConcurrentOutputFileWriters`.
struct PartitionWriters<'a> {
    options: &'a WriteOptions,
    dir: PathBuf,
    /// `part-00003-<write id>`: the start of every file name of the task.
    prefix: String,
    open: BTreeMap<String, (ArrowWriter<std::fs::File>, String, u64)>,
    /// Files of each partition directory opened so far.
    opened: HashMap<String, usize>,
    /// (partition directory, path under the attempt, rows, bytes) of the closed files.
    closed: Vec<(String, String, u64, u64)>,
}

const MAX_OPEN_FILES: usize = 32;

/// The codec's part of a file name, as Spark names its files (`….c000.snappy.parquet`).
fn codec_suffix(compression: Compression) -> &'static str {
    match compression {
        Compression::UNCOMPRESSED => "",
        Compression::SNAPPY => ".snappy",
        Compression::GZIP(_) => ".gz",
        Compression::LZ4 | Compression::LZ4_RAW => ".lz4",
        Compression::ZSTD(_) => ".zstd",
        Compression::BROTLI(_) => ".br",
        Compression::LZO => ".lzo",
    }
}

/// A table's `compression` option (or `parquet.compression` property) as a codec, with
/// Spark's names: none, uncompressed, snappy, gzip, lz4, lz4_raw, zstd, brotli.
pub(crate) fn parse_compression(name: &str) -> crate::Result<Compression> {
    use datafusion::parquet::basic::{BrotliLevel, GzipLevel, ZstdLevel};
    Ok(match name.to_ascii_lowercase().as_str() {
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        "snappy" => Compression::SNAPPY,
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "lz4" => Compression::LZ4,
        "lz4_raw" => Compression::LZ4_RAW,
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "brotli" => Compression::BROTLI(BrotliLevel::default()),
        other => {
            return Err(Error::Table(format!(
                "[CODEC_NOT_AVAILABLE] The Parquet compression '{other}' is not available; one of none, uncompressed, snappy, gzip, lz4, lz4_raw, zstd, brotli"
            )));
        }
    })
}

impl<'a> PartitionWriters<'a> {
    fn new(options: &'a WriteOptions, attempt: &str, partition: usize) -> Self {
        Self {
            options,
            dir: options.staging.join(attempt),
            prefix: format!("part-{partition:05}-{}", options.write_id),
            open: BTreeMap::new(),
            opened: HashMap::new(),
            closed: Vec::new(),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.options.partition_columns.len();
        let data_columns = batch.num_columns() - keys;
        if keys == 0 {
            return self.write_to(String::new(), batch.clone());
        }
        // The partition directory of each row, from its partition columns' text.
        let texts: Vec<ArrayRef> = (data_columns..batch.num_columns())
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        // Spark writes a timestamp as `2024-01-01 10:00:00`, not with ISO's `T`.
        let timestamps: Vec<bool> = (data_columns..batch.num_columns())
            .map(|i| matches!(batch.column(i).data_type(), DataType::Timestamp(..)))
            .collect();
        let texts: Vec<&StringArray> = texts
            .iter()
            .map(|a| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
            })
            .collect();
        let mut rows_of: HashMap<String, Vec<u32>> = HashMap::new();
        for row in 0..batch.num_rows() {
            let values: Vec<Option<String>> = texts
                .iter()
                .zip(&timestamps)
                .map(|(t, &timestamp)| {
                    t.is_valid(row).then(|| match timestamp {
                        true => t.value(row).replacen('T', " ", 1),
                        false => t.value(row).to_string(),
                    })
                })
                .collect();
            let dir = partition_dir(&self.options.partition_columns, &values);
            rows_of.entry(dir).or_default().push(row as u32);
        }
        let data = batch.project(&(0..data_columns).collect::<Vec<_>>())?;
        for (dir, rows) in rows_of {
            let part = take_record_batch(&data, &UInt32Array::from(rows))?;
            self.write_to(dir, part)?;
        }
        Ok(())
    }

    fn write_to(&mut self, dir: String, batch: RecordBatch) -> Result<()> {
        if !self.open.contains_key(&dir) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.close_all()?;
            }
            let sequence = self.opened.entry(dir.clone()).or_default();
            let name = format!(
                "{}.c{sequence:03}{}.parquet",
                self.prefix,
                codec_suffix(self.options.compression)
            );
            *sequence += 1;
            let relative = match dir.is_empty() {
                true => name,
                false => format!("{dir}/{name}"),
            };
            let path = self.dir.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::File::create(&path)?;
            let properties = WriterProperties::builder()
                .set_compression(self.options.compression)
                .build();
            let writer = ArrowWriter::try_new(file, batch.schema(), Some(properties))?;
            self.open.insert(dir.clone(), (writer, relative, 0));
        }
        let (writer, _, rows) = self.open.get_mut(&dir).expect("opened above");
        *rows += batch.num_rows() as u64;
        writer.write(&batch)?;
        Ok(())
    }

    fn close_all(&mut self) -> Result<()> {
        for (dir, (writer, relative, rows)) in std::mem::take(&mut self.open) {
            writer.close()?;
            let bytes = std::fs::metadata(self.dir.join(&relative))?.len();
            self.closed.push((dir, relative, rows, bytes));
        }
        Ok(())
    }

    /// Closes every file; returns (partition directory, path under the attempt, rows, bytes)
    /// of each file written.
    fn finish(mut self) -> Result<Vec<(String, String, u64, u64)>> {
        self.close_all()?;
        Ok(self.closed)
    }
}

fn written_batch(attempt: &str, written: Vec<(String, String, u64, u64)>) -> Result<RecordBatch> {
    let mut attempts = StringBuilder::new();
    let mut files = StringBuilder::new();
    let mut partitions = StringBuilder::new();
    let mut rows = UInt64Builder::new();
    let mut bytes = UInt64Builder::new();
    for (dir, relative, count, size) in written {
        attempts.append_value(attempt);
        files.append_value(relative);
        partitions.append_value(dir);
        rows.append_value(count);
        bytes.append_value(size);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(attempts.finish()),
        Arc::new(files.finish()),
        Arc::new(partitions.finish()),
        Arc::new(rows.finish()),
        Arc::new(bytes.finish()),
    ];
    Ok(RecordBatch::try_new(
        WriteFilesExec::output_schema(),
        columns,
    )?)
}

/// A file a task attempt wrote, as the job reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub attempt: String,
    pub file: String,
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The files in a write job's result rows.
pub fn written_files(batches: &[RecordBatch]) -> Result<Vec<WrittenFile>> {
    let mut files = Vec::new();
    for batch in batches {
        let text = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("write result column is not text".into()))
        };
        let number = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| {
                    DataFusionError::Internal("write result column is not a count".into())
                })
        };
        let (attempts, names, partitions, rows, bytes) =
            (text(0)?, text(1)?, text(2)?, number(3)?, number(4)?);
        for row in 0..batch.num_rows() {
            files.push(WrittenFile {
                attempt: attempts.value(row).to_string(),
                file: names.value(row).to_string(),
                partition: partitions.value(row).to_string(),
                rows: rows.value(row),
                bytes: bytes.value(row),
            });
        }
    }
    Ok(files)
}

/// Test hook: `stagesql.test.slow_commit_ms` holds the commit between its renames and the
/// catalog record, so a test can kill the process there.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitPause(pub Option<Duration>);

/// Commits a write: moves the files the job reported from staging into the table, records
/// the table's next version (`base` is the version the write started from; for CTAS, the
/// new table with no files at version 0), then deletes what it replaced. Returns the
/// committed version. On any error the table is as it was.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_write(
    warehouse: &Warehouse,
    mut write: WriteInProgress,
    base: &TableMeta,
    files: Vec<WrittenFile>,
    mode: WriteMode,
    spec: &PartitionSpec,
    staging: &Path,
    pause: CommitPause,
) -> crate::Result<TableMeta> {
    let mut meta = base.clone();
    let columns = meta.partition_columns.clone();
    let written_values: HashSet<Vec<Option<String>>> = files
        .iter()
        .map(|f| partition_values(&columns, &f.partition))
        .collect::<crate::Result<_>>()?;
    // The partitions this commit replaces, and the files that go with them.
    let replaces = |partition: &Partition| match mode {
        WriteMode::Append | WriteMode::Create => false,
        WriteMode::OverwriteStatic => spec.matches(&columns, &partition.values),
        WriteMode::OverwriteDynamic => {
            columns.is_empty()
                || (spec.matches(&columns, &partition.values)
                    && written_values.contains(&partition.values))
        }
    };
    let mut replaced_files = Vec::new();
    let mut kept = Vec::new();
    for partition in std::mem::take(&mut meta.partitions) {
        if replaces(&partition) {
            replaced_files.extend(
                partition
                    .files
                    .iter()
                    .map(|f| meta.file_path(&partition, f)),
            );
            if columns.is_empty() || partition.location.is_some() {
                // The unpartitioned table's one partition, or a partition at its own
                // location, stays (without its files).
                kept.push(Partition {
                    files: Vec::new(),
                    ..partition
                });
            }
        } else {
            kept.push(partition);
        }
    }
    meta.partitions = kept;
    if columns.is_empty() && meta.partitions.is_empty() {
        meta.partitions.push(Partition {
            values: Vec::new(),
            location: None,
            files: Vec::new(),
        });
    }
    // Where each written file goes.
    let mut moves = Vec::new();
    for file in &files {
        let values = partition_values(&columns, &file.partition)?;
        let index = match meta.partitions.iter().position(|p| p.values == values) {
            Some(index) => index,
            None => {
                meta.partitions.push(Partition {
                    values,
                    location: None,
                    files: Vec::new(),
                });
                meta.partitions.len() - 1
            }
        };
        let name = Path::new(&file.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.file.clone());
        let partition = &meta.partitions[index];
        let target = meta.partition_path(partition).join(&name);
        moves.push((staging.join(&file.attempt).join(&file.file), target));
        meta.partitions[index].files.push(DataFile {
            path: name,
            size: file.bytes,
            rows: file.rows,
        });
    }
    meta.partitions.sort_by(|a, b| a.values.cmp(&b.values));
    meta.version = base.version + 1;
    meta.last_operation = mode.operation().to_string();
    meta.last_commit_ms = now_ms();
    if mode != WriteMode::Create {
        // Nothing moves into a table that was dropped or replaced while the job ran.
        if let Err(error) = warehouse.check_base(&meta) {
            write.finish();
            return Err(error);
        }
    }
    write.about_to_commit(
        moves.iter().map(|(_, target)| target.clone()).collect(),
        replaced_files.clone(),
    )?;
    let moved = moves.iter().try_for_each(|(from, to)| {
        if let Some(parent) = to.parent() {
            super::create_dir_all(parent)?;
        }
        std::fs::rename(from, to)
            .map_err(|e| Error::io("move a written file into the table", from, e))
    });
    if let Some(delay) = pause.0 {
        std::thread::sleep(delay);
    }
    let committed = moved.and_then(|()| match mode {
        WriteMode::Create => warehouse.create_table(&meta),
        _ => warehouse.commit(&meta),
    });
    if let Err(error) = committed {
        write.roll_back(&meta.location);
        write.finish();
        return Err(error);
    }
    // Readers planned on earlier versions may still read replaced files for a moment;
    // they go once the new version is recorded, as Spark deletes them after its commit.
    remove_files(&replaced_files, &meta.location);
    write.finish();
    Ok(meta)
}

fn partition_values(columns: &[String], dir: &str) -> crate::Result<Vec<Option<String>>> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    parse_partition_dir(columns, dir).ok_or_else(|| {
        Error::Internal(format!(
            "a write reported partition '{dir}' for columns {columns:?}"
        ))
    })
}

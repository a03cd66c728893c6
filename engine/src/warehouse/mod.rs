//! The warehouse: tables that outlive the session, in a directory (`spark.sql.warehouse.dir`)
//! with a catalog beside their data.
//!
//! ```text
//!   spark-warehouse/
//!     sales/                          a managed table of database `default`
//!       day=2024-01-01/part-00000-<write>.c000.parquet
//!     bronze.db/events/…              a managed table of database `bronze`
//!     _stagesql/
//!       catalog/default/sales/v00000003.json   the table as of its 3rd commit
//!       catalog/bronze/_database.json
//!       writes/<write>.json           a write in progress (for recovery)
//!       runs/<script>.json            what a script run completed (for --resume)
//! ```
//!
//! A table's catalog entry lists its partitions and the data files each holds. A write
//! adds the next version of the entry, and that is its commit: readers plan from the latest
//! version and read exactly its files, never a file a write is still producing. Versions are
//! linked into place with `link(2)`, which fails when the version exists, so two writers of
//! one table (two processes, say) cannot both commit on top of the same version.

pub mod chars;
mod layout;
mod recovery;
pub mod resume;
mod scan;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

pub use layout::{escape_path_name, parse_partition_dir, partition_dir, unescape_path_name};
pub(crate) use recovery::{WriteInProgress, remove_empty_dirs};
pub use scan::{ScanOrigin, WarehouseTable};
pub(crate) use write::{CommitPause, commit_write};
pub use write::{
    PartitionSpec, WriteFilesExec, WriteMode, WriteOptions, WrittenFile, written_files,
};

/// Starts a write of `base`'s table, staged in `staging` (see [`recovery`]).
pub(crate) fn begin_write(
    warehouse: &Warehouse,
    base: &TableMeta,
    staging: &Path,
) -> Result<WriteInProgress> {
    WriteInProgress::begin(warehouse, &base.database, &base.name, staging)
}

use crate::error::{Error, Result};

/// Spark's default database, which DataFusion calls `public`.
pub const DEFAULT_DATABASE: &str = "default";
/// The directory beside the tables holding the catalog, writes in progress and script runs.
pub const META_DIR: &str = "_stagesql";
/// The name of a NULL partition value in a directory name, as Hive and Spark write it.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Who owns a table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableKind {
    /// Data under the warehouse, removed with the table.
    Managed,
    /// Data at a LOCATION the user gave, kept when the table is dropped.
    External,
    /// Written by CHECKPOINT under `spark.checkpoint.dir`; removed with the table.
    Checkpoint,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Managed => "MANAGED",
            TableKind::External => "EXTERNAL",
            TableKind::Checkpoint => "CHECKPOINT",
        }
    }

    /// Whether dropping the table removes its data.
    pub fn owns_data(self) -> bool {
        self != TableKind::External
    }
}

/// A column as the catalog keeps it: the Arrow type in Arrow's own notation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    /// A declared `char(n)` or `varchar(n)` (stored as a string; see [`chars`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_type: Option<String>,
}

/// A Parquet file of a table; `path` is relative to its partition's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// A partition: its values (in the order of the partition columns; `None` is NULL), where
/// its directory is when not the Hive-style default, and its files. An unpartitioned table
/// has one partition with no values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub values: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<PathBuf>,
    pub files: Vec<DataFile>,
}

/// One version of a table's catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    pub database: String,
    pub name: String,
    pub kind: TableKind,
    pub provider: String,
    pub location: PathBuf,
    /// Every column in table order; partition columns come last, as in Spark.
    pub columns: Vec<ColumnMeta>,
    pub partition_columns: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub comment: Option<String>,
    /// The identity of this table, given when it is created: a table dropped and created
    /// again under the same name is another table, and a write that began on the first
    /// must not commit on top of the second.
    #[serde(default)]
    pub table_id: String,
    /// 1 when created; each commit adds one.
    pub version: u64,
    pub created_ms: u64,
    /// The statement kind of the last commit (`CREATE TABLE AS SELECT`, `INSERT OVERWRITE`).
    pub last_operation: String,
    pub last_commit_ms: u64,
    pub partitions: Vec<Partition>,
}

impl TableMeta {
    /// `database.name`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    /// The table's columns as an Arrow schema.
    pub fn schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|column| {
                let data_type: DataType = column.data_type.parse().map_err(|e| {
                    Error::Table(format!(
                        "table {}: column {} has type '{}' that does not parse: {e}",
                        self.qualified(),
                        column.name,
                        column.data_type
                    ))
                })?;
                Ok(Field::new(&column.name, data_type, column.nullable))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The columns stored in the files: all but the partition columns.
    pub fn file_schema(&self) -> Result<SchemaRef> {
        let schema = self.schema()?;
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !self.is_partition_column(f.name()))
            .cloned()
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The codec of the table's files: its `compression` option, else its
    /// `parquet.compression` property, else Snappy (Spark's default).
    pub fn compression(&self) -> Result<datafusion::parquet::basic::Compression> {
        let named = self
            .properties
            .get("option.compression")
            .or_else(|| self.properties.get("parquet.compression"));
        match named {
            Some(name) => write::parse_compression(name),
            None => Ok(datafusion::parquet::basic::Compression::SNAPPY),
        }
    }

    pub fn is_partition_column(&self, name: &str) -> bool {
        self.partition_columns.iter().any(|c| c == name)
    }

    pub fn is_partitioned(&self) -> bool {
        !self.partition_columns.is_empty()
    }

    /// The directory of `partition`: its own location, or `c=v/…` under the table's.
    pub fn partition_path(&self, partition: &Partition) -> PathBuf {
        match &partition.location {
            Some(location) => location.clone(),
            None => self
                .location
                .join(partition_dir(&self.partition_columns, &partition.values)),
        }
    }

    /// `c=v/d=w`, as SHOW PARTITIONS prints a partition.
    pub fn partition_name(&self, partition: &Partition) -> String {
        partition_dir(&self.partition_columns, &partition.values)
    }

    pub fn file_path(&self, partition: &Partition, file: &DataFile) -> PathBuf {
        self.partition_path(partition).join(&file.path)
    }

    /// Every data file with its full path.
    pub fn all_files(&self) -> Vec<PathBuf> {
        self.partitions
            .iter()
            .flat_map(|p| p.files.iter().map(move |f| self.file_path(p, f)))
            .collect()
    }

    pub fn rows(&self) -> u64 {
        self.partitions
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.rows)
            .sum()
    }

    pub fn bytes(&self) -> u64 {
        self.partitions
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.size)
            .sum()
    }

    pub fn file_count(&self) -> usize {
        self.partitions.iter().map(|p| p.files.len()).sum()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A warehouse directory and its catalog. Nothing is created on disk until something is
/// written, so a session that only reads leaves no `spark-warehouse` behind.
#[derive(Debug)]
pub struct Warehouse {
    root: PathBuf,
}

impl Warehouse {
    /// The warehouse at `root` (made absolute, so a later `cd` does not move it). Cleans up
    /// what writes of processes that died left behind (see [`Warehouse::recover`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Arc<Self>> {
        let root = std::path::absolute(root.as_ref())
            .map_err(|e| Error::io("resolve the warehouse directory", root.as_ref(), e))?;
        let warehouse = Arc::new(Self { root });
        warehouse.recover()?;
        Ok(warehouse)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn meta_dir(&self) -> PathBuf {
        self.root.join(META_DIR)
    }

    fn catalog_dir(&self) -> PathBuf {
        self.meta_dir().join("catalog")
    }

    fn database_dir(&self, database: &str) -> PathBuf {
        self.catalog_dir().join(database)
    }

    fn table_dir(&self, database: &str, table: &str) -> PathBuf {
        self.database_dir(database).join(table)
    }

    pub fn database_exists(&self, database: &str) -> bool {
        database == DEFAULT_DATABASE || self.database_dir(database).join("_database.json").is_file()
    }

    /// The databases, `default` first.
    pub fn databases(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = list_dir(&self.catalog_dir())?
            .into_iter()
            .filter(|name| name != DEFAULT_DATABASE && self.database_exists(name))
            .collect();
        names.sort();
        names.insert(0, DEFAULT_DATABASE.to_string());
        Ok(names)
    }

    /// Creates a database; `false` when it existed and `if_not_exists` was given.
    pub fn create_database(
        &self,
        database: &str,
        if_not_exists: bool,
        comment: Option<String>,
        location: Option<PathBuf>,
    ) -> Result<bool> {
        if self.database_exists(database) {
            return match if_not_exists {
                true => Ok(false),
                false => Err(Error::Table(format!(
                    "[SCHEMA_ALREADY_EXISTS] Cannot create schema `{database}` because it already exists (use IF NOT EXISTS to skip it)"
                ))),
            };
        }
        let location = match location {
            Some(location) => std::path::absolute(&location)
                .map_err(|e| Error::io("resolve the database location", &location, e))?,
            None => self.root.join(format!("{database}.db")),
        };
        let description = serde_json::json!({
            "name": database,
            "location": location,
            "comment": comment,
            "created_ms": now_ms(),
        });
        let dir = self.database_dir(database);
        create_dir_all(&dir)?;
        write_json_atomically(&dir.join("_database.json"), &description)?;
        Ok(true)
    }

    /// Where the managed tables of `database` go.
    pub fn database_location(&self, database: &str) -> PathBuf {
        if database == DEFAULT_DATABASE {
            return self.root.clone();
        }
        let described = std::fs::read(self.database_dir(database).join("_database.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|value| value["location"].as_str().map(PathBuf::from));
        described.unwrap_or_else(|| self.root.join(format!("{database}.db")))
    }

    /// A database's comment and location, for DESCRIBE DATABASE.
    pub fn database_comment(&self, database: &str) -> Option<String> {
        std::fs::read(self.database_dir(database).join("_database.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|value| value["comment"].as_str().map(str::to_string))
    }

    /// Drops a database: with `cascade` its tables too (returned, already dropped);
    /// without, a database with tables is an error.
    pub fn drop_database(&self, database: &str, cascade: bool) -> Result<Vec<TableMeta>> {
        if database == DEFAULT_DATABASE {
            return Err(Error::Table(
                "[UNSUPPORTED_FEATURE.DROP_DATABASE] Cannot drop the default database".into(),
            ));
        }
        let tables = self.table_names(database)?;
        if !tables.is_empty() && !cascade {
            return Err(Error::Table(format!(
                "[SCHEMA_NOT_EMPTY] Cannot drop schema `{database}` because it contains objects ({}); use DROP DATABASE {database} CASCADE to drop them too",
                tables.join(", ")
            )));
        }
        let mut dropped = Vec::new();
        for table in tables {
            if let Some(meta) = self.drop_table(database, &table)? {
                dropped.push(meta);
            }
        }
        let location = self.database_location(database);
        remove_dir_all(&self.database_dir(database))?;
        // The database's directory goes if nothing but its managed tables was in it.
        let _ = std::fs::remove_dir(&location);
        Ok(dropped)
    }

    /// Names of the tables of `database`, sorted.
    pub fn table_names(&self, database: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = list_dir(&self.database_dir(database))?
            .into_iter()
            .filter(|name| !name.starts_with('_'))
            .filter(|name| self.latest_version(database, name).ok().flatten().is_some())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The latest committed version of a table, or `None` when there is no such table.
    pub fn table(&self, database: &str, table: &str) -> Result<Option<TableMeta>> {
        let Some(version) = self.latest_version(database, table)? else {
            return Ok(None);
        };
        self.table_version(database, table, version).map(Some)
    }

    /// One committed version of a table.
    pub fn table_version(&self, database: &str, table: &str, version: u64) -> Result<TableMeta> {
        let path = self
            .table_dir(database, table)
            .join(version_file_name(version));
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read table metadata", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Table(format!(
                "table metadata '{}' does not parse: {e}",
                path.display()
            ))
        })
    }

    fn latest_version(&self, database: &str, table: &str) -> Result<Option<u64>> {
        Ok(list_dir(&self.table_dir(database, table))?
            .iter()
            .filter_map(|name| name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok())
            .max())
    }

    /// Records `meta` as version 1 of a new table; an error when the table exists.
    pub fn create_table(&self, meta: &TableMeta) -> Result<()> {
        if !self.database_exists(&meta.database) {
            return Err(schema_not_found(&meta.database));
        }
        if self.latest_version(&meta.database, &meta.name)?.is_some() {
            return Err(table_exists(&meta.qualified()));
        }
        self.commit(meta).map_err(|error| match error {
            Error::Table(message) if message.starts_with("[CONCURRENT") => {
                table_exists(&meta.qualified())
            }
            other => other,
        })
    }

    /// Commits `meta` as the table's version `meta.version`: fails, changing nothing, when
    /// that version exists (another writer committed first).
    pub fn commit(&self, meta: &TableMeta) -> Result<()> {
        let dir = self.table_dir(&meta.database, &meta.name);
        match meta.version {
            0 | 1 => create_dir_all(&dir)?,
            // The entry's directory is never made again here: a table dropped while this
            // write ran stays dropped.
            _ => self.check_base(meta)?,
        }
        let target = dir.join(version_file_name(meta.version));
        let staged = dir.join(format!(
            "_v{}-{}.json.tmp",
            meta.version,
            uuid::Uuid::new_v4()
        ));
        let json = serde_json::to_vec_pretty(meta)
            .map_err(|e| Error::Internal(format!("table metadata does not serialize: {e}")))?;
        write_synced(&staged, &json)?;
        let linked = std::fs::hard_link(&staged, &target);
        let _ = std::fs::remove_file(&staged);
        match linked {
            Ok(()) => {
                sync_dir(&dir);
                self.prune_versions(meta);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Table(format!(
                "[CONCURRENT_WRITE] table {} was committed by another writer (version {}) while this statement ran; nothing of this statement was committed, run it again",
                meta.qualified(),
                meta.version
            ))),
            Err(e) => Err(Error::io("commit table metadata", &target, e)),
        }
    }

    /// Checks that the version `meta` was made from is still the table's latest, of the same
    /// table: not dropped, not dropped and created again, not committed to by another writer.
    pub(crate) fn check_base(&self, meta: &TableMeta) -> Result<()> {
        let base = meta.version.saturating_sub(1);
        match self.table(&meta.database, &meta.name)? {
            None => Err(Error::Table(format!(
                "[TABLE_OR_VIEW_NOT_FOUND] table {} was dropped while this statement ran; nothing of this statement was committed",
                meta.qualified()
            ))),
            Some(current) if current.table_id != meta.table_id => Err(Error::Table(format!(
                "[CONCURRENT_WRITE] table {} was dropped and created again while this statement ran; nothing of this statement was committed, run it again",
                meta.qualified()
            ))),
            Some(current) if current.version != base => Err(Error::Table(format!(
                "[CONCURRENT_WRITE] table {} was committed by another writer (version {}) while this statement ran; nothing of this statement was committed, run it again",
                meta.qualified(),
                current.version
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Keeps the last versions of a table's entry (its recent history) and drops older ones.
    fn prune_versions(&self, meta: &TableMeta) {
        const KEPT: u64 = 20;
        if meta.version > KEPT {
            let old = meta.version - KEPT;
            let path = self
                .table_dir(&meta.database, &meta.name)
                .join(version_file_name(old));
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes a table from the catalog and, when the table owns it, its data. The catalog
    /// entry goes first (one rename), so the table is never half there.
    pub fn drop_table(&self, database: &str, table: &str) -> Result<Option<TableMeta>> {
        let Some(meta) = self.table(database, table)? else {
            return Ok(None);
        };
        let trash = self.meta_dir().join("trash");
        create_dir_all(&trash)?;
        let entry = trash.join(uuid::Uuid::new_v4().to_string());
        let dir = self.table_dir(database, table);
        std::fs::rename(&dir, &entry).map_err(|e| Error::io("drop table", &dir, e))?;
        recovery::empty_trash_entry(&entry)?;
        Ok(Some(meta))
    }
}

fn version_file_name(version: u64) -> String {
    format!("v{version:08}.json")
}

pub(crate) fn table_exists(name: &str) -> Error {
    Error::Table(format!(
        "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `{name}` because it already exists (use IF NOT EXISTS to skip it, or DROP TABLE it first)"
    ))
}

pub(crate) fn table_not_found(name: &str) -> Error {
    Error::Table(format!(
        "[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found (SHOW TABLES lists what there is)"
    ))
}

pub(crate) fn schema_not_found(database: &str) -> Error {
    Error::Table(format!(
        "[SCHEMA_NOT_FOUND] The schema `{database}` cannot be found (CREATE DATABASE {database} creates it)"
    ))
}

/// Names in a directory; none when it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("list directory", dir, e)),
    }
}

pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
}

pub(crate) fn remove_dir_all(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove directory", dir, e))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` and flushes them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", path, e))
}

/// Flushes a directory's entries (a rename or link into it) to disk; best effort.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Writes `value` as JSON to `path` by writing a temporary file and renaming it over.
pub(crate) fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("JSON does not serialize: {e}")))?;
    let staged = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4()));
    write_synced(&staged, &json)?;
    std::fs::rename(&staged, path).map_err(|e| Error::io("replace", path, e))
}

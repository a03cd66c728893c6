//! Writes in progress, and cleaning up after the ones whose process died.
//!
//! Before its job starts, a write records itself in `_stagesql/writes/`: which process, which
//! table, its staging directory. Before the commit's first rename it adds the files it is
//! about to put into the table and those the commit replaces. A process that opens the
//! warehouse finds the records of processes that no longer run and finishes their work in
//! the only safe direction: a write whose files the table's latest version lists had
//! committed (its replaced files are deleted); any other is rolled back (its renamed files
//! are deleted). Staging directories go either way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    TableMeta, Warehouse, create_dir_all, list_dir, remove_dir_all, write_json_atomically,
};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WriteRecord {
    pid: u32,
    database: String,
    table: String,
    staging: PathBuf,
    /// Where the commit puts the written files, listed before the first rename.
    #[serde(default)]
    files: Vec<PathBuf>,
    /// Files the commit replaces, deleted once it is recorded.
    #[serde(default)]
    replaced: Vec<PathBuf>,
}

/// A write that has started and not yet finished; see the module documentation.
#[derive(Debug)]
pub(crate) struct WriteInProgress {
    path: PathBuf,
    record: WriteRecord,
    /// Finished (committed or rolled back): nothing left to clean when dropped.
    finished: bool,
}

impl WriteInProgress {
    pub(crate) fn begin(
        warehouse: &Warehouse,
        database: &str,
        table: &str,
        staging: &Path,
    ) -> Result<Self> {
        let dir = warehouse.meta_dir().join("writes");
        create_dir_all(&dir)?;
        let name = staging.file_name().map_or_else(
            || uuid::Uuid::new_v4().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let write = Self {
            path: dir.join(format!("{name}.json")),
            record: WriteRecord {
                pid: std::process::id(),
                database: database.to_string(),
                table: table.to_string(),
                staging: staging.to_path_buf(),
                files: Vec::new(),
                replaced: Vec::new(),
            },
            finished: false,
        };
        write_json_atomically(&write.path, &write.record)?;
        create_dir_all(staging)?;
        Ok(write)
    }

    /// Records what the commit is about to do, before it does any of it.
    pub(crate) fn about_to_commit(
        &mut self,
        files: Vec<PathBuf>,
        replaced: Vec<PathBuf>,
    ) -> Result<()> {
        self.record.files = files;
        self.record.replaced = replaced;
        write_json_atomically(&self.path, &self.record)
    }

    /// Rolls back what the commit renamed (a commit that failed).
    pub(crate) fn roll_back(&self, table_location: &Path) {
        remove_files(&self.record.files, table_location);
    }

    /// The write is over (committed or not): its staging directory and record go.
    pub(crate) fn finish(mut self) {
        let _ = remove_dir_all(&self.record.staging);
        // The table's directory, made for the staging, goes when that left it empty (a
        // CTAS that failed).
        if let Some(location) = self.record.staging.parent() {
            let _ = std::fs::remove_dir(location);
        }
        let _ = std::fs::remove_file(&self.path);
        self.finished = true;
    }
}

impl Drop for WriteInProgress {
    fn drop(&mut self) {
        // A write abandoned before its commit (a failed or cancelled job): its staging goes
        // now, and once more a moment later, after the tasks the job aborted have stopped
        // (one in the middle of a batch may still create a file). If the process ends
        // first, the record stays and the next start cleans up.
        if !self.finished && self.record.files.is_empty() {
            let _ = remove_dir_all(&self.record.staging);
            let (staging, path) = (self.record.staging.clone(), self.path.clone());
            let _ = std::thread::Builder::new()
                .name("stagesql-staging-sweep".into())
                .spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    let _ = remove_dir_all(&staging);
                    if let Some(location) = staging.parent() {
                        let _ = std::fs::remove_dir(location);
                    }
                    let _ = std::fs::remove_file(path);
                });
            if let Some(location) = self.record.staging.parent() {
                let _ = std::fs::remove_dir(location);
            }
        }
    }
}

/// Deletes `files`, then each directory they leave empty up to (not including) `root`.
pub(crate) fn remove_files(files: &[PathBuf], root: &Path) {
    for file in files {
        let _ = std::fs::remove_file(file);
        if let Some(dir) = file.parent() {
            remove_empty_dirs(dir, root);
        }
    }
}

/// Removes `dir` and its parents while they are empty, up to (not including) `root`.
pub(crate) fn remove_empty_dirs(dir: &Path, root: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == root || !dir.starts_with(root) || std::fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}

/// Whether process `pid` still runs.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // A process killed and not yet reaped by its parent is a zombie: it runs no more.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some((_, after_name)) = stat.rsplit_once(')')
    {
        return !matches!(after_name.trim_start().chars().next(), Some('Z' | 'X'));
    }
    // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Warehouse {
    /// The files writes in progress are moving into their tables (listed before the
    /// first rename): a listing of a table's directory must not take them.
    pub(crate) fn files_being_written(&self) -> HashSet<PathBuf> {
        let writes = self.meta_dir().join("writes");
        list_dir(&writes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| std::fs::read(writes.join(name)).ok())
            .filter_map(|bytes| serde_json::from_slice::<WriteRecord>(&bytes).ok())
            .flat_map(|record| record.files)
            .collect()
    }

    /// Finishes the writes and drops of processes that died (see the module documentation).
    pub fn recover(&self) -> Result<()> {
        let writes = self.meta_dir().join("writes");
        for name in list_dir(&writes)? {
            let path = writes.join(&name);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<WriteRecord>(&bytes) else {
                // A record being replaced by its own process (a temporary file).
                continue;
            };
            if alive(record.pid) {
                continue;
            }
            let meta = self.table(&record.database, &record.table)?;
            let referenced: HashSet<PathBuf> = meta
                .as_ref()
                .map(TableMeta::all_files)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let committed = record.files.iter().any(|f| referenced.contains(f));
            let root = meta.as_ref().map_or_else(
                || {
                    record
                        .staging
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default()
                },
                |m| m.location.clone(),
            );
            let stale: Vec<PathBuf> = match committed {
                true => record
                    .replaced
                    .iter()
                    .filter(|f| !referenced.contains(*f))
                    .cloned()
                    .collect(),
                false => record.files.clone(),
            };
            remove_files(&stale, &root);
            remove_dir_all(&record.staging)?;
            std::fs::remove_file(&path).map_err(|e| Error::io("remove write record", &path, e))?;
        }
        let trash = self.meta_dir().join("trash");
        for name in list_dir(&trash)? {
            empty_trash_entry(&trash.join(name))?;
        }
        Ok(())
    }
}

/// Deletes a dropped table's catalog entry and, when the table owned it, its data.
pub(crate) fn empty_trash_entry(entry: &Path) -> Result<()> {
    let latest = list_dir(entry)?
        .into_iter()
        .filter(|n| n.starts_with('v') && n.ends_with(".json"))
        .max();
    if let Some(latest) = latest
        && let Ok(bytes) = std::fs::read(entry.join(latest))
        && let Ok(meta) = serde_json::from_slice::<TableMeta>(&bytes)
        && meta.kind.owns_data()
    {
        remove_dir_all(&meta.location)?;
        for partition in meta.partitions.iter().filter(|p| p.location.is_some()) {
            remove_dir_all(&meta.partition_path(partition))?;
        }
    }
    remove_dir_all(entry)
}

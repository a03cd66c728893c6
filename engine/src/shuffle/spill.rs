//! Spill files: Arrow IPC files holding the batches of several blocks, one after another.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::error::{DataFusionError, Result};

/// One spill file on disk; deleted when the last block referring to it is dropped.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    bytes: u64,
}

impl SpillFile {
    /// Writes `buckets` (batches per reduce partition) into a new IPC file at `path` and
    /// returns the file with the range of batch indexes each bucket occupies.
    pub fn write(
        path: PathBuf,
        schema: &SchemaRef,
        buckets: &[Vec<RecordBatch>],
    ) -> Result<(Arc<Self>, Vec<Range<usize>>)> {
        let file =
            File::create(&path).map_err(|e| io_error("cannot create spill file", &path, e))?;
        let mut writer = FileWriter::try_new(file, schema)?;
        let mut ranges = Vec::with_capacity(buckets.len());
        let mut index = 0;
        for bucket in buckets {
            let start = index;
            for batch in bucket {
                writer.write(batch)?;
                index += 1;
            }
            ranges.push(start..index);
        }
        writer.finish()?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok((Arc::new(Self { path, bytes }), ranges))
    }

    /// Reads the batches with indexes in `range`.
    pub fn read(&self, range: Range<usize>) -> Result<Vec<RecordBatch>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let file = File::open(&self.path)
            .map_err(|e| io_error("cannot open spill file", &self.path, e))?;
        let mut reader = FileReader::try_new(file, None)?;
        reader.set_index(range.start)?;
        reader
            .take(range.len())
            .map(|batch| batch.map_err(DataFusionError::from))
            .collect()
    }

    /// Removes the file from disk; later reads fail.
    pub fn delete(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Size of the file on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("{action} {}: {error}", path.display()))
}

//! Generating the TPC-H tables as Parquet, once per scale factor.
//!
//! Each large table is generated in several parts (tpchgen's `part`/`part_count`), one
//! Parquet file per part, on all cores. Everything is written into a temporary sibling
//! directory which is renamed into place when complete, so an interrupted generation never
//! leaves a half-written data set behind that a later start would trust.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use super::TABLES;
use crate::error::{Error, Result};

/// Rows per Parquet row group: small enough that a table splits into many scan tasks.
const ROW_GROUP_ROWS: usize = 128 * 1024;
const MARKER: &str = "_SUCCESS";

/// Returns the directory holding the TPC-H tables at `scale_factor` under `cache_dir`,
/// generating them first if they are not there yet.
pub fn ensure_data(cache_dir: &Path, scale_factor: f64) -> Result<PathBuf> {
    // Sessions of one process generate one at a time: a second caller waits, then finds the
    // data the first one wrote. Other processes stage into directories of their own.
    static GENERATING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = GENERATING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir.join(format!("sf{scale_factor}"));
    if dir.join(MARKER).exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::io("cannot create directory", cache_dir, e))?;
    let staging = cache_dir.join(format!(".sf{scale_factor}.{}.tmp", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io("cannot remove", &staging, e))?;
    }
    let result = generate_into(&staging, scale_factor).and_then(|()| {
        File::create(staging.join(MARKER))
            .map_err(|e| Error::io("cannot write", staging.join(MARKER), e))?;
        if dir.join(MARKER).exists() {
            // Another process finished first; its data is as good, and may be in use.
            std::fs::remove_dir_all(&staging)
                .map_err(|e| Error::io("cannot remove", &staging, e))?;
            return Ok(());
        }
        if dir.exists() {
            // A previous, incomplete attempt (no marker): replace it.
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("cannot remove", &dir, e))?;
        }
        std::fs::rename(&staging, &dir).map_err(|e| Error::io("cannot move into place", &dir, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    // Another process may have finished the same scale factor first; its data is as good.
    match result {
        Err(_) if dir.join(MARKER).exists() => Ok(dir),
        other => other.map(|()| dir),
    }
}

/// One Parquet file to write: a table and one part of it.
#[derive(Clone, Copy)]
struct Piece {
    table: &'static str,
    part: i32,
    parts: i32,
}

fn generate_into(dir: &Path, scale_factor: f64) -> Result<()> {
    let mut pieces = Vec::new();
    for table in TABLES {
        let parts = parts_for(table, scale_factor);
        let table_dir = dir.join(table);
        std::fs::create_dir_all(&table_dir)
            .map_err(|e| Error::io("cannot create directory", &table_dir, e))?;
        pieces.extend((1..=parts).map(|part| Piece { table, part, parts }));
    }
    // Largest first, so the long pieces do not end up last on one thread.
    pieces.reverse();
    let queue = Mutex::new(pieces);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue.lock().expect("work queue lock poisoned").pop();
                        let Some(piece) = next else { return Ok(()) };
                        write_piece(dir, scale_factor, piece)?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| Error::Tpch("a generator thread panicked".into()))?
        })
    })
}

/// Roughly one part per 100 MB of generated data, at least one.
fn parts_for(table: &str, scale_factor: f64) -> i32 {
    let megabytes_at_sf1 = match table {
        "lineitem" => 750.0,
        "orders" => 170.0,
        "partsupp" => 120.0,
        "part" | "customer" => 25.0,
        _ => 0.0,
    };
    ((megabytes_at_sf1 * scale_factor / 100.0).ceil() as i32).clamp(1, 256)
}

fn write_piece(dir: &Path, sf: f64, piece: Piece) -> Result<()> {
    let Piece { table, part, parts } = piece;
    let path = dir.join(table).join(format!("part-{}.parquet", part - 1));
    let batches: Box<dyn RecordBatchReader + Send> = match table {
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, part, parts))),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, part, parts))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, parts))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, parts))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, part, parts))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, part, parts))),
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, parts))),
        other => unreachable!("not a TPC-H table: {other}"),
    };
    write_parquet(&path, batches)
}

fn write_parquet(path: &Path, batches: Box<dyn RecordBatchReader + Send>) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, batches.schema(), Some(properties))
        .map_err(|e| Error::Tpch(format!("cannot write {}: {e}", path.display())))?;
    for batch in batches {
        let batch =
            batch.map_err(|e| Error::Tpch(format!("generating {}: {e}", path.display())))?;
        writer
            .write(&batch)
            .map_err(|e| Error::Tpch(format!("cannot write {}: {e}", path.display())))?;
    }
    writer
        .close()
        .map_err(|e| Error::Tpch(format!("cannot finish {}: {e}", path.display())))?;
    Ok(())
}

//! Built-in TPC-H data: the embedded default a newcomer runs on.
//!
//! [`ensure_data`] generates the eight TPC-H tables with `tpchgen` at a scale factor and
//! writes them once as Parquet into a cache directory; a later call with the same scale factor
//! finds the finished files and returns at once. [`register`] makes them tables of a session.
//! The 22 queries ship as `.sql` files with the TPC-H validation parameters substituted
//! ([`query`]), and `tpchgen`'s scale factor 1 answers are here to check results against
//! ([`answers`]).
//!
//! ```text
//!   <cache>/sf0.1/_SUCCESS            written last: the set is complete
//!                /lineitem/part-0.parquet … part-N.parquet
//!                /orders/…
//! ```

pub mod answers;
mod generate;

use std::path::{Path, PathBuf};

use datafusion::prelude::ParquetReadOptions;

pub use generate::ensure_data;

use crate::error::{Error, Result};
use datafusion::prelude::SessionContext;

/// The eight TPC-H tables.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// Where the TPC-H data lives when nothing else is said: `$STAGESQL_TPCH_DIR`, else
/// `<user cache dir>/stagesql/tpch`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STAGESQL_TPCH_DIR") {
        return PathBuf::from(dir);
    }
    user_cache_dir().join("tpch")
}

/// `<user cache dir>/stagesql` (`~/.cache/stagesql` on Linux), where downloaded and
/// generated test data is kept between runs.
pub fn user_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("stagesql")
}

/// Checks a scale factor given by a user: a positive, finite number.
pub fn parse_scale_factor(text: &str) -> Result<f64> {
    match text.trim().parse::<f64>() {
        Ok(sf) if sf.is_finite() && sf > 0.0 => Ok(sf),
        _ => Err(Error::Tpch(format!(
            "invalid scale factor '{text}': expected a positive number such as 0.01, 0.1 or 1"
        ))),
    }
}

/// Registers the eight tables found under `dir` (as written by [`ensure_data`]) in `ctx`.
pub async fn register(ctx: &SessionContext, dir: &Path) -> Result<()> {
    for table in TABLES {
        let path = dir.join(table);
        let location = path
            .to_str()
            .ok_or_else(|| Error::Tpch(format!("path is not UTF-8: {}", path.display())))?;
        ctx.register_parquet(table, location, ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}

/// Text of TPC-H query `number` (1–22), with the validation parameters of the TPC-H
/// specification. Q15 is three statements: create view, query, drop view.
pub fn query(number: usize) -> Option<&'static str> {
    QUERIES.get(number.checked_sub(1)?).copied()
}

const QUERIES: [&str; 22] = [
    include_str!("queries/q01.sql"),
    include_str!("queries/q02.sql"),
    include_str!("queries/q03.sql"),
    include_str!("queries/q04.sql"),
    include_str!("queries/q05.sql"),
    include_str!("queries/q06.sql"),
    include_str!("queries/q07.sql"),
    include_str!("queries/q08.sql"),
    include_str!("queries/q09.sql"),
    include_str!("queries/q10.sql"),
    include_str!("queries/q11.sql"),
    include_str!("queries/q12.sql"),
    include_str!("queries/q13.sql"),
    include_str!("queries/q14.sql"),
    include_str!("queries/q15.sql"),
    include_str!("queries/q16.sql"),
    include_str!("queries/q17.sql"),
    include_str!("queries/q18.sql"),
    include_str!("queries/q19.sql"),
    include_str!("queries/q20.sql"),
    include_str!("queries/q21.sql"),
    include_str!("queries/q22.sql"),
];

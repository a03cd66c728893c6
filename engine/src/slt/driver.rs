//! The sqllogictest driver: a [`Session`] behind `sqllogictest::AsyncDB`.

use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

/// Runs each record's SQL in one [`Session`] per file and renders rows the way `.slt` files
/// spell them: `NULL`, `(empty)` for the empty string, floats rounded to 12 decimals.
pub struct Driver {
    session: Session,
}

impl Driver {
    pub fn new(options: SessionOptions) -> Result<Self> {
        Ok(Self {
            session: Session::with_options(options)?,
        })
    }
}

#[async_trait::async_trait]
impl AsyncDB for Driver {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        let results = self.session.sql(sql).await?;
        match results.into_iter().last() {
            Some(StatementResult::Rows { schema, batches }) => Ok(DBOutput::Rows {
                types: schema
                    .fields()
                    .iter()
                    .map(|f| column_type(f.data_type()))
                    .collect(),
                rows: rows(&batches)?,
            }),
            Some(StatementResult::Done(completion)) => {
                Ok(DBOutput::StatementComplete(completion.rows.unwrap_or(0)))
            }
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        super::ENGINE_NAME
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => DefaultColumnType::FloatingPoint,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            columns.push(cells(column, &options)?);
        }
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|cells| cells[row].clone()).collect());
        }
    }
    Ok(rows)
}

fn cells(column: &ArrayRef, options: &FormatOptions) -> Result<Vec<String>> {
    let len = column.len();
    let float = |value: f64| format_float(value);
    let cells = match column.data_type() {
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            (0..len)
                .map(|i| {
                    if values.is_null(i) {
                        "NULL".into()
                    } else {
                        float(values.value(i))
                    }
                })
                .collect()
        }
        DataType::Float32 => {
            let values = column.as_primitive::<Float32Type>();
            (0..len)
                .map(|i| {
                    if values.is_null(i) {
                        "NULL".into()
                    } else {
                        float(values.value(i) as f64)
                    }
                })
                .collect()
        }
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), options)
                .map_err(datafusion::error::DataFusionError::from)?;
            (0..len)
                .map(|i| {
                    let text = formatter.value(i).to_string();
                    if text.is_empty() && column.is_valid(i) {
                        "(empty)".into()
                    } else {
                        text
                    }
                })
                .collect()
        }
    };
    Ok(cells)
}

/// Floats rounded to 12 decimal places with trailing zeros removed, so results do not depend
/// on the last bits of floating-point summation order.
fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let text = format!("{value:.12}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" => "0".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_are_rounded_and_trimmed() {
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(1.5e-3), "0.0015");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}

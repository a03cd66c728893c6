//! The sqllogictest driver: a [`Session`] behind `sqllogictest::AsyncDB`.

use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{AsyncDB, ColumnType, DBOutput};

use super::Compat;
use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

/// Runs each record's SQL in one [`Session`] per file and renders rows the way `.slt` files
/// spell them: `NULL`, `(empty)` for the empty string, floats rounded to 12 decimals. With
/// [`Compat::DataFusion`], as DataFusion's own runner renders them: its column type
/// letters, decimals without trailing zeros, a row count for INSERT and COPY, errors as
/// `DataFusion error: …`.
pub struct Driver {
    session: Session,
    compat: Compat,
    /// Decimal places `Float64` cells are rounded to in [`Compat::DataFusion`]: 12, or 15
    /// in DataFusion's `spark/` suites, as its runner rounds them.
    float64_digits: usize,
}

impl Driver {
    pub fn new(options: SessionOptions, compat: Compat) -> Result<Self> {
        Self::with_float_digits(options, compat, 12)
    }

    /// A driver that renders `Float64` cells with `float64_digits` decimal places in
    /// [`Compat::DataFusion`].
    pub fn with_float_digits(
        options: SessionOptions,
        compat: Compat,
        float64_digits: usize,
    ) -> Result<Self> {
        Ok(Self {
            session: Session::with_options(options)?,
            compat,
            float64_digits,
        })
    }
}

/// A result column's kind, by the letters of `query` records: DataFusion's runner's
/// (`B`oolean, `D`ate/time, `I`nteger, `P` timestamp, `R`eal, `T`ext, `?` other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Boolean,
    DateTime,
    Integer,
    Float,
    Text,
    Timestamp,
    Any,
}

impl ColumnType for Column {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'B' => Self::Boolean,
            'D' => Self::DateTime,
            'I' => Self::Integer,
            'P' => Self::Timestamp,
            'R' => Self::Float,
            'T' => Self::Text,
            _ => Self::Any,
        })
    }

    fn to_char(&self) -> char {
        match self {
            Self::Boolean => 'B',
            Self::DateTime => 'D',
            Self::Integer => 'I',
            Self::Timestamp => 'P',
            Self::Float => 'R',
            Self::Text => 'T',
            Self::Any => '?',
        }
    }
}

#[async_trait::async_trait]
impl AsyncDB for Driver {
    type Error = Error;
    type ColumnType = Column;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Column>> {
        let compat = self.compat;
        let results = match self.session.sql(sql).await {
            Ok(results) => results,
            Err(error) if compat == Compat::DataFusion => {
                return Err(Error::Rendered(datafusion_error_text(&error)));
            }
            Err(error) => return Err(error),
        };
        match results.into_iter().last() {
            Some(StatementResult::Rows { schema, batches }) => Ok(DBOutput::Rows {
                types: schema
                    .fields()
                    .iter()
                    .map(|f| column_type(f.data_type(), compat))
                    .collect(),
                rows: match compat {
                    Compat::Stagesql => rows(&batches)?,
                    Compat::DataFusion => datafusion_rows(&batches, self.float64_digits)?,
                },
            }),
            // DataFusion returns the rows an INSERT or COPY wrote as a `count` row.
            Some(StatementResult::Done(completion))
                if compat == Compat::DataFusion && completion.rows.is_some() =>
            {
                Ok(DBOutput::Rows {
                    types: vec![Column::Integer],
                    rows: vec![vec![completion.rows.unwrap_or(0).to_string()]],
                })
            }
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

/// A column's letter: integers, numbers and text in both modes; DataFusion's runner also
/// tells booleans, dates and times, and timestamps apart (the others are `?`).
fn column_type(data_type: &DataType, compat: Compat) -> Column {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Column::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => Column::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Text,
        _ if compat == Compat::Stagesql => Column::Any,
        DataType::Boolean => Column::Boolean,
        DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_) => {
            Column::DateTime
        }
        DataType::Timestamp(_, _) => Column::Timestamp,
        DataType::Dictionary(key, value)
            if key.is_integer()
                && matches!(
                    value.as_ref(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
        {
            Column::Text
        }
        _ => Column::Any,
    }
}

/// An error as DataFusion's runner prints it, for `statement error <regex>` records of
/// DataFusion's suites: `DataFusion error: <DataFusion's message>`.
/// A job that failed because a task failed every attempt reports the task's error, as
/// DataFusion reports the error of the operator that failed.
fn datafusion_error_text(error: &Error) -> String {
    let text = match error {
        Error::DataFusion(error) => error.strip_backtrace(),
        // As DataFusion prints sqlparser's error: its Debug form, with the place in the text.
        Error::Syntax { message, position } => {
            let message = match position {
                Some(at) => format!("{message} at Line: {}, Column: {}", at.line, at.column),
                None => message.clone(),
            };
            format!("SQL error: ParserError({message:?})")
        }
        other => other.message(),
    };
    let text = match text.split_once("; last error: ") {
        Some((job, task)) if job.starts_with("Execution error: job ") => task.to_string(),
        _ => text,
    };
    // A bad value of one of DataFusion's own keys, as DataFusion words it (stagesql names
    // the value and the key first).
    let text = match text
        .strip_prefix("invalid value '")
        .and_then(|t| t.split_once("': "))
    {
        Some((_, rest)) if rest.starts_with("Error setting config datafusion.") => rest.to_string(),
        _ => text,
    };
    format!("DataFusion error: {text}")
}

/// Rows as DataFusion's runner renders them: as [`rows`], but decimals rounded to their
/// scale without trailing zeros (`1.50` is `1.5`), strings without a trailing newline, a
/// multi-line last cell spread over numbered rows (`01)…`, leading spaces as `-`).
fn datafusion_rows(batches: &[RecordBatch], float64_digits: usize) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for batch in batches {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            columns.push(datafusion_cells(column, float64_digits)?);
        }
        for row in 0..batch.num_rows() {
            let mut cells: Vec<String> = columns.iter().map(|c| c[row].clone()).collect();
            let last = cells.pop().unwrap_or_default();
            let lines: Vec<&str> = last.split('\n').collect();
            if lines.len() < 2 {
                cells.push(last);
                out.push(cells);
                continue;
            }
            out.push(cells);
            for (index, line) in lines.into_iter().enumerate() {
                let content = line.trim_start();
                let indent = "-".repeat(line.len() - content.len());
                out.push(vec![format!("{:02}){indent}{content}", index + 1)]);
            }
        }
    }
    Ok(out)
}

/// One column's cells as DataFusion's runner renders them.
fn datafusion_cells(column: &ArrayRef, float64_digits: usize) -> Result<Vec<String>> {
    let null = |i: usize| column.is_null(i);
    // A float as its shortest decimal form, rounded half to even at `digits` places.
    let float = |i: usize, text: String, digits: usize| match null(i) {
        true => "NULL".to_string(),
        false => round_shortest_float(&text, digits),
    };
    let cells = match column.data_type() {
        DataType::Dictionary(_, values) => {
            let plain = datafusion::arrow::compute::cast(column, values)
                .map_err(datafusion::error::DataFusionError::from)?;
            return datafusion_cells(&plain, float64_digits);
        }
        DataType::Float16 => {
            let values = column.as_primitive::<datafusion::arrow::datatypes::Float16Type>();
            (0..column.len())
                .map(|i| float(i, values.value(i).to_string(), 12))
                .collect()
        }
        DataType::Float32 => {
            let values = column.as_primitive::<Float32Type>();
            (0..column.len())
                .map(|i| float(i, values.value(i).to_string(), 12))
                .collect()
        }
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            (0..column.len())
                .map(|i| float(i, values.value(i).to_string(), float64_digits))
                .collect()
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => cells(column, &FormatOptions::default().with_null("NULL"))?
            .into_iter()
            .map(|cell| match cell.contains('.') {
                true => trim_decimal(&cell),
                false => cell,
            })
            .collect(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            cells(column, &FormatOptions::default().with_null("NULL"))?
                .into_iter()
                .enumerate()
                .map(|(i, cell)| match null(i) {
                    true => cell,
                    false => cell.trim_end_matches('\n').replace('\0', "\\0"),
                })
                .collect()
        }
        // Everything else with DataFusion's display options (durations as `1 days 2 hours
        // …`, not ISO 8601), and no `(empty)`.
        _ => {
            let options = datafusion::config::FormatOptions {
                null: "NULL".to_string(),
                ..Default::default()
            };
            let options: FormatOptions = (&options)
                .try_into()
                .map_err(|e: datafusion::error::DataFusionError| e)?;
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
                .map_err(datafusion::error::DataFusionError::from)?;
            (0..column.len())
                .map(|i| formatter.value(i).to_string())
                .collect()
        }
    };
    Ok(cells)
}

/// `1.500` as `1.5`, `2.00` as `2`, `-0.0` as `0`.
fn trim_decimal(cell: &str) -> String {
    let trimmed = cell.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" | "" => "0".to_string(),
        other => other.to_string(),
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

/// A float's shortest decimal form (`0.1`, `1e-7` as `0.0000001`: Rust's `Display`, as
/// DataFusion's runner reads it into a big decimal) rounded half to even at `digits` decimal
/// places, without trailing zeros; `NaN`, `Infinity`, `-Infinity` as they are.
fn round_shortest_float(text: &str, digits: usize) -> String {
    match text {
        "NaN" | "-NaN" => return "NaN".into(),
        "inf" => return "Infinity".into(),
        "-inf" => return "-Infinity".into(),
        _ => {}
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let kept_frac = frac.len().min(digits);
    let mut number: Vec<u8> = int
        .bytes()
        .chain(frac.bytes().take(kept_frac))
        .map(|b| b - b'0')
        .collect();
    let dropped = frac.get(digits..).unwrap_or("").as_bytes();
    let round_up = match dropped.first() {
        None => false,
        Some(d) if *d != b'5' => *d > b'5',
        Some(_) => {
            dropped[1..].iter().any(|d| *d != b'0') || number.last().is_some_and(|d| d % 2 == 1)
        }
    };
    let mut int_len = int.len();
    if round_up {
        let mut i = number.len();
        loop {
            if i == 0 {
                number.insert(0, 1);
                int_len += 1;
                break;
            }
            i -= 1;
            if number[i] == 9 {
                number[i] = 0;
            } else {
                number[i] += 1;
                break;
            }
        }
    }
    let digit = |d: &u8| char::from(b'0' + d);
    let int_part: String = number[..int_len].iter().map(digit).collect();
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let frac_part: String = number[int_len..].iter().map(digit).collect();
    let frac_part = frac_part.trim_end_matches('0');
    let unsigned = match frac_part {
        "" => int_part.to_string(),
        frac => format!("{int_part}.{frac}"),
    };
    match negative && unsigned != "0" {
        true => format!("-{unsigned}"),
        false => unsigned,
    }
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
    use super::{format_float, trim_decimal};

    #[test]
    fn decimals_lose_trailing_zeros_as_datafusion_renders_them() {
        assert_eq!(trim_decimal("1.50"), "1.5");
        assert_eq!(trim_decimal("2.00"), "2");
        assert_eq!(trim_decimal("-0.00"), "0");
        assert_eq!(trim_decimal("10.10"), "10.1");
    }

    #[test]
    fn floats_round_as_datafusions_runner_rounds_them() {
        use super::round_shortest_float as round;
        assert_eq!(round("0.30000000000000004", 12), "0.3");
        assert_eq!(round("0.30000000000000004", 15), "0.3");
        assert_eq!(round("0.123456789012345678", 15), "0.123456789012346");
        assert_eq!(round("2", 12), "2");
        assert_eq!(round("-0", 12), "0");
        assert_eq!(round("-0.0000000000001", 12), "0");
        assert_eq!(round("0.9999999999999", 12), "1");
        assert_eq!(round("-99.9999999999995", 12), "-100");
        // Half to even.
        assert_eq!(round("0.0000000000025", 12), "0.000000000002");
        assert_eq!(round("0.0000000000035", 12), "0.000000000004");
        assert_eq!(round("0.00000000000250001", 12), "0.000000000003");
        assert_eq!(round("123456789.5", 0), "123456790");
        assert_eq!(round("NaN", 12), "NaN");
        assert_eq!(round("-inf", 12), "-Infinity");
    }

    #[test]
    fn floats_are_rounded_and_trimmed() {
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(1.5e-3), "0.0015");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}

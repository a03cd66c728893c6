//! Printing results: table, CSV, TSV, JSON, NDJSON and Markdown, with footers.
//!
//! Machine formats stream batch by batch as they arrive. The table and Markdown formats keep
//! at most `maxrows` rows for display and count the rest, so a huge result does not fill
//! memory just to be cut off.

use std::io::{self, Write};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use stagesql::{Completion, Error};

use crate::args::Format;

/// How results are printed; changed at the prompt by `\format` and `\timing`.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub format: Format,
    /// 0 = all rows.
    pub maxrows: usize,
    pub quiet: bool,
    pub timing: bool,
}

/// Prints a query's rows as they arrive, then the footer. Errors from the stream (the query
/// failing while it runs) are returned after whatever was printed.
pub async fn print_stream(
    stream: SendableRecordBatchStream,
    options: &OutputOptions,
    started: std::time::Instant,
) -> Result<(), PrintError> {
    let stdout = io::stdout();
    let mut out = PipeWatch {
        inner: stdout.lock(),
        closed: false,
    };
    let written = write_rows(stream, options, &mut out).await;
    let flushed = written.and_then(|rows| out.flush().map(|()| rows).map_err(PrintError::from));
    // Arrow's CSV and JSON writers turn I/O errors into strings; the watch remembers that the
    // reader of a pipe went away so that case stays a quiet stop rather than an error.
    let rows = match flushed {
        Err(_) if out.closed => return Err(PrintError::Io(io::ErrorKind::BrokenPipe.into())),
        other => other?,
    };
    drop(out);
    print_footer(
        &rows_footer(rows.total, rows.shown, started.elapsed(), options),
        options,
    );
    Ok(())
}

async fn write_rows(
    stream: SendableRecordBatchStream,
    options: &OutputOptions,
    out: &mut impl Write,
) -> Result<RowCount, PrintError> {
    let schema = stream.schema();
    Ok(match options.format {
        Format::Table | Format::Markdown => print_limited(stream, &schema, options, out).await?,
        Format::Csv | Format::Tsv => {
            let delimiter = if options.format == Format::Csv {
                b','
            } else {
                b'\t'
            };
            let mut writer = CsvWriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(out);
            drain(stream, |batch| {
                writer.write(batch).map_err(PrintError::from)
            })
            .await?
        }
        Format::Json => {
            let mut writer = ArrayWriter::new(&mut *out);
            let rows = drain(stream, |batch| {
                writer.write(batch).map_err(PrintError::from)
            })
            .await?;
            writer.finish()?;
            out.write_all(b"\n")?;
            rows
        }
        Format::Ndjson => {
            let mut writer = LineDelimitedWriter::new(out);
            let rows = drain(stream, |batch| {
                writer.write(batch).map_err(PrintError::from)
            })
            .await?;
            writer.finish()?;
            rows
        }
    })
}

/// Passes writes through and notes a closed pipe.
struct PipeWatch<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for PipeWatch<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf);
        if let Err(e) = &written {
            self.closed |= e.kind() == io::ErrorKind::BrokenPipe;
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.inner.flush();
        if let Err(e) = &flushed {
            self.closed |= e.kind() == io::ErrorKind::BrokenPipe;
        }
        flushed
    }
}

/// A statement without rows: its tag (`CREATE TABLE`, `INSERT 3`) and time.
pub fn print_completion(
    completion: &Completion,
    started: std::time::Instant,
    options: &OutputOptions,
) {
    let mut text = completion.to_string();
    if options.timing {
        text.push_str(&format!(" ({})", seconds(started.elapsed())));
    }
    print_footer(&text, options);
}

fn print_footer(text: &str, options: &OutputOptions) {
    if options.quiet {
        return;
    }
    if options.format.is_for_people() {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
}

struct RowCount {
    total: usize,
    shown: usize,
}

async fn drain(
    mut stream: SendableRecordBatchStream,
    mut write: impl FnMut(&RecordBatch) -> Result<(), PrintError>,
) -> Result<RowCount, PrintError> {
    let mut total = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| PrintError::Query(e.into()))?;
        total += batch.num_rows();
        write(&batch)?;
    }
    Ok(RowCount {
        total,
        shown: total,
    })
}

async fn print_limited(
    mut stream: SendableRecordBatchStream,
    schema: &SchemaRef,
    options: &OutputOptions,
    out: &mut impl Write,
) -> Result<RowCount, PrintError> {
    let limit = if options.maxrows == 0 {
        usize::MAX
    } else {
        options.maxrows
    };
    let mut kept = Vec::new();
    let (mut total, mut shown) = (0, 0);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| PrintError::Query(e.into()))?;
        total += batch.num_rows();
        let take = batch.num_rows().min(limit - shown);
        if take > 0 {
            kept.push(batch.slice(0, take));
            shown += take;
        }
    }
    let empty = RecordBatch::new_empty(schema.clone());
    let batches = if kept.is_empty() {
        std::slice::from_ref(&empty)
    } else {
        &kept[..]
    };
    let format_options = FormatOptions::default().with_null("NULL");
    match options.format {
        Format::Markdown => write_markdown(batches, &format_options, out)?,
        _ => {
            let table = pretty_format_batches_with_options(batches, &format_options)?;
            writeln!(out, "{table}")?;
        }
    }
    Ok(RowCount { total, shown })
}

fn write_markdown(
    batches: &[RecordBatch],
    options: &FormatOptions,
    out: &mut impl Write,
) -> Result<(), PrintError> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let escape = |text: String| text.replace('|', "\\|").replace('\n', " ");
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| escape(f.name().clone()))
        .collect();
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}|", vec!["---"; header.len()].join("|"))?;
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| escape(f.value(row).to_string()))
                .collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
    }
    Ok(())
}

fn rows_footer(total: usize, shown: usize, elapsed: Duration, options: &OutputOptions) -> String {
    let noun = if total == 1 { "row" } else { "rows" };
    let mut text = format!("{total} {noun}");
    if shown < total {
        text.push_str(&format!(
            " ({} not shown; --maxrows 0 or \\maxrows 0 shows all)",
            total - shown
        ));
    }
    if options.timing {
        text.push_str(&format!(" in {}", seconds(elapsed)));
    }
    text
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.3} s", elapsed.as_secs_f64())
}

/// Why printing a result stopped.
#[derive(Debug)]
pub enum PrintError {
    /// The query failed while its rows were read.
    Query(Error),
    /// Writing failed; a closed pipe (`| head`) is the common, harmless case.
    Io(io::Error),
}

impl From<io::Error> for PrintError {
    fn from(e: io::Error) -> Self {
        PrintError::Io(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for PrintError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        match e {
            datafusion::arrow::error::ArrowError::IoError(_, e) => PrintError::Io(e),
            other => PrintError::Query(Error::DataFusion(other.into())),
        }
    }
}

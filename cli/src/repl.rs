//! The interactive prompt: multi-line input until `;`, history, completion of keywords, table
//! and column names, backslash commands, and a parse check before anything runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper, Highlighter, Hinter};
use stagesql::sql::ends_with_terminator;

use crate::exec::{Executor, Failure, Origin, RunStatus, report_error};
use crate::meta::{HELP, MetaCommand};

const PROMPT: &str = "stagesql> ";

/// Runs the prompt until `\q` or Ctrl-D.
pub fn run(executor: &mut Executor, history_file: Option<PathBuf>) -> rustyline::Result<()> {
    let config = rustyline::Config::builder()
        .max_history_size(10_000)?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
    let helper = ReplHelper::default();
    let names = helper.names.clone();
    editor.set_helper(Some(helper));
    let history_file =
        history_file.or_else(|| dirs::home_dir().map(|home| home.join(".stagesql_history")));
    if let Some(path) = &history_file {
        // A missing history file is normal on the first start.
        let _ = editor.load_history(path);
    }
    refresh_names(executor, &names);
    keep_alive_on_ctrl_c(executor);
    if !executor.output.quiet {
        println!(
            "stagesql {} — statements end with `;`, \\? for help, \\q or Ctrl-D to quit",
            env!("CARGO_PKG_VERSION")
        );
    }
    loop {
        match editor.readline(PROMPT) {
            Ok(input) => {
                let input = input.trim();
                if input.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(input);
                if let Some(path) = &history_file
                    && let Err(e) = editor.append_history(path)
                {
                    eprintln!("warning: cannot write history file {}: {e}", path.display());
                }
                if input.starts_with('\\') {
                    if meta_command(executor, input) == Flow::Quit {
                        break;
                    }
                } else {
                    run_sql(executor, input);
                }
                refresh_names(executor, &names);
            }
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A running statement listens for Ctrl-C only while it runs; until the first one has, the
/// signal's default action would end the process. Installing the handler once, up front,
/// makes a Ctrl-C pressed just after Enter harmless instead of fatal for the session.
fn keep_alive_on_ctrl_c(executor: &Executor) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed = executor
            .runtime
            .block_on(async { signal(SignalKind::interrupt()).map(drop) });
        if let Err(e) = installed {
            eprintln!("warning: cannot listen for Ctrl-C: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = executor;
}

fn run_sql(executor: &mut Executor, input: &str) {
    let origin = Origin {
        name: None,
        text: input,
    };
    // Parse the whole input before running any of it: a typo in the third statement should
    // not leave the first two half-applied.
    if let Err(error) = executor.session.check_syntax(input) {
        report_error(&error, origin, None);
        return;
    }
    if executor.run_text(origin, false) == RunStatus::Interrupted {
        eprintln!("cancelled");
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

fn meta_command(executor: &mut Executor, input: &str) -> Flow {
    let command = match MetaCommand::parse(input) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}");
            return Flow::Continue;
        }
    };
    let printed = match command {
        MetaCommand::Help => {
            println!("{HELP}");
            Ok(())
        }
        MetaCommand::Quit => return Flow::Quit,
        MetaCommand::Describe(None) => list_tables(executor),
        MetaCommand::Describe(Some(name)) => {
            let sql = format!("DESCRIBE {name}");
            executor.run_text(
                Origin {
                    name: None,
                    text: &sql,
                },
                false,
            );
            Ok(())
        }
        MetaCommand::Include(path) => {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let name = path.display().to_string();
                    executor.run_text(
                        Origin {
                            name: Some(&name),
                            text: &text,
                        },
                        false,
                    );
                }
                Err(e) => eprintln!("error: cannot read '{}': {e}", path.display()),
            }
            Ok(())
        }
        MetaCommand::Format(format) => {
            executor.output.format = format;
            Ok(())
        }
        MetaCommand::Timing(on) => {
            executor.output.timing = on;
            println!("timing is {}", if on { "on" } else { "off" });
            Ok(())
        }
        MetaCommand::MaxRows(n) => {
            executor.output.maxrows = n;
            Ok(())
        }
        MetaCommand::Conf(prefix) => show_settings(executor, prefix.as_deref()),
    };
    if let Err(Failure::Error(error)) = printed {
        eprintln!("error: {}", error.message());
    }
    Flow::Continue
}

fn list_tables(executor: &Executor) -> Result<(), Failure> {
    let tables = executor
        .runtime
        .block_on(executor.session.tables())
        .map_err(Failure::Error)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("columns", DataType::UInt64, false),
    ]));
    let names = StringArray::from_iter_values(tables.iter().map(|(name, _)| name.as_str()));
    let columns =
        UInt64Array::from_iter_values(tables.iter().map(|(_, s)| s.fields().len() as u64));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(names), Arc::new(columns)])
        .expect("columns match the schema");
    executor.print_batch(batch)
}

fn show_settings(executor: &Executor, prefix: Option<&str>) -> Result<(), Failure> {
    let rows = executor.session.setting_rows(prefix);
    let column = |values: Vec<&str>| Arc::new(StringArray::from(values)) as _;
    let sources: Vec<String> = rows.iter().map(|r| r.source.to_string()).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            column(rows.iter().map(|r| r.key.as_str()).collect()),
            column(rows.iter().map(|r| r.value.as_str()).collect()),
            column(sources.iter().map(String::as_str).collect()),
        ],
    )
    .expect("columns match the schema");
    executor.print_batch(batch)
}

/// Table and column names for completion, refreshed after every statement.
fn refresh_names(executor: &Executor, names: &Mutex<Vec<String>>) {
    let Ok(tables) = executor.runtime.block_on(executor.session.tables()) else {
        return;
    };
    let mut fresh: Vec<String> = Vec::new();
    for (table, schema) in tables {
        fresh.extend(schema.fields().iter().map(|f| f.name().clone()));
        fresh.push(table);
    }
    fresh.sort();
    fresh.dedup();
    *names.lock().expect("completion names lock poisoned") = fresh;
}

#[derive(Default, Helper, Hinter, Highlighter)]
struct ReplHelper {
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let prefix = &line[start..pos];
        if prefix.is_empty() {
            return Ok((start, Vec::new()));
        }
        let lower = prefix.to_lowercase();
        let lowercase_keywords = prefix.chars().all(|c| !c.is_uppercase());
        let names = self.names.lock().expect("completion names lock poisoned");
        let mut candidates: Vec<Pair> = names
            .iter()
            .filter(|name| name.to_lowercase().starts_with(&lower))
            .map(|name| pair(name.clone()))
            .collect();
        candidates.extend(
            ALL_KEYWORDS
                .iter()
                .filter(|keyword| keyword.to_lowercase().starts_with(&lower))
                .map(|keyword| {
                    pair(match lowercase_keywords {
                        true => keyword.to_lowercase(),
                        false => keyword.to_string(),
                    })
                }),
        );
        Ok((start, candidates))
    }
}

fn pair(text: String) -> Pair {
    Pair {
        display: text.clone(),
        replacement: text,
    }
}

impl Validator for ReplHelper {
    /// Input is complete when it ends with `;` outside strings and comments, or is a
    /// backslash command; otherwise Enter continues on the next line.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        let complete = input.is_empty() || input.starts_with('\\') || ends_with_terminator(input);
        Ok(match complete {
            true => ValidationResult::Valid(None),
            false => ValidationResult::Incomplete,
        })
    }
}

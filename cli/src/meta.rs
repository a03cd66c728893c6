//! Backslash commands at the prompt: `\?`, `\q`, `\d`, `\i`, `\format`, `\timing`, …

use std::path::PathBuf;

use clap::ValueEnum;

use crate::args::Format;

/// A backslash command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    Help,
    Quit,
    /// `\d`: list tables; `\d name`: describe one.
    Describe(Option<String>),
    /// `\i file`: run a SQL file.
    Include(PathBuf),
    Format(Format),
    Timing(bool),
    MaxRows(usize),
    /// `\conf [prefix]`: settings, optionally only those whose key starts with prefix.
    Conf(Option<String>),
}

pub const HELP: &str = "\
Statements end with `;` and may span lines. Ctrl-C cancels a running statement or clears
the line; Ctrl-D exits.

  \\?                 this help
  \\q                 quit
  \\d                 list tables and views
  \\d NAME            columns of table or view NAME
  \\i FILE            run the SQL in FILE
  \\format FORMAT     output format: table, csv, tsv, json, ndjson, markdown
  \\timing on|off     show elapsed time in footers
  \\maxrows N         rows shown per result in table format (0 = all)
  \\conf [PREFIX]     settings (with their source), optionally filtered by key prefix

SQL: SET key = value, SET -v (every setting), RESET key, SHOW TABLES, DESCRIBE t,
CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'path', SELECT * FROM 'file.csv'.";

impl MetaCommand {
    /// Parses a line starting with `\`.
    pub fn parse(line: &str) -> Result<MetaCommand, String> {
        let line = line.trim().trim_end_matches(';').trim();
        let (name, argument) = match line.split_once(char::is_whitespace) {
            Some((name, argument)) => (name, Some(argument.trim()).filter(|a| !a.is_empty())),
            None => (line, None),
        };
        match (name, argument) {
            ("\\?" | "\\h" | "\\help", _) => Ok(MetaCommand::Help),
            ("\\q" | "\\quit", _) => Ok(MetaCommand::Quit),
            ("\\d", name) => Ok(MetaCommand::Describe(name.map(str::to_string))),
            ("\\i", Some(path)) => Ok(MetaCommand::Include(PathBuf::from(path))),
            ("\\i", None) => Err("\\i needs a file name: \\i queries.sql".into()),
            ("\\format", Some(format)) => Format::from_str(format, true)
                .map(MetaCommand::Format)
                .map_err(|_| {
                    format!(
                        "unknown format '{format}': use table, csv, tsv, json, ndjson or markdown"
                    )
                }),
            ("\\format", None) => {
                Err("\\format needs a format: table, csv, tsv, json, ndjson or markdown".into())
            }
            ("\\timing", Some("on")) => Ok(MetaCommand::Timing(true)),
            ("\\timing", Some("off")) => Ok(MetaCommand::Timing(false)),
            ("\\timing", _) => Err("\\timing takes on or off".into()),
            ("\\maxrows", Some(n)) => n
                .parse()
                .map(MetaCommand::MaxRows)
                .map_err(|_| format!("\\maxrows takes a number of rows (0 = all), got '{n}'")),
            ("\\maxrows", None) => Err("\\maxrows takes a number of rows (0 = all)".into()),
            ("\\conf", prefix) => Ok(MetaCommand::Conf(prefix.map(str::to_string))),
            (other, _) => Err(format!("unknown command {other}: \\? lists the commands")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_rejects_bad_arguments() {
        assert_eq!(MetaCommand::parse("\\q"), Ok(MetaCommand::Quit));
        assert_eq!(
            MetaCommand::parse("\\d lineitem"),
            Ok(MetaCommand::Describe(Some("lineitem".into())))
        );
        assert_eq!(
            MetaCommand::parse("\\format CSV"),
            Ok(MetaCommand::Format(Format::Csv))
        );
        assert_eq!(
            MetaCommand::parse("\\timing off"),
            Ok(MetaCommand::Timing(false))
        );
        assert_eq!(
            MetaCommand::parse("\\conf spark"),
            Ok(MetaCommand::Conf(Some("spark".into())))
        );
        assert!(
            MetaCommand::parse("\\format xml")
                .unwrap_err()
                .contains("unknown format 'xml'")
        );
        assert!(
            MetaCommand::parse("\\x")
                .unwrap_err()
                .contains("unknown command \\x")
        );
        assert!(MetaCommand::parse("\\maxrows many").is_err());
    }
}

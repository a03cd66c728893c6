//! Properties files in Spark's format (`spark-defaults.conf`): one setting per line, as
//! `key value` or `key=value`; blank lines and lines starting with `#` are skipped.
//!
//! A session starts from one file, as `spark-submit` does: the one `--properties-file`
//! names, else `stagesql-defaults.conf` in the working directory, else the one in the
//! user's configuration directory (`$STAGESQL_CONF_DIR`, else `~/.config/stagesql` on
//! Linux). Its settings rank above the defaults and below the command line.

use std::path::{Path, PathBuf};

use super::Source;
use crate::error::{Error, Result};

/// The name of the properties file a session looks for.
pub const DEFAULTS_FILE: &str = "stagesql-defaults.conf";

/// The properties file to start from: `explicit` (which must exist), else
/// [`DEFAULTS_FILE`] in the working directory, else in the user's configuration directory.
pub fn find_properties_file(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        return match path.is_file() {
            true => Ok(Some(path.to_path_buf())),
            false => Err(Error::Config(format!(
                "properties file '{}' (--properties-file) does not exist or is not a file",
                path.display()
            ))),
        };
    }
    let user_dir = std::env::var_os("STAGESQL_CONF_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|dir| dir.join("stagesql")));
    Ok([
        Some(PathBuf::from(DEFAULTS_FILE)),
        user_dir.map(|d| d.join(DEFAULTS_FILE)),
    ]
    .into_iter()
    .flatten()
    .find(|path| path.is_file()))
}

/// The settings of the properties file at `path`, each with its [`Source`] (file and line).
pub fn read_properties(path: &Path) -> Result<Vec<(String, String, Source)>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read properties file '{name}': {e}")))?;
    Ok(parse_properties(&name, &text)?
        .into_iter()
        .map(|setting| {
            let source = Source::File {
                path: name.clone(),
                line: setting.line,
            };
            (setting.key, setting.value, source)
        })
        .collect())
}

/// One setting of a properties file, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    pub key: String,
    pub value: String,
    /// From 1.
    pub line: usize,
}

/// Parses `text`, read from `path` (named in errors).
pub fn parse_properties(path: &str, text: &str) -> Result<Vec<FileSetting>> {
    let mut settings = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split = line
            .find(|c: char| c == '=' || c.is_whitespace())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{path}:{}: '{line}' has no value; expected `key value` or `key=value`",
                    index + 1
                ))
            })?;
        let key = line[..split].trim();
        let rest = line[split..].trim_start();
        let value = rest.strip_prefix('=').unwrap_or(rest).trim();
        if key.is_empty() {
            return Err(Error::Config(format!(
                "{path}:{}: a value without a key; expected `key value` or `key=value`",
                index + 1
            )));
        }
        settings.push(FileSetting {
            key: key.to_string(),
            value: value.to_string(),
            line: index + 1,
        });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_of_sparks_forms_and_comments() {
        let text = "# executors\nspark.executor.memory   2g\n\n  spark.sql.shuffle.partitions=8\nspark.local.dir = /tmp/x y\n";
        let settings = parse_properties("defaults.conf", text).unwrap();
        let got: Vec<(&str, &str, usize)> = settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            got,
            [
                ("spark.executor.memory", "2g", 2),
                ("spark.sql.shuffle.partitions", "8", 4),
                ("spark.local.dir", "/tmp/x y", 5),
            ]
        );
    }

    #[test]
    fn a_key_alone_is_an_error_naming_its_line() {
        let err = parse_properties("defaults.conf", "a 1\nspark.executor.memory\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("defaults.conf:2"), "{err}");
        assert!(err.contains("has no value"), "{err}");
    }
}

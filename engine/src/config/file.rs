//! Properties files in Spark's format (`spark-defaults.conf`): one setting per line, as
//! `key value` or `key=value`; blank lines and lines starting with `#` are skipped.

use crate::error::{Error, Result};

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

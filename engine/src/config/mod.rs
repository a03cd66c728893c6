//! Session configuration: every key with its value, default, description and *source*.
//!
//! Values come from several places, lowest precedence first: the built-in default → a
//! properties file ([`file`]: `--properties-file`, else `stagesql-defaults.conf`) → the
//! command line (`--conf k=v`, `--executor-memory` …) → `SET k=v` in the session. When a setting seems ignored the
//! first question is where its value came from, so [`Settings`] remembers that for every key
//! and `SET -v` shows it. `RESET` returns a key to the value it had when the session started.
//!
//! Our own keys ([`keys`]: Spark's names such as `spark.sql.shuffle.partitions`, and
//! `stagesql.*`) are validated by their definitions and stored, like DataFusion's keys
//! (`datafusion.*`), in the session's `ConfigOptions` — ours as configuration extensions
//! ([`options`]), so every key travels with the configuration. Unknown keys are errors,
//! never silently stored.

pub mod file;
pub mod keys;
pub mod master;
pub mod options;

use std::collections::BTreeMap;
use std::fmt;

use datafusion::config::ConfigOptions;

use crate::error::{Error, Result};

/// Where a setting's current value came from, lowest precedence first: the built-in
/// default, a properties file, a command-line flag, `SET` in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// A properties file (`--properties-file`, `stagesql-defaults.conf`) and the line.
    File {
        path: String,
        line: usize,
    },
    /// A command-line flag: `--conf`, `--master`, `--executor-memory` …
    CommandLine {
        flag: String,
    },
    /// `SET` in the session; `at` is `file:line` when the statement came from a file.
    Session {
        at: Option<String>,
    },
}

impl Source {
    /// `--conf key=value`.
    pub fn conf_flag() -> Source {
        Source::CommandLine {
            flag: "--conf".into(),
        }
    }

    /// Whether the value was given when the session started (what `RESET` returns to).
    pub fn is_startup(&self) -> bool {
        matches!(self, Source::File { .. } | Source::CommandLine { .. })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "file {path}:{line}"),
            Source::CommandLine { flag } => f.write_str(flag),
            Source::Session { at: Some(at) } => write!(f, "SET at {at}"),
            Source::Session { at: None } => f.write_str("SET"),
        }
    }
}

/// One row of `SET -v` / `\conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub key: String,
    pub value: String,
    pub default: String,
    pub description: String,
    pub source: Source,
}

/// Which keys were set from where, and the values the session started with. The values
/// themselves live in the session's `ConfigOptions` ([`options`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Settings {
    sources: BTreeMap<String, Source>,
    startup: BTreeMap<String, (String, Source)>,
}

impl Settings {
    pub(crate) fn record(&mut self, key: &str, value: &str, source: Source) {
        if source.is_startup() {
            self.startup
                .insert(key.to_string(), (value.to_string(), source.clone()));
        }
        self.sources.insert(key.to_string(), source);
    }

    /// Where the current value of `key` came from.
    pub(crate) fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// The value `RESET key` restores: the startup value if there was one, else the default.
    pub(crate) fn startup_value(&self, key: &str) -> Option<&str> {
        self.startup.get(key).map(|(value, _)| value.as_str())
    }

    pub(crate) fn forget(&mut self, key: &str) {
        match self.startup.get(key) {
            Some((_, source)) => self.sources.insert(key.to_string(), source.clone()),
            None => self.sources.remove(key),
        };
    }

    pub(crate) fn keys_set_in_session(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|(_, source)| matches!(source, Source::Session { .. }))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Every known key, ours first, then DataFusion's, as `SET -v` shows them.
    pub(crate) fn rows(&self, options: &ConfigOptions) -> Vec<SettingRow> {
        let defaults: BTreeMap<String, Option<String>> = ConfigOptions::default()
            .entries()
            .into_iter()
            .map(|entry| (entry.key, entry.value))
            .collect();
        let mut rows: Vec<SettingRow> = options
            .entries()
            .into_iter()
            .map(|entry| SettingRow {
                default: match keys::definition(&entry.key) {
                    Some(definition) => definition.default.to_string(),
                    None => defaults
                        .get(&entry.key)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "NULL".into()),
                },
                source: self.source(&entry.key),
                value: entry.value.unwrap_or_else(|| "NULL".into()),
                description: entry.description.to_string(),
                key: entry.key,
            })
            .collect();
        // Ours in their defined order, then DataFusion's in its own.
        let rank = |key: &str| {
            keys::DEFINITIONS
                .iter()
                .position(|d| d.key == key)
                .unwrap_or(keys::DEFINITIONS.len())
        };
        rows.sort_by_key(|row| rank(&row.key));
        rows
    }
}

/// Checks that `key` names a setting this session knows, with a hint when it does not.
pub(crate) fn check_key(key: &str, options: &ConfigOptions) -> Result<()> {
    if keys::definition(key).is_some() || options.entries().iter().any(|entry| entry.key == key) {
        return Ok(());
    }
    let hint = options
        .entries()
        .into_iter()
        .map(|entry| entry.key)
        .chain(keys::DEFINITIONS.iter().map(|d| d.key.to_string()))
        .min_by_key(|candidate| edit_distance(candidate, key))
        .filter(|candidate| edit_distance(candidate, key) <= 3)
        .map(|candidate| format!(" (did you mean '{candidate}'?)"))
        .unwrap_or_default();
    Err(Error::Config(format!(
        "unknown configuration key '{key}'{hint}; `SET -v` lists every key"
    )))
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_a_hint() {
        let err = check_key("datafusion.execution.batch_sise", &ConfigOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean 'datafusion.execution.batch_size'"),
            "{err}"
        );
    }

    #[test]
    fn reset_returns_to_the_startup_value() {
        let mut settings = Settings::default();
        let file = Source::File {
            path: "stagesql-defaults.conf".into(),
            line: 3,
        };
        settings.record("k", "1", file.clone());
        settings.record("k", "2", Source::Session { at: None });
        assert_eq!(settings.startup_value("k"), Some("1"));
        settings.forget("k");
        assert_eq!(settings.source("k"), file);
        assert_eq!(file.to_string(), "file stagesql-defaults.conf:3");
    }
}

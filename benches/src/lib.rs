//! Helpers shared by the benchmark binaries.

use stagesql::{Session, StatementResult};

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `sql` and returns the rows of its last statement as text, one vector per row.
pub async fn rows(session: &Session, sql: &str) -> stagesql::Result<Vec<Vec<String>>> {
    let results = session.sql(sql).await?;
    let batches = results
        .last()
        .and_then(StatementResult::batches)
        .unwrap_or_default();
    stagesql::tpch::answers::rows(batches).map_err(stagesql::Error::Internal)
}

/// The command line of a benchmark binary: `--flag value` pairs, read as the binaries
/// need them.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    /// The value after `flag`, if given.
    pub fn value(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// Whether `flag` is given.
    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    /// `--sf X`, else `default`.
    pub fn scale_factor(&self, default: f64) -> f64 {
        self.value("--sf")
            .map_or(default, |v| v.parse().expect("--sf: a number"))
    }

    /// `--runs N` (at least 1), else `default`.
    pub fn runs(&self, default: usize) -> usize {
        self.value("--runs")
            .map_or(default, |v| v.parse().expect("--runs: a whole number"))
            .max(1)
    }

    /// `--slots N`, else this machine's cores.
    pub fn slots(&self) -> usize {
        self.value("--slots")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// `--queries 1,7,Q16`, else all 22.
    pub fn queries(&self) -> Vec<usize> {
        self.value("--queries")
            .map(|list| {
                list.split(',')
                    .map(|q| {
                        q.trim()
                            .trim_start_matches(['Q', 'q'])
                            .parse()
                            .expect("--queries: numbers 1 to 22")
                    })
                    .collect()
            })
            .unwrap_or_else(|| (1..=22).collect())
    }

    /// Every `--conf key=value`, in order.
    pub fn conf(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--conf")
            .filter_map(|(i, _)| self.0.get(i + 1))
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("--conf key=value");
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

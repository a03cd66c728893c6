//! Statements the session handles itself instead of handing them to DataFusion.
//!
//! Spark's `SET` is free-form (`SET spark.sql.shuffle.partitions=8`, `SET -v`, `SET key`),
//! which no SQL grammar covers, so it is recognised from the text: the first word decides, the
//! rest is split at the first `=` exactly as Spark's `SetCommand` parser does.

use crate::cache::StorageLevel;
use crate::error::{Error, Result};

/// A statement with session-level meaning, recognised before SQL parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `SET key = value`, `SET key TO value`.
    Set { key: String, value: String },
    /// `SET key`: show one setting.
    ShowSetting { key: String },
    /// `SET`: the settings changed with `SET` in this session; `SET -v`: every setting with
    /// its default, description and source.
    ShowSettings { verbose: bool },
    /// `RESET key` back to its default (or the value given at startup); `RESET` for all.
    Reset { key: Option<String> },
    /// `CALL dbgen(sf = 0.01)`: generate (once) and register the TPC-H tables, as in DuckDB.
    Dbgen { scale_factor: f64 },
    /// `CACHE [LAZY] TABLE t [OPTIONS ('storageLevel' 'LEVEL')] [[AS] query]`; the query
    /// starts at byte `query_offset` of the statement.
    CacheTable {
        name: String,
        lazy: bool,
        level: StorageLevel,
        query_offset: Option<usize>,
    },
    /// `UNCACHE TABLE [IF EXISTS] t`.
    UncacheTable { name: String, if_exists: bool },
    /// `CLEAR CACHE`.
    ClearCache,
    /// `REFRESH TABLE t`: cached data of `t` and of caches reading it is computed again
    /// when next used.
    RefreshTable { name: String },
    /// `EXPLAIN [EXTENDED | FORMATTED | COST | CODEGEN | ANALYZE | FORMAT JSON | FORMAT DOT]
    /// query`; `query_offset` is the byte offset of the query in the statement text.
    Explain {
        kind: ExplainKind,
        query_offset: usize,
    },
}

/// Which EXPLAIN the user asked for. `EXPLAIN VERBOSE` is not one of ours: it reaches
/// DataFusion, whose own plans stay available that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainKind {
    /// `EXPLAIN`: the stage DAG before running.
    Stages,
    /// `EXPLAIN EXTENDED`: logical plans, the physical plan, then the stages.
    Extended,
    /// `EXPLAIN FORMATTED`: the numbered operators of each stage with details.
    Formatted,
    /// `EXPLAIN COST`: the stages with row and byte estimates per operator.
    Cost,
    /// `EXPLAIN CODEGEN`: does not apply here.
    Codegen,
    /// `EXPLAIN FORMAT JSON`.
    Json,
    /// `EXPLAIN FORMAT DOT`.
    Dot,
    /// `EXPLAIN ANALYZE`: run, then show what happened and advisories.
    Analyze,
    /// `EXPLAIN ANALYZE FORMAT JSON`: the same, as the JSON model with actuals.
    AnalyzeJson,
}

impl Command {
    /// Recognises `text` as a [`Command`], or returns `None` when it is ordinary SQL.
    pub fn parse(text: &str) -> Result<Option<Command>> {
        let text = text.trim();
        let (word, rest) = match text.find(|c: char| c.is_whitespace()) {
            Some(i) => (&text[..i], text[i..].trim()),
            None => (text, ""),
        };
        match word.to_ascii_lowercase().as_str() {
            "set" => parse_set(rest).map(Some),
            "reset" => Ok(Some(Command::Reset {
                key: (!rest.is_empty()).then(|| unquote(rest).to_string()),
            })),
            "call" => parse_call(rest),
            "explain" => Ok(parse_explain(text)),
            "cache" => parse_cache(text).map(Some),
            "uncache" => parse_uncache(rest).map(Some),
            "clear" if rest.eq_ignore_ascii_case("cache") => Ok(Some(Command::ClearCache)),
            "refresh" => parse_refresh(rest).map(Some),
            _ => Ok(None),
        }
    }
}

fn parse_set(rest: &str) -> Result<Command> {
    if rest.is_empty() {
        return Ok(Command::ShowSettings { verbose: false });
    }
    if rest == "-v" {
        return Ok(Command::ShowSettings { verbose: true });
    }
    let (key, value) = if let Some((key, value)) = rest.split_once('=') {
        (key.trim(), Some(value.trim()))
    } else {
        // `SET key TO value` / `SET key value` (PostgreSQL and DataFusion habits).
        let mut parts = rest.splitn(2, char::is_whitespace);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| {
            let v = v.trim();
            match v.split_once(char::is_whitespace) {
                Some((to, value)) if to.eq_ignore_ascii_case("to") => value.trim(),
                _ => v,
            }
        });
        (key, value)
    };
    let key = unquote(key);
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(Error::Config(format!(
            "SET expects `SET key = value`, `SET key` or `SET -v`, got `SET {rest}`"
        )));
    }
    Ok(match value {
        Some(value) => Command::Set {
            key: key.to_string(),
            value: unquote(value).to_string(),
        },
        None => Command::ShowSetting {
            key: key.to_string(),
        },
    })
}

/// The words of `text` from byte `from`: each with its byte range.
fn words_from(text: &str, from: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = from;
    std::iter::from_fn(move || {
        let rest = &text[offset..];
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return None;
        }
        let start = offset + (rest.len() - trimmed.len());
        let end = trimmed
            .find(|c: char| c.is_whitespace() || c == '(')
            .map_or(text.len(), |i| start + i.max(1));
        offset = end;
        Some((start, &text[start..end]))
    })
}

/// `CACHE [LAZY] TABLE name [OPTIONS ('storageLevel' [=] 'LEVEL')] [[AS] query]`.
fn parse_cache(text: &str) -> Result<Command> {
    let usage = |problem: &str| {
        Error::Config(format!(
            "{problem}; expected CACHE [LAZY] TABLE name [OPTIONS ('storageLevel' 'MEMORY_AND_DISK')] [[AS] query]"
        ))
    };
    let mut words = words_from(text, "cache".len()).peekable();
    let mut lazy = false;
    if words
        .peek()
        .is_some_and(|(_, w)| w.eq_ignore_ascii_case("lazy"))
    {
        lazy = true;
        words.next();
    }
    if !words
        .next()
        .is_some_and(|(_, w)| w.eq_ignore_ascii_case("table"))
    {
        return Err(usage("CACHE without TABLE"));
    }
    let Some((_, name)) = words.next() else {
        return Err(usage("CACHE TABLE without a name"));
    };
    let name = name.to_string();
    let mut level = StorageLevel::MemoryAndDisk;
    let mut query_offset = None;
    let mut rest = words.next();
    if let Some((start, word)) = rest
        && word.eq_ignore_ascii_case("options")
    {
        let open = text[start + word.len()..]
            .find('(')
            .map(|i| start + word.len() + i)
            .ok_or_else(|| usage("OPTIONS without its list"))?;
        let close = text[open..]
            .find(')')
            .map(|i| open + i)
            .ok_or_else(|| usage("OPTIONS list without its closing parenthesis"))?;
        level = parse_cache_options(&text[open + 1..close])?;
        rest = words_from(text, close + 1).next();
    }
    if let Some((start, word)) = rest {
        let query = match word.eq_ignore_ascii_case("as") {
            true => words_from(text, start + word.len())
                .next()
                .map(|(start, _)| start)
                .ok_or_else(|| usage("AS without a query"))?,
            false => start,
        };
        let first = text[query..]
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !text[query..].starts_with('(')
            && !["select", "with", "values"].contains(&first.as_str())
        {
            return Err(usage(&format!("'{}' is not a query", text[query..].trim())));
        }
        query_offset = Some(query);
    }
    Ok(Command::CacheTable {
        name,
        lazy,
        level,
        query_offset,
    })
}

/// `'storageLevel' [=] 'LEVEL'`, Spark's only CACHE TABLE option.
fn parse_cache_options(list: &str) -> Result<StorageLevel> {
    let mut level = StorageLevel::MemoryAndDisk;
    for option in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = option
            .split_once('=')
            .or_else(|| option.split_once(char::is_whitespace))
            .map(|(k, v)| (unquote(k.trim()), unquote(v.trim())))
            .ok_or_else(|| {
                Error::Config(format!(
                    "CACHE TABLE option '{option}' has no value; expected OPTIONS ('storageLevel' 'MEMORY_ONLY')"
                ))
            })?;
        if !key.eq_ignore_ascii_case("storageLevel") {
            return Err(Error::Config(format!(
                "unknown CACHE TABLE option '{key}'; the one option is 'storageLevel' ({})",
                StorageLevel::SUPPORTED
            )));
        }
        level = StorageLevel::parse(value).map_err(Error::Config)?;
    }
    Ok(level)
}

/// `TABLE [IF EXISTS] name`.
fn parse_uncache(rest: &str) -> Result<Command> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match lower.as_slice() {
        ["table", "if", "exists", _] => Ok(Command::UncacheTable {
            name: words[3].to_string(),
            if_exists: true,
        }),
        ["table", _] => Ok(Command::UncacheTable {
            name: words[1].to_string(),
            if_exists: false,
        }),
        _ => Err(Error::Config(format!(
            "expected UNCACHE TABLE [IF EXISTS] name, got `UNCACHE {rest}`"
        ))),
    }
}

/// `TABLE name` (Spark's `REFRESH TABLE`; `REFRESH path` is not ours).
fn parse_refresh(rest: &str) -> Result<Command> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [table, name] if table.eq_ignore_ascii_case("table") => Ok(Command::RefreshTable {
            name: name.to_string(),
        }),
        _ => Err(Error::Config(format!(
            "expected REFRESH TABLE name, got `REFRESH {rest}`"
        ))),
    }
}

/// Recognises our EXPLAIN forms; `VERBOSE` and DataFusion's other forms return `None`.
fn parse_explain(text: &str) -> Option<Command> {
    const FORMS: [&[&str]; 11] = [
        &["EXTENDED"],
        &["FORMATTED"],
        &["COST"],
        &["CODEGEN"],
        &["ANALYZE"],
        &["FORMAT", "TEXT"],
        &["FORMAT", "JSON"],
        &["FORMAT", "DOT"],
        &["ANALYZE", "FORMAT", "TEXT"],
        &["ANALYZE", "FORMAT", "JSON"],
        &["VERBOSE"],
    ];
    let mut words: Vec<String> = Vec::new();
    let mut offset = "explain".len();
    // Option words follow EXPLAIN as long as they begin one of our forms (`ANALYZE FORMAT
    // JSON`); VERBOSE anywhere among them makes it DataFusion's.
    loop {
        let rest = &text[offset..];
        let trimmed = rest.trim_start();
        let start = offset + (rest.len() - trimmed.len());
        let end = trimmed
            .find(char::is_whitespace)
            .map_or(text.len(), |i| start + i);
        let word = text[start..end].to_ascii_uppercase();
        let begins_a_form = FORMS.iter().any(|form| {
            form.len() > words.len()
                && form[..words.len()] == words[..]
                && form[words.len()] == word
        });
        let verbose_after_an_option = word == "VERBOSE" && !words.is_empty();
        if !(begins_a_form || verbose_after_an_option) {
            break;
        }
        words.push(word);
        offset = end;
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let kind = match words.as_slice() {
        [] | ["FORMAT", "TEXT"] => ExplainKind::Stages,
        ["EXTENDED"] => ExplainKind::Extended,
        ["FORMATTED"] => ExplainKind::Formatted,
        ["COST"] => ExplainKind::Cost,
        ["CODEGEN"] => ExplainKind::Codegen,
        ["ANALYZE"] | ["ANALYZE", "FORMAT", "TEXT"] => ExplainKind::Analyze,
        ["ANALYZE", "FORMAT", "JSON"] => ExplainKind::AnalyzeJson,
        ["FORMAT", "JSON"] => ExplainKind::Json,
        ["FORMAT", "DOT"] => ExplainKind::Dot,
        _ => return None,
    };
    let rest = &text[offset..];
    let query_offset = offset + (rest.len() - rest.trim_start().len());
    Some(Command::Explain { kind, query_offset })
}

/// `dbgen(sf = 0.1)` (also `sf := 0.1`, `sf => 0.1`, `dbgen(0.1)`); other procedures are not
/// ours and go to DataFusion, which reports them.
fn parse_call(rest: &str) -> Result<Option<Command>> {
    let Some(arguments) = rest
        .strip_prefix("dbgen")
        .or_else(|| rest.strip_prefix("DBGEN"))
        .map(str::trim)
    else {
        return Ok(None);
    };
    let usage = || {
        Error::Config(format!(
            "CALL dbgen expects `CALL dbgen(sf = 0.1)`, got `CALL {rest}`"
        ))
    };
    let inner = arguments
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .ok_or_else(usage)?
        .trim();
    let value = match inner.split_once(['=', '>', ':']) {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("sf") => {
            value.trim_start_matches(['=', '>']).trim()
        }
        Some(_) => return Err(usage()),
        None => inner,
    };
    let scale_factor = crate::tpch::parse_scale_factor(value)?;
    Ok(Some(Command::Dbgen { scale_factor }))
}

/// Strips one pair of matching quotes or backticks.
fn unquote(s: &str) -> &str {
    for quote in ['\'', '"', '`'] {
        if let Some(inner) = s.strip_prefix(quote).and_then(|s| s.strip_suffix(quote)) {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Option<Command> {
        Some(Command::Set {
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn recognises_spark_and_postgres_forms_of_set() {
        let parse = |s| Command::parse(s).unwrap();
        assert_eq!(
            parse("SET spark.sql.shuffle.partitions=8"),
            set("spark.sql.shuffle.partitions", "8")
        );
        assert_eq!(parse("set a.b = 'x y'"), set("a.b", "x y"));
        assert_eq!(parse("SET a.b TO 3"), set("a.b", "3"));
        assert_eq!(parse("SET a.b 3"), set("a.b", "3"));
        assert_eq!(
            parse("SET a.b"),
            Some(Command::ShowSetting { key: "a.b".into() })
        );
        assert_eq!(parse("SET"), Some(Command::ShowSettings { verbose: false }));
        assert_eq!(
            parse("set -v"),
            Some(Command::ShowSettings { verbose: true })
        );
        assert_eq!(parse("RESET"), Some(Command::Reset { key: None }));
        assert_eq!(
            parse("reset a.b"),
            Some(Command::Reset {
                key: Some("a.b".into())
            })
        );
        assert_eq!(
            parse("CALL dbgen(sf = 0.01)"),
            Some(Command::Dbgen { scale_factor: 0.01 })
        );
        assert_eq!(
            parse("call dbgen(sf => 1)"),
            Some(Command::Dbgen { scale_factor: 1.0 })
        );
        assert_eq!(
            parse("call dbgen(0.1)"),
            Some(Command::Dbgen { scale_factor: 0.1 })
        );
        assert_eq!(parse("call other_proc()"), None);
        assert_eq!(parse("select 1"), None);
        let explain = |kind| {
            Some(Command::Explain {
                kind,
                query_offset: 0,
            })
        };
        fn offset(text: &str) -> (ExplainKind, &str) {
            match Command::parse(text).unwrap() {
                Some(Command::Explain { kind, query_offset }) => (kind, &text[query_offset..]),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            offset("EXPLAIN select 1"),
            (ExplainKind::Stages, "select 1")
        );
        assert_eq!(
            offset("explain analyze\n select 1"),
            (ExplainKind::Analyze, "select 1")
        );
        assert_eq!(
            offset("EXPLAIN FORMAT JSON select 1"),
            (ExplainKind::Json, "select 1")
        );
        assert_eq!(
            offset("EXPLAIN FORMATTED select 1"),
            (ExplainKind::Formatted, "select 1")
        );
        assert_eq!(
            offset("explain analyze format json select 1"),
            (ExplainKind::AnalyzeJson, "select 1")
        );
        assert_eq!(
            offset("EXPLAIN ANALYZE FORMAT TEXT select 1"),
            (ExplainKind::Analyze, "select 1")
        );
        assert_eq!(parse("EXPLAIN VERBOSE select 1"), None);
        assert_eq!(parse("EXPLAIN ANALYZE VERBOSE select 1"), None);
        assert!(explain(ExplainKind::Codegen).is_some());
        assert_eq!(parse("settle"), None);
    }

    #[test]
    fn recognises_sparks_cache_statements() {
        let cache = |text: &str| match Command::parse(text).unwrap() {
            Some(Command::CacheTable {
                name,
                lazy,
                level,
                query_offset,
            }) => (
                name,
                lazy,
                level,
                query_offset.map(|o| text[o..].to_string()),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            cache("CACHE TABLE t"),
            ("t".into(), false, StorageLevel::MemoryAndDisk, None)
        );
        assert_eq!(
            cache("cache lazy table t options ('storageLevel' 'DISK_ONLY') as select 1"),
            (
                "t".into(),
                true,
                StorageLevel::DiskOnly,
                Some("select 1".into())
            )
        );
        assert_eq!(
            cache("CACHE TABLE t OPTIONS('storageLevel'='memory_only') SELECT * FROM x"),
            (
                "t".into(),
                false,
                StorageLevel::MemoryOnly,
                Some("SELECT * FROM x".into())
            )
        );
        assert_eq!(
            cache("CACHE TABLE t AS (select 1)").3,
            Some("(select 1)".into())
        );
        let error = |text: &str| Command::parse(text).unwrap_err().to_string();
        assert!(
            error("CACHE TABLE t OPTIONS ('storageLevel' 'MEMORY_AND_DISK_2')")
                .contains("supported: MEMORY_ONLY, MEMORY_AND_DISK, DISK_ONLY")
        );
        assert!(
            error("CACHE TABLE t OPTIONS ('storageLevel' 'FAST')")
                .contains("unknown storage level 'FAST'")
        );
        assert!(
            error("CACHE TABLE t OPTIONS ('level' 'DISK_ONLY')")
                .contains("unknown CACHE TABLE option 'level'")
        );
        assert!(error("CACHE t").contains("CACHE without TABLE"));
        assert!(error("CACHE TABLE t AS delete from x").contains("is not a query"));
        assert_eq!(
            Command::parse("UNCACHE TABLE IF EXISTS t").unwrap(),
            Some(Command::UncacheTable {
                name: "t".into(),
                if_exists: true
            })
        );
        assert_eq!(
            Command::parse("clear cache").unwrap(),
            Some(Command::ClearCache)
        );
        assert_eq!(
            Command::parse("REFRESH TABLE t").unwrap(),
            Some(Command::RefreshTable { name: "t".into() })
        );
        assert!(Command::parse("UNCACHE t").is_err());
    }

    #[test]
    fn malformed_set_is_an_error() {
        assert!(Command::parse("SET = 3").is_err());
        assert!(Command::parse("CALL dbgen(sf = -1)").is_err());
        assert!(Command::parse("CALL dbgen(scale = 1)").is_err());
        assert!(Command::parse("CALL dbgen").is_err());
    }
}

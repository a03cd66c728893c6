//! Statements the session handles itself instead of handing them to DataFusion.
//!
//! Spark's `SET` is free-form (`SET spark.sql.shuffle.partitions=8`, `SET -v`, `SET key`),
//! which no SQL grammar covers, so it is recognised from the text: the first word decides, the
//! rest is split at the first `=` exactly as Spark's `SetCommand` parser does.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::tables::TableCommand;
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
    /// A statement on warehouse tables and databases ([`TableCommand`]).
    Table(TableCommand),
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
    /// `EXPLAIN ANALYZE FORMAT HTML`: run, then write the run's report (one HTML file under
    /// `stagesql.report.dir`) and return its path.
    AnalyzeHtml,
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
                key: (!rest.is_empty()).then(|| reset_key(rest)),
            })),
            "call" => parse_call(rest),
            "explain" => Ok(parse_explain(text)),
            "cache" => parse_cache(text).map(Some),
            "uncache" => parse_uncache(text).map(Some),
            "clear" if rest.eq_ignore_ascii_case("cache") => Ok(Some(Command::ClearCache)),
            "refresh" => parse_refresh(text).map(Some),
            _ => Ok(super::tables::parse_table_command(text)?.map(Command::Table)),
        }
    }
}

/// The key `RESET key` names: `TIME ZONE` and `TIMEZONE` are the session time zone's,
/// DataFusion's keys are case-insensitive.
fn reset_key(rest: &str) -> String {
    let key = unquote(rest);
    let words: Vec<&str> = key.split_whitespace().collect();
    let time_zone = match words.as_slice() {
        [word] => word.eq_ignore_ascii_case("timezone"),
        [time, zone] => time.eq_ignore_ascii_case("time") && zone.eq_ignore_ascii_case("zone"),
        _ => false,
    };
    match key.get(..11) {
        _ if time_zone => TIME_ZONE_KEY.to_string(),
        Some(prefix) if prefix.eq_ignore_ascii_case("datafusion.") => key.to_ascii_lowercase(),
        _ => key.to_string(),
    }
}

/// The session time zone's key, which `SET TIME ZONE` and `SET TIMEZONE` set.
const TIME_ZONE_KEY: &str = "datafusion.execution.time_zone";

fn parse_set(rest: &str) -> Result<Command> {
    if rest.is_empty() {
        return Ok(Command::ShowSettings { verbose: false });
    }
    if rest == "-v" {
        return Ok(Command::ShowSettings { verbose: true });
    }
    // `SET TIME ZONE x` (Spark, SQL standard) and `SET TIMEZONE x` (PostgreSQL): the session
    // time zone.
    let words: Vec<&str> = rest.splitn(3, char::is_whitespace).collect();
    let time_zone = match words.as_slice() {
        [time, zone, value]
            if time.eq_ignore_ascii_case("time") && zone.eq_ignore_ascii_case("zone") =>
        {
            Some(*value)
        }
        [time, zone]
            if time.eq_ignore_ascii_case("time")
                && zone
                    .get(..4)
                    .is_some_and(|z| z.eq_ignore_ascii_case("zone")) =>
        {
            Some(&zone[4..])
        }
        _ => None,
    };
    let rest = match time_zone {
        Some(value) => &format!("{TIME_ZONE_KEY} {}", value.trim()),
        None => rest,
    };
    let rest = match rest.get(..8) {
        Some(word)
            if word.eq_ignore_ascii_case("timezone")
                && rest[8..].starts_with(|c: char| c.is_whitespace() || c == '=') =>
        {
            &format!("{TIME_ZONE_KEY}{}", &rest[8..])
        }
        _ => rest,
    };
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
    // DataFusion's keys are case-insensitive (`datafusion.EXECUTION.batch_size`); Spark's
    // and ours are not.
    let lowered;
    let key = match key.get(..11) {
        Some(prefix) if prefix.eq_ignore_ascii_case("datafusion.") => {
            lowered = key.to_ascii_lowercase();
            lowered.as_str()
        }
        _ => key,
    };
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

/// The tokens of `text` that are not whitespace or comments, each with its byte offset.
pub(super) fn tokens(text: &str) -> Result<Vec<(usize, Token)>> {
    let located = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| Error::Config(e.message))?;
    let offsets = super::LineOffsets::new(text);
    Ok(located
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            let position = super::Position {
                line: t.span.start.line as usize,
                column: t.span.start.column as usize,
            };
            (offsets.byte_offset(text, position), t.token)
        })
        .collect())
}

pub(super) fn is_word(token: Option<&(usize, Token)>, keyword: &str) -> bool {
    matches!(token, Some((_, Token::Word(w))) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// A table name at `tokens[*at]`: identifiers (quoted or not) separated by dots, as written.
pub(super) fn table_name(tokens: &[(usize, Token)], at: &mut usize) -> Option<String> {
    let mut name = String::new();
    loop {
        let Some((_, Token::Word(word))) = tokens.get(*at) else {
            return None;
        };
        name.push_str(&word.to_string());
        *at += 1;
        if !matches!(tokens.get(*at), Some((_, Token::Period))) {
            return Some(name);
        }
        name.push('.');
        *at += 1;
    }
}

/// `CACHE [LAZY] TABLE name [OPTIONS ('storageLevel' [=] 'LEVEL')] [[AS] query]`.
fn parse_cache(text: &str) -> Result<Command> {
    let usage = |problem: &str| {
        Error::Config(format!(
            "{problem}; expected CACHE [LAZY] TABLE name [OPTIONS ('storageLevel' 'MEMORY_AND_DISK')] [[AS] query]"
        ))
    };
    let tokens = tokens(text)?;
    let mut at = 1; // after CACHE
    let lazy = is_word(tokens.get(at), "lazy");
    at += usize::from(lazy);
    if !is_word(tokens.get(at), "table") {
        return Err(usage("CACHE without TABLE"));
    }
    at += 1;
    let name = table_name(&tokens, &mut at).ok_or_else(|| usage("CACHE TABLE without a name"))?;
    let mut level = StorageLevel::MemoryAndDisk;
    if is_word(tokens.get(at), "options") {
        at += 1;
        if !matches!(tokens.get(at), Some((_, Token::LParen))) {
            return Err(usage("OPTIONS without its list"));
        }
        at += 1;
        let mut pairs = Vec::new();
        loop {
            match tokens.get(at).map(|(_, t)| t) {
                Some(Token::RParen) => break,
                Some(Token::Comma) => at += 1,
                Some(Token::SingleQuotedString(key) | Token::DoubleQuotedString(key)) => {
                    at += 1;
                    if matches!(tokens.get(at), Some((_, Token::Eq))) {
                        at += 1;
                    }
                    let Some((
                        _,
                        Token::SingleQuotedString(value) | Token::DoubleQuotedString(value),
                    )) = tokens.get(at)
                    else {
                        return Err(Error::Config(format!(
                            "CACHE TABLE option '{key}' has no value; expected OPTIONS ('storageLevel' 'MEMORY_ONLY')"
                        )));
                    };
                    pairs.push((key.clone(), value.clone()));
                    at += 1;
                }
                Some(Token::Word(word)) => {
                    return Err(Error::Config(format!(
                        "CACHE TABLE option names are quoted strings, got {word}; expected OPTIONS ('storageLevel' 'MEMORY_ONLY')"
                    )));
                }
                _ => return Err(usage("OPTIONS list without its closing parenthesis")),
            }
        }
        at += 1;
        for (key, value) in pairs {
            if !key.eq_ignore_ascii_case("storageLevel") {
                return Err(Error::Config(format!(
                    "unknown CACHE TABLE option '{key}'; the one option is 'storageLevel' ({})",
                    StorageLevel::SUPPORTED
                )));
            }
            level = StorageLevel::parse(&value).map_err(Error::Config)?;
        }
    }
    if is_word(tokens.get(at), "as") {
        at += 1;
        if tokens.get(at).is_none() {
            return Err(usage("AS without a query"));
        }
    }
    let query_offset = match tokens.get(at) {
        None => None,
        Some((offset, token)) => {
            let starts_a_query = matches!(token, Token::LParen)
                || ["select", "with", "values", "from", "table"]
                    .iter()
                    .any(|k| is_word(tokens.get(at), k));
            if !starts_a_query {
                return Err(usage(&format!(
                    "'{}' is not a query",
                    text[*offset..].trim()
                )));
            }
            Some(*offset)
        }
    };
    Ok(Command::CacheTable {
        name,
        lazy,
        level,
        query_offset,
    })
}

/// `UNCACHE TABLE [IF EXISTS] name`.
fn parse_uncache(text: &str) -> Result<Command> {
    let (name, if_exists) = table_statement(text, "UNCACHE TABLE [IF EXISTS] name", true)?;
    Ok(Command::UncacheTable { name, if_exists })
}

/// `REFRESH TABLE name` (Spark's; `REFRESH path` is not ours).
fn parse_refresh(text: &str) -> Result<Command> {
    let (name, _) = table_statement(text, "REFRESH TABLE name", false)?;
    Ok(Command::RefreshTable { name })
}

/// `WORD TABLE [IF EXISTS] name` and nothing after: the name, and whether `IF EXISTS` was
/// given (allowed where `if_exists` says).
fn table_statement(text: &str, form: &str, if_exists: bool) -> Result<(String, bool)> {
    let tokens = tokens(text)?;
    let usage = || Error::Config(format!("expected {form}, got `{}`", text.trim()));
    if !is_word(tokens.get(1), "table") {
        return Err(usage());
    }
    let given = if_exists && is_word(tokens.get(2), "if") && is_word(tokens.get(3), "exists");
    let mut at = if given { 4 } else { 2 };
    let name = table_name(&tokens, &mut at).ok_or_else(usage)?;
    if at != tokens.len() {
        return Err(usage());
    }
    Ok((name, given))
}

/// Recognises our EXPLAIN forms; `VERBOSE` and DataFusion's other forms return `None`.
fn parse_explain(text: &str) -> Option<Command> {
    const FORMS: [&[&str]; 12] = [
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
        &["ANALYZE", "FORMAT", "HTML"],
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
        ["ANALYZE", "FORMAT", "HTML"] => ExplainKind::AnalyzeHtml,
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
        // The session time zone, as Spark, PostgreSQL and DataFusion spell it.
        let zone = |value: &str| set("datafusion.execution.time_zone", value);
        assert_eq!(
            parse("SET TIME ZONE 'America/Los_Angeles'"),
            zone("America/Los_Angeles")
        );
        assert_eq!(parse("set time zone = '+08:00'"), zone("+08:00"));
        assert_eq!(parse("SET TIME ZONE='+08:00'"), zone("+08:00"));
        assert_eq!(parse("SET TIMEZONE = '+07:00'"), zone("+07:00"));
        assert_eq!(parse("SET timezone TO 'UTC'"), zone("UTC"));
        assert_eq!(parse("SET timezones.x = 1"), set("timezones.x", "1"));
        assert_eq!(parse("SET TIME ZÖNE 'x'"), set("TIME", "ZÖNE 'x'"));
        let reset = |key: &str| {
            Some(Command::Reset {
                key: Some(key.to_string()),
            })
        };
        assert_eq!(
            parse("RESET TIME ZONE"),
            reset("datafusion.execution.time_zone")
        );
        assert_eq!(
            parse("reset timezone"),
            reset("datafusion.execution.time_zone")
        );
        assert_eq!(
            parse("RESET datafusion.Execution.Batch_Size"),
            reset("datafusion.execution.batch_size")
        );
        assert_eq!(
            parse("RESET spark.sql.shuffle.partitions"),
            reset("spark.sql.shuffle.partitions")
        );
        // DataFusion's keys are case-insensitive, Spark's are not.
        assert_eq!(
            parse("SET datafusion.EXECUTION.batch_size 1"),
            set("datafusion.execution.batch_size", "1")
        );
        assert_eq!(
            parse("SET spark.sql.adaptive.coalescePartitions.enabled = false"),
            set("spark.sql.adaptive.coalescePartitions.enabled", "false")
        );
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
        assert_eq!(
            offset("explain analyze format html select 1"),
            (ExplainKind::AnalyzeHtml, "select 1")
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
        // Comments, quoted and qualified names, Spark's FROM-first queries.
        assert_eq!(
            cache("CACHE TABLE `my t` -- the shared part\nAS select 1"),
            (
                "`my t`".into(),
                false,
                StorageLevel::MemoryAndDisk,
                Some("select 1".into())
            )
        );
        assert_eq!(cache("CACHE TABLE db.\"T\"").0, "db.\"T\"");
        assert_eq!(
            cache("CACHE TABLE t FROM x SELECT a").3,
            Some("FROM x SELECT a".into())
        );
        assert_eq!(
            Command::parse("UNCACHE TABLE \"my t\"").unwrap(),
            Some(Command::UncacheTable {
                name: "\"my t\"".into(),
                if_exists: false
            })
        );
    }

    #[test]
    fn malformed_set_is_an_error() {
        assert!(Command::parse("SET = 3").is_err());
        assert!(Command::parse("CALL dbgen(sf = -1)").is_err());
        assert!(Command::parse("CALL dbgen(scale = 1)").is_err());
        assert!(Command::parse("CALL dbgen").is_err());
    }
}

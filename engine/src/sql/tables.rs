//! Spark's statements on warehouse tables and databases, which DataFusion's grammar does
//! not have: `CREATE TABLE … USING parquet [PARTITIONED BY …]`, `INSERT OVERWRITE … PARTITION
//! (…)`, `ALTER TABLE … ADD PARTITION`, `SHOW PARTITIONS`, `CREATE DATABASE`, `USE`,
//! `CHECKPOINT`. Parsed on sqlparser's tokenizer; a query inside one (CTAS, INSERT) is left
//! as text, at its offset, for DataFusion to plan.
//!
//! Forms that DataFusion has too (`CREATE TABLE t (…)` without USING, `CREATE EXTERNAL
//! TABLE`, `INSERT INTO` a table of the session) are not claimed here: the session hands a
//! statement back to DataFusion when it is not about a warehouse table.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::tokenizer::Token;

use super::command::{is_word, table_name, tokens};
use crate::error::{Error, Result};
use crate::warehouse::PartitionSpec;

/// A statement on the warehouse.
#[derive(Debug, Clone, PartialEq)]
pub enum TableCommand {
    CreateTable(CreateTable),
    CreateDatabase {
        name: String,
        if_not_exists: bool,
        comment: Option<String>,
        location: Option<String>,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    Use {
        database: String,
    },
    ShowDatabases,
    /// `DROP TABLE [IF EXISTS] t [PURGE]`; a table of the session's own is DataFusion's.
    DropTable {
        name: String,
        if_exists: bool,
    },
    ShowPartitions {
        table: String,
        spec: Option<PartitionSpec>,
    },
    AddPartitions {
        table: String,
        if_not_exists: bool,
        partitions: Vec<(PartitionSpec, Option<String>)>,
    },
    DropPartitions {
        table: String,
        if_exists: bool,
        specs: Vec<PartitionSpec>,
    },
    /// `MSCK REPAIR TABLE t [ADD|DROP|SYNC PARTITIONS]` or `ALTER TABLE t RECOVER
    /// PARTITIONS`: the catalog learns the partition directories found under the table.
    RepairTable {
        table: String,
        mode: RepairMode,
    },
    /// `TRUNCATE TABLE t [PARTITION (c = 'v', …)]`.
    Truncate {
        table: String,
        spec: Option<PartitionSpec>,
    },
    /// `DESCRIBE [TABLE] EXTENDED|FORMATTED t`.
    DescribeExtended {
        table: String,
    },
    /// `DESCRIBE|DESC [TABLE] t`: Spark's rows for a warehouse table, DataFusion's
    /// DESCRIBE for a table of the session.
    Describe {
        table: String,
    },
    /// `DESCRIBE DATABASE|SCHEMA|NAMESPACE [EXTENDED] db`.
    DescribeDatabase {
        name: String,
    },
    /// `SHOW TABLES {IN|FROM} db [[LIKE] 'pattern']` or `SHOW TABLES [LIKE] 'pattern'`:
    /// Spark's listing (plain `SHOW TABLES` is DataFusion's, of every schema).
    ShowTables {
        database: Option<String>,
        pattern: Option<String>,
    },
    /// `[WITH …] INSERT INTO|OVERWRITE [TABLE] t [PARTITION (…)] [(columns) | BY NAME]
    /// query`.
    Insert {
        table: String,
        overwrite: bool,
        spec: Option<PartitionSpec>,
        columns: Option<Vec<String>>,
        /// `BY NAME`: the query's columns go to the table's columns of the same names.
        by_name: bool,
        query_offset: usize,
        /// The query to run when it is not the statement's text from `query_offset`: with
        /// the statement's leading `WITH` clause, or `TABLE s` as `SELECT * FROM s`.
        query_text: Option<String>,
    },
    /// `CHECKPOINT [TABLE] t AS query`.
    Checkpoint {
        name: String,
        query_offset: usize,
    },
}

/// What `MSCK REPAIR TABLE` does with the partition directories it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Adds the partitions whose directories the catalog does not know (the default).
    Add,
    /// Drops the partitions whose directories are gone.
    Drop,
    /// Both.
    Sync,
}

/// `CREATE TABLE … USING …`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateTable {
    pub name: String,
    pub if_not_exists: bool,
    pub or_replace: bool,
    /// The column definitions as written between the parentheses.
    pub columns: Option<String>,
    pub provider: Option<String>,
    pub partitioned_by: Vec<String>,
    pub location: Option<String>,
    pub comment: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub query_offset: Option<usize>,
}

/// A cursor over a statement's tokens.
struct Cursor<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    at: usize,
    form: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, form: &'static str) -> Result<Self> {
        Ok(Self {
            text,
            tokens: tokens(text)?,
            at: 0,
            form,
        })
    }

    fn peek_word(&self, word: &str) -> bool {
        is_word(self.tokens.get(self.at), word)
    }

    /// Consumes `words` when they come next, in order.
    fn eat(&mut self, words: &[&str]) -> bool {
        let all = words
            .iter()
            .enumerate()
            .all(|(i, w)| is_word(self.tokens.get(self.at + i), w));
        if all {
            self.at += words.len();
        }
        all
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.at)
            .map_or(self.text.len(), |(o, _)| *o)
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn error(&self, problem: &str) -> Error {
        let near = match self.tokens.get(self.at) {
            Some((offset, _)) => format!(
                " at `{}`",
                self.text[*offset..]
                    .trim()
                    .chars()
                    .take(30)
                    .collect::<String>()
            ),
            None => " at the end".to_string(),
        };
        Error::Syntax {
            message: format!("{problem}{near}; expected {}", self.form),
            position: None,
        }
    }

    /// A database name: one identifier, quoted or not, lower-cased as Spark's catalog keeps
    /// names.
    fn database_name(&mut self) -> Result<String> {
        let name = match self.peek() {
            Some(Token::Word(word)) => word.value.to_ascii_lowercase(),
            _ => return Err(self.error("missing the database name")),
        };
        self.at += 1;
        if matches!(self.peek(), Some(Token::Period)) {
            return Err(self.error("a database name has one part"));
        }
        Ok(name)
    }

    /// `name [PARTITION (c = 'v', …)]`, ending the statement.
    fn table_and_spec(&mut self) -> Result<(String, Option<PartitionSpec>)> {
        let table = self.name("the table name")?;
        let spec = match self.eat(&["partition"]) {
            true => Some(self.partition_spec(false)?),
            false => None,
        };
        if !self.done() {
            return Err(self.error("unexpected text"));
        }
        Ok((table, spec))
    }

    fn name(&mut self, what: &str) -> Result<String> {
        table_name(&self.tokens, &mut self.at).ok_or_else(|| self.error(&format!("missing {what}")))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<()> {
        match self.peek() {
            Some(t) if t == token => {
                self.at += 1;
                Ok(())
            }
            _ => Err(self.error(&format!("missing {what}"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.error(&format!("{what} must be a quoted string"))),
        }
    }

    /// A literal partition value: a string, a number (with its sign), TRUE, FALSE or NULL.
    fn literal(&mut self) -> Result<String> {
        let negative = matches!(self.peek(), Some(Token::Minus));
        if negative {
            self.at += 1;
        }
        let value = match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) if !negative => {
                s.clone()
            }
            Some(Token::Number(n, _)) => format!("{}{n}", if negative { "-" } else { "" }),
            Some(Token::Word(w))
                if !negative
                    && w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("true")
                        || w.value.eq_ignore_ascii_case("false")) =>
            {
                w.value.to_ascii_lowercase()
            }
            // As Spark 3.2+: the partition of NULL values, `c=__HIVE_DEFAULT_PARTITION__`.
            Some(Token::Word(w))
                if !negative && w.quote_style.is_none() && w.value.eq_ignore_ascii_case("null") =>
            {
                crate::warehouse::NULL_PARTITION.to_string()
            }
            _ => return Err(self.error("a partition value must be a literal")),
        };
        self.at += 1;
        Ok(value)
    }

    /// `PARTITION (c = v, d)` after the word PARTITION.
    fn partition_spec(&mut self, allow_dynamic: bool) -> Result<PartitionSpec> {
        self.expect(&Token::LParen, "( after PARTITION")?;
        let mut spec = Vec::new();
        loop {
            let column = match self.peek() {
                Some(Token::Word(w)) => w.value.clone(),
                _ => return Err(self.error("missing a partition column")),
            };
            self.at += 1;
            let value = if matches!(self.peek(), Some(Token::Eq)) {
                self.at += 1;
                Some(self.literal()?)
            } else if allow_dynamic {
                None
            } else {
                return Err(self.error(&format!(
                    "partition column {column} needs a value (c = 'v')"
                )));
            };
            spec.push((column, value));
            match self.peek() {
                Some(Token::Comma) => self.at += 1,
                Some(Token::RParen) => {
                    self.at += 1;
                    return Ok(PartitionSpec(spec));
                }
                _ => return Err(self.error("missing ) after the partition values")),
            }
        }
    }

    /// A parenthesised list of names: `(a, b)`.
    fn names(&mut self) -> Result<Vec<String>> {
        self.expect(&Token::LParen, "(")?;
        let mut names = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Word(w)) => names.push(w.value.clone()),
                _ => return Err(self.error("missing a column name")),
            }
            self.at += 1;
            match self.peek() {
                Some(Token::Comma) => self.at += 1,
                Some(Token::RParen) => {
                    self.at += 1;
                    return Ok(names);
                }
                _ => return Err(self.error("missing ) after the column names")),
            }
        }
    }

    /// The text between a `(` here and its matching `)`, which are consumed.
    fn parenthesised_text(&mut self) -> Result<String> {
        let start = self.offset();
        self.expect(&Token::LParen, "(")?;
        let mut depth = 1;
        while let Some(token) = self.peek() {
            match token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        let end = self.offset();
                        self.at += 1;
                        return Ok(self.text[start + 1..end].to_string());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        Err(self.error("missing )"))
    }

    /// `('k' = 'v', …)`.
    fn properties(&mut self) -> Result<BTreeMap<String, String>> {
        self.expect(&Token::LParen, "(")?;
        let mut properties = BTreeMap::new();
        loop {
            if matches!(self.peek(), Some(Token::RParen)) {
                self.at += 1;
                return Ok(properties);
            }
            let key = match self.peek() {
                Some(Token::Word(w)) => {
                    let mut key = w.value.clone();
                    self.at += 1;
                    while matches!(self.peek(), Some(Token::Period)) {
                        self.at += 1;
                        if let Some(Token::Word(w)) = self.peek() {
                            key = format!("{key}.{}", w.value);
                            self.at += 1;
                        }
                    }
                    key
                }
                _ => self.string("a property key")?,
            };
            if matches!(self.peek(), Some(Token::Eq)) {
                self.at += 1;
            }
            let value = self.literal()?;
            if properties.insert(key.clone(), value).is_some() {
                return Err(Error::Syntax {
                    message: format!("[DUPLICATE_KEY] Found duplicate keys `{key}`"),
                    position: None,
                });
            }
            if matches!(self.peek(), Some(Token::Comma)) {
                self.at += 1;
            }
        }
    }

    /// Whether a query starts here.
    fn at_query(&self) -> bool {
        matches!(self.peek(), Some(Token::LParen))
            || ["select", "with", "values", "from", "table"]
                .iter()
                .any(|k| self.peek_word(k))
    }
}

/// The first word of a statement, lower-cased.
pub fn first_word(text: &str) -> String {
    text.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Recognises a warehouse statement; `None` when `text` is something else (DataFusion's).
pub fn parse_table_command(text: &str) -> Result<Option<TableCommand>> {
    match first_word(text).as_str() {
        "create" => parse_create(text),
        "drop" => parse_drop(text),
        "use" => parse_use(text).map(Some),
        "show" => parse_show(text),
        "alter" => parse_alter(text),
        "describe" | "desc" => parse_describe(text),
        "insert" => parse_insert(text),
        "with" => parse_with_insert(text),
        "checkpoint" => parse_checkpoint(text).map(Some),
        "msck" => parse_msck(text).map(Some),
        "truncate" => parse_truncate(text).map(Some),
        _ => Ok(None),
    }
}

fn parse_create(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(
        text,
        "CREATE TABLE [IF NOT EXISTS] name [(columns)] USING parquet [PARTITIONED BY (columns)] [LOCATION 'path'] [COMMENT 'text'] [TBLPROPERTIES (…)] [AS query]",
    )?;
    c.at = 1;
    if c.eat(&["database"]) {
        c.form = "CREATE DATABASE [IF NOT EXISTS] name [COMMENT 'text'] [LOCATION 'path']";
        let if_not_exists = c.eat(&["if", "not", "exists"]);
        let name = c.database_name()?;
        let (mut comment, mut location) = (None, None);
        while !c.done() {
            if c.eat(&["comment"]) {
                comment = Some(c.string("COMMENT")?);
            } else if c.eat(&["location"]) {
                location = Some(c.string("LOCATION")?);
            } else if c.eat(&["with", "dbproperties"]) || c.eat(&["with", "properties"]) {
                c.properties()?;
            } else {
                return Err(c.error("unexpected text"));
            }
        }
        return Ok(Some(TableCommand::CreateDatabase {
            name,
            if_not_exists,
            comment,
            location,
        }));
    }
    let or_replace = c.eat(&["or", "replace"]);
    if !c.eat(&["table"]) {
        return Ok(None);
    }
    let if_not_exists = c.eat(&["if", "not", "exists"]);
    let Some(name) = table_name(&c.tokens, &mut c.at) else {
        return Ok(None);
    };
    let mut create = CreateTable {
        name,
        if_not_exists,
        or_replace,
        ..Default::default()
    };
    if matches!(c.peek(), Some(Token::LParen)) {
        create.columns = Some(c.parenthesised_text()?);
    }
    let ours = [
        "using",
        "partitioned",
        "location",
        "tblproperties",
        "options",
    ]
    .iter()
    .any(|w| c.peek_word(w));
    if !ours {
        // DataFusion's CREATE TABLE: a table of the session.
        return Ok(None);
    }
    loop {
        if c.eat(&["using"]) {
            match c.peek() {
                Some(Token::Word(w)) => create.provider = Some(w.value.to_ascii_lowercase()),
                _ => return Err(c.error("USING needs a format")),
            }
            c.at += 1;
        } else if c.eat(&["partitioned", "by"]) {
            create.partitioned_by = c.names()?;
        } else if c.eat(&["location"]) {
            if create.location.is_some() {
                return Err(c.error("LOCATION given twice (or with OPTIONS (path …))"));
            }
            create.location = Some(c.string("LOCATION")?);
        } else if c.eat(&["comment"]) {
            create.comment = Some(c.string("COMMENT")?);
        } else if c.eat(&["tblproperties"]) {
            create.properties.extend(c.properties()?);
        } else if c.eat(&["options"]) {
            for (key, value) in c.properties()? {
                // As Spark: the `path` option is the table's location.
                if key.eq_ignore_ascii_case("path") {
                    if create.location.is_some() {
                        return Err(c.error("LOCATION given twice (or with OPTIONS (path …))"));
                    }
                    create.location = Some(value);
                    continue;
                }
                create
                    .properties
                    .insert(format!("option.{}", key.to_ascii_lowercase()), value);
            }
        } else {
            break;
        }
    }
    if c.eat(&["as"]) && !c.at_query() {
        return Err(c.error("AS without a query"));
    }
    if !c.done() {
        if !c.at_query() {
            return Err(c.error("unexpected text"));
        }
        create.query_offset = Some(c.offset());
    }
    Ok(Some(TableCommand::CreateTable(create)))
}

fn parse_drop(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(text, "DROP TABLE [IF EXISTS] name")?;
    c.at = 1;
    // `DROP SCHEMA` stays DataFusion's: a schema of the session.
    if c.eat(&["database"]) {
        c.form = "DROP DATABASE [IF EXISTS] name [RESTRICT | CASCADE]";
        let if_exists = c.eat(&["if", "exists"]);
        let name = c.database_name()?;
        let cascade = c.eat(&["cascade"]);
        if !cascade {
            c.eat(&["restrict"]);
        }
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        return Ok(Some(TableCommand::DropDatabase {
            name: name.to_ascii_lowercase(),
            if_exists,
            cascade,
        }));
    }
    if !c.eat(&["table"]) {
        return Ok(None);
    }
    let if_exists = c.eat(&["if", "exists"]);
    let Some(name) = table_name(&c.tokens, &mut c.at) else {
        return Ok(None);
    };
    c.eat(&["purge"]);
    if !c.done() {
        // A list of tables, CASCADE…: DataFusion's.
        return Ok(None);
    }
    Ok(Some(TableCommand::DropTable { name, if_exists }))
}

fn parse_use(text: &str) -> Result<TableCommand> {
    let mut c = Cursor::new(text, "USE [DATABASE] name")?;
    c.at = 1;
    let _ = c.eat(&["database"]) || c.eat(&["schema"]) || c.eat(&["namespace"]);
    let database = c.database_name()?;
    if !c.done() {
        return Err(c.error("unexpected text"));
    }
    Ok(TableCommand::Use { database })
}

fn parse_show(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(text, "SHOW PARTITIONS name [PARTITION (c = 'v')]")?;
    c.at = 1;
    if c.eat(&["databases"]) || c.eat(&["schemas"]) {
        return Ok(Some(TableCommand::ShowDatabases));
    }
    if c.eat(&["tables"]) {
        let database = match c.eat(&["in"]) || c.eat(&["from"]) {
            true => Some(c.database_name()?),
            false => None,
        };
        c.eat(&["like"]);
        let pattern = match c.done() {
            true => None,
            false => Some(c.string("the pattern of SHOW TABLES")?),
        };
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        if database.is_none() && pattern.is_none() {
            return Ok(None);
        }
        return Ok(Some(TableCommand::ShowTables { database, pattern }));
    }
    if !c.eat(&["partitions"]) {
        return Ok(None);
    }
    let (table, spec) = c.table_and_spec()?;
    Ok(Some(TableCommand::ShowPartitions { table, spec }))
}

fn parse_alter(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(
        text,
        "ALTER TABLE name ADD [IF NOT EXISTS] PARTITION (c = 'v') [LOCATION 'path'] … or ALTER TABLE name DROP [IF EXISTS] PARTITION (c = 'v') [, PARTITION …]",
    )?;
    c.at = 1;
    if !c.eat(&["table"]) {
        return Ok(None);
    }
    let Some(table) = table_name(&c.tokens, &mut c.at) else {
        return Ok(None);
    };
    if c.eat(&["add"]) {
        let if_not_exists = c.eat(&["if", "not", "exists"]);
        if !c.peek_word("partition") {
            return Ok(None);
        }
        let mut partitions = Vec::new();
        while c.eat(&["partition"]) {
            let spec = c.partition_spec(false)?;
            let location = match c.eat(&["location"]) {
                true => Some(c.string("LOCATION")?),
                false => None,
            };
            partitions.push((spec, location));
        }
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        return Ok(Some(TableCommand::AddPartitions {
            table,
            if_not_exists,
            partitions,
        }));
    }
    if c.eat(&["recover", "partitions"]) {
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        return Ok(Some(TableCommand::RepairTable {
            table,
            mode: RepairMode::Add,
        }));
    }
    if c.eat(&["drop"]) {
        let if_exists = c.eat(&["if", "exists"]);
        if !c.peek_word("partition") {
            return Ok(None);
        }
        let mut specs = Vec::new();
        while c.eat(&["partition"]) {
            specs.push(c.partition_spec(false)?);
            if matches!(c.peek(), Some(Token::Comma)) {
                c.at += 1;
            }
        }
        c.eat(&["purge"]);
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        return Ok(Some(TableCommand::DropPartitions {
            table,
            if_exists,
            specs,
        }));
    }
    Ok(None)
}

fn parse_truncate(text: &str) -> Result<TableCommand> {
    let mut c = Cursor::new(text, "TRUNCATE TABLE name [PARTITION (c = 'v', …)]")?;
    c.at = 1;
    c.eat(&["table"]);
    let (table, spec) = c.table_and_spec()?;
    Ok(TableCommand::Truncate { table, spec })
}

fn parse_msck(text: &str) -> Result<TableCommand> {
    let mut c = Cursor::new(text, "MSCK REPAIR TABLE name [{ADD|DROP|SYNC} PARTITIONS]")?;
    c.at = 1;
    if !c.eat(&["repair", "table"]) {
        return Err(c.error("unexpected text"));
    }
    let table = c.name("the table name")?;
    let mode = if c.eat(&["add", "partitions"]) {
        RepairMode::Add
    } else if c.eat(&["drop", "partitions"]) {
        RepairMode::Drop
    } else if c.eat(&["sync", "partitions"]) {
        RepairMode::Sync
    } else {
        RepairMode::Add
    };
    if !c.done() {
        return Err(c.error("unexpected text"));
    }
    Ok(TableCommand::RepairTable { table, mode })
}

fn parse_describe(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(
        text,
        "DESCRIBE [TABLE] [EXTENDED] name or DESCRIBE DATABASE [EXTENDED] name",
    )?;
    c.at = 1;
    if c.eat(&["database"]) || c.eat(&["schema"]) || c.eat(&["namespace"]) {
        c.eat(&["extended"]);
        let name = c.database_name()?;
        if !c.done() {
            return Err(c.error("unexpected text"));
        }
        return Ok(Some(TableCommand::DescribeDatabase { name }));
    }
    let table_keyword = c.eat(&["table"]);
    let extended = c.eat(&["extended"]) || c.eat(&["formatted"]);
    let Some(table) = table_name(&c.tokens, &mut c.at) else {
        return match extended || table_keyword {
            true => Err(c.error("missing the table name")),
            false => Ok(None),
        };
    };
    if !c.done() {
        // `DESCRIBE t col` and other forms: DataFusion's (or its error).
        return match extended || table_keyword {
            true => Err(c.error("unexpected text")),
            false => Ok(None),
        };
    }
    Ok(Some(match extended {
        true => TableCommand::DescribeExtended { table },
        false => TableCommand::Describe { table },
    }))
}

fn parse_insert(text: &str) -> Result<Option<TableCommand>> {
    let mut c = Cursor::new(
        text,
        "[WITH …] INSERT INTO | OVERWRITE [TABLE] name [PARTITION (c = 'v', …)] [(columns) | BY NAME] query | TABLE name",
    )?;
    c.at = 1;
    let overwrite = if c.eat(&["overwrite"]) {
        true
    } else if c.eat(&["into"]) {
        false
    } else {
        return Ok(None);
    };
    c.eat(&["table"]);
    let Some(table) = table_name(&c.tokens, &mut c.at) else {
        return match overwrite {
            true => Err(c.error("missing the table name")),
            false => Ok(None),
        };
    };
    let spec = match c.eat(&["partition"]) {
        true => Some(c.partition_spec(true)?),
        false => None,
    };
    let by_name = c.eat(&["by", "name"]);
    // `(a, b) query` names columns; `(SELECT …)` is a query.
    let columns = match c.peek() {
        _ if by_name => None,
        Some(Token::LParen)
            if !["select", "with", "values", "from"]
                .iter()
                .any(|k| is_word(c.tokens.get(c.at + 1), k)) =>
        {
            Some(c.names()?)
        }
        _ => None,
    };
    if overwrite {
        c.eat(&["if", "not", "exists"]);
    }
    if c.done() || !c.at_query() {
        return match overwrite || spec.is_some() {
            true => Err(c.error("missing the query")),
            false => Ok(None),
        };
    }
    // `TABLE s`, Spark's (and SQL's) short form of `SELECT * FROM s`.
    let query_text = match c.eat(&["table"]) {
        true => {
            let name = c.name("the table name after TABLE")?;
            if !c.done() {
                return Err(c.error("unexpected text after TABLE name"));
            }
            Some(format!("SELECT * FROM {name}"))
        }
        false => None,
    };
    let query_offset = match query_text {
        Some(_) => text.len(),
        None => c.offset(),
    };
    Ok(Some(TableCommand::Insert {
        table,
        overwrite,
        spec,
        columns,
        by_name,
        query_offset,
        query_text,
    }))
}

/// `WITH name AS (…), … INSERT …`: the common table expressions go with the INSERT's query.
/// `None` when no INSERT follows the WITH clause (a query).
fn parse_with_insert(text: &str) -> Result<Option<TableCommand>> {
    let tokens = tokens(text)?;
    let mut depth = 0usize;
    let insert = tokens.iter().position(|(_, token)| {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth == 0 && matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("insert"))
    });
    let Some(insert) = insert else {
        return Ok(None);
    };
    let at = tokens[insert].0;
    let Some(mut command) = parse_insert(&text[at..])? else {
        return Ok(None);
    };
    if let TableCommand::Insert {
        query_offset,
        query_text,
        ..
    } = &mut command
    {
        let query = query_text
            .take()
            .unwrap_or_else(|| text[at + *query_offset..].to_string());
        *query_offset += at;
        *query_text = Some(format!("{} {query}", text[..at].trim_end()));
    }
    Ok(Some(command))
}

fn parse_checkpoint(text: &str) -> Result<TableCommand> {
    let mut c = Cursor::new(text, "CHECKPOINT [TABLE] name AS query")?;
    c.at = 1;
    c.eat(&["table"]);
    let name = c.name("the name")?;
    if !c.eat(&["as"]) {
        return Err(c.error("missing AS"));
    }
    if c.done() || !c.at_query() {
        return Err(c.error("missing the query"));
    }
    Ok(TableCommand::Checkpoint {
        name,
        query_offset: c.offset(),
    })
}

/// The parts of a table name as Spark's catalog resolves them: quotes removed, lower-cased
/// (Spark's catalog is case-insensitive, also for quoted names).
pub fn name_parts(name: &str) -> Result<Vec<String>> {
    let tokens = tokens(name)?;
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some((_, Token::Word(word))) = tokens.get(at) {
        parts.push(word.value.to_ascii_lowercase());
        at += 1;
        if !matches!(tokens.get(at), Some((_, Token::Period))) {
            break;
        }
        at += 1;
    }
    if at != tokens.len() || parts.is_empty() {
        return Err(Error::Syntax {
            message: format!("`{name}` is not a table name"),
            position: None,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<TableCommand> {
        parse_table_command(text).unwrap()
    }

    #[test]
    fn claims_only_spark_forms() {
        assert_eq!(parse("CREATE TABLE t (a INT)"), None);
        assert_eq!(parse("CREATE TABLE t AS SELECT 1"), None);
        assert_eq!(
            parse("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'x'"),
            None
        );
        assert_eq!(
            parse("INSERT INTO t VALUES (1)"),
            parse("INSERT INTO t VALUES (1)")
        );
        assert_eq!(parse("SHOW TABLES"), None);
        // DESCRIBE t is Spark's for a warehouse table (the session decides), and a column
        // or other forms are DataFusion's.
        assert_eq!(
            parse("DESCRIBE t"),
            Some(TableCommand::Describe { table: "t".into() })
        );
        assert_eq!(parse("DESCRIBE t a"), None);
        assert_eq!(
            parse("SHOW TABLES IN db LIKE 'a*'"),
            Some(TableCommand::ShowTables {
                database: Some("db".into()),
                pattern: Some("a*".into())
            })
        );
        let Some(TableCommand::CreateTable(create)) = parse(
            "CREATE TABLE IF NOT EXISTS s.t (a INT, day STRING) USING parquet PARTITIONED BY (day) TBLPROPERTIES ('owner' = 'me') AS SELECT 1",
        ) else {
            panic!("not a CREATE TABLE")
        };
        assert_eq!(create.name, "s.t");
        assert!(create.if_not_exists);
        assert_eq!(create.columns.as_deref(), Some("a INT, day STRING"));
        assert_eq!(create.partitioned_by, vec!["day"]);
        assert_eq!(create.properties["owner"], "me");
        assert!(create.query_offset.is_some());
    }

    #[test]
    fn insert_with_partitions() {
        let text = "INSERT OVERWRITE TABLE t PARTITION (day = '2024-01-01', k) SELECT 1, 2";
        let Some(TableCommand::Insert {
            spec,
            overwrite,
            query_offset,
            ..
        }) = parse(text)
        else {
            panic!("not an INSERT")
        };
        assert!(overwrite);
        assert_eq!(
            spec,
            Some(PartitionSpec(vec![
                ("day".into(), Some("2024-01-01".into())),
                ("k".into(), None)
            ]))
        );
        assert_eq!(&text[query_offset..], "SELECT 1, 2");
        let Some(TableCommand::Insert { columns, .. }) =
            parse("INSERT INTO t (b, a) VALUES (1, 2)")
        else {
            panic!("not an INSERT")
        };
        assert_eq!(columns, Some(vec!["b".to_string(), "a".to_string()]));
        let Some(TableCommand::Insert { spec, .. }) =
            parse("INSERT OVERWRITE t PARTITION (day = NULL) SELECT 1")
        else {
            panic!("not an INSERT")
        };
        assert_eq!(
            spec,
            Some(PartitionSpec(vec![(
                "day".into(),
                Some(crate::warehouse::NULL_PARTITION.into())
            )]))
        );
        assert!(
            parse_table_command("INSERT OVERWRITE t PARTITION (day = 1 + 1) SELECT 1").is_err()
        );
    }

    #[test]
    fn insert_forms() {
        let text = "WITH c AS (SELECT 1 AS a) INSERT INTO t BY NAME SELECT * FROM c";
        assert_eq!(
            parse(text),
            Some(TableCommand::Insert {
                table: "t".into(),
                overwrite: false,
                spec: None,
                columns: None,
                by_name: true,
                query_offset: text.find("SELECT * FROM c").unwrap(),
                query_text: Some("WITH c AS (SELECT 1 AS a) SELECT * FROM c".into()),
            })
        );
        let text = "INSERT INTO t TABLE db.s";
        assert_eq!(
            parse(text),
            Some(TableCommand::Insert {
                table: "t".into(),
                overwrite: false,
                spec: None,
                columns: None,
                by_name: false,
                query_offset: text.len(),
                query_text: Some("SELECT * FROM db.s".into()),
            })
        );
        // A WITH query without an INSERT is DataFusion's.
        assert_eq!(parse("WITH c AS (SELECT 1) SELECT * FROM c"), None);
        assert_eq!(
            name_parts("spark_catalog.`Db`.T").unwrap(),
            ["spark_catalog", "db", "t"]
        );
        assert!(name_parts("a b").is_err());
    }
}

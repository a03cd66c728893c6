//! Splitting SQL text into statements at top-level semicolons.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::Position;
use crate::error::{Error, Result};

/// One statement cut out of a longer text, with the position of its first character in that
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStatement {
    /// The statement without its terminating `;` and without leading whitespace or comments.
    pub text: String,
    /// Where `text` starts in the original text.
    pub start: Position,
    /// The file (or other named source) the text was read from, when known.
    pub origin: Option<std::sync::Arc<str>>,
}

impl SqlStatement {
    /// The statement text padded with the newlines and spaces that preceded it, so a parser
    /// run over it reports positions that are valid in the original text.
    pub fn positioned_text(&self) -> String {
        let mut padded = "\n".repeat(self.start.line - 1);
        padded.push_str(&" ".repeat(self.start.column - 1));
        padded.push_str(&self.text);
        padded
    }
}

/// Splits `text` into statements. Empty statements (`;;`, comment-only tails) are dropped.
/// An unterminated string or quoted identifier is a syntax error with its position.
pub fn split_statements(text: &str) -> Result<Vec<SqlStatement>> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| Error::Syntax {
            message: e.message,
            position: Some(Position {
                line: e.location.line as usize,
                column: e.location.column as usize,
            }),
        })?;
    let offsets = LineOffsets::new(text);

    let mut statements = Vec::new();
    // (start position, start byte offset) of the statement being collected.
    let mut current: Option<(Position, usize)> = None;
    let mut last_end = 0;
    for token in &tokens {
        let start = Position {
            line: token.span.start.line as usize,
            column: token.span.start.column as usize,
        };
        match &token.token {
            Token::SemiColon => {
                if let Some((position, begin)) = current.take() {
                    statements.push(SqlStatement {
                        text: text[begin..last_end].to_string(),
                        start: position,
                        origin: None,
                    });
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                if current.is_none() {
                    current = Some((start, offsets.byte_offset(text, start)));
                }
                let end = Position {
                    line: token.span.end.line as usize,
                    column: token.span.end.column as usize,
                };
                last_end = offsets.byte_offset(text, end);
            }
        }
    }
    if let Some((position, begin)) = current {
        // The last statement may lack its `;`; keep trailing comments out of it.
        statements.push(SqlStatement {
            text: text[begin..last_end].to_string(),
            start: position,
            origin: None,
        });
    }
    Ok(statements)
}

/// Whether `text` ends (ignoring whitespace and comments) with a `;` that closes a statement,
/// i.e. whether a REPL buffer is ready to run. Text inside an unterminated string or comment is
/// never complete.
pub fn ends_with_terminator(text: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return false;
    };
    let last = tokens.iter().rev().find(|t| {
        !matches!(
            t,
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab)
                | Token::Whitespace(Whitespace::SingleLineComment { .. })
                | Token::Whitespace(Whitespace::MultiLineComment(_))
                | Token::EOF
        )
    });
    matches!(last, Some(Token::SemiColon))
}

/// Byte offset of the start of every line, to turn (line, column) into a byte offset.
pub(crate) struct LineOffsets(Vec<usize>);

impl LineOffsets {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    pub(crate) fn byte_offset(&self, text: &str, position: Position) -> usize {
        let Some(&line_start) = self.0.get(position.line.saturating_sub(1)) else {
            return text.len();
        };
        text[line_start..]
            .char_indices()
            .nth(position.column.saturating_sub(1))
            .map_or(text.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(String, usize, usize)> {
        split_statements(sql)
            .unwrap()
            .into_iter()
            .map(|s| (s.text, s.start.line, s.start.column))
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "select 'a;b' as x; -- c;\n  select \"q;\" from t;;\n/* ; */ select 3";
        assert_eq!(
            texts(sql),
            vec![
                ("select 'a;b' as x".to_string(), 1, 1),
                ("select \"q;\" from t".to_string(), 2, 3),
                ("select 3".to_string(), 3, 9),
            ]
        );
    }

    #[test]
    fn comment_only_tail_is_not_a_statement() {
        assert_eq!(
            texts("select 1; -- done\n"),
            vec![("select 1".into(), 1, 1)]
        );
        assert!(texts("  -- nothing here\n").is_empty());
    }

    #[test]
    fn unterminated_string_is_a_positioned_syntax_error() {
        let err = split_statements("select 1;\nselect 'abc").unwrap_err();
        assert_eq!(err.position(), Some(Position { line: 2, column: 8 }));
    }

    #[test]
    fn multibyte_characters_keep_offsets_right() {
        assert_eq!(
            texts("select 'ü'; select 'é' ;"),
            vec![("select 'ü'".into(), 1, 1), ("select 'é'".into(), 1, 13)]
        );
    }

    #[test]
    fn terminator_detection_ignores_comments_and_strings() {
        assert!(ends_with_terminator("select 1; -- trailing"));
        assert!(!ends_with_terminator("select ';'"));
        assert!(!ends_with_terminator("select 1 /* ; */"));
        assert!(!ends_with_terminator("select 'open;"));
    }
}

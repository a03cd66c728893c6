//! Pointing at the place in SQL text where something went wrong.

use super::Position;

/// Splits a sqlparser message of the form `Expected: …, found: x at Line: 3, Column: 7` into
/// the message without its location suffix and the position.
pub fn parse_error_position(message: &str) -> (String, Option<Position>) {
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    let Some(at) = message.rfind(" at Line: ") else {
        return (message.to_string(), None);
    };
    let location = &message[at + " at Line: ".len()..];
    let parsed = location
        .split_once(", Column: ")
        .and_then(|(line, column)| {
            let column: String = column.chars().take_while(char::is_ascii_digit).collect();
            Some(Position {
                line: line.trim().parse().ok()?,
                column: column.parse().ok()?,
            })
        });
    match parsed {
        Some(position) if position.line > 0 => (message[..at].to_string(), Some(position)),
        _ => (message.to_string(), None),
    }
}

/// The source line at `position` with a caret under the column, prefixed by the line number:
///
/// ```text
///   3 | selec * from t
///     | ^
/// ```
///
/// Returns `None` when the position is outside `source`.
pub fn caret_snippet(source: &str, position: Position) -> Option<String> {
    let line = source.lines().nth(position.line.checked_sub(1)?)?;
    // Tabs become single spaces so the caret lines up whatever the terminal's tab width.
    let shown: String = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let number = position.line.to_string();
    let gutter = " ".repeat(number.len());
    let indent = " ".repeat(position.column.saturating_sub(1).min(shown.chars().count()));
    Some(format!("{number} | {shown}\n{gutter} | {indent}^"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_position_from_parser_messages() {
        let (message, position) = parse_error_position(
            "sql parser error: Expected: an SQL statement, found: selec at Line: 2, Column: 3",
        );
        assert_eq!(message, "Expected: an SQL statement, found: selec");
        assert_eq!(position, Some(Position { line: 2, column: 3 }));
    }

    #[test]
    fn messages_without_position_are_kept_whole() {
        let (message, position) =
            parse_error_position("sql parser error: recursion limit exceeded");
        assert_eq!(message, "recursion limit exceeded");
        assert_eq!(position, None);
    }

    #[test]
    fn caret_points_at_the_column() {
        let snippet = caret_snippet(
            "select 1;\nselect * fro t;",
            Position {
                line: 2,
                column: 10,
            },
        );
        assert_eq!(snippet.unwrap(), "2 | select * fro t;\n  |          ^");
    }
}

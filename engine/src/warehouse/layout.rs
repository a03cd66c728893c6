//! Hive-style partition directories: `c=v/d=w`, with the characters a path cannot hold
//! escaped as `%XX` and NULL written as `__HIVE_DEFAULT_PARTITION__`, exactly as Spark's
//! `ExternalCatalogUtils` does, so Spark reads our tables and we read Spark's.

use super::NULL_PARTITION;

/// Whether Spark escapes `c` in a path name.
fn needs_escape(c: char) -> bool {
    c < ' '
        || c == '\u{7f}'
        || matches!(
            c,
            '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
        )
}

/// A partition column name or value as it appears in a directory name.
pub fn escape_path_name(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if needs_escape(c) {
            escaped.push_str(&format!("%{:02X}", c as u32));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// The inverse of [`escape_path_name`]; text that is not a valid escape stays as it is.
pub fn unescape_path_name(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if bytes[i] == b'%'
            && i + 2 < text.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(code) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(code as char);
            i += 3;
            continue;
        }
        let c = text[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `c=v/d=w` for the partition with `values` of `columns`; empty for no columns.
pub fn partition_dir(columns: &[String], values: &[Option<String>]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            let value = match value {
                Some(value) if !value.is_empty() => escape_path_name(value),
                _ => NULL_PARTITION.to_string(),
            };
            format!("{}={value}", escape_path_name(column))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The partition values a relative directory path `c=v/d=w` names for `columns`, or `None`
/// when it does not name them in order.
pub fn parse_partition_dir(columns: &[String], dir: &str) -> Option<Vec<Option<String>>> {
    let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() != columns.len() {
        return None;
    }
    parts
        .iter()
        .zip(columns)
        .map(|(part, column)| {
            let (name, value) = part.split_once('=')?;
            if !unescape_path_name(name).eq_ignore_ascii_case(column) {
                return None;
            }
            Some(match value {
                NULL_PARTITION => None,
                value => Some(unescape_path_name(value)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_spark_does() {
        assert_eq!(escape_path_name("a/b=c d"), "a%2Fb%3Dc d");
        assert_eq!(unescape_path_name("a%2Fb%3Dc d"), "a/b=c d");
        assert_eq!(unescape_path_name("100%"), "100%");
        let columns = vec!["day".to_string(), "k".to_string()];
        let dir = partition_dir(&columns, &[Some("2024-01-01".into()), None]);
        assert_eq!(dir, "day=2024-01-01/k=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(
            parse_partition_dir(&columns, &dir),
            Some(vec![Some("2024-01-01".into()), None])
        );
        assert_eq!(parse_partition_dir(&columns, "day=1"), None);
    }
}

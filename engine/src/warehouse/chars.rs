//! CHAR(n) and VARCHAR(n) columns of warehouse tables, as Spark 3.1+ writes them: a value
//! longer than `n` characters fails the write (`[EXCEED_LIMIT_LENGTH]`) unless only spaces
//! are over (they are cut); a CHAR(n) value is padded with spaces to `n`. The columns are
//! strings in the files; the catalog keeps the declared type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// A declared character type: `char(n)` or `varchar(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharType {
    pub length: usize,
    /// CHAR: padded with spaces to `length`.
    pub padded: bool,
}

impl CharType {
    /// `char(3)`, `varchar(10)`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        let (kind, rest) = text.split_once('(')?;
        let length = rest.strip_suffix(')')?.trim().parse().ok()?;
        match kind.trim() {
            "char" | "character" => Some(Self {
                length,
                padded: true,
            }),
            "varchar" | "character varying" | "char varying" => Some(Self {
                length,
                padded: false,
            }),
            _ => None,
        }
    }

    pub fn name(&self) -> String {
        match self.padded {
            true => format!("char({})", self.length),
            false => format!("varchar({})", self.length),
        }
    }

    /// `value` written to a column of this type.
    pub fn write(&self, expr: Expr, column: &str) -> Expr {
        ScalarUDF::new_from_impl(WriteChars {
            kind: *self,
            column: column.to_string(),
            signature: Signature::string(1, Volatility::Immutable),
        })
        .call(vec![expr])
    }

    fn apply(&self, value: &str, column: &str) -> Result<String> {
        let count = value.chars().count();
        let value = match count > self.length {
            false => value.to_string(),
            true => {
                // Spark cuts spaces past the limit; anything else over it fails.
                let trimmed = value.trim_end_matches(' ');
                let kept = trimmed.chars().count().max(self.length);
                if trimmed.chars().count() > self.length {
                    return exec_err!(
                        "[EXCEED_LIMIT_LENGTH] Exceeds char/varchar type length limitation: {} (column `{column}` is {}; the value has {count} characters)",
                        self.length,
                        self.name()
                    );
                }
                value.chars().take(kept).collect()
            }
        };
        Ok(match self.padded {
            true => format!("{value:<width$}", width = self.length),
            false => value,
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WriteChars {
    kind: CharType,
    column: String,
    signature: Signature,
}

impl ScalarUDFImpl for WriteChars {
    fn name(&self) -> &str {
        if self.kind.padded {
            "write_char"
        } else {
            "write_varchar"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        match value {
            ColumnarValue::Scalar(scalar) => {
                let text = match scalar {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.clone()
                    }
                    ScalarValue::Null => None,
                    other => {
                        return exec_err!("{} of a {} value", self.name(), other.data_type());
                    }
                };
                let written = text
                    .map(|t| self.kind.apply(&t, &self.column))
                    .transpose()?;
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(written)))
            }
            ColumnarValue::Array(array) => {
                let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8)
                    .map_err(DataFusionError::from)?;
                let strings = strings.as_string::<i32>();
                let mut out =
                    StringBuilder::with_capacity(strings.len(), strings.value_data().len());
                for i in 0..strings.len() {
                    match strings.is_null(i) {
                        true => out.append_null(),
                        false => out.append_value(self.kind.apply(strings.value(i), &self.column)?),
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_rules() {
        let varchar = CharType::parse("VARCHAR(3)").unwrap();
        assert_eq!(varchar.apply("ab", "c").unwrap(), "ab");
        assert_eq!(varchar.apply("abc   ", "c").unwrap(), "abc");
        assert!(varchar.apply("abcd", "c").is_err());
        let char = CharType::parse("char(4)").unwrap();
        assert_eq!(char.apply("ab", "c").unwrap(), "ab  ");
        assert_eq!(char.apply("", "c").unwrap(), "    ");
        assert!(char.apply("abcde", "c").is_err());
        assert_eq!(CharType::parse("string"), None);
        assert_eq!(char.name(), "char(4)");
    }
}

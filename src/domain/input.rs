//! The checks every input passes at the edge: strings without NUL bytes and within a length,
//! free-form JSON within a size, dates the database can hold, and excerpts of input short enough
//! to quote back in an error message.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};

/// Characters of an input quoted back in an error message at most.
pub const EXCERPT_CHARS: usize = 100;

/// Largest free-form JSON object accepted (a `serviceProviderDetails`), serialized.
pub const MAX_DETAILS_BYTES: usize = 64 * 1024;

/// Earliest year of a date accepted; PostgreSQL holds far older ones, but no bank record is.
pub const MIN_YEAR: i32 = 1;

/// Latest year of a date accepted.
pub const MAX_YEAR: i32 = 9999;

/// Why an input was refused; the text names the field and never quotes more than an excerpt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A NUL byte, which PostgreSQL cannot store in text.
    #[error("{field} must not contain NUL bytes")]
    NulByte {
        /// The field.
        field: String,
    },
    /// Longer than the field allows.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: String,
        /// The limit.
        max: usize,
    },
    /// A free-form JSON value over the size limit.
    #[error("{field} is larger than {max} bytes")]
    TooLarge {
        /// The field.
        field: String,
        /// The limit in bytes.
        max: usize,
    },
    /// A date outside what linkstate keeps.
    #[error("{field} must be between year {MIN_YEAR} and year {MAX_YEAR}")]
    DateOutOfRange {
        /// The field.
        field: String,
    },
}

/// Checks a string field: no NUL byte, at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), InputError> {
    if value.contains('\0') {
        return Err(InputError::NulByte {
            field: field.to_string(),
        });
    }
    // Bytes bound characters from above: most values never need the count.
    if value.len() > max && value.chars().count() > max {
        return Err(InputError::TooLong {
            field: field.to_string(),
            max,
        });
    }
    Ok(())
}

/// Checks a free-form JSON object: at most [`MAX_DETAILS_BYTES`] serialized, no NUL anywhere
/// (in keys or strings, at any depth).
pub fn details(field: &str, value: &Map<String, Value>) -> Result<(), InputError> {
    let serialized = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if serialized > MAX_DETAILS_BYTES {
        return Err(InputError::TooLarge {
            field: field.to_string(),
            max: MAX_DETAILS_BYTES,
        });
    }
    if value
        .iter()
        .any(|(k, v)| k.contains('\0') || contains_nul(v))
    {
        return Err(InputError::NulByte {
            field: field.to_string(),
        });
    }
    Ok(())
}

/// Whether a NUL byte hides anywhere in a JSON value, keys included.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A provider's free-form JSON, read from `size` bytes, as an event may carry it: whole when
/// within [`MAX_DETAILS_BYTES`], else only the `essential` fields and `"truncated": true`, so
/// that no provider body, however large, is copied into every stream's buffer.
pub fn bounded_details(
    value: Map<String, Value>,
    size: usize,
    essential: &[&str],
) -> Map<String, Value> {
    if size <= MAX_DETAILS_BYTES {
        return value;
    }
    let mut kept: Map<String, Value> = value
        .into_iter()
        .filter(|(key, _)| essential.contains(&key.as_str()))
        .collect();
    let kept_size = serde_json::to_vec(&kept).map_or(usize::MAX, |bytes| bytes.len());
    if kept_size > MAX_DETAILS_BYTES {
        kept.clear();
    }
    kept.insert("truncated".into(), Value::Bool(true));
    kept
}

/// Checks that a date lies within the years linkstate accepts.
pub fn date(field: &str, value: NaiveDate) -> Result<NaiveDate, InputError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&value.year()) {
        Ok(value)
    } else {
        Err(InputError::DateOutOfRange {
            field: field.to_string(),
        })
    }
}

/// Checks that a timestamp lies within the years linkstate accepts.
pub fn timestamp(field: &str, value: DateTime<Utc>) -> Result<DateTime<Utc>, InputError> {
    date(field, value.date_naive()).map(|_| value)
}

/// The input as an error message may quote it: at most [`EXCERPT_CHARS`] characters, in
/// quotes, with `…` when cut.
pub fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}…", &value[..end]),
    }
}

/// A message that may quote input (a parser's error), cut to a few times [`EXCERPT_CHARS`].
pub fn clip(message: &str) -> String {
    match message.char_indices().nth(2 * EXCERPT_CHARS) {
        None => message.to_string(),
        Some((end, _)) => format!("{}…", &message[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nul_and_long_strings() {
        assert_eq!(text("f", "ok", 5), Ok(()));
        assert!(matches!(
            text("f", "a\0b", 5),
            Err(InputError::NulByte { .. })
        ));
        assert!(matches!(
            text("f", "abcdef", 5),
            Err(InputError::TooLong { max: 5, .. })
        ));
        // Five characters, more bytes: still within the limit.
        assert_eq!(text("f", "ééééé", 5), Ok(()));
    }

    #[test]
    fn refuses_large_or_nul_details() {
        let mut map = Map::new();
        map.insert("k".into(), Value::String("x".repeat(MAX_DETAILS_BYTES)));
        let error = details("serviceProviderDetails", &map).unwrap_err();
        assert_eq!(
            error.to_string(),
            "serviceProviderDetails is larger than 65536 bytes"
        );
        let mut nested = Map::new();
        nested.insert("a".into(), serde_json::json!([{"b": "c\u{0}"}]));
        assert!(matches!(
            details("d", &nested),
            Err(InputError::NulByte { .. })
        ));
    }

    #[test]
    fn large_provider_details_keep_their_essentials() {
        let mut map = Map::new();
        map.insert("webhook_code".into(), "ERROR".into());
        map.insert("junk".into(), Value::String("x".repeat(MAX_DETAILS_BYTES)));
        let size = serde_json::to_vec(&map).unwrap().len();
        let bounded = bounded_details(map.clone(), size, &["webhook_code"]);
        assert_eq!(
            Value::Object(bounded),
            serde_json::json!({"webhook_code": "ERROR", "truncated": true})
        );
        map.remove("junk");
        assert_eq!(bounded_details(map.clone(), 40, &["webhook_code"]), map);
    }

    #[test]
    fn dates_within_the_years_kept() {
        let ancient = NaiveDate::from_ymd_opt(-4714, 1, 1).unwrap();
        assert!(date("startDate", ancient).is_err());
        let fine = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(date("startDate", fine), Ok(fine));
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "x".repeat(3_000_000);
        assert!(excerpt(&long).len() < EXCERPT_CHARS + 10);
    }
}

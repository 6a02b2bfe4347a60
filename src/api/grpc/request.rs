//! Reading request fields: ids, page sizes and page tokens, each refused with a clear message.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Status;

use crate::domain::input::{self, excerpt};

/// Most items one page may hold.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Items in a page when the request does not say.
pub const DEFAULT_PAGE_SIZE: i32 = 25;

/// Longest page token accepted: ours are well under it.
const MAX_TOKEN_LEN: usize = 1024;

/// Longest free-text filter value (an external customer id) accepted.
pub const MAX_FILTER_LEN: usize = 255;

/// An optional id field: empty means unset; anything else must parse.
pub fn optional_id<T: FromStr>(field: &str, value: &str) -> Result<Option<T>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        Status::invalid_argument(format!("{field} {} is not a valid id", excerpt(value)))
    })
}

/// An optional free-text field (a filter): empty means unset; no NUL bytes, bounded length.
pub fn optional_text(field: &str, value: &str) -> Result<Option<String>, Status> {
    input::text(field, value, MAX_FILTER_LEN).map_err(invalid)?;
    Ok(Some(value.to_string()).filter(|s| !s.is_empty()))
}

/// A refused input as INVALID_ARGUMENT; its message names the field.
pub fn invalid(error: impl std::fmt::Display) -> Status {
    Status::invalid_argument(error.to_string())
}

/// A page size: 0 means the default, over the maximum is capped, negative is refused.
pub fn page_size(value: i32) -> Result<i64, Status> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE as i64),
        n if n < 0 => Err(Status::invalid_argument("pageSize must not be negative")),
        n => Ok(n.min(MAX_PAGE_SIZE) as i64),
    }
}

/// An opaque page token carrying `T`.
pub fn encode_token<T: serde::Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("tokens serialize"))
}

/// Reads a page token we handed out; empty means the first page.
pub fn decode_token<T: serde::de::DeserializeOwned>(token: &str) -> Result<Option<T>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Status::invalid_argument(
            "pageToken is not one this service handed out",
        ));
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map(Some)
        .ok_or_else(|| Status::invalid_argument("pageToken is not one this service handed out"))
}

/// A date inside a page token, within what the database holds; a token that decodes to
/// another date was not handed out by us.
pub fn token_date(date: chrono::NaiveDate) -> Result<chrono::NaiveDate, Status> {
    input::date("pageToken", date)
        .map_err(|_| Status::invalid_argument("pageToken is not one this service handed out"))
}

/// An enum field that must be set to a known value.
pub fn known_enum<T: FromStr>(field: &str, name: Option<&str>) -> Result<T, Status> {
    name.and_then(|name| name.parse().ok())
        .ok_or_else(|| Status::invalid_argument(format!("{field} has an unknown or unset value")))
}

/// A list of event types, each a known, set value.
pub fn event_types(
    field: &str,
    values: &[i32],
) -> Result<Vec<crate::domain::event::EventType>, Status> {
    values
        .iter()
        .map(|value| {
            let name = crate::proto::event::Type::try_from(*value)
                .ok()
                .filter(|t| *t != crate::proto::event::Type::Unspecified)
                .map(|t| t.as_str_name());
            known_enum(field, name)
        })
        .collect()
}

/// A timestamp field, within the years the database holds.
pub fn timestamp(
    field: &str,
    value: &prost_types::Timestamp,
) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    let at = u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| chrono::DateTime::from_timestamp(value.seconds, nanos))
        .ok_or_else(|| Status::invalid_argument(format!("{field} is not a valid timestamp")))?;
    input::timestamp(field, at).map_err(invalid)
}

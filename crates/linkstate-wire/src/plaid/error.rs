//! Plaid's error body.

use serde::{Deserialize, Serialize};

/// Plaid's error body (`PlaidError` in the spec), also found in an Item's `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaidApiError {
    /// The broad category: `INVALID_INPUT`, `ITEM_ERROR`, `API_ERROR`, ...
    pub error_type: String,
    /// The precise error: `INVALID_ACCESS_TOKEN`, `ITEM_LOGIN_REQUIRED`, ...
    pub error_code: String,
    /// Why, for some OAuth errors.
    #[serde(default)]
    pub error_code_reason: Option<String>,
    /// A message for developers.
    pub error_message: String,
    /// A message for end users; `null` when no user action helps.
    #[serde(default)]
    pub display_message: Option<String>,
    /// Plaid's id of the failed request (absent in webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-Item breakdown, for multi-Item products.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub causes: Vec<serde_json::Value>,
    /// The HTTP status, when the error came with a webhook.
    #[serde(default)]
    pub status: Option<u16>,
    /// Plaid's page about this error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// What to do about it.
    #[serde(default)]
    pub suggested_action: Option<String>,
    /// The whole error object as received; `null` for errors built locally.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl PlaidApiError {
    /// Reads an error object, keeping all of it in `raw`.
    pub fn from_value(raw: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut error: Self = serde_json::from_value(raw.clone())?;
        error.raw = raw;
        Ok(error)
    }
}

/// Reads `null` as an empty list: Plaid's webhooks send `"causes": null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<serde_json::Value>, D::Error> {
    Ok(Option::<Vec<serde_json::Value>>::deserialize(deserializer)?.unwrap_or_default())
}

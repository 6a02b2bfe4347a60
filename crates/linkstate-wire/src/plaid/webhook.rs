//! The body of a webhook from Plaid: one type for every `webhook_type` / `webhook_code`, the fields
//! we act on typed, everything else kept in `extra`.

use serde::{Deserialize, Serialize};

use super::error::PlaidApiError;
use super::wire::nullable_error;

/// A webhook as Plaid posts it (`SyncUpdatesAvailableWebhook`, `ItemErrorWebhook`, ...).
///
/// Absent and `null` fields both read as `None` and are left out when written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaidWebhook {
    /// `TRANSACTIONS`, `ITEM`, `AUTH`, ...
    pub webhook_type: String,
    /// `SYNC_UPDATES_AVAILABLE`, `ERROR`, `LOGIN_REPAIRED`, ...
    pub webhook_code: String,
    /// The Item concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// `sandbox` or `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The Item's error (ITEM `ERROR`), kept whole in [`PlaidApiError::raw`].
    #[serde(
        default,
        deserialize_with = "nullable_error",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<PlaidApiError>,
    /// Whether the last 30 days are in (`SYNC_UPDATES_AVAILABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_update_complete: Option<bool>,
    /// Whether the whole history is in (`SYNC_UPDATES_AVAILABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub historical_update_complete: Option<bool>,
    /// How many transactions are new (`DEFAULT_UPDATE` and friends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_transactions: Option<u64>,
    /// The ids of removed transactions (`TRANSACTIONS_REMOVED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_transactions: Option<Vec<String>>,
    /// The account concerned (`USER_ACCOUNT_REVOKED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The Item's new webhook URL (`WEBHOOK_UPDATE_ACKNOWLEDGED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_webhook_url: Option<String>,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sync_updates_available() {
        let body = r#"{"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb", "user_id": "usr_9nSp2KuZ2x4JDw",
            "initial_update_complete": true, "historical_update_complete": false,
            "environment": "production"}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        assert_eq!(hook.webhook_code, "SYNC_UPDATES_AVAILABLE");
        assert_eq!(
            hook.item_id.as_deref(),
            Some("wz666MBjYWTp2PDzzggYhM6oWWmBb")
        );
        assert_eq!(hook.initial_update_complete, Some(true));
        assert_eq!(hook.historical_update_complete, Some(false));
        assert_eq!(hook.extra["user_id"], "usr_9nSp2KuZ2x4JDw");
        let again = serde_json::to_value(&hook).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(body).unwrap()
        );
    }

    #[test]
    fn reads_an_item_error_with_its_raw_body() {
        let body = r#"{"webhook_type": "ITEM", "webhook_code": "ERROR",
            "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb", "environment": "production",
            "error": {"display_message": null, "error_code": "ITEM_LOGIN_REQUIRED",
              "error_code_reason": "OAUTH_INVALID_TOKEN", "error_message": "the login details of this item have changed",
              "error_type": "ITEM_ERROR", "status": 400}}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        let error = hook.error.unwrap();
        assert_eq!(error.error_code, "ITEM_LOGIN_REQUIRED");
        assert_eq!(error.status, Some(400));
        assert_eq!(error.raw["error_code_reason"], "OAUTH_INVALID_TOKEN");
        assert!(hook.extra.is_empty());
    }

    #[test]
    fn null_error_and_legacy_fields() {
        let body = r#"{"webhook_type": "TRANSACTIONS", "webhook_code": "TRANSACTIONS_REMOVED",
            "item_id": "x", "error": null, "removed_transactions": ["a", "b"], "environment": "sandbox"}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        assert!(hook.error.is_none());
        assert_eq!(hook.removed_transactions.unwrap(), ["a", "b"]);
        let body = r#"{"webhook_type": "ITEM", "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
            "item_id": "x", "new_webhook_url": "https://example.com/hook", "environment": "sandbox"}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        assert_eq!(
            hook.new_webhook_url.as_deref(),
            Some("https://example.com/hook")
        );
    }
}

//! The bodies of the webhooks the simulator sends, as Plaid's spec writes them, and of Akoya's
//! notifications, in the shape of its sandbox test events.

use serde_json::{Value, json};

use linkstate_wire::plaid::PlaidApiError;

/// Every webhook says where it comes from.
const ENVIRONMENT: &str = "sandbox";

/// TRANSACTIONS `SYNC_UPDATES_AVAILABLE`: go and call `/transactions/sync`.
pub fn sync_updates_available(item_id: &str, historical_update_complete: bool) -> Value {
    json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": item_id,
        "initial_update_complete": true,
        "historical_update_complete": historical_update_complete,
        "environment": ENVIRONMENT,
    })
}

/// Where Akoya keeps notification details, in its sandbox.
const AKOYA_API: &str = "https://sandbox-api.akoya.com";

/// An Akoya notification of `category` (CONSENT, MAINTENANCE) and `kind` (CONSENT_REVOKED, ...)
/// about `id` (a consent id for consent events) at `provider_id`.
pub fn akoya_notification(category: &str, kind: &str, id: &str, provider_id: &str) -> Value {
    let href = if category == "CONSENT" {
        format!("{AKOYA_API}/consents/v1/{id}")
    } else {
        format!("{AKOYA_API}/notifications/v1/maintenance/{id}")
    };
    json!({
        "notificationId": uuid::Uuid::new_v4().to_string(),
        "sentOn": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "category": category,
        "type": kind,
        "notificationPayload": {
            "id": id,
            "idType": category,
            "customFields": [{"name": "PROVIDER", "value": provider_id}],
        },
        "url": {"href": href, "action": "GET"},
    })
}

/// ITEM `ERROR`: the Item needs attention (e.g. `ITEM_LOGIN_REQUIRED`).
pub fn item_error(item_id: &str, error: &PlaidApiError) -> Value {
    json!({
        "webhook_type": "ITEM",
        "webhook_code": "ERROR",
        "item_id": item_id,
        "error": error,
        "environment": ENVIRONMENT,
    })
}

/// ITEM `WEBHOOK_UPDATE_ACKNOWLEDGED`, sent to the new URL after `/item/webhook/update`.
pub fn webhook_update_acknowledged(item_id: &str, new_webhook_url: &str) -> Value {
    json!({
        "webhook_type": "ITEM",
        "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
        "item_id": item_id,
        "error": null,
        "new_webhook_url": new_webhook_url,
        "environment": ENVIRONMENT,
    })
}

/// The webhook `/sandbox/item/fire_webhook` sends for `code`, or `None` for a code it cannot
/// fire. `webhook_type` overrides the code's usual type. The Item's state goes in as
/// `historical_update_complete` and `account_id` (its first account).
pub fn sandbox(
    code: &str,
    webhook_type: Option<&str>,
    item_id: &str,
    historical_update_complete: bool,
    account_id: &str,
    error: Option<&PlaidApiError>,
) -> Option<Value> {
    let mut body = match code {
        "SYNC_UPDATES_AVAILABLE" => sync_updates_available(item_id, historical_update_complete),
        "DEFAULT_UPDATE" => json!({
            "webhook_type": "TRANSACTIONS", "webhook_code": code, "item_id": item_id,
            "error": null, "new_transactions": 0, "environment": ENVIRONMENT,
        }),
        "ERROR" => item_error(item_id, error?),
        "NEW_ACCOUNTS_AVAILABLE" | "LOGIN_REPAIRED" | "USER_PERMISSION_REVOKED" => json!({
            "webhook_type": "ITEM", "webhook_code": code, "item_id": item_id,
            "error": null, "environment": ENVIRONMENT,
        }),
        "USER_ACCOUNT_REVOKED" => json!({
            "webhook_type": "ITEM", "webhook_code": code, "item_id": item_id,
            "account_id": account_id, "environment": ENVIRONMENT,
        }),
        "PENDING_DISCONNECT" => json!({
            "webhook_type": "ITEM", "webhook_code": code, "item_id": item_id,
            "reason": "INSTITUTION_MIGRATION",
            "disconnect_time": (chrono::Utc::now() + chrono::Days::new(7)).to_rfc3339(),
            "environment": ENVIRONMENT,
        }),
        _ => return None,
    };
    if let Some(webhook_type) = webhook_type {
        body["webhook_type"] = webhook_type.into();
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkstate_wire::akoya::Notification;
    use linkstate_wire::plaid::PlaidWebhook;

    #[test]
    fn bodies_read_as_plaid_webhooks() {
        let hook: PlaidWebhook =
            serde_json::from_value(sync_updates_available("item", true)).unwrap();
        assert_eq!(
            (hook.webhook_type.as_str(), hook.webhook_code.as_str()),
            ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
        );
        assert_eq!(hook.initial_update_complete, Some(true));
        assert_eq!(hook.historical_update_complete, Some(true));
        assert_eq!(hook.environment.as_deref(), Some("sandbox"));

        let body = sandbox("USER_ACCOUNT_REVOKED", None, "item", false, "acc", None).unwrap();
        let hook: PlaidWebhook = serde_json::from_value(body).unwrap();
        assert_eq!(hook.account_id.as_deref(), Some("acc"));
        assert!(sandbox("NOT_A_CODE", None, "item", false, "acc", None).is_none());
        let body = sandbox(
            "DEFAULT_UPDATE",
            Some("HOLDINGS"),
            "item",
            false,
            "acc",
            None,
        )
        .unwrap();
        assert_eq!(body["webhook_type"], "HOLDINGS");
    }

    #[test]
    fn akoya_notifications_read_as_akoyas() {
        let body = akoya_notification("CONSENT", "CONSENT_REVOKED", "grant-1", "mikomo");
        let notification: Notification = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(notification.provider(), Some("mikomo"));
        assert_eq!(notification.subject_id(), Some("grant-1"));
        assert_eq!(notification.notification_type, "CONSENT_REVOKED");
        assert_eq!(
            body["url"]["href"],
            "https://sandbox-api.akoya.com/consents/v1/grant-1"
        );
        let outage = akoya_notification("MAINTENANCE", "PLANNED_OUTAGE", "m-1", "mikomo");
        assert_eq!(outage["notificationPayload"]["idType"], "MAINTENANCE");
        assert!(
            outage["url"]["href"]
                .as_str()
                .unwrap()
                .ends_with("/maintenance/m-1")
        );
    }
}

//! Checks on a webhook's body before it is stored.

use linkstate_wire::plaid::PlaidWebhook;

use crate::domain::input::{self, InputError};

/// The fields of a webhook that name an Item, kept whole when a large body is cut down for an
/// event.
pub const ESSENTIAL_FIELDS: [&str; 5] = [
    "webhook_type",
    "webhook_code",
    "item_id",
    "environment",
    "error",
];

/// Checks what will be stored and looked up: the names bounded, and no NUL byte anywhere in
/// the body (PostgreSQL text cannot hold one; Plaid never sends one).
pub fn check(hook: &PlaidWebhook) -> Result<(), InputError> {
    input::text("webhook_type", &hook.webhook_type, 64)?;
    input::text("webhook_code", &hook.webhook_code, 64)?;
    if let Some(item_id) = &hook.item_id {
        input::text("item_id", item_id, 255)?;
    }
    // The fields as parsed, not the body serialized again: this runs for every delivery.
    let strings = [&hook.environment, &hook.account_id, &hook.new_webhook_url];
    let nul_in_strings = strings
        .iter()
        .flat_map(|s| s.as_deref())
        .any(|s| s.contains('\0'))
        || hook
            .removed_transactions
            .iter()
            .flatten()
            .any(|id| id.contains('\0'));
    let nul_in_json = hook
        .error
        .as_ref()
        .is_some_and(|e| input::contains_nul(&e.raw))
        || hook
            .extra
            .iter()
            .any(|(k, v)| k.contains('\0') || input::contains_nul(v));
    if nul_in_strings || nul_in_json {
        return Err(InputError::NulByte {
            field: "body".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_refused_anywhere() {
        let body = r#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "a\u0000b"}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        assert_eq!(
            check(&hook).unwrap_err().to_string(),
            "item_id must not contain NUL bytes"
        );
        let body = r#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "x": ["\u0000"]}"#;
        let hook: PlaidWebhook = serde_json::from_str(body).unwrap();
        assert!(check(&hook).is_err());
    }
}

//! Plaid's error answers, with the codes and messages Plaid uses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::faults::ErrorRule;
use linkstate_wire::plaid::PlaidApiError;

/// An error answer: an HTTP status and Plaid's error body.
#[derive(Debug, Clone)]
pub struct SimError {
    status: StatusCode,
    error: Box<PlaidApiError>,
}

impl SimError {
    /// An error with Plaid's usual body; `request_id` is set when answering.
    pub fn new(http_status: u16, error_type: &str, error_code: &str, message: &str) -> Self {
        let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST);
        let error = Box::new(PlaidApiError {
            error_type: error_type.to_owned(),
            error_code: error_code.to_owned(),
            error_code_reason: None,
            error_message: message.to_owned(),
            display_message: None,
            request_id: None,
            causes: Vec::new(),
            status: Some(status.as_u16()),
            documentation_url: Some(documentation_url(error_type, error_code)),
            suggested_action: None,
            raw: serde_json::Value::Null,
        });
        Self { status, error }
    }

    /// The answer an injected rule asks for.
    pub fn injected(rule: &ErrorRule) -> Self {
        let message = &rule.error_message;
        Self::new(
            rule.http_status,
            &rule.error_type,
            &rule.error_code,
            message,
        )
    }

    /// Missing or wrong `client_id` / `secret`.
    pub fn invalid_api_keys() -> Self {
        let message = "invalid client_id or secret provided";
        Self::new(400, "INVALID_INPUT", "INVALID_API_KEYS", message)
    }

    /// An access token the simulator never issued.
    pub fn invalid_access_token() -> Self {
        let message = "could not find matching access token";
        Self::new(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", message)
    }

    /// An access token not shaped `access-<environment>-<identifier>`.
    pub fn malformed_access_token() -> Self {
        let message = "provided access token is in an invalid format. \
                       expected format: access-<environment>-<identifier>";
        Self::new(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", message)
    }

    /// An access token of a removed Item.
    pub fn item_not_found() -> Self {
        let message = "The Item you requested cannot be found. This Item does not exist, has \
                       been previously removed via /item/remove, or has had access removed by \
                       the user.";
        Self::new(400, "INVALID_INPUT", "ITEM_NOT_FOUND", message)
    }

    /// The Item's login changed: the user must go through Link's update mode.
    pub fn item_login_required() -> Self {
        let message = "the login details of this item have changed (credentials, MFA, or \
                       required user action) and a user login is required to update this \
                       information. use Link's update mode to restore the item to a good state";
        Self::new(400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED", message)
    }

    /// The answer to a product call on an Item in error: the Item's error, as HTTP 400.
    pub fn from_item_error(error: &PlaidApiError) -> Self {
        Self::new(
            400,
            &error.error_type,
            &error.error_code,
            &error.error_message,
        )
    }

    /// The Item's transactions changed while a client was paging through them.
    pub fn mutation_during_pagination() -> Self {
        let message = "Underlying transaction data changed since last page was fetched. \
                       Please restart pagination from last update.";
        Self::new(
            400,
            "TRANSACTIONS_ERROR",
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
            message,
        )
    }

    /// `/sandbox/item/fire_webhook` for an Item without a webhook URL.
    pub fn sandbox_webhook_invalid() -> Self {
        let message = "the webhook for this item is either not set or invalid";
        Self::new(400, "SANDBOX_ERROR", "SANDBOX_WEBHOOK_INVALID", message)
    }

    /// Plaid's error body, without a `request_id` yet.
    pub fn body(&self) -> &PlaidApiError {
        &self.error
    }

    /// A public token never issued, or already exchanged.
    pub fn invalid_public_token() -> Self {
        let message = "could not find matching public token";
        Self::new(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN", message)
    }

    /// A public token older than 30 minutes.
    pub fn expired_public_token() -> Self {
        let message = "provided public token is expired. Public tokens expire 30 minutes after \
                       creation at which point they can no longer be exchanged";
        Self::new(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN", message)
    }

    /// An institution the simulator does not know.
    pub fn invalid_institution() -> Self {
        let message = "invalid institution_id provided";
        Self::new(400, "INVALID_INPUT", "INVALID_INSTITUTION", message)
    }

    /// Products the institution does not offer.
    pub fn invalid_product(products: &[String]) -> Self {
        let message = format!(
            "the following products are not supported by this institution: {}",
            products.join(", ")
        );
        Self::new(400, "INVALID_INPUT", "INVALID_PRODUCT", &message)
    }

    /// A webhook verification key id the simulator never issued.
    pub fn invalid_key_id() -> Self {
        let message = "invalid key_id provided. note that key_ids are specific to Plaid \
                       environments, and verification requests must be made to the same \
                       environment that the webhook was sent from";
        Self::new(
            400,
            "INVALID_INPUT",
            "INVALID_WEBHOOK_VERIFICATION_KEY_ID",
            message,
        )
    }

    /// A body that is not JSON.
    pub fn invalid_body() -> Self {
        let message = "body could not be parsed as JSON";
        Self::new(400, "INVALID_REQUEST", "INVALID_BODY", message)
    }

    /// Required fields left out.
    pub fn missing_fields(fields: &str) -> Self {
        let message = format!("the following required fields are missing: {fields}");
        Self::new(400, "INVALID_REQUEST", "MISSING_FIELDS", &message)
    }

    /// A field with a value of the wrong shape.
    pub fn invalid_field(message: &str) -> Self {
        Self::new(400, "INVALID_REQUEST", "INVALID_FIELD", message)
    }

    /// The answer to the request `request_id`.
    pub fn into_response(mut self, request_id: &str) -> Response {
        self.error.request_id = Some(request_id.to_owned());
        (self.status, Json(self.error)).into_response()
    }
}

/// Plaid's page for an error: `https://plaid.com/docs/errors/item/#item_login_required`.
fn documentation_url(error_type: &str, error_code: &str) -> String {
    let section = error_type
        .strip_suffix("_ERROR")
        .unwrap_or(error_type)
        .to_lowercase()
        .replace('_', "-");
    let anchor = error_code.to_lowercase();
    format!("https://plaid.com/docs/errors/{section}/#{anchor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_urls_follow_plaids_layout() {
        let url = documentation_url("ITEM_ERROR", "ITEM_LOGIN_REQUIRED");
        assert_eq!(
            url,
            "https://plaid.com/docs/errors/item/#item_login_required"
        );
        let url = documentation_url("INVALID_INPUT", "INVALID_ACCESS_TOKEN");
        assert_eq!(
            url,
            "https://plaid.com/docs/errors/invalid-input/#invalid_access_token"
        );
    }
}

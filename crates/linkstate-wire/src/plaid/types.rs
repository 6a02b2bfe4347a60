//! The request and response shapes of Plaid's API, named as in Plaid's OpenAPI spec (2020-09-14).
//!
//! Required fields are plain, nullable ones are `Option` and serialize as `null`, optional ones are
//! `Option` and are left out when absent. Unknown fields are ignored, as Plaid adds fields freely.
//! Enumerations (products, account types, ...) stay strings so a new value never fails a decode.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::PlaidApiError;
use super::wire::{nullable_error, secret_string};
use crate::Secret;

/// `/item/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemGetRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/item/get` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemGetResponse {
    /// The Item, with its consent fields.
    pub item: Item,
    /// The last updates of the Item's products; `null` when Plaid has none.
    #[serde(default)]
    pub status: Option<ItemStatus>,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/accounts/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsGetRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/accounts/get` (and `/accounts/balance/get`) response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsGetResponse {
    /// The Item's accounts.
    pub accounts: Vec<AccountBase>,
    /// The Item the accounts belong to.
    pub item: Item,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/item/webhook/update` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemWebhookUpdateRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
    /// The new webhook URL; `null` removes the webhook.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// `/item/webhook/update` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemWebhookUpdateResponse {
    /// The Item, with its new webhook.
    pub item: Item,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/institutions/get_by_id` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstitutionsGetByIdRequest {
    /// The institution to describe.
    pub institution_id: String,
    /// The countries to look in (ISO-3166-1 alpha-2).
    pub country_codes: Vec<String>,
}

/// `/institutions/get_by_id` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstitutionsGetByIdResponse {
    /// The institution.
    pub institution: Institution,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/webhook_verification_key/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookVerificationKeyGetRequest {
    /// The `kid` from the webhook JWT's header.
    pub key_id: String,
}

/// `/webhook_verification_key/get` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookVerificationKeyGetResponse {
    /// The public key that verifies webhooks signed with `kid`.
    pub key: JwkPublicKey,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/sandbox/public_token/create` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateRequest {
    /// The institution the new Item belongs to.
    pub institution_id: String,
    /// The products to pull for the Item; never empty.
    pub initial_products: Vec<String>,
    /// Options for the new Item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SandboxPublicTokenCreateRequestOptions>,
}

/// `options` of `/sandbox/public_token/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateRequestOptions {
    /// The webhook URL of the new Item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// `/sandbox/public_token/create` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateResponse {
    /// A public token to exchange with `/item/public_token/exchange`.
    pub public_token: String,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/item/public_token/exchange` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemPublicTokenExchangeRequest {
    /// The public token from Link or `/sandbox/public_token/create`.
    pub public_token: String,
}

/// `/item/public_token/exchange` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemPublicTokenExchangeResponse {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
    /// The Item's id.
    pub item_id: String,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/accounts/balance/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsBalanceGetRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/item/remove` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRemoveRequest {
    /// The Item's access token; it stops working.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/item/remove` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRemoveResponse {
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/sandbox/item/fire_webhook` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemFireWebhookRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
    /// `TRANSACTIONS`, `ITEM`, ...; Plaid picks the usual one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_type: Option<String>,
    /// `SYNC_UPDATES_AVAILABLE`, `DEFAULT_UPDATE`, `NEW_ACCOUNTS_AVAILABLE`, `LOGIN_REPAIRED`, ...
    pub webhook_code: String,
}

/// `/sandbox/item/fire_webhook` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemFireWebhookResponse {
    /// Whether the webhook was fired.
    pub webhook_fired: bool,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `/sandbox/item/reset_login` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemResetLoginRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/sandbox/item/reset_login` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemResetLoginResponse {
    /// `true` when the Item now needs a new login.
    pub reset_login: bool,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// An Item: one login at one institution (`Item`, plus the consent fields of `/item/get`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Plaid's id of the Item.
    pub item_id: String,
    /// The institution; `null` for Items without an institution connection.
    #[serde(default)]
    pub institution_id: Option<String>,
    /// The institution's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_name: Option<String>,
    /// The URL receiving the Item's webhooks.
    #[serde(default)]
    pub webhook: Option<String>,
    /// How Auth data was obtained, if it was.
    #[serde(default)]
    pub auth_method: Option<String>,
    /// The Item's error, `null` when healthy (only `/item/get` reports it).
    #[serde(default, deserialize_with = "nullable_error")]
    pub error: Option<PlaidApiError>,
    /// Products available but not yet billed.
    #[serde(default)]
    pub available_products: Vec<String>,
    /// Products billed for the Item.
    #[serde(default)]
    pub billed_products: Vec<String>,
    /// Products added to the Item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    /// Products the user consented to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_products: Option<Vec<String>>,
    /// When the Item's consent expires, if it does.
    #[serde(default)]
    pub consent_expiration_time: Option<DateTime<Utc>>,
    /// `background` or `user_present_required`.
    pub update_type: String,
    /// When the Item was created (`/item/get` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// The use cases the user consented to (`/item/get` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_use_cases: Option<Vec<String>>,
    /// The data scopes the user consented to (`/item/get` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_data_scopes: Option<Vec<String>>,
}

/// `ItemStatus`: when the Item's products last updated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemStatus {
    /// Transactions updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<ItemStatusUpdates>,
    /// Investments updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investments: Option<ItemStatusUpdates>,
    /// The last webhook sent for the Item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_webhook: Option<ItemStatusLastWebhook>,
}

/// The last successful and failed update of one product.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemStatusUpdates {
    /// The last successful update.
    #[serde(default)]
    pub last_successful_update: Option<DateTime<Utc>>,
    /// The last failed update.
    #[serde(default)]
    pub last_failed_update: Option<DateTime<Utc>>,
}

/// `ItemStatusLastWebhook`: the last webhook fired for the Item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemStatusLastWebhook {
    /// When it was sent.
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    /// Its webhook code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sent: Option<String>,
}

/// `AccountBase`: one account at an institution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountBase {
    /// Plaid's id of the account.
    pub account_id: String,
    /// The account's balances.
    pub balances: AccountBalance,
    /// The last 2-4 characters of the account number.
    #[serde(default)]
    pub mask: Option<String>,
    /// The account's name.
    pub name: String,
    /// The institution's official name of the account.
    #[serde(default)]
    pub official_name: Option<String>,
    /// `depository`, `credit`, `loan`, `investment`, `other`, ...
    pub r#type: String,
    /// `checking`, `savings`, `credit card`, ...
    #[serde(default)]
    pub subtype: Option<String>,
    /// `personal` or `business`, when Plaid knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_category: Option<String>,
}

/// `AccountBalance`. Amounts stay [`serde_json::Number`]s: never `f64`, print with [`decimal_string`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountBalance {
    /// Funds available to withdraw.
    #[serde(default)]
    pub available: Option<serde_json::Number>,
    /// Funds in, or owed by, the account.
    #[serde(default)]
    pub current: Option<serde_json::Number>,
    /// The credit limit or overdraft limit.
    #[serde(default)]
    pub limit: Option<serde_json::Number>,
    /// ISO-4217 currency; `null` when `unofficial_currency_code` is set.
    #[serde(default)]
    pub iso_currency_code: Option<String>,
    /// A currency without an ISO code.
    #[serde(default)]
    pub unofficial_currency_code: Option<String>,
    /// When the balance was last updated (a few institutions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_datetime: Option<DateTime<Utc>>,
}

/// `Institution`: a financial institution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Institution {
    /// Plaid's id of the institution.
    pub institution_id: String,
    /// Its official name.
    pub name: String,
    /// The Plaid products it supports.
    #[serde(default)]
    pub products: Vec<String>,
    /// The countries it serves.
    #[serde(default)]
    pub country_codes: Vec<String>,
    /// Its website.
    #[serde(default)]
    pub url: Option<String>,
    /// Its brand color, hexadecimal.
    #[serde(default)]
    pub primary_color: Option<String>,
    /// Its logo, a base64 PNG.
    #[serde(default)]
    pub logo: Option<String>,
    /// Its known routing numbers.
    #[serde(default)]
    pub routing_numbers: Vec<String>,
    /// Whether it logs in with OAuth.
    #[serde(default)]
    pub oauth: bool,
}

/// `JWKPublicKey`: the P-256 public key that verifies Plaid's webhook JWTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkPublicKey {
    /// Always `ES256`.
    pub alg: String,
    /// Always `P-256`.
    pub crv: String,
    /// The key id, the `kid` of the JWT header.
    pub kid: String,
    /// Always `EC`.
    pub kty: String,
    /// Always `sig`.
    pub r#use: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// Unix time of the key's creation.
    pub created_at: i64,
    /// Unix time the key expired; `null` while valid.
    #[serde(default)]
    pub expired_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::super::wire::decimal_string;
    use super::*;

    #[test]
    fn accounts_keep_spec_example_balances() {
        let body = r#"{"account_id":"blgvvBlXw3cq5GMPwqB6s6q4dLKB9WcVqGDGo","balances":{"available":100,
            "current":23631.9805,"iso_currency_code":"USD","limit":null,"unofficial_currency_code":null},
            "holder_category":"personal","mask":"0000","name":"Plaid Checking","official_name":null,
            "subtype":"checking","type":"depository","something_new":true}"#;
        let account: AccountBase = serde_json::from_str(body).unwrap();
        assert_eq!(account.r#type, "depository");
        assert_eq!(
            decimal_string(account.balances.available.as_ref().unwrap()),
            "100"
        );
        assert_eq!(
            decimal_string(account.balances.current.as_ref().unwrap()),
            "23631.9805"
        );
        assert!(account.balances.limit.is_none());
    }

    #[test]
    fn item_error_keeps_the_raw_object() {
        let body = r#"{"item_id":"x","webhook":null,"available_products":[],"billed_products":[],
            "consent_expiration_time":null,"update_type":"background","error":{"error_type":"ITEM_ERROR",
            "error_code":"ITEM_LOGIN_REQUIRED","error_message":"login changed","display_message":null,
            "error_code_reason":null}}"#;
        let item: Item = serde_json::from_str(body).unwrap();
        let error = item.error.unwrap();
        assert_eq!(error.error_code, "ITEM_LOGIN_REQUIRED");
        assert_eq!(error.raw["error_message"], "login changed");
    }

    #[test]
    fn access_tokens_never_reach_debug_output() {
        let response = ItemPublicTokenExchangeResponse {
            access_token: Secret::new("access-sandbox-abc"),
            item_id: "item".into(),
            request_id: "req".into(),
        };
        assert!(!format!("{response:?}").contains("access-sandbox-abc"));
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["access_token"], "access-sandbox-abc");
    }
}

//! Plaid's answers in linkstate's terms.

use bigdecimal::BigDecimal;

use super::{
    AuthGetResponse, IdentityGetResponse, PlaidError, PlaidWebhook, Transaction, decimal_string,
};
use crate::domain::connection_state::{AggregationFailure, Signal};
use crate::domain::financial_account::{AccountIdentifiers, AccountOwner, ProviderAccount};
use crate::domain::product::Product;
use crate::domain::transactions::{ProviderTransaction, TransactionStatus};
use linkstate_wire::plaid::{AccountBase, Item};

/// Meld's products for an item's Plaid products: balances always come with `/accounts/get`.
pub fn products(plaid_products: &[String]) -> Vec<Product> {
    let mut products = vec![Product::Balances];
    for plaid in plaid_products {
        let product = match plaid.as_str() {
            "auth" => Product::Identifiers,
            "identity" => Product::Owners,
            "transactions" => Product::Transactions,
            _ => continue,
        };
        if !products.contains(&product) {
            products.push(product);
        }
    }
    products
}

/// Meld's products for a Plaid item: every product the item can give, the billed ones and the
/// available ones Plaid adds on first use.
pub fn item_products(item: &Item) -> Vec<Product> {
    let plaid = [
        item.billed_products.as_slice(),
        item.products.as_deref().unwrap_or_default(),
        item.available_products.as_slice(),
    ]
    .concat();
    products(&plaid)
}

/// A Plaid account as a provider-neutral account.
pub fn account(account: &AccountBase) -> ProviderAccount {
    let amount = |n: &Option<serde_json::Number>| {
        n.as_ref()
            .and_then(|n| decimal_string(n).parse::<BigDecimal>().ok())
    };
    ProviderAccount {
        provider_account_id: account.account_id.clone(),
        name: account.name.clone(),
        official_name: account.official_name.clone(),
        mask: account.mask.clone(),
        account_type: Some(account.r#type.clone()),
        subtype: account.subtype.clone(),
        current_balance: amount(&account.balances.current),
        available_balance: amount(&account.balances.available),
        currency: account
            .balances
            .iso_currency_code
            .clone()
            .or_else(|| account.balances.unofficial_currency_code.clone()),
    }
}

/// Plaid's error as `serviceProviderDetails`: the error body as Plaid sent it, plus our name.
pub fn error_details(error: &PlaidError) -> serde_json::Map<String, serde_json::Value> {
    let mut details = match error {
        PlaidError::Api { error, .. } => error.raw.as_object().cloned().unwrap_or_default(),
        _ => serde_json::Map::new(),
    };
    details.insert("serviceProvider".into(), "PLAID".into());
    details
}

/// How Plaid's error codes move a connection, as Meld's status table reads them. Codes not
/// listed are `Unforeseen` unless the error is a transient one (then `ProviderUnavailable`).
const FAILURES: &[(&str, AggregationFailure)] = &[
    ("ITEM_LOGIN_REQUIRED", AggregationFailure::LoginRequired),
    ("INVALID_CREDENTIALS", AggregationFailure::LoginRequired),
    ("INVALID_MFA", AggregationFailure::LoginRequired),
    ("ITEM_LOCKED", AggregationFailure::LoginRequired),
    (
        "INSUFFICIENT_CREDENTIALS",
        AggregationFailure::LoginRequired,
    ),
    (
        "INVALID_ACCESS_TOKEN",
        AggregationFailure::CredentialsRejected,
    ),
    ("ITEM_NOT_FOUND", AggregationFailure::CredentialsRejected),
    (
        "ACCESS_NOT_GRANTED",
        AggregationFailure::CredentialsRejected,
    ),
    (
        "USER_PERMISSION_REVOKED",
        AggregationFailure::CredentialsRejected,
    ),
    (
        "INSTITUTION_DOWN",
        AggregationFailure::InstitutionUnavailable,
    ),
    (
        "INSTITUTION_NOT_RESPONDING",
        AggregationFailure::InstitutionUnavailable,
    ),
    (
        "INSTITUTION_NOT_AVAILABLE",
        AggregationFailure::InstitutionUnavailable,
    ),
    (
        "INSTITUTION_NO_LONGER_SUPPORTED",
        AggregationFailure::InstitutionUnavailable,
    ),
    (
        "INSTITUTION_RATE_LIMIT",
        AggregationFailure::InstitutionUnavailable,
    ),
    (
        "USER_SETUP_REQUIRED",
        AggregationFailure::InstitutionActionRequired,
    ),
    (
        "ITEM_NOT_SUPPORTED",
        AggregationFailure::InstitutionActionRequired,
    ),
];

/// Product errors that mean "this item has no such data", not that the connection is broken.
const PRODUCT_UNAVAILABLE: &[&str] = &[
    "PRODUCTS_NOT_SUPPORTED",
    "PRODUCT_NOT_READY",
    "PRODUCT_NOT_ENABLED",
    "NO_AUTH_ACCOUNTS",
    "NO_ACCOUNTS",
    "INVALID_PRODUCT",
];

/// What a Plaid error code means for the connection, when the table lists it.
fn listed_failure(code: &str) -> Option<AggregationFailure> {
    FAILURES
        .iter()
        .find(|(listed, _)| *listed == code)
        .map(|(_, failure)| *failure)
}

/// What a Plaid failure means for the connection.
pub fn failure(error: &PlaidError) -> AggregationFailure {
    match error.error_code().and_then(listed_failure) {
        Some(failure) => failure,
        None if error.is_retryable() => AggregationFailure::ProviderUnavailable,
        None => AggregationFailure::Unforeseen,
    }
}

/// Whether the error only says the item lacks this product.
pub fn product_unavailable(error: &PlaidError) -> bool {
    error
        .error_code()
        .is_some_and(|code| PRODUCT_UNAVAILABLE.contains(&code))
}

/// A Plaid transaction as a provider-neutral transaction.
pub fn transaction(tx: &Transaction) -> ProviderTransaction {
    ProviderTransaction {
        provider_transaction_id: tx.transaction_id.clone(),
        provider_account_id: tx.account_id.clone(),
        amount: decimal_string(&tx.amount)
            .parse()
            .unwrap_or_else(|_| BigDecimal::from(0)),
        currency: tx
            .iso_currency_code
            .clone()
            .or_else(|| tx.unofficial_currency_code.clone()),
        description: tx.name.clone(),
        status: if tx.pending {
            TransactionStatus::Pending
        } else {
            TransactionStatus::Posted
        },
        transaction_date: tx.authorized_date.unwrap_or(tx.date),
        posted_date: (!tx.pending).then_some(tx.date),
    }
}

/// The account and routing numbers of `/auth/get`.
pub fn identifiers(response: &AuthGetResponse) -> Vec<AccountIdentifiers> {
    response
        .numbers
        .ach
        .iter()
        .map(|ach| AccountIdentifiers {
            provider_account_id: ach.account_id.clone(),
            account_number: ach.account.clone(),
            routing_number: ach.routing.expose().to_string(),
            wire_routing_number: ach.wire_routing.as_ref().map(|w| w.expose().to_string()),
        })
        .collect()
}

/// The owners of `/identity/get`, per provider account id.
pub fn owners(response: &IdentityGetResponse) -> Vec<(String, Vec<AccountOwner>)> {
    response
        .accounts
        .iter()
        .map(|account| {
            let owners = account
                .owners
                .iter()
                .map(|owner| AccountOwner {
                    names: owner.names.clone(),
                    emails: owner.emails.iter().map(|e| e.data.clone()).collect(),
                    phone_numbers: owner.phone_numbers.iter().map(|p| p.data.clone()).collect(),
                })
                .collect();
            (account.account.account_id.clone(), owners)
        })
        .collect()
}

/// What a Plaid webhook asks of us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookAction {
    /// The connection's status moves.
    Status(Signal),
    /// New transaction data: sync.
    Sync,
    /// One account was revoked (Plaid's account id).
    AccountRevoked(String),
    /// Recorded, nothing to do (WEBHOOK_UPDATE_ACKNOWLEDGED and codes we do not act on).
    Nothing,
}

/// The mapping of Plaid's webhooks, by `webhook_type` / `webhook_code`.
///
/// | Plaid | linkstate |
/// |---|---|
/// | ITEM `ERROR` | the error code's row in the failure table (ITEM_LOGIN_REQUIRED: RECONNECT_REQUIRED / LOGIN_REQUIRED; institution down: DEGRADED / INSTITUTION_CURRENTLY_UNAVAILABLE; unlisted: UNDETERMINED) |
/// | ITEM `PENDING_EXPIRATION`, `PENDING_DISCONNECT` | ACTIVE / ACCESS_EXPIRING_SOON |
/// | ITEM `NEW_ACCOUNTS_AVAILABLE` | ACTIVE / NEW_ACCOUNTS_AVAILABLE and BANK_LINKING_NEW_ACCOUNTS_AVAILABLE |
/// | ITEM `LOGIN_REPAIRED` | ACTIVE, a status change only |
/// | ITEM `USER_PERMISSION_REVOKED` | DELETED: CONNECTION_DELETED, then ACCOUNTS_REMOVED |
/// | ITEM `USER_ACCOUNT_REVOKED` | that account INACTIVE and ACCOUNTS_REMOVED for it |
/// | TRANSACTIONS `SYNC_UPDATES_AVAILABLE` and the legacy four | an aggregation of transactions |
/// | ITEM `WEBHOOK_UPDATE_ACKNOWLEDGED`, anything else | recorded only |
pub fn webhook_action(webhook: &PlaidWebhook) -> WebhookAction {
    // Meld's own example swaps type and code for NEW_ACCOUNTS_AVAILABLE; accept both.
    let code = match (webhook.webhook_type.as_str(), webhook.webhook_code.as_str()) {
        ("NEW_ACCOUNTS_AVAILABLE", "ITEM") => "NEW_ACCOUNTS_AVAILABLE",
        (_, code) => code,
    };
    match (webhook.webhook_type.as_str(), code) {
        ("TRANSACTIONS", _) => match code {
            "SYNC_UPDATES_AVAILABLE"
            | "INITIAL_UPDATE"
            | "HISTORICAL_UPDATE"
            | "DEFAULT_UPDATE"
            | "TRANSACTIONS_REMOVED" => WebhookAction::Sync,
            _ => WebhookAction::Nothing,
        },
        (_, "ERROR") => {
            let failure = webhook
                .error
                .as_ref()
                .and_then(|error| listed_failure(&error.error_code))
                .unwrap_or(AggregationFailure::Unforeseen);
            WebhookAction::Status(Signal::ProviderError(failure))
        }
        (_, "PENDING_EXPIRATION" | "PENDING_DISCONNECT") => {
            WebhookAction::Status(Signal::ConsentExpiring)
        }
        (_, "NEW_ACCOUNTS_AVAILABLE") => WebhookAction::Status(Signal::NewAccountsAvailable),
        (_, "LOGIN_REPAIRED") => WebhookAction::Status(Signal::LoginRepaired),
        (_, "USER_PERMISSION_REVOKED") => WebhookAction::Status(Signal::Revoked),
        (_, "USER_ACCOUNT_REVOKED") => match &webhook.account_id {
            Some(account) => WebhookAction::AccountRevoked(account.clone()),
            None => WebhookAction::Nothing,
        },
        _ => WebhookAction::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_plaid_products_to_meld_products() {
        let plaid = ["transactions", "auth", "identity", "assets"].map(String::from);
        assert_eq!(
            products(&plaid),
            vec![
                Product::Balances,
                Product::Transactions,
                Product::Identifiers,
                Product::Owners
            ]
        );
    }

    fn webhook(kind: &str, code: &str, extra: serde_json::Value) -> PlaidWebhook {
        let mut body =
            serde_json::json!({"webhook_type": kind, "webhook_code": code, "item_id": "i"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn every_row_of_the_webhook_table() {
        use serde_json::json;
        let error = |code: &str| json!({"error": {"error_type": "ITEM_ERROR", "error_code": code, "error_message": "m"}});
        let rows = [
            (
                webhook("ITEM", "ERROR", error("ITEM_LOGIN_REQUIRED")),
                WebhookAction::Status(Signal::ProviderError(AggregationFailure::LoginRequired)),
            ),
            (
                webhook("ITEM", "ERROR", error("INSTITUTION_DOWN")),
                WebhookAction::Status(Signal::ProviderError(
                    AggregationFailure::InstitutionUnavailable,
                )),
            ),
            (
                webhook("ITEM", "ERROR", error("SOMETHING_NEW")),
                WebhookAction::Status(Signal::ProviderError(AggregationFailure::Unforeseen)),
            ),
            (
                webhook("ITEM", "PENDING_EXPIRATION", json!({})),
                WebhookAction::Status(Signal::ConsentExpiring),
            ),
            (
                webhook("ITEM", "PENDING_DISCONNECT", json!({})),
                WebhookAction::Status(Signal::ConsentExpiring),
            ),
            (
                webhook("ITEM", "NEW_ACCOUNTS_AVAILABLE", json!({})),
                WebhookAction::Status(Signal::NewAccountsAvailable),
            ),
            (
                webhook("NEW_ACCOUNTS_AVAILABLE", "ITEM", json!({})),
                WebhookAction::Status(Signal::NewAccountsAvailable),
            ),
            (
                webhook("ITEM", "LOGIN_REPAIRED", json!({})),
                WebhookAction::Status(Signal::LoginRepaired),
            ),
            (
                webhook("ITEM", "USER_PERMISSION_REVOKED", json!({})),
                WebhookAction::Status(Signal::Revoked),
            ),
            (
                webhook("ITEM", "USER_ACCOUNT_REVOKED", json!({"account_id": "a"})),
                WebhookAction::AccountRevoked("a".into()),
            ),
            (
                webhook("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", json!({})),
                WebhookAction::Nothing,
            ),
        ];
        for (webhook, action) in rows {
            assert_eq!(webhook_action(&webhook), action, "{webhook:?}");
        }
        for code in [
            "SYNC_UPDATES_AVAILABLE",
            "INITIAL_UPDATE",
            "HISTORICAL_UPDATE",
            "DEFAULT_UPDATE",
            "TRANSACTIONS_REMOVED",
        ] {
            assert_eq!(
                webhook_action(&webhook("TRANSACTIONS", code, json!({}))),
                WebhookAction::Sync
            );
        }
    }
}

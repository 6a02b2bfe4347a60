//! The shapes of Akoya's API (v2, from Akoya's OpenAPI spec "Akoya APIs v2.4.0" as its Python
//! SDK models it): the token endpoint, the data paths and the notifications.
//!
//! Akoya wraps every account, balance and transaction in a key naming its type
//! (`{"depositAccount": {...}}`); the wrappers are kept as one struct with the type beside it, so
//! that a type linkstate does not know (insurance, annuity) still decodes. Amounts are
//! [`Amount`]s, read from the JSON text exactly (never through `f64`). Unknown fields are ignored.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

use bigdecimal::BigDecimal;
use serde_json::value::RawValue;

/// A successful `POST {idp}/token`: every call answers a new id token and a new refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer of data calls, a JWT whose claims include `grant_id`.
    pub id_token: String,
    /// The next refresh token; the one just used stops working.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds the id token lives.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// Dex also answers an access token; Akoya says to use the id token.
    #[serde(default)]
    pub access_token: Option<String>,
}

/// An error of the token endpoint: `{"error", "error_description"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenError {
    /// `invalid_request`, `invalid_grant`, `invalid_client`, ...
    pub error: String,
    /// What happened, in Dex's words.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// The claims of an id token that linkstate reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The consent: stable across refreshes, named by consent notifications.
    pub grant_id: String,
    /// Expiry, Unix seconds.
    #[serde(default)]
    pub exp: Option<i64>,
    /// The institution (Akoya's provider id).
    #[serde(default, rename = "connectorId")]
    pub connector_id: Option<String>,
    /// The accounts the consent covers.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// An error of the data API (FDX): `{"code": 602, "message": "Customer not authorized"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdxError {
    /// FDX's code; Akoya sends an integer where FDX says string, so both are read.
    #[serde(with = "code_number_or_string")]
    pub code: i64,
    /// What happened.
    #[serde(default)]
    pub message: Option<String>,
    /// More detail.
    #[serde(
        default,
        rename = "debugMessage",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_message: Option<String>,
}

/// `GET /accounts-info/v2/{providerId}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountsInfoResponse {
    /// The accounts, each wrapped by its type.
    #[serde(default)]
    pub accounts: Vec<Wrapped<AccountInfo>>,
}

/// `GET /balances/v2/{providerId}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BalancesResponse {
    /// The balances, each wrapped by its account's type.
    #[serde(default)]
    pub accounts: Vec<Wrapped<Balance>>,
}

/// One entry wrapped by its type key: `{"depositAccount": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapped<T> {
    /// The key: `depositAccount`, `loanAccount`, `locAccount`, `investmentAccount`, ...
    pub kind: String,
    /// What it wraps.
    pub value: T,
}

impl<T: Serialize> Serialize for Wrapped<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.kind, &self.value)?;
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Wrapped<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, T>::deserialize(deserializer)?;
        let mut entries = map.into_iter();
        match (entries.next(), entries.next()) {
            (Some((kind, value)), None) => Ok(Wrapped { kind, value }),
            _ => Err(serde::de::Error::custom(
                "expected an object with exactly one type key",
            )),
        }
    }
}

/// An account's descriptive fields (FDX `AccountInformation` and its deposit/loan/LOC kin).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// Akoya's id of the account.
    pub account_id: String,
    /// CHECKING, SAVINGS, CD, CREDITCARD, AUTOLOAN, ...
    #[serde(default)]
    pub account_type: Option<String>,
    /// The masked number, e.g. `xxx4321`.
    #[serde(default)]
    pub account_number_display: Option<String>,
    /// The product's name at the institution.
    #[serde(default)]
    pub product_name: Option<String>,
    /// The customer's name for it.
    #[serde(default)]
    pub nickname: Option<String>,
    /// OPEN, CLOSED, PENDINGOPEN, PENDINGCLOSE, DELINQUENT, PAID, NEGATIVECURRENTBALANCE.
    #[serde(default)]
    pub status: Option<String>,
    /// ASSET or LIABILITY: the sign convention of its amounts.
    #[serde(default)]
    pub balance_type: Option<String>,
    /// `{"currencyCode": "USD"}`.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// A longer description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Akoya's currency object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Currency {
    /// ISO 4217.
    #[serde(default)]
    pub currency_code: Option<String>,
}

/// A balance, for any account type (a loan has a principal balance and no current one).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// The account.
    pub account_id: String,
    /// When the balance was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_as_of: Option<String>,
    /// Deposit and line of credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_balance: Option<Amount>,
    /// Deposit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_balance: Option<Amount>,
    /// Line of credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_credit: Option<Amount>,
    /// Loan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_balance: Option<Amount>,
    /// The currency, when the balance names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

/// `GET /customers/v2/{providerId}/current`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentCustomerResponse {
    /// The consenting customer.
    pub customer: Customer,
}

/// A customer (an account owner).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// The institution's id of the customer.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The name.
    #[serde(default)]
    pub name: Option<Name>,
    /// Postal addresses.
    #[serde(default)]
    pub addresses: Option<Vec<Address>>,
    /// Telephone numbers; `null` in Akoya's own example.
    #[serde(default)]
    pub telephones: Option<Vec<String>>,
    /// Email addresses.
    #[serde(default)]
    pub email: Option<Vec<String>>,
    /// The accounts this customer holds; `null` means all of the consent's.
    #[serde(default)]
    pub accounts: Option<Vec<String>>,
}

/// A person's name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Name {
    /// First name.
    #[serde(default)]
    pub first: Option<String>,
    /// Middle name.
    #[serde(default)]
    pub middle: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Street.
    #[serde(default)]
    pub line1: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
}

/// `GET /transactions/v2/{providerId}/{accountId}`: one page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransactionsResponse {
    /// `next.href` while more pages follow; may be absent on a single page.
    #[serde(default)]
    pub links: Option<Links>,
    /// The transactions, each wrapped by its account's type.
    #[serde(default)]
    pub transactions: Vec<Wrapped<Transaction>>,
}

/// Page links.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Links {
    /// The next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Link>,
    /// The previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Link>,
}

/// A link: a relative path with its query, followed exactly as given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Link {
    /// The path and query.
    pub href: String,
}

/// A transaction (deposit, loan or line of credit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Its account.
    pub account_id: String,
    /// Akoya's id, "the same for pending and posted" (not every institution keeps to it).
    pub transaction_id: String,
    /// The amount; positive with `debit_credit_memo` giving the direction, as Akoya's examples
    /// show, though the spec's text describes signed amounts.
    pub amount: Amount,
    /// DEBIT or CREDIT.
    #[serde(default)]
    pub debit_credit_memo: Option<String>,
    /// PENDING, MEMO, POSTED or AUTHORIZATION.
    #[serde(default)]
    pub status: Option<String>,
    /// What it was.
    #[serde(default)]
    pub description: Option<String>,
    /// When it settled (RFC 3339); absent while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_timestamp: Option<String>,
    /// When it happened (RFC 3339); "always present".
    #[serde(default)]
    pub transaction_timestamp: Option<String>,
    /// The institution's type of transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<String>,
    /// The currency, when the transaction names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

/// A notification Akoya posts to a subscriber (the test-event shape). Nothing authenticates it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Its id, the same on each retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
    /// When it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_on: Option<String>,
    /// CONSENT or MAINTENANCE.
    pub category: String,
    /// CONSENT_REVOKED, CONSENT_UPDATED, PLANNED_OUTAGE or SERVICE.
    #[serde(rename = "type")]
    pub notification_type: String,
    /// What it is about.
    #[serde(default)]
    pub notification_payload: Option<NotificationPayload>,
    /// Where Akoya keeps the details; never fetched as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<serde_json::Value>,
}

/// What a notification is about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPayload {
    /// The consent id (the id token's `grant_id`) or the maintenance notice's id.
    #[serde(default)]
    pub id: Option<String>,
    /// CONSENT or MAINTENANCE.
    #[serde(default)]
    pub id_type: Option<String>,
    /// `[{"name": "PROVIDER", "value": "mikomo"}]`.
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// A name and value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CustomField {
    /// The name, e.g. `PROVIDER`.
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: Option<String>,
}

impl Notification {
    /// The provider id named in `customFields`, if any.
    pub fn provider(&self) -> Option<&str> {
        self.notification_payload
            .as_ref()?
            .custom_fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("PROVIDER"))?
            .value
            .as_deref()
    }

    /// The id the payload names (a consent id for consent events).
    pub fn subject_id(&self) -> Option<&str> {
        self.notification_payload.as_ref()?.id.as_deref()
    }
}

/// An exact amount, read from the digits of the JSON text (a number, or a numeric string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amount(pub BigDecimal);

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw =
            RawValue::from_string(self.0.to_plain_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get().trim().trim_matches('"');
        BigDecimal::from_str(text)
            .map(Amount)
            .map_err(|_| serde::de::Error::custom("amount is not a decimal number"))
    }
}

/// Reads FDX's error code as an integer (Akoya) or a numeric string (FDX).
mod code_number_or_string {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Number(i64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(code: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(*code)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match Code::deserialize(deserializer)? {
            Code::Number(n) => Ok(n),
            Code::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_accounts_read_as_akoya_sends_them() {
        let json = r#"{"accounts": [
            {"depositAccount": {"accountId": "a1", "accountType": "CHECKING",
              "accountNumberDisplay": "xxx4321", "productName": "Checking",
              "status": "OPEN", "currency": {"currencyCode": "USD"}}},
            {"insuranceAccount": {"accountId": "a2"}}]}"#;
        let response: AccountsInfoResponse = serde_json::from_str(json).unwrap();
        assert_eq!(response.accounts[0].kind, "depositAccount");
        assert_eq!(
            response.accounts[0].value.account_type.as_deref(),
            Some("CHECKING")
        );
        assert_eq!(response.accounts[1].value.account_id, "a2");
        let again = serde_json::to_value(&response.accounts[0]).unwrap();
        assert!(again.get("depositAccount").is_some());
    }

    #[test]
    fn fdx_codes_read_as_numbers_or_strings() {
        let a: FdxError = serde_json::from_str(r#"{"code": 602, "message": "x"}"#).unwrap();
        let b: FdxError = serde_json::from_str(r#"{"code": "1207"}"#).unwrap();
        assert_eq!((a.code, b.code), (602, 1207));
    }

    #[test]
    fn amounts_keep_their_digits() {
        let json = r#"{"accountId": "a", "transactionId": "t", "amount": 1234567.89}"#;
        let tx: Transaction = serde_json::from_str(json).unwrap();
        assert_eq!(tx.amount.0.to_plain_string(), "1234567.89");
        let big = r#"{"accountId": "a", "transactionId": "t", "amount": 12345678901234567.01}"#;
        let tx: Transaction = serde_json::from_str(big).unwrap();
        assert_eq!(tx.amount.0.to_plain_string(), "12345678901234567.01");
        assert_eq!(
            serde_json::to_string(&tx.amount).unwrap(),
            "12345678901234567.01"
        );
    }

    #[test]
    fn notifications_name_their_provider_and_subject() {
        let json = r#"{"category": "CONSENT", "type": "CONSENT_REVOKED",
            "notificationPayload": {"id": "grant-1", "idType": "CONSENT",
              "customFields": [{"name": "PROVIDER", "value": "mikomo"}]},
            "url": {"href": "https://api.akoya.com/consents/v1/grant-1", "action": "GET"}}"#;
        let n: Notification = serde_json::from_str(json).unwrap();
        assert_eq!(
            (n.provider(), n.subject_id()),
            (Some("mikomo"), Some("grant-1"))
        );
    }
}

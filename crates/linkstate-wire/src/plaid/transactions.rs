//! The shapes of Plaid's Transactions product: `/transactions/sync`, `/transactions/refresh`
//! and the `Transaction` itself. Conventions as in `types.rs`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::types::AccountBase;
use super::wire::secret_string;
use crate::Secret;

/// `TransactionsUpdateStatus`: only the last 30 days are in so far.
pub const INITIAL_UPDATE_COMPLETE: &str = "INITIAL_UPDATE_COMPLETE";
/// `TransactionsUpdateStatus`: the whole history (up to 2 years) is in.
pub const HISTORICAL_UPDATE_COMPLETE: &str = "HISTORICAL_UPDATE_COMPLETE";

/// `/transactions/sync` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsSyncRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
    /// The `next_cursor` of an earlier answer; absent for the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// How many updates per page: 1 to 500, 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `/transactions/sync` response: one page of the Item's changes since the cursor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsSyncResponse {
    /// `INITIAL_UPDATE_COMPLETE`, `HISTORICAL_UPDATE_COMPLETE`, `NOT_READY`, ...
    pub transactions_update_status: String,
    /// The accounts that have transactions.
    pub accounts: Vec<AccountBase>,
    /// Transactions new since the cursor.
    pub added: Vec<Transaction>,
    /// Transactions changed since the cursor, in their new state.
    pub modified: Vec<Transaction>,
    /// Transactions gone since the cursor.
    pub removed: Vec<RemovedTransaction>,
    /// The cursor for the next page, or for the next sync once `has_more` is false.
    pub next_cursor: String,
    /// Whether another page follows right away.
    pub has_more: bool,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `Transaction`. `amount` is positive when money leaves the account; it stays a
/// [`serde_json::Number`] (see [`super::decimal_string`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transaction {
    /// Plaid's id of the transaction.
    pub transaction_id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// The settled amount, in the transaction's currency.
    pub amount: serde_json::Number,
    /// ISO-4217 currency; `null` when `unofficial_currency_code` is set.
    #[serde(default)]
    pub iso_currency_code: Option<String>,
    /// A currency without an ISO code.
    #[serde(default)]
    pub unofficial_currency_code: Option<String>,
    /// The description (legacy, still always sent).
    #[serde(default)]
    pub name: String,
    /// The merchant's clean name, `null` for transfers and the like.
    #[serde(default)]
    pub merchant_name: Option<String>,
    /// Plaid's stable id of the merchant.
    #[serde(default)]
    pub merchant_entity_id: Option<String>,
    /// The institution's raw description, only when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_description: Option<String>,
    /// Whether it is still pending.
    pub pending: bool,
    /// For a posted transaction, the id of the pending one it replaces.
    #[serde(default)]
    pub pending_transaction_id: Option<String>,
    /// The sub-account owner, rarely set.
    #[serde(default)]
    pub account_owner: Option<String>,
    /// The posting date (for a pending transaction, the day it happened).
    pub date: NaiveDate,
    /// The day it was authorized.
    #[serde(default)]
    pub authorized_date: Option<NaiveDate>,
    /// When it posted, for some institutions.
    #[serde(default)]
    pub datetime: Option<DateTime<Utc>>,
    /// When it was authorized, for some institutions.
    #[serde(default)]
    pub authorized_datetime: Option<DateTime<Utc>>,
    /// `online`, `in store` or `other`.
    #[serde(default)]
    pub payment_channel: String,
    /// Where it happened; every field may be `null`.
    #[serde(default)]
    pub location: Location,
    /// Transfer details; every field may be `null`.
    #[serde(default)]
    pub payment_meta: PaymentMeta,
    /// Plaid's category.
    #[serde(default)]
    pub personal_finance_category: Option<PersonalFinanceCategory>,
    /// `purchase`, `transfer`, ... for some institutions.
    #[serde(default)]
    pub transaction_code: Option<String>,
    /// The check number, for checks.
    #[serde(default)]
    pub check_number: Option<String>,
    /// The merchant's logo URL.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// The merchant's website.
    #[serde(default)]
    pub website: Option<String>,
}

/// `Location` of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Street address.
    #[serde(default)]
    pub address: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State or region.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO-3166-1 alpha-2 country.
    #[serde(default)]
    pub country: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub lat: Option<serde_json::Number>,
    /// Longitude.
    #[serde(default)]
    pub lon: Option<serde_json::Number>,
    /// The merchant's store number.
    #[serde(default)]
    pub store_number: Option<String>,
}

/// `PaymentMeta`: details of an inter-bank transfer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentMeta {
    /// The transfer's reference number.
    #[serde(default)]
    pub reference_number: Option<String>,
    /// The ACH PPD id of the payer.
    #[serde(default)]
    pub ppd_id: Option<String>,
    /// Who was paid.
    #[serde(default)]
    pub payee: Option<String>,
    /// On whose behalf.
    #[serde(default)]
    pub by_order_of: Option<String>,
    /// Who paid.
    #[serde(default)]
    pub payer: Option<String>,
    /// How: `ACH`, `Wire`, ...
    #[serde(default)]
    pub payment_method: Option<String>,
    /// The processor, e.g. `PayPal`.
    #[serde(default)]
    pub payment_processor: Option<String>,
    /// The stated reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `PersonalFinanceCategory`: Plaid's two-level category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalFinanceCategory {
    /// E.g. `FOOD_AND_DRINK`.
    pub primary: String,
    /// E.g. `FOOD_AND_DRINK_COFFEE`.
    pub detailed: String,
    /// `VERY_HIGH`, `HIGH`, `MEDIUM`, `LOW` or `UNKNOWN`.
    #[serde(default)]
    pub confidence_level: Option<String>,
}

/// `RemovedTransaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedTransaction {
    /// The id of the removed transaction.
    pub transaction_id: String,
    /// Its account (absent in older answers).
    #[serde(default)]
    pub account_id: Option<String>,
}

/// `/transactions/refresh` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsRefreshRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/transactions/refresh` response; the news comes later, as a `SYNC_UPDATES_AVAILABLE` webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsRefreshResponse {
    /// Plaid's id of this request.
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plaid::decimal_string;

    /// The example of Plaid's `/transactions/sync` documentation, trimmed.
    const SYNC_EXAMPLE: &str = r#"{
      "accounts": [{"account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", "balances": {
        "available": 110.94, "current": 110.94, "iso_currency_code": "USD", "limit": null,
        "unofficial_currency_code": null}, "mask": "0000", "name": "Plaid Checking",
        "official_name": "Plaid Gold Standard 0% Interest Checking", "subtype": "checking",
        "type": "depository"}],
      "added": [{"account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", "account_owner": null,
        "amount": 72.1, "iso_currency_code": "USD", "unofficial_currency_code": null,
        "check_number": null, "counterparties": [], "date": "2023-09-24",
        "datetime": "2023-09-24T11:01:01Z", "authorized_date": "2023-09-22",
        "authorized_datetime": "2023-09-22T10:34:50Z",
        "location": {"address": "1200 Grand St", "city": "Houston", "region": "TX",
          "postal_code": "77006", "country": "US", "lat": 29.7444, "lon": -95.4063, "store_number": "1235"},
        "merchant_name": "Walmart", "merchant_entity_id": "O5W5j4dN9OR3E6ypQmjdkWZZRoXEzVMz2ByWM",
        "logo_url": null, "website": "walmart.com", "name": "PURCHASE WM SUPERCENTER #1700",
        "payment_channel": "in store", "payment_meta": {"by_order_of": null, "payee": null,
          "payer": null, "payment_method": null, "payment_processor": null, "ppd_id": null,
          "reason": null, "reference_number": null},
        "pending": false, "pending_transaction_id": "no86Eox18VHMvaOVL7gPUM9ap3aR1LsAVZ5nc",
        "personal_finance_category": {"primary": "GENERAL_MERCHANDISE",
          "detailed": "GENERAL_MERCHANDISE_SUPERSTORES", "confidence_level": "VERY_HIGH"},
        "transaction_id": "lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDje", "transaction_code": null}],
      "modified": [],
      "removed": [{"transaction_id": "lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDff",
        "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"}, {"transaction_id": "old"}],
      "next_cursor": "tVUUL15lYQN5rBnfDIc1I8xudpGdIlw9nsgeXWvhOfkECvUeR663i3Dt1uf/94S8ASkitgLcIiOSqNwzzp+bh89kirazha5vuZHBb2ZA5NtCDkkV",
      "has_more": false,
      "request_id": "Wvhy9PZHQLV8njG",
      "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE"
    }"#;

    #[test]
    fn reads_plaids_sync_example() {
        let page: TransactionsSyncResponse = serde_json::from_str(SYNC_EXAMPLE).unwrap();
        assert_eq!(page.transactions_update_status, HISTORICAL_UPDATE_COMPLETE);
        let added = &page.added[0];
        assert_eq!(decimal_string(&added.amount), "72.1");
        assert_eq!(added.date, NaiveDate::from_ymd_opt(2023, 9, 24).unwrap());
        assert_eq!(added.authorized_date, NaiveDate::from_ymd_opt(2023, 9, 22));
        assert_eq!(
            added.datetime.unwrap().to_rfc3339(),
            "2023-09-24T11:01:01+00:00"
        );
        assert_eq!(added.merchant_name.as_deref(), Some("Walmart"));
        assert_eq!(added.location.city.as_deref(), Some("Houston"));
        assert_eq!(
            added.pending_transaction_id.as_deref(),
            Some("no86Eox18VHMvaOVL7gPUM9ap3aR1LsAVZ5nc")
        );
        assert!(!added.pending);
        assert_eq!(
            page.removed[0].account_id.as_deref(),
            Some(page.accounts[0].account_id.as_str())
        );
        assert_eq!(page.removed[1].account_id, None);
    }

    #[test]
    fn writes_dates_as_plaid_does() {
        let page: TransactionsSyncResponse = serde_json::from_str(SYNC_EXAMPLE).unwrap();
        let json = serde_json::to_value(&page.added[0]).unwrap();
        assert_eq!(json["date"], "2023-09-24");
        assert_eq!(json["amount"], serde_json::json!(72.1));
        assert!(
            json.get("original_description").is_none(),
            "only when asked for"
        );
    }
}

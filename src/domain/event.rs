//! The event types of Meld's bank-linking webhooks and their payloads, serialized as Meld's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::connection_status::{ConnectionStatus, StatusReason};
use super::ids::{AccountId, ConnectionId, CustomerId, EventId, FinancialAccountId, InstitutionId};
use super::product::Product;

/// The version stamped on every event, the newest of Meld's catalogue that we follow.
pub const EVENT_VERSION: &str = "2023-07-31";

meld_name_enum! {
    /// The eleven event types of Meld's catalogue.
    pub enum EventType {
        /// The customer completed a connect flow.
        BankLinkingConnectionCompleted,
        /// The connection was deleted.
        BankLinkingConnectionDeleted,
        /// The connection's status changed.
        BankLinkingConnectionStatusChange,
        /// The customer must act (log in again, ...).
        BankLinkingCustomerActionRequired,
        /// The institution has accounts the customer has not shared yet.
        BankLinkingNewAccountsAvailable,
        /// The connect flow failed.
        BankLinkingConnectionFailed,
        /// Aggregation started; basic account info is known.
        BankLinkingAccountsUpdating,
        /// Aggregation finished; lists the products updated per account.
        BankLinkingAccountsUpdated,
        /// Accounts were removed.
        BankLinkingAccountsRemoved,
        /// The net effect of an aggregation on transactions.
        BankLinkingTransactionsAggregated,
        /// The net effect of the one-time historical load.
        BankLinkingHistoricalTransactionsAggregated,
    }
}

/// The payload of any event type; each constructor in `connection_events` sets the fields its
/// seed example shows, and absent fields are left out of the JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload {
    /// The customer the connection belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// The tenant's own id for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_customer_id: Option<String>,
    /// The connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<ConnectionId>,
    /// The institution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_id: Option<InstitutionId>,
    /// The institution's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_name: Option<String>,
    /// The API request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Why the customer must act, or why the connect flow failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// STATUS_CHANGE: the status before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_status: Option<ConnectionStatus>,
    /// STATUS_CHANGE: the status after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_status: Option<ConnectionStatus>,
    /// STATUS_CHANGE: the reason after; present as `null` when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub new_status_reason: Option<Option<StatusReason>>,
    /// STATUS_CHANGE: the active duplicate; present as `null` when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub active_duplicate_connection_id: Option<Option<ConnectionId>>,
    /// When the aggregation that caused the event succeeded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seconds_timestamp"
    )]
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    /// Whether transaction results are partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_partial: Option<bool>,
    /// The accounts the event is about; fields vary by event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_accounts: Option<Vec<EventFinancialAccount>>,
    /// The raw provider webhook that caused the event, or just the provider's name and ids.
    pub service_provider_details: serde_json::Map<String, serde_json::Value>,
}

/// A financial account as an event mentions it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFinancialAccount {
    /// ACCOUNTS_* events: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FinancialAccountId>,
    /// ACCOUNTS_UPDATING: the institution's name for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ACCOUNTS_UPDATING: the account number's last digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_account_number: Option<String>,
    /// ACCOUNTS_UPDATING: whether this aggregation found the account for the first time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_account: Option<bool>,
    /// ACCOUNTS_UPDATED: the products fetched, never TRANSACTIONS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<Product>>,
    /// TRANSACTIONS_*: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_account_id: Option<FinancialAccountId>,
    /// TRANSACTIONS_*: transactions added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_transactions_added: Option<i64>,
    /// TRANSACTIONS_*: investment transactions added (always 0: no investments yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_investment_transactions_added: Option<i64>,
    /// TRANSACTIONS_*: transactions modified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_transactions_updated: Option<i64>,
    /// TRANSACTIONS_*: investment transactions modified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_investment_transactions_updated: Option<i64>,
    /// TRANSACTIONS_*: ids of removed transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_ids_removed: Option<Vec<String>>,
    /// TRANSACTIONS_*: ids of removed investment transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investment_transaction_ids_removed: Option<Vec<String>>,
}

/// An event about to be appended to the log.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Its type.
    pub event_type: EventType,
    /// Its payload.
    pub payload: EventPayload,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its id.
    pub event_id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// When it was appended.
    pub timestamp: DateTime<Utc>,
    /// The tenant it belongs to.
    pub account_id: AccountId,
    /// The catalogue version of its shape.
    pub version: String,
    /// Its payload.
    pub payload: EventPayload,
}

/// Meld's envelope, as outbound webhooks carry it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    /// The event type.
    pub event_type: EventType,
    /// The event id.
    pub event_id: EventId,
    /// RFC 3339 with microseconds, UTC, `Z`.
    pub timestamp: String,
    /// The tenant.
    pub account_id: AccountId,
    /// The webhook profile the delivery is for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// The catalogue version.
    pub version: &'a str,
    /// The payload, its keys in the order of the event type's seed example.
    pub payload: serde_json::Value,
}

impl Event {
    /// The event in Meld's envelope.
    pub fn envelope(&self, profile_id: Option<String>) -> Envelope<'_> {
        Envelope {
            event_type: self.event_type,
            event_id: self.event_id,
            timestamp: self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            account_id: self.account_id,
            profile_id,
            version: &self.version,
            payload: ordered_payload(self.event_type, &self.payload),
        }
    }
}

/// The payload as JSON in its seed's key order: the order of [`EventPayload`]'s fields, except
/// that Meld's CONNECTION_COMPLETED example leads with `requestId`.
fn ordered_payload(event_type: EventType, payload: &EventPayload) -> serde_json::Value {
    let json = serde_json::to_value(payload).expect("event payloads serialize");
    let serde_json::Value::Object(fields) = json else {
        return json;
    };
    if event_type != EventType::BankLinkingConnectionCompleted {
        return fields.into();
    }
    let mut ordered = serde_json::Map::new();
    if let Some(request_id) = fields.get("requestId") {
        ordered.insert("requestId".into(), request_id.clone());
    }
    ordered.extend(fields.into_iter().filter(|(key, _)| key != "requestId"));
    ordered.into()
}

/// Serde for a field that is either absent or present, and when present may be `null`.
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Serde for `successfullyAggregatedAt`, which Meld prints to the second.
mod seconds_timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(at) => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(deserializer)
    }
}

//! Domain values as their `linkstate.v1` messages.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;

use crate::domain::connection::Connection;
use crate::domain::customer::Customer;
use crate::domain::delivery::Delivery;
use crate::domain::event::{Event, EventFinancialAccount, EventPayload};
use crate::domain::financial_account::AccountOwner;
use crate::domain::webhook_profile::WebhookProfile;
use crate::import::CheckedItem;
use crate::proto;
use crate::store::events::LoggedEvent;
use crate::store::financial_accounts::FinancialAccountRow;
use crate::store::transactions::TransactionRow;

/// A protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), json_value(value)))
            .collect(),
    }
}

fn json_value(value: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A `google.protobuf.Struct` as a JSON object; whole numbers stay whole (`102`, not `102.0`).
pub fn struct_json(value: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    value
        .fields
        .iter()
        .map(|(key, value)| (key.clone(), value_json(value)))
        .collect()
}

fn value_json(value: &prost_types::Value) -> serde_json::Value {
    use serde_json::Value;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 2f64.powi(53) => {
            Value::from(*n as i64)
        }
        Some(Kind::NumberValue(n)) => Value::from(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(map)) => Value::Object(struct_json(map)),
    }
}

/// An enum value of `linkstate.v1` by its name, which our domain names share.
macro_rules! proto_enum {
    ($ty:ty, $name:expr) => {
        <$ty>::from_str_name($name).unwrap_or_default() as i32
    };
}

/// A customer as the API shows it.
pub fn customer(customer: &Customer) -> proto::Customer {
    proto::Customer {
        id: customer.id.to_string(),
        account_id: customer.account_id.to_string(),
        external_customer_id: customer.external_customer_id.clone().unwrap_or_default(),
        status: proto_enum!(proto::customer::Status, customer.status.as_str()),
        connection_count: customer.connection_count,
        created_at: Some(timestamp(customer.created_at)),
    }
}

/// What a validating import says of an item: only the four fields the contract names.
pub fn checked_item(item: &CheckedItem) -> proto::Connection {
    let provider = proto_enum!(
        proto::service_provider::Value,
        item.service_provider.as_str()
    );
    proto::Connection {
        service_provider: provider,
        external_customer_id: item.external_customer_id.clone().unwrap_or_default(),
        institution_name: item.institution_name.clone(),
        service_provider_details: Some(proto::ServiceProviderDetails {
            service_provider: provider,
            service_provider_connection_id: item.provider_connection_id.clone().unwrap_or_default(),
        }),
        ..proto::Connection::default()
    }
}

/// A connection as the API shows it; credentials are not part of it.
pub fn connection(connection: &Connection) -> proto::Connection {
    proto::Connection {
        id: connection.id.to_string(),
        account_id: connection.account_id.to_string(),
        customer_id: connection.customer_id.to_string(),
        external_customer_id: connection.external_customer_id.clone().unwrap_or_default(),
        institution_id: connection.institution_id.to_string(),
        institution_name: connection.institution_name.clone(),
        service_provider: proto_enum!(
            proto::service_provider::Value,
            connection.service_provider.as_str()
        ),
        status: proto_enum!(proto::connection::Status, connection.status.as_str()),
        status_reason: connection
            .status_reason
            .map(|reason| proto_enum!(proto::connection::StatusReason, reason.as_str())),
        products: connection
            .products
            .iter()
            .map(|product| proto_enum!(proto::product::Value, product.as_str()))
            .collect(),
        successfully_aggregated_at: connection.successfully_aggregated_at.map(timestamp),
        created_at: Some(timestamp(connection.created_at)),
        active_duplicate_connection_id: connection
            .active_duplicate_connection_id
            .map(|id| id.to_string()),
        duplicate_connection_ids: connection
            .duplicate_connection_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        service_provider_details: Some(proto::ServiceProviderDetails {
            service_provider: proto_enum!(
                proto::service_provider::Value,
                connection.service_provider.as_str()
            ),
            service_provider_connection_id: connection
                .provider_connection_id
                .clone()
                .unwrap_or_default(),
        }),
    }
}

/// A financial account as the API shows it; `identifiers` are opened by the caller.
pub fn financial_account(
    row: &FinancialAccountRow,
    identifiers: Option<proto::Identifiers>,
) -> proto::FinancialAccount {
    let owners: Vec<AccountOwner> = row
        .owners
        .clone()
        .and_then(|owners| serde_json::from_value(owners).ok())
        .unwrap_or_default();
    proto::FinancialAccount {
        id: row.id.to_string(),
        connection_id: row.connection_id.to_string(),
        customer_id: row.customer_id.to_string(),
        name: row.name.clone(),
        truncated_account_number: row.mask.clone().unwrap_or_default(),
        r#type: row.account_type.clone().unwrap_or_default(),
        subtype: row.subtype.clone().unwrap_or_default(),
        status: proto_enum!(proto::financial_account::Status, &row.status),
        balances: Some(proto::Balances {
            current_amount: row
                .current_balance
                .as_ref()
                .map(|a| a.normalized().to_plain_string()),
            available_amount: row
                .available_balance
                .as_ref()
                .map(|a| a.normalized().to_plain_string()),
            currency: row.currency.clone().unwrap_or_default(),
            updated_at: row.balances_updated_at.map(timestamp),
        }),
        identifiers,
        owners: owners
            .into_iter()
            .map(|owner| proto::Owner {
                names: owner.names,
                emails: owner.emails,
                phone_numbers: owner.phone_numbers,
            })
            .collect(),
        historical_aggregation_succeeded: row.historical_aggregation_succeeded,
    }
}

/// An event with its cursor.
pub fn event(logged: &LoggedEvent) -> proto::Event {
    let Event {
        event_id,
        event_type,
        timestamp: at,
        account_id,
        version,
        payload,
    } = &logged.event;
    proto::Event {
        event_id: event_id.to_string(),
        event_type: proto_enum!(proto::event::Type, event_type.as_str()),
        timestamp: Some(timestamp(*at)),
        account_id: account_id.to_string(),
        version: version.clone(),
        cursor: logged.cursor.encode(),
        payload: Some(event_payload(payload)),
    }
}

fn event_payload(payload: &EventPayload) -> proto::EventPayload {
    proto::EventPayload {
        request_id: payload.request_id.clone(),
        customer_id: payload.customer_id.map(|id| id.to_string()),
        external_customer_id: payload.external_customer_id.clone(),
        connection_id: payload.connection_id.map(|id| id.to_string()),
        institution_id: payload.institution_id.map(|id| id.to_string()),
        institution_name: payload.institution_name.clone(),
        reason: payload.reason.clone(),
        old_status: payload
            .old_status
            .map(|s| proto_enum!(proto::connection::Status, s.as_str())),
        new_status: payload
            .new_status
            .map(|s| proto_enum!(proto::connection::Status, s.as_str())),
        new_status_reason: payload
            .new_status_reason
            .flatten()
            .map(|r| proto_enum!(proto::connection::StatusReason, r.as_str())),
        active_duplicate_connection_id: payload
            .active_duplicate_connection_id
            .flatten()
            .map(|id| id.to_string()),
        successfully_aggregated_at: payload.successfully_aggregated_at.map(timestamp),
        is_partial: payload.is_partial,
        financial_accounts: payload
            .financial_accounts
            .iter()
            .flatten()
            .map(event_financial_account)
            .collect(),
        service_provider_details: Some(json_struct(&payload.service_provider_details)),
    }
}

fn event_financial_account(account: &EventFinancialAccount) -> proto::EventFinancialAccount {
    proto::EventFinancialAccount {
        id: account.id.map(|id| id.to_string()),
        name: account.name.clone(),
        truncated_account_number: account.truncated_account_number.clone(),
        new_account: account.new_account,
        products: account
            .products
            .iter()
            .flatten()
            .map(|p| proto_enum!(proto::product::Value, p.as_str()))
            .collect(),
        financial_account_id: account.financial_account_id.map(|id| id.to_string()),
        num_transactions_added: account.num_transactions_added,
        num_investment_transactions_added: account.num_investment_transactions_added,
        num_transactions_updated: account.num_transactions_updated,
        num_investment_transactions_updated: account.num_investment_transactions_updated,
        transaction_ids_removed: account.transaction_ids_removed.clone().unwrap_or_default(),
        investment_transaction_ids_removed: account
            .investment_transaction_ids_removed
            .clone()
            .unwrap_or_default(),
    }
}

/// A transaction as the API shows it.
pub fn transaction(row: &TransactionRow) -> proto::Transaction {
    proto::Transaction {
        id: row.id.to_string(),
        financial_account_id: row.financial_account_id.to_string(),
        amount: row.amount.normalized().to_plain_string(),
        currency: row.currency.clone().unwrap_or_default(),
        description: row.description.clone(),
        status: proto_enum!(proto::transaction::Status, &row.status),
        transaction_date: row.transaction_date.to_string(),
        posted_date: row.posted_date.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// A webhook profile as the API shows it, without its secret.
pub fn webhook_profile(profile: &WebhookProfile) -> proto::WebhookProfile {
    proto::WebhookProfile {
        id: profile.id.to_string(),
        account_id: profile.account_id.to_string(),
        name: profile.name.clone(),
        url: profile.url.clone(),
        event_types: profile
            .event_types
            .iter()
            .map(|t| proto_enum!(proto::event::Type, t.as_str()))
            .collect(),
        event_version: profile.event_version.clone(),
        status: proto_enum!(proto::webhook_profile::Status, profile.status.as_str()),
        disabled_reason: profile
            .disabled_reason
            .map(|r| proto_enum!(proto::webhook_profile::DisabledReason, r.as_str()))
            .unwrap_or_default(),
        created_at: Some(timestamp(profile.created_at)),
        secret: String::new(),
    }
}

/// A delivery with its attempts.
pub fn delivery(delivery: &Delivery) -> proto::Delivery {
    proto::Delivery {
        id: delivery.id.to_string(),
        profile_id: delivery.profile_id.to_string(),
        event_id: delivery.event_id.to_string(),
        event_type: delivery.event_type.clone(),
        status: proto_enum!(proto::delivery::Status, delivery.status.as_str()),
        attempts: delivery
            .attempts
            .iter()
            .map(|a| proto::DeliveryAttempt {
                attempted_at: Some(timestamp(a.attempted_at)),
                response_status: a.response_status.map(i32::from).unwrap_or_default(),
                duration_ms: a.duration_ms as i64,
                error: a.error.clone().unwrap_or_default(),
                response_body: a.response_body.clone(),
            })
            .collect(),
        next_attempt_at: delivery.next_attempt_at.map(timestamp),
        created_at: Some(timestamp(delivery.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use crate::domain::connection_status::{ConnectionStatus, StatusReason};
    use crate::domain::event::EventType;
    use crate::domain::financial_account::FinancialAccountStatus;
    use crate::domain::product::Product;
    use crate::domain::service_provider::ServiceProvider;
    use crate::domain::transactions::TransactionStatus;
    use crate::proto;

    /// Every domain value has its proto value of the same name, and every proto value but the
    /// unspecified one has its domain value: a name that maps nowhere would silently become 0.
    macro_rules! maps_both_ways {
        ($domain:ty, $proto:ty) => {{
            for value in <$domain>::iter() {
                let name: &'static str = value.into();
                let wire = <$proto>::from_str_name(name)
                    .unwrap_or_else(|| panic!("{name} has no {}", stringify!($proto)));
                assert_ne!(wire as i32, 0, "{name} maps to the unspecified value");
                assert_eq!(wire.as_str_name().parse::<$domain>().ok(), Some(value));
            }
            for number in 1..128 {
                if let Ok(wire) = <$proto>::try_from(number) {
                    assert!(
                        wire.as_str_name().parse::<$domain>().is_ok(),
                        "{} has no {}",
                        wire.as_str_name(),
                        stringify!($domain)
                    );
                }
            }
        }};
    }

    #[test]
    fn every_domain_enum_maps_to_its_proto_value_and_back() {
        maps_both_ways!(ConnectionStatus, proto::connection::Status);
        maps_both_ways!(StatusReason, proto::connection::StatusReason);
        maps_both_ways!(Product, proto::product::Value);
        maps_both_ways!(ServiceProvider, proto::service_provider::Value);
        maps_both_ways!(EventType, proto::event::Type);
        maps_both_ways!(TransactionStatus, proto::transaction::Status);
        maps_both_ways!(FinancialAccountStatus, proto::financial_account::Status);
    }
}

//! Golden tests: each event type renders to JSON exactly as the seed's example, field by field.
//!
//! Ids differ in form (ours are UUIDs), so the seed's ids are put in their places before the
//! comparison; every other key and value, and the order of the payload's keys, must match.

use chrono::{DateTime, Utc};
use serde_json::Value;

use linkstate::domain::connection_events::{
    self, AccountSummary, ConnectionFacts, TransactionCounts,
};
use linkstate::domain::connection_state::{self, AggregationFailure, ConnectionState, Signal};
use linkstate::domain::connection_status::ConnectionStatus;
use linkstate::domain::event::{Event, NewEvent};
use linkstate::domain::ids::{
    AccountId, ConnectionId, CustomerId, EventId, FinancialAccountId, InstitutionId, RequestId,
};
use linkstate::domain::lifecycle_events;
use linkstate::domain::product::Product;

fn seed(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The connection as the seed describes it: its provider, its provider id and its institution.
fn facts(seed: &Value) -> ConnectionFacts {
    let details = details(seed);
    ConnectionFacts {
        connection_id: ConnectionId::generate(),
        customer_id: CustomerId::generate(),
        external_customer_id: seed["payload"]["externalCustomerId"]
            .as_str()
            .map(String::from),
        institution_id: InstitutionId::generate(),
        institution_name: seed["payload"]["institutionName"]
            .as_str()
            .unwrap_or("Chase")
            .into(),
        service_provider: details
            .get("serviceProvider")
            .and_then(Value::as_str)
            .unwrap_or("PLAID")
            .parse()
            .unwrap(),
        provider_connection_id: details
            .get("serviceProviderConnectionId")
            .and_then(Value::as_str)
            .map(String::from),
    }
}

fn request_id(seed: &Value) -> RequestId {
    seed["payload"]["requestId"]
        .as_str()
        .map_or_else(RequestId::generate, |id| RequestId(id.to_string()))
}

/// Renders `new` in the envelope, then puts the seed's ids where ours stand.
fn render(new: NewEvent, seed: &Value) -> Value {
    let event = Event {
        event_id: EventId::generate(),
        event_type: new.event_type,
        timestamp: Utc::now(),
        account_id: AccountId::generate(),
        version: seed["version"].as_str().unwrap().into(),
        payload: new.payload,
    };
    let profile = seed["profileId"].as_str().map(String::from);
    let mut json = serde_json::to_value(event.envelope(profile)).unwrap();
    for key in ["eventId", "timestamp", "accountId"] {
        json[key] = seed[key].clone();
    }
    for key in ["customerId", "connectionId", "institutionId"] {
        if json["payload"].get(key).is_some() && seed["payload"].get(key).is_some() {
            json["payload"][key] = seed["payload"][key].clone();
        }
    }
    let accounts = json["payload"].get_mut("financialAccounts");
    if let Some(accounts) = accounts.and_then(Value::as_array_mut) {
        let theirs = seed["payload"]["financialAccounts"].as_array().unwrap();
        for (ours, theirs) in accounts.iter_mut().zip(theirs) {
            for key in ["id", "financialAccountId"] {
                if ours.get(key).is_some() {
                    ours[key] = theirs[key].clone();
                }
            }
        }
    }
    json
}

fn assert_same(ours: &Value, seed: &Value) {
    assert_eq!(ours, seed, "\nours: {ours:#}\nseed: {seed:#}");
    let keys = |v: &Value| {
        v["payload"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(ours), keys(seed), "payload key order");
    let detail_keys = |v: &Value| details(v).keys().cloned().collect::<Vec<_>>();
    assert_eq!(detail_keys(ours), detail_keys(seed), "details key order");
    let top = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(top(ours), top(seed), "envelope key order");
}

#[test]
fn accounts_updating_matches_the_seed() {
    let seed = seed("BANK_LINKING_ACCOUNTS_UPDATING");
    let accounts: Vec<AccountSummary> = seed["payload"]["financialAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| AccountSummary {
            id: FinancialAccountId::generate(),
            name: a["name"].as_str().unwrap().into(),
            mask: a["truncatedAccountNumber"].as_str().map(String::from),
            is_new: a["newAccount"].as_bool().unwrap(),
        })
        .collect();
    let event = connection_events::accounts_updating(&facts(&seed), &request_id(&seed), &accounts);
    assert_same(&render(event, &seed), &seed);
}

#[test]
fn accounts_updated_matches_the_seed() {
    let seed = seed("BANK_LINKING_ACCOUNTS_UPDATED");
    let updated: Vec<(FinancialAccountId, Vec<Product>)> = seed["payload"]["financialAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let products = a["products"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().parse().unwrap())
                .collect();
            (FinancialAccountId::generate(), products)
        })
        .collect();
    let at: DateTime<Utc> = seed["payload"]["successfullyAggregatedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let event =
        connection_events::accounts_updated(&facts(&seed), &request_id(&seed), at, &updated);
    assert_same(&render(event, &seed), &seed);
}

#[test]
fn envelope_timestamps_have_microseconds_and_z() {
    let seed = seed("BANK_LINKING_ACCOUNTS_UPDATED");
    let event = Event {
        event_id: EventId::generate(),
        event_type: linkstate::domain::event::EventType::BankLinkingAccountsUpdated,
        timestamp: "2022-09-06T17:42:51.853020Z".parse().unwrap(),
        account_id: AccountId::generate(),
        version: "2022-08-29".into(),
        payload: Default::default(),
    };
    let json = serde_json::to_value(event.envelope(None)).unwrap();
    assert_eq!(json["timestamp"], seed["timestamp"]);
    assert!(json.get("profileId").is_none());
}

fn details(seed: &Value) -> serde_json::Map<String, Value> {
    seed["payload"]["serviceProviderDetails"]
        .as_object()
        .unwrap()
        .clone()
}

fn transaction_counts(seed: &Value) -> Vec<TransactionCounts> {
    seed["payload"]["financialAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| TransactionCounts {
            id: FinancialAccountId::generate(),
            added: a["numTransactionsAdded"].as_i64().unwrap(),
            updated: a["numTransactionsUpdated"].as_i64().unwrap(),
            removed: serde_json::from_value(a["transactionIdsRemoved"].clone()).unwrap(),
        })
        .collect()
}

fn aggregated_at(seed: &Value) -> DateTime<Utc> {
    seed["payload"]["successfullyAggregatedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The transaction events carry the triggering webhook as `serviceProviderDetails`; which
/// webhook is the webhook issue's to test, so here the seed's is put in its place.
fn with_seed_details(mut json: Value, seed: &Value) -> Value {
    json["payload"]["serviceProviderDetails"] = seed["payload"]["serviceProviderDetails"].clone();
    json
}

#[test]
fn transactions_aggregated_matches_the_seed() {
    let seed = seed("BANK_LINKING_TRANSACTIONS_AGGREGATED");
    let event = connection_events::transactions_aggregated(
        &facts(&seed),
        &request_id(&seed),
        aggregated_at(&seed),
        &transaction_counts(&seed),
        false,
    );
    assert_same(&with_seed_details(render(event, &seed), &seed), &seed);
}

#[test]
fn historical_transactions_aggregated_matches_the_seed() {
    let seed = seed("BANK_LINKING_HISTORICAL_TRANSACTIONS_AGGREGATED");
    let event = connection_events::transactions_aggregated(
        &facts(&seed),
        &request_id(&seed),
        aggregated_at(&seed),
        &transaction_counts(&seed),
        true,
    );
    assert_same(&with_seed_details(render(event, &seed), &seed), &seed);
}

#[test]
fn status_change_and_customer_action_required_match_the_seed() {
    for name in [
        "BANK_LINKING_CONNECTION_STATUS_CHANGE",
        "BANK_LINKING_CUSTOMER_ACTION_REQUIRED",
    ] {
        let seed = seed(name);
        let (_, effects) = connection_state::apply(
            ConnectionState {
                status: ConnectionStatus::Active,
                reason: None,
                consecutive_failures: 0,
            },
            Signal::AggregationFailed(AggregationFailure::LoginRequired),
        );
        let events =
            connection_events::transition_events(&facts(&seed), &effects, &details(&seed), &[]);
        let event = events
            .into_iter()
            .find(|e| e.event_type.as_str() == name)
            .unwrap();
        assert_same(&render(event, &seed), &seed);
    }
}

#[test]
fn connection_completed_matches_the_seed() {
    let seed = seed("BANK_LINKING_CONNECTION_COMPLETED");
    let events = lifecycle_events::flow_completed(&facts(&seed), &request_id(&seed));
    assert_same(&render(events[0].clone(), &seed), &seed);
}

#[test]
fn connection_failed_matches_the_seed() {
    let seed = seed("BANK_LINKING_CONNECTION_FAILED");
    // While the flow runs the connection has no provider id: it comes with the caller's details.
    let flow = ConnectionFacts {
        provider_connection_id: None,
        ..facts(&seed)
    };
    let mut given = details(&seed).clone();
    given.shift_remove("serviceProvider");
    let reason = seed["payload"]["reason"].as_str().unwrap();
    let events = lifecycle_events::flow_failed(&flow, &request_id(&seed), reason, &given);
    assert_same(&render(events[0].clone(), &seed), &seed);
}

#[test]
fn connection_deleted_and_accounts_removed_match_the_seeds() {
    let deleted = seed("BANK_LINKING_CONNECTION_DELETED");
    let events = lifecycle_events::deletion(&facts(&deleted), &[]);
    assert_same(&render(events[0].clone(), &deleted), &deleted);

    let removed = seed("BANK_LINKING_ACCOUNTS_REMOVED");
    let accounts: Vec<FinancialAccountId> = removed["payload"]["financialAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|_| FinancialAccountId::generate())
        .collect();
    let events = lifecycle_events::deletion(&facts(&removed), &accounts);
    assert_same(&render(events[1].clone(), &removed), &removed);
}

#[test]
fn new_accounts_available_matches_the_seed() {
    let seed = seed("BANK_LINKING_NEW_ACCOUNTS_AVAILABLE");
    let (_, effects) = connection_state::apply(
        ConnectionState {
            status: ConnectionStatus::Active,
            reason: None,
            consecutive_failures: 0,
        },
        Signal::NewAccountsAvailable,
    );
    let events =
        connection_events::transition_events(&facts(&seed), &effects, &details(&seed), &[]);
    let event = events
        .into_iter()
        .find(|e| e.event_type.as_str() == "BANK_LINKING_NEW_ACCOUNTS_AVAILABLE")
        .expect("the signal sends NEW_ACCOUNTS_AVAILABLE");
    assert_same(&render(event, &seed), &seed);
}

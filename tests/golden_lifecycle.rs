//! Golden tests for the lifecycle events (connect flow end, deletion): each renders to JSON
//! exactly as the seed's example, field by field and in the seed's key order.
//!
//! As in `golden.rs`, the seed's ids are put in the places of ours (UUIDs) before comparing.

use chrono::Utc;
use serde_json::{Map, Value};

use linkstate::domain::connection_events::ConnectionFacts;
use linkstate::domain::event::{Event, NewEvent};
use linkstate::domain::ids::{
    AccountId, ConnectionId, CustomerId, EventId, FinancialAccountId, InstitutionId, RequestId,
};
use linkstate::domain::lifecycle_events;

fn seed(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn details(seed: &Value) -> &Map<String, Value> {
    seed["payload"]["serviceProviderDetails"]
        .as_object()
        .unwrap()
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
        service_provider: details["serviceProvider"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        provider_connection_id: details["serviceProviderConnectionId"]
            .as_str()
            .map(String::from),
    }
}

fn request_id(seed: &Value) -> RequestId {
    RequestId(seed["payload"]["requestId"].as_str().unwrap().into())
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
            ours["id"] = theirs["id"].clone();
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

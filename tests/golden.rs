//! Golden tests: each event type renders to JSON exactly as the seed's example, field by field.
//!
//! Ids differ in form (ours are UUIDs), so the seed's ids are put in their places before the
//! comparison; every other key and value, and the order of the payload's keys, must match.

use chrono::{DateTime, Utc};
use serde_json::Value;

use linkstate::domain::connection_events::{self, AccountSummary, ConnectionFacts};
use linkstate::domain::event::{Event, NewEvent};
use linkstate::domain::ids::{
    AccountId, ConnectionId, CustomerId, EventId, FinancialAccountId, InstitutionId, RequestId,
};
use linkstate::domain::product::Product;
use linkstate::domain::service_provider::ServiceProvider;

fn seed(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn facts(seed: &Value) -> ConnectionFacts {
    ConnectionFacts {
        connection_id: ConnectionId::generate(),
        customer_id: CustomerId::generate(),
        external_customer_id: seed["payload"]["externalCustomerId"]
            .as_str()
            .map(String::from),
        institution_id: InstitutionId::generate(),
        institution_name: "Chase".into(),
        service_provider: ServiceProvider::Plaid,
        provider_connection_id:
            seed["payload"]["serviceProviderDetails"]["serviceProviderConnectionId"]
                .as_str()
                .map(String::from),
    }
}

fn request_id(seed: &Value) -> RequestId {
    RequestId(seed["payload"]["requestId"].as_str().unwrap().to_string())
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
        json["payload"][key] = seed["payload"][key].clone();
    }
    let accounts = json["payload"]["financialAccounts"].as_array_mut().unwrap();
    for (ours, theirs) in accounts
        .iter_mut()
        .zip(seed["payload"]["financialAccounts"].as_array().unwrap())
    {
        ours["id"] = theirs["id"].clone();
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

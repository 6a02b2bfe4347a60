//! Akoya end to end: imports through gRPC against the simulator's Akoya API, token rotation,
//! pulls by date window, notifications confirmed at Akoya, and credentials kept out of sight.

mod common;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use bigdecimal::BigDecimal;
use linkstate::domain::ids::ConnectionId;
use linkstate::proto::{self, connection, event::Type, import_result};
use linkstate::store::{self, credentials};
use linkstate_sim::{AkoyaConsent, AkoyaErrorRule, Mutation, Simulator};
use linkstate_testing::{TestApp, authed};
use serde_json::{Value, json};

use common::{
    all_events, all_transactions, count, events_until, financial_accounts, payload, types,
};

/// One Akoya consent to import.
fn akoya_item(customer: &str, refresh_token: &str, provider_id: &str) -> proto::ImportConnection {
    proto::ImportConnection {
        service_provider: proto::service_provider::Value::Akoya as i32,
        external_customer_id: customer.into(),
        refresh_token: refresh_token.into(),
        provider_id: provider_id.into(),
        ..Default::default()
    }
}

async fn import_result(
    app: &TestApp,
    key: &str,
    item: proto::ImportConnection,
) -> import_result::Result {
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![item],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    response.results.into_iter().next().unwrap().result.unwrap()
}

/// Imports the consent and waits for its historical load.
async fn import(app: &TestApp, key: &str, consent: &AkoyaConsent) -> proto::Connection {
    let item = akoya_item(
        "customer-1",
        consent.refresh_token.expose(),
        &consent.provider_id,
    );
    let connection = match import_result(app, key, item).await {
        import_result::Result::Connection(connection) => connection,
        import_result::Result::Error(error) => panic!("import failed: {error:?}"),
    };
    events_until(app, key, |events| {
        count(events, Type::BankLinkingHistoricalTransactionsAggregated) == 1
    })
    .await;
    connection
}

/// The tokens linkstate holds for a connection, opened with the process's own key.
async fn stored_tokens(app: &TestApp, id: &str) -> credentials::AkoyaTokens {
    let mut conn = store::connect(&app.pool).await.unwrap();
    let id = ConnectionId(id.parse().unwrap());
    credentials::akoya_tokens(&mut conn, app.app.ctx.cipher(), id)
        .await
        .unwrap()
}

/// A GET of the simulator's Akoya API with linkstate's live id token (reading does not rotate).
async fn akoya_get(app: &TestApp, id_token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", app.sim_addr))
        .bearer_auth(id_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The only value of a one-key wrapper object (`{"depositAccount": {...}}`).
fn unwrap_kind(wrapped: &Value) -> &Value {
    wrapped.as_object().unwrap().values().next().unwrap()
}

fn decimal(value: &Value) -> BigDecimal {
    BigDecimal::from_str(&value.to_string()).unwrap()
}

async fn connection_now(app: &TestApp, key: &str, id: &str) -> proto::Connection {
    common::connection(app, key, id).await
}

async fn wait_status(app: &TestApp, key: &str, id: &str, status: connection::Status) {
    for _ in 0..200 {
        if connection_now(app, key, id).await.status == status as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connection not {status:?} in 10 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_akoya_import_brings_accounts_owners_and_two_years_of_transactions_to_the_cent() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    assert_eq!(connection.status, connection::Status::Active as i32);
    assert_eq!(
        connection
            .service_provider_details
            .as_ref()
            .unwrap()
            .service_provider_connection_id,
        consent.consent_id,
        "the consent (the id token's grant_id) is the provider's connection id"
    );
    let events = all_events(&app, &key).await;
    assert_eq!(
        types(&events),
        [
            Type::BankLinkingAccountsUpdating,
            Type::BankLinkingAccountsUpdated,
            Type::BankLinkingTransactionsAggregated,
            Type::BankLinkingHistoricalTransactionsAggregated,
        ]
    );
    // The caller's token is dead; the stored one is Akoya's newest.
    let tokens = stored_tokens(&app, &connection.id).await;
    assert_eq!(
        Some(tokens.refresh_token.clone()),
        app.sim.akoya_refresh_token(&consent.consent_id)
    );
    assert_ne!(tokens.refresh_token, consent.refresh_token);
    assert_eq!(app.sim.akoya_refused_refreshes(), 0);
    assert_eq!(
        app.sim.akoya_refreshes(&consent.consent_id),
        1,
        "the aggregation used the id token the import got: nothing refreshes just to read"
    );
    let (id_token, _) = tokens.id_token.unwrap();

    // Balances, as Akoya lists them.
    let balances = akoya_get(&app, id_token.expose(), "/balances/v2/mikomo").await;
    let accounts = financial_accounts(&app, &key, &connection.id).await;
    assert_eq!(
        accounts.len(),
        balances["accounts"].as_array().unwrap().len()
    );
    let info = akoya_get(&app, id_token.expose(), "/accounts-info/v2/mikomo").await;
    let mut provider_ids = BTreeMap::new();
    for (wrapped_info, wrapped_balance) in info["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(balances["accounts"].as_array().unwrap())
    {
        let (info, balance) = (unwrap_kind(wrapped_info), unwrap_kind(wrapped_balance));
        let name = info["nickname"]
            .as_str()
            .or(info["productName"].as_str())
            .unwrap();
        let ours = accounts.iter().find(|a| a.name == name).unwrap();
        let current = ours
            .balances
            .as_ref()
            .unwrap()
            .current_amount
            .as_deref()
            .unwrap();
        assert_eq!(
            BigDecimal::from_str(current).unwrap(),
            decimal(&balance["currentBalance"]),
            "{name}"
        );
        assert_eq!(ours.subtype, info["accountType"].as_str().unwrap());
        assert!(!ours.owners.is_empty(), "the current customer owns {name}");
        provider_ids.insert(
            info["accountId"].as_str().unwrap().to_string(),
            ours.id.clone(),
        );
    }

    // Every transaction of the last two years, with its sign by debitCreditMemo.
    let mut expected = BTreeMap::new();
    for account in provider_ids.keys() {
        let mut path = format!(
            "/transactions/v2/mikomo/{account}?startTime=2020-01-01T00%3A00%3A00Z&endTime=2030-01-01T00%3A00%3A00Z&limit=100"
        );
        loop {
            let page = akoya_get(&app, id_token.expose(), &path).await;
            for wrapped in page["transactions"].as_array().unwrap() {
                let tx = unwrap_kind(wrapped);
                let magnitude = decimal(&tx["amount"]).abs();
                let amount = if tx["debitCreditMemo"] == "DEBIT" {
                    magnitude
                } else {
                    -magnitude
                };
                expected.insert(tx["transactionId"].as_str().unwrap().to_string(), amount);
            }
            match page["links"]["next"]["href"].as_str() {
                Some(next) => path = next.to_string(),
                None => break,
            }
        }
    }
    let stored = all_transactions(&app, &key, &connection.id, 500).await;
    let stored: BTreeMap<String, BigDecimal> = stored
        .iter()
        .map(|t| (t.id.clone(), BigDecimal::from_str(&t.amount).unwrap()))
        .collect();
    assert_eq!(stored.len(), expected.len());
    let mut ours: Vec<_> = stored.values().cloned().collect();
    let mut theirs: Vec<_> = expected.values().cloned().collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "every amount, to the cent, with Meld's sign");
    let aggregated = events
        .iter()
        .find(|e| e.event_type == Type::BankLinkingTransactionsAggregated as i32)
        .unwrap();
    let historical = events
        .iter()
        .find(|e| e.event_type == Type::BankLinkingHistoricalTransactionsAggregated as i32)
        .unwrap();
    let added = |e: &proto::Event| -> i64 {
        payload(e)
            .financial_accounts
            .iter()
            .filter_map(|a| a.num_transactions_added)
            .sum()
    };
    assert_eq!(
        (added(aggregated) + added(historical)) as usize,
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoints_invalid_grant_or_401_fails_the_item_unauthenticated_and_writes_nothing()
{
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    for (http_status, error) in [(400, "invalid_grant"), (401, "invalid_client")] {
        let consent = app.sim.create_akoya_consent("mikomo");
        app.sim.inject_akoya_error(AkoyaErrorRule {
            path_prefix: "/token".into(),
            http_status,
            body: serde_json::json!({"error": error, "error_description": "refused"}),
            times: Some(1),
        });
        let item = akoya_item(
            "customer-1",
            consent.refresh_token.expose(),
            &consent.provider_id,
        );
        let import_result::Result::Error(refused) = import_result(&app, &key, item).await else {
            panic!("a refused token imports nothing");
        };
        assert_eq!(refused.code, "UNAUTHENTICATED", "{http_status}");
        assert!(refused.message.contains(error), "{}", refused.message);
        common::assert_nothing_written(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_refresh_token_fails_the_item_unauthenticated_and_writes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let item = akoya_item("customer-1", "akoya-refresh-never-issued", "mikomo");
    let import_result::Result::Error(error) = import_result(&app, &key, item).await else {
        panic!("a refused token imports nothing");
    };
    assert_eq!(error.code, "UNAUTHENTICATED");
    assert!(
        error.message.contains("invalid_request"),
        "{}",
        error.message
    );
    let details = serde_json::to_value(
        error
            .service_provider_details
            .as_ref()
            .unwrap()
            .fields
            .keys()
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        details.to_string().contains("error_description"),
        "{details}"
    );
    common::assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_retried_with_the_now_dead_token_answers_the_same_connection() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let first = import(&app, &key, &consent).await;
    let refreshes = app.sim.akoya_refreshes(&consent.consent_id);
    let item = akoya_item("customer-1", consent.refresh_token.expose(), "mikomo");
    let import_result::Result::Connection(again) = import_result(&app, &key, item).await else {
        panic!("a retried import answers its connection");
    };
    assert_eq!(again.id, first.id);
    assert_eq!(
        app.sim.akoya_refreshes(&consent.consent_id),
        refreshes,
        "no second refresh"
    );
    assert_eq!(app.sim.akoya_refused_refreshes(), 0);
    assert_eq!(app.count("connections").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refresh_stores_the_newest_token_before_using_it() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    // Id tokens that live less than linkstate's margin: every aggregation refreshes.
    app.sim.set_akoya_id_token_lifetime(Duration::from_secs(60));
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    for round in 1..=5 {
        let before = app.sim.akoya_refreshes(&consent.consent_id);
        common::refresh(&app, &key, &connection.id).await.unwrap();
        common::wait_until(|| async { app.sim.akoya_refreshes(&consent.consent_id) > before })
            .await;
        common::wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
        let stored = stored_tokens(&app, &connection.id).await.refresh_token;
        assert_eq!(
            Some(stored),
            app.sim.akoya_refresh_token(&consent.consent_id),
            "round {round}"
        );
    }
    assert_eq!(app.sim.akoya_refused_refreshes(), 0);
    assert_eq!(
        connection_now(&app, &key, &connection.id).await.status,
        connection::Status::Active as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_consent_is_reconnect_required_token_expired_without_retries() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    app.sim.set_akoya_id_token_lifetime(Duration::from_secs(60));
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    app.sim.revoke_akoya_consent(&consent.consent_id);
    let refused = app.sim.akoya_refused_refreshes();
    common::refresh(&app, &key, &connection.id).await.unwrap();
    wait_status(
        &app,
        &key,
        &connection.id,
        connection::Status::ReconnectRequired,
    )
    .await;
    let now = connection_now(&app, &key, &connection.id).await;
    assert_eq!(
        now.status_reason,
        Some(connection::StatusReason::TokenExpired as i32)
    );
    assert_eq!(
        app.sim.akoya_refused_refreshes(),
        refused + 1,
        "a refused token is not retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_consent_repairs_a_connection_whose_consent_is_gone() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    app.sim.set_akoya_id_token_lifetime(Duration::from_secs(60));
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    app.sim.revoke_akoya_consent(&consent.consent_id);
    common::refresh(&app, &key, &connection.id).await.unwrap();
    wait_status(
        &app,
        &key,
        &connection.id,
        connection::Status::ReconnectRequired,
    )
    .await;
    let mut client = app.connections().await;
    let repair = |refresh_token: &str| {
        authed(
            &key,
            proto::RepairConnectionRequest {
                connection_id: connection.id.clone(),
                refresh_token: refresh_token.into(),
                provider_id: "mikomo".into(),
                ..Default::default()
            },
        )
    };

    // The old consent's token cannot repair it, and nothing changes.
    let before = app.count("events").await;
    let dead = stored_tokens(&app, &connection.id).await.refresh_token;
    let refused = client
        .repair_connection(repair(dead.expose()))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().starts_with(
            "the provider still refuses this connection: Akoya could not refresh the refreshToken"
        ),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("invalid_request"), "its code");
    assert_eq!(app.count("events").await, before);
    let without = client
        .repair_connection(authed(
            &key,
            proto::RepairConnectionRequest {
                connection_id: connection.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (without.code(), without.message()),
        (
            tonic::Code::InvalidArgument,
            "the new consent's refreshToken and providerId are required to complete this AKOYA connection"
        )
    );

    let renewed = app.sim.create_akoya_consent("mikomo");
    let repaired = client
        .repair_connection(repair(renewed.refresh_token.expose()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repaired.status, connection::Status::Active as i32);
    let details = repaired.service_provider_details.unwrap();
    assert_ne!(
        details.service_provider_connection_id,
        connection
            .service_provider_details
            .unwrap()
            .service_provider_connection_id,
        "the new consent names the connection"
    );
    assert_eq!(
        app.sim.akoya_refreshes(&renewed.consent_id),
        1,
        "rotated once, by the repair"
    );
    let stored = stored_tokens(&app, &connection.id).await;
    assert_eq!(
        Some(stored.refresh_token.expose().to_string()),
        app.sim
            .akoya_refresh_token(&renewed.consent_id)
            .map(|t| t.expose().to_string()),
        "the rotated token of the new consent is the one stored"
    );
    // Its aggregation runs with the new consent and announces the consent's accounts as new.
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdating) == 2
    })
    .await;
    let updating = events
        .iter()
        .rev()
        .find(|e| e.event_type == Type::BankLinkingAccountsUpdating as i32)
        .unwrap();
    assert!(
        payload(updating)
            .financial_accounts
            .iter()
            .any(|a| a.new_account == Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_reports_exactly_what_akoya_changed_in_its_window() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let outcome = app.sim.mutate(
        &consent.item_id,
        Mutation {
            add: 3,
            modify: 2,
            remove: 1,
        },
    );
    // Last pulled 25 days ago: this pull reads back over every day the mutation touched.
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(25)).format("%Y-%m-%d");
    common::sql(
        &app,
        &format!("UPDATE connections SET transactions_cursor = '{day}'"),
    )
    .await;
    common::refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |events| {
        count(events, Type::BankLinkingTransactionsAggregated) == 2
    })
    .await;
    let pulled = events
        .iter()
        .rev()
        .find(|e| e.event_type == Type::BankLinkingTransactionsAggregated as i32)
        .unwrap();
    let accounts = &payload(pulled).financial_accounts;
    let added: i64 = accounts
        .iter()
        .filter_map(|a| a.num_transactions_added)
        .sum();
    let updated: i64 = accounts
        .iter()
        .filter_map(|a| a.num_transactions_updated)
        .sum();
    let removed: usize = accounts
        .iter()
        .map(|a| a.transaction_ids_removed.len())
        .sum();
    assert_eq!(
        (added as usize, updated as usize, removed),
        (
            outcome.added.len(),
            outcome.modified.len(),
            outcome.removed.len()
        )
    );
    assert_eq!((outcome.modified.len(), outcome.removed.len()), (2, 1));
    // Nothing changed since: the next pull says nothing about transactions.
    common::refresh(&app, &key, &connection.id).await.unwrap();
    events_until(&app, &key, |events| {
        count(events, Type::BankLinkingAccountsUpdated) == 3
    })
    .await;
    common::wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    assert_eq!(
        count(
            &all_events(&app, &key).await,
            Type::BankLinkingTransactionsAggregated
        ),
        2
    );
}

/// Posts a body to `/webhooks/akoya`.
async fn notify(app: &TestApp, body: &[u8]) -> (reqwest::StatusCode, Value) {
    common::post_to(app, "/webhooks/akoya", body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_consent_revoked_for_a_healthy_consent_changes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let before = all_events(&app, &key).await.len();
    let forged =
        Simulator::akoya_notification("CONSENT", "CONSENT_REVOKED", &consent.consent_id, "mikomo");
    let (status, _) = notify(&app, &serde_json::to_vec(&forged).unwrap()).await;
    assert_eq!(status, 200);
    common::wait_processed(&app, 1).await;
    assert_eq!(
        connection_now(&app, &key, &connection.id).await.status,
        connection::Status::Active as i32
    );
    assert_eq!(all_events(&app, &key).await.len(), before, "no event");
    assert_eq!(app.sim.akoya_refused_refreshes(), 0);
    // Still refreshes with the token the confirmation rotated.
    let stored = stored_tokens(&app, &connection.id).await.refresh_token;
    assert_eq!(
        Some(stored),
        app.sim.akoya_refresh_token(&consent.consent_id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_revocation_deletes_the_connection_and_removes_its_accounts() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    app.sim.revoke_akoya_consent(&consent.consent_id);
    let notice =
        Simulator::akoya_notification("CONSENT", "CONSENT_REVOKED", &consent.consent_id, "mikomo");
    app.sim.send_akoya_notification(
        &format!("http://{}/webhooks/akoya", app.app.http_addr),
        &notice,
    );
    let events = events_until(&app, &key, |events| {
        count(events, Type::BankLinkingAccountsRemoved) == 1
    })
    .await;
    let tail: Vec<_> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            Type::BankLinkingAccountsRemoved,
            Type::BankLinkingConnectionDeleted
        ]
    );
    assert_eq!(
        connection_now(&app, &key, &connection.id).await.status,
        connection::Status::Deleted as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_consent_update_announces_new_accounts_and_removes_dropped_ones() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let dropped = app.sim.akoya_account_ids(&consent.consent_id)[1].clone();
    app.sim.drop_akoya_account(&consent.consent_id, &dropped);
    let added = app.sim.add_akoya_account(&consent.consent_id);
    let notice =
        Simulator::akoya_notification("CONSENT", "CONSENT_UPDATED", &consent.consent_id, "mikomo");
    let (status, _) = notify(&app, &serde_json::to_vec(&notice).unwrap()).await;
    assert_eq!(status, 200);
    let events = events_until(&app, &key, |events| {
        count(events, Type::BankLinkingAccountsRemoved) == 1
            && count(events, Type::BankLinkingAccountsUpdating) == 2
    })
    .await;
    let updating = events
        .iter()
        .rev()
        .find(|e| e.event_type == Type::BankLinkingAccountsUpdating as i32)
        .unwrap();
    let new: Vec<_> = payload(updating)
        .financial_accounts
        .iter()
        .filter(|a| a.new_account == Some(true))
        .collect();
    assert_eq!(new.len(), 1, "only {added} is new");
    let accounts = financial_accounts(&app, &key, &connection.id).await;
    let inactive = accounts
        .iter()
        .filter(|a| a.status == proto::financial_account::Status::Inactive as i32)
        .count();
    assert_eq!(inactive, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_that_are_not_one_are_refused_and_maintenance_changes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let (status, body) = notify(&app, b"{\"category\": 1}").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not an Akoya notification"),
        "{body}"
    );
    let (status, _) = notify(&app, b"not json").await;
    assert_eq!(status, 400);
    assert_eq!(app.count("webhook_deliveries").await, 0);
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let before = all_events(&app, &key).await.len();
    for (n, kind) in ["PLANNED_OUTAGE", "SERVICE"].into_iter().enumerate() {
        let outage =
            Simulator::akoya_notification("MAINTENANCE", kind, &format!("notice-{n}"), "mikomo");
        let (status, _) = notify(&app, &serde_json::to_vec(&outage).unwrap()).await;
        assert_eq!(status, 200);
        common::wait_processed(&app, n as i64 + 1).await;
    }
    assert_eq!(all_events(&app, &key).await.len(), before);
    assert_eq!(
        connection_now(&app, &key, &connection.id).await.status,
        connection::Status::Active as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_and_then_answered_resource_exhausted() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let throttle = |times| AkoyaErrorRule {
        path_prefix: "/balances/v2".into(),
        http_status: 429,
        body: json!({"code": 1207, "message": "Too many requests"}),
        times,
    };
    app.sim.inject_akoya_error(throttle(Some(2)));
    let consent = app.sim.create_akoya_consent("mikomo");
    import(&app, &key, &consent).await;
    app.sim.inject_akoya_error(throttle(None));
    let other = app.sim.create_akoya_consent("mikomo");
    let item = akoya_item("customer-2", other.refresh_token.expose(), "mikomo");
    let import_result::Result::Error(error) = import_result(&app, &key, item).await else {
        panic!("a throttled import fails");
    };
    assert_eq!(error.code, "RESOURCE_EXHAUSTED");
    // The rotated token is kept: the consent is not lost to the throttling.
    assert_eq!(app.count("connections").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_never_in_clear_in_the_database_or_in_answers() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let tokens = stored_tokens(&app, &connection.id).await;
    let secrets = [
        consent.refresh_token.expose().to_string(),
        tokens.refresh_token.expose().to_string(),
        tokens.id_token.unwrap().0.expose().to_string(),
    ];
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = store::connect(&app.pool).await.unwrap();
    for table in [
        "connections",
        "events",
        "jobs",
        "financial_accounts",
        "transactions",
        "customers",
        "institutions",
        "consumed_refresh_tokens",
    ] {
        let dump = diesel::sql_query(format!(
            "SELECT coalesce(string_agg(encode(convert_to(t::text, 'UTF8'), 'escape'), ''), '') AS text FROM {table} t"
        ))
        .get_result::<Dump>(&mut conn)
        .await
        .unwrap()
        .text;
        for secret in &secrets {
            assert!(
                !dump.contains(secret.as_str()),
                "a token in clear in {table}"
            );
        }
    }
    let answer = format!(
        "{:?} {:?}",
        connection_now(&app, &key, &connection.id).await,
        all_events(&app, &key).await
    );
    for secret in &secrets {
        assert!(!answer.contains(secret.as_str()));
    }
}

async fn create_flow(app: &TestApp, key: &str) -> proto::Connection {
    app.connections()
        .await
        .create_connection(authed(
            key,
            proto::CreateConnectionRequest {
                service_provider: proto::service_provider::Value::Akoya as i32,
                external_customer_id: "customer-1".into(),
                institution_id: "mikomo".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn complete_flow(
    app: &TestApp,
    key: &str,
    id: &str,
    refresh_token: &str,
) -> Result<proto::Connection, tonic::Status> {
    app.connections()
        .await
        .complete_connection(authed(
            key,
            proto::CompleteConnectionRequest {
                connection_id: id.into(),
                refresh_token: refresh_token.into(),
                provider_id: "mikomo".into(),
                service_provider_connection_id: "consent-from-the-flow".into(),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_flow_completed_with_an_akoya_consent_is_aggregated_as_an_import_is() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let flow = create_flow(&app, &key).await;
    // A refused token completes nothing: the flow still runs.
    let refused = complete_flow(&app, &key, &flow.id, "akoya-refresh-never-issued")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("invalid_request"), "{refused:?}");
    assert_eq!(
        connection_now(&app, &key, &flow.id).await.status,
        connection::Status::InProgress as i32
    );

    let consent = app.sim.create_akoya_consent("mikomo");
    let completed = complete_flow(&app, &key, &flow.id, consent.refresh_token.expose())
        .await
        .unwrap();
    assert_eq!(completed.status, connection::Status::Active as i32);
    assert_eq!(
        completed
            .service_provider_details
            .unwrap()
            .service_provider_connection_id,
        consent.consent_id,
        "the consent Akoya names, not the one sent"
    );
    let events = events_until(&app, &key, |events| {
        count(events, Type::BankLinkingHistoricalTransactionsAggregated) == 1
    })
    .await;
    assert_eq!(
        types(&events),
        [
            Type::BankLinkingConnectionCompleted,
            Type::BankLinkingConnectionStatusChange,
            Type::BankLinkingAccountsUpdating,
            Type::BankLinkingAccountsUpdated,
            Type::BankLinkingTransactionsAggregated,
            Type::BankLinkingHistoricalTransactionsAggregated,
        ]
    );
    let stored = stored_tokens(&app, &flow.id).await.refresh_token;
    assert_eq!(
        Some(stored),
        app.sim.akoya_refresh_token(&consent.consent_id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_akoya_connection_revokes_the_consent_at_akoya() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    let deleted = app
        .connections()
        .await
        .delete_connection(authed(
            &key,
            proto::DeleteConnectionRequest {
                connection_id: connection.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.status, connection::Status::Deleted as i32);
    assert_eq!(
        app.sim.akoya_refresh_token(&consent.consent_id),
        None,
        "revoked at Akoya"
    );
    let events = events_until(&app, &key, |events| {
        count(events, Type::BankLinkingAccountsRemoved) == 1
    })
    .await;
    let tail: Vec<_> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            Type::BankLinkingAccountsRemoved,
            Type::BankLinkingConnectionDeleted
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_akoya_outage_degrades_the_connection_after_retries_and_the_next_pull_heals_it() {
    let app = TestApp::start().await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let connection = import(&app, &key, &consent).await;
    app.sim.inject_akoya_error(AkoyaErrorRule {
        path_prefix: "/balances/v2".into(),
        http_status: 503,
        body: json!({"code": 503, "message": "System is down for maintenance"}),
        times: None,
    });
    let calls = app.sim.calls("/balances");
    common::refresh(&app, &key, &connection.id).await.unwrap();
    wait_status(&app, &key, &connection.id, connection::Status::Degraded).await;
    let now = connection_now(&app, &key, &connection.id).await;
    assert_eq!(
        now.status_reason,
        Some(connection::StatusReason::InstitutionCurrentlyUnavailable as i32)
    );
    assert_eq!(
        app.sim.calls("/balances") - calls,
        4,
        "tried once and retried three times"
    );
    app.sim.clear_errors();
    common::refresh(&app, &key, &connection.id).await.unwrap();
    wait_status(&app, &key, &connection.id, connection::Status::Active).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn akoya_without_app_credentials_is_a_failed_precondition_and_writes_nothing() {
    let app = TestApp::start_with(|config| config.akoya.client_secret = None).await;
    let (_, key) = app.account("akoya").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    let item = akoya_item("customer-1", consent.refresh_token.expose(), "mikomo");
    let status = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: vec![item],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    common::assert_status(
        &status,
        tonic::Code::FailedPrecondition,
        "Akoya is not configured: set AKOYA_CLIENT_ID and AKOYA_CLIENT_SECRET",
    );
    common::assert_nothing_written(&app).await;
    assert_eq!(
        app.sim.akoya_refreshes(&consent.consent_id),
        0,
        "the token is untouched"
    );
}

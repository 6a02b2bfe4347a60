//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod process;

use std::time::Duration;

use linkstate::proto::{self, import_result};
use linkstate_sim::SandboxItem;
use linkstate_testing::{TestApp, authed};
use reqwest::StatusCode;
use serde_json::Value;

/// One Plaid item to import.
pub fn plaid_item(external_customer_id: &str, access_token: &str) -> proto::ImportConnection {
    proto::ImportConnection {
        service_provider: proto::service_provider::Value::Plaid as i32,
        external_customer_id: external_customer_id.into(),
        access_token: access_token.into(),
        ..Default::default()
    }
}

/// Imports one simulator item and answers its connection.
pub async fn import(app: &TestApp, key: &str, item: &SandboxItem) -> proto::Connection {
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![plaid_item("customer-1", item.access_token.expose())],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    match response.results.into_iter().next().unwrap().result {
        Some(import_result::Result::Connection(connection)) => connection,
        other => panic!("import failed: {other:?}"),
    }
}

/// Every event of the key's account, in order.
pub async fn all_events(app: &TestApp, key: &str) -> Vec<proto::Event> {
    let mut client = app.events().await;
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_events(authed(
                key,
                proto::ListEventsRequest {
                    after_cursor: cursor.clone(),
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            return events;
        }
        events.extend(page.events);
        cursor = page.next_cursor;
    }
}

/// The account's events once `done` holds for them (10 s at most).
pub async fn events_until(
    app: &TestApp,
    key: &str,
    done: impl Fn(&[proto::Event]) -> bool,
) -> Vec<proto::Event> {
    for _ in 0..200 {
        let events = all_events(app, key).await;
        if done(&events) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = all_events(app, key).await;
    panic!(
        "condition not reached in 10 s; events: {:#?}",
        types(&events)
    );
}

/// The event types, in order.
pub fn types(events: &[proto::Event]) -> Vec<proto::event::Type> {
    events
        .iter()
        .map(|e| proto::event::Type::try_from(e.event_type).unwrap())
        .collect()
}

/// How many events of `kind` there are.
pub fn count(events: &[proto::Event], kind: proto::event::Type) -> usize {
    types(events).into_iter().filter(|t| *t == kind).count()
}

/// Every transaction of a connection, newest first, read page by page.
pub async fn all_transactions(
    app: &TestApp,
    key: &str,
    connection_id: &str,
    page_size: i32,
) -> Vec<proto::Transaction> {
    let mut client = app.financial_data().await;
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_transactions(authed(
                key,
                proto::ListTransactionsRequest {
                    connection_id: connection_id.into(),
                    page_size,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.transactions);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// RepairConnection, as `key`'s tenant.
pub async fn repair(
    app: &TestApp,
    key: &str,
    request: proto::RepairConnectionRequest,
) -> Result<proto::Connection, tonic::Status> {
    app.connections()
        .await
        .repair_connection(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

/// A repair of `id` without new credentials.
pub fn repair_of(id: &str) -> proto::RepairConnectionRequest {
    proto::RepairConnectionRequest {
        connection_id: id.into(),
        ..Default::default()
    }
}

/// Asks for a refresh of the connection.
pub async fn refresh(
    app: &TestApp,
    key: &str,
    connection_id: &str,
) -> Result<String, tonic::Status> {
    app.connections()
        .await
        .refresh_connection(authed(
            key,
            proto::RefreshConnectionRequest {
                connection_id: connection_id.into(),
                products: Vec::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().request_id)
}

/// The connection as the API shows it now.
pub async fn connection(app: &TestApp, key: &str, id: &str) -> proto::Connection {
    app.connections()
        .await
        .get_connection(authed(
            key,
            proto::GetConnectionRequest {
                connection_id: id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The connection's financial accounts, as the key's account sees them.
pub async fn financial_accounts(
    app: &TestApp,
    key: &str,
    connection_id: &str,
) -> Vec<proto::FinancialAccount> {
    app.financial_data()
        .await
        .list_financial_accounts(authed(
            key,
            proto::ListFinancialAccountsRequest {
                connection_id: connection_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .financial_accounts
}

/// Waits until `n` webhook deliveries are processed (5 s at most).
pub async fn wait_processed(app: &TestApp, n: i64) {
    for _ in 0..200 {
        if app
            .count("webhook_deliveries WHERE processed_at IS NOT NULL")
            .await
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("deliveries not processed in 5 s");
}

/// Posts a delivery to /webhooks/plaid; answers the status and the JSON body.
pub async fn post(app: &TestApp, body: &[u8], jwt: Option<&str>) -> (StatusCode, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/plaid", app.app.http_addr))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(jwt) = jwt {
        request = request.header("Plaid-Verification", jwt);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts `body` unsigned to one of the HTTP listener's paths.
pub async fn post_to(app: &TestApp, path: &str, body: &[u8]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", app.app.http_addr))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts a body signed by the simulator, as Plaid would.
pub async fn deliver(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let jwt = app.sim.sign_webhook(&bytes);
    post(app, &bytes, Some(&jwt)).await
}

/// Runs `statement` on the test database.
pub async fn sql(app: &TestApp, statement: &str) {
    use diesel_async::RunQueryDsl;
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// An event's payload.
pub fn payload(event: &proto::Event) -> &proto::EventPayload {
    event.payload.as_ref().unwrap()
}

/// ImportConnections of these items, which must be answered (item by item, failures included).
pub async fn import_items(
    app: &TestApp,
    key: &str,
    items: Vec<proto::ImportConnection>,
) -> proto::ImportConnectionsResponse {
    app.connections()
        .await
        .import_connections(authed(key, import_request(items)))
        .await
        .unwrap()
        .into_inner()
}

/// An import request of these items.
pub fn import_request(items: Vec<proto::ImportConnection>) -> proto::ImportConnectionsRequest {
    proto::ImportConnectionsRequest {
        connections: items,
        ..Default::default()
    }
}

/// Nothing of a refused import or request is in the database.
pub async fn assert_nothing_written(app: &TestApp) {
    for table in [
        "customers",
        "connections",
        "financial_accounts",
        "transactions",
        "events",
        "jobs",
        "webhook_deliveries",
        "outbound_deliveries",
    ] {
        assert_eq!(app.count(table).await, 0, "{table} has rows");
    }
}

/// A refusal with exactly this code and message.
#[track_caller]
pub fn assert_status(status: &tonic::Status, code: tonic::Code, message: &str) {
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "{status:?}"
    );
}

/// Waits until `done` holds (10 s at most).
pub async fn wait_until<F, Fut>(done: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

/// The process's `/metrics` text.
pub async fn metrics(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.app.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

//! The connect flow (CreateConnection, CompleteConnection, FailConnection, expiry) and
//! DeleteConnection, through the real gRPC listener, against the simulator.

mod common;

use std::collections::BTreeSet;

use common::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use linkstate::domain::ids::ConnectionId;
use linkstate::domain::import::ProviderCredentials;
use linkstate::proto::{self, connection::Status as ConnStatus, event::Type};
use linkstate::store::{self, StoreError, credentials};
use linkstate::worker::schedule;
use linkstate_sim::{ErrorRule, SandboxItem};
use linkstate_testing::{TestApp, authed};
use tonic::Code;

type Reply = Result<proto::Connection, tonic::Status>;

fn provider_details(event: &proto::Event) -> serde_json::Value {
    let fields = payload(event)
        .service_provider_details
        .clone()
        .unwrap()
        .fields;
    let json: serde_json::Map<_, _> = fields
        .into_iter()
        .map(|(key, value)| (key, proto_value(value)))
        .collect();
    json.into()
}

fn proto_value(value: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match value.kind.unwrap() {
        Kind::NullValue(_) => serde_json::Value::Null,
        Kind::NumberValue(n) => n.into(),
        Kind::StringValue(s) => s.into(),
        Kind::BoolValue(b) => b.into(),
        Kind::StructValue(s) => s
            .fields
            .into_iter()
            .map(|(k, v)| (k, proto_value(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Kind::ListValue(l) => l.values.into_iter().map(proto_value).collect(),
    }
}

fn provider(value: proto::service_provider::Value) -> i32 {
    value as i32
}

async fn create(
    app: &TestApp,
    key: &str,
    service_provider: proto::service_provider::Value,
    external_customer_id: &str,
    institution_id: &str,
) -> Reply {
    app.connections()
        .await
        .create_connection(authed(
            key,
            proto::CreateConnectionRequest {
                service_provider: provider(service_provider),
                external_customer_id: external_customer_id.into(),
                institution_id: institution_id.into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// A PLAID flow for customer-1 at the simulator's first institution.
async fn plaid_flow(app: &TestApp, key: &str) -> proto::Connection {
    create(
        app,
        key,
        proto::service_provider::Value::Plaid,
        "customer-1",
        "ins_109508",
    )
    .await
    .unwrap()
}

async fn complete(app: &TestApp, key: &str, request: proto::CompleteConnectionRequest) -> Reply {
    app.connections()
        .await
        .complete_connection(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn complete_plaid(app: &TestApp, key: &str, id: &str, item: &SandboxItem) -> Reply {
    let request = proto::CompleteConnectionRequest {
        connection_id: id.into(),
        access_token: item.access_token.expose().into(),
        service_provider_connection_id: item.item_id.clone(),
        ..Default::default()
    };
    complete(app, key, request).await
}

async fn fail(
    app: &TestApp,
    key: &str,
    id: &str,
    reason: &str,
    details: serde_json::Value,
) -> Reply {
    let details = prost_types::Struct {
        fields: details
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    };
    app.connections()
        .await
        .fail_connection(authed(
            key,
            proto::FailConnectionRequest {
                connection_id: id.into(),
                reason: reason.into(),
                service_provider_details: Some(details),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn json_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

async fn delete(app: &TestApp, key: &str, id: &str) -> Reply {
    app.connections()
        .await
        .delete_connection(authed(
            key,
            proto::DeleteConnectionRequest {
                connection_id: id.into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[track_caller]
fn assert_refused(reply: Reply, code: Code, message: &str) {
    let status = reply.expect_err("the request must be refused");
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "{status:?}"
    );
}

#[track_caller]
fn assert_refused_with_prefix(reply: Reply, code: Code, prefix: &str) {
    let status = reply.expect_err("the request must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().starts_with(prefix), "{status:?}");
}

fn status_of(connection: &proto::Connection) -> ConnStatus {
    ConnStatus::try_from(connection.status).unwrap()
}

/// Stored events of the types the lifecycle writes (aggregations triggered by the simulator's
/// webhooks may add others at any time).
async fn lifecycle_event_rows(app: &TestApp) -> i64 {
    app.count(
        "events WHERE event_type IN ('BANK_LINKING_CONNECTION_COMPLETED', \
         'BANK_LINKING_CONNECTION_FAILED', 'BANK_LINKING_CONNECTION_STATUS_CHANGE', \
         'BANK_LINKING_CONNECTION_DELETED', 'BANK_LINKING_ACCOUNTS_REMOVED')",
    )
    .await
}

/// Rows of `connections` matching an SQL condition.
async fn connections_where(app: &TestApp, condition: &str) -> i64 {
    app.count(&format!("connections WHERE {condition}")).await
}

async fn execute(app: &TestApp, sql: &str) {
    let mut conn = store::connect(&app.pool).await.unwrap();
    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
}

/// The stored credentials of a connection, opened with the process's key.
async fn credentials(app: &TestApp, id: &str) -> Result<ProviderCredentials, StoreError> {
    let mut conn = store::connect(&app.pool).await.unwrap();
    let id: ConnectionId = id.parse().unwrap();
    credentials::get(&mut conn, app.app.ctx.cipher(), id).await
}

async fn accounts(app: &TestApp, key: &str, connection_id: &str) -> Vec<proto::FinancialAccount> {
    app.financial_data()
        .await
        .list_financial_accounts(authed(
            key,
            proto::ListFinancialAccountsRequest {
                connection_id: connection_id.into(),
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .financial_accounts
}

fn error_rule(endpoint: &str, status: u16, error_type: &str, code: &str) -> ErrorRule {
    ErrorRule {
        endpoint: endpoint.into(),
        access_token: None,
        http_status: status,
        error_type: error_type.into(),
        error_code: code.into(),
        error_message: format!("simulated {code}"),
        times: Some(1),
    }
}

/// Imports a simulator item and waits until its first aggregation's events are readable.
async fn imported(app: &TestApp, key: &str) -> (proto::Connection, SandboxItem) {
    let item = app.sim.create_item("ins_109508");
    let connection = import(app, key, &item).await;
    events_until(app, key, |e| {
        e.iter().any(|e| {
            e.event_type == Type::BankLinkingTransactionsAggregated as i32
                && payload(e).connection_id.as_deref() == Some(connection.id.as_str())
        })
    })
    .await;
    (connection, item)
}

fn of_connection<'a>(events: &'a [proto::Event], id: &str) -> Vec<&'a proto::Event> {
    events
        .iter()
        .filter(|e| payload(e).connection_id.as_deref() == Some(id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_connection_starts_an_in_progress_flow_without_events() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;

    let flow = plaid_flow(&app, &key).await;
    assert_eq!(status_of(&flow), ConnStatus::InProgress);
    assert_eq!(flow.status_reason, None);
    assert_eq!(flow.account_id, account_id.to_string());
    assert_eq!(flow.external_customer_id, "customer-1");
    assert_eq!(
        flow.institution_name, "First Platypus Bank",
        "named as Plaid names it: only Plaid's answer makes a Plaid institution"
    );
    assert_eq!(
        flow.service_provider,
        provider(proto::service_provider::Value::Plaid)
    );
    assert!(flow.products.is_empty());
    let details = flow.service_provider_details.as_ref().unwrap();
    assert_eq!(details.service_provider_connection_id, "");
    let expiring_in_4h = "flow_expires_at BETWEEN now() + interval '3 hours 59 minutes' \
                          AND now() + interval '4 hours 1 minute'";
    assert_eq!(connections_where(&app, expiring_in_4h).await, 1);
    assert_eq!(app.count("events").await, 0, "Meld sends nothing yet");
    assert_eq!(app.count("jobs").await, 0);

    // Our institution id names the same institution; the customer is found again.
    let again = create(
        &app,
        &key,
        proto::service_provider::Value::Plaid,
        "customer-1",
        &flow.institution_id,
    )
    .await
    .unwrap();
    assert_eq!(again.institution_id, flow.institution_id);
    assert_eq!(again.customer_id, flow.customer_id);
    assert_ne!(again.id, flow.id);

    let mx = create(
        &app,
        &key,
        proto::service_provider::Value::Mx,
        "customer-2",
        "mxbank",
    )
    .await
    .unwrap();
    assert_eq!(status_of(&mx), ConnStatus::InProgress);
    assert_ne!(mx.customer_id, flow.customer_id);
    assert_eq!(
        (
            app.count("customers").await,
            app.count("institutions").await
        ),
        (2, 2)
    );
    assert_eq!(connection(&app, &key, &mx.id).await, mx);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_connection_refuses_what_is_missing_and_writes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    use proto::service_provider::Value as P;

    assert_refused(
        create(&app, &key, P::ServiceProviderUnspecified, "c-1", "ins_1").await,
        Code::InvalidArgument,
        "serviceProvider is required: PLAID, AKOYA, FINICITY or MX",
    );
    assert_refused(
        create(&app, &key, P::Plaid, " ", "ins_1").await,
        Code::InvalidArgument,
        "externalCustomerId is required",
    );
    assert_refused(
        create(&app, &key, P::Plaid, "c-1", "").await,
        Code::InvalidArgument,
        "institutionId is required",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_refused(
        create(&app, &key, P::Plaid, "c-1", &unknown).await,
        Code::InvalidArgument,
        &format!("institutionId {unknown:?} names no institution"),
    );
    for table in ["customers", "institutions", "connections", "events"] {
        assert_eq!(app.count(table).await, 0, "{table} has rows");
    }

    // Our id of a PLAID institution does not start an AKOYA flow.
    let flow = plaid_flow(&app, &key).await;
    assert_refused(
        create(&app, &key, P::Akoya, "c-2", &flow.institution_id).await,
        Code::InvalidArgument,
        &format!(
            "institutionId {:?} is an institution of PLAID, not of AKOYA",
            flow.institution_id
        ),
    );
    assert_eq!(
        (app.count("customers").await, app.count("connections").await),
        (1, 1)
    );

    let mut unauthenticated = app.connections().await;
    let status = unauthenticated
        .create_connection(proto::CreateConnectionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_plaid_flow_sends_completed_then_status_change_then_aggregates() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = plaid_flow(&app, &key).await;
    let item = app.sim.create_item("ins_109508");

    let completed = complete_plaid(&app, &key, &flow.id, &item).await.unwrap();
    assert_eq!(status_of(&completed), ConnStatus::Active);
    assert_eq!(completed.status_reason, None);
    assert_eq!(completed.institution_id, flow.institution_id);
    assert_eq!(completed.institution_name, "First Platypus Bank");
    let details = completed.service_provider_details.as_ref().unwrap();
    assert_eq!(details.service_provider_connection_id, item.item_id);
    for product in [
        proto::product::Value::Balances,
        proto::product::Value::Transactions,
    ] {
        assert!(
            completed.products.contains(&(product as i32)),
            "{product:?}"
        );
    }

    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) >= 1
    })
    .await;
    assert_eq!(
        types(&events)[..5],
        [
            Type::BankLinkingConnectionCompleted,
            Type::BankLinkingConnectionStatusChange,
            Type::BankLinkingAccountsUpdating,
            Type::BankLinkingAccountsUpdated,
            Type::BankLinkingTransactionsAggregated,
        ]
    );
    let done = payload(&events[0]);
    assert_eq!(done.connection_id.as_deref(), Some(flow.id.as_str()));
    assert_eq!(
        done.institution_name.as_deref(),
        Some("First Platypus Bank")
    );
    assert_eq!(done.request_id.as_ref().unwrap().len(), 32);
    assert_eq!(
        done.request_id,
        payload(&events[2]).request_id,
        "the aggregation carries the completion's request id"
    );
    assert_eq!(
        provider_details(&events[0]),
        serde_json::json!({"serviceProvider": "PLAID", "serviceProviderConnectionId": item.item_id})
    );
    let change = payload(&events[1]);
    assert_eq!(change.old_status, Some(ConnStatus::InProgress as i32));
    assert_eq!(change.new_status, Some(ConnStatus::Active as i32));
    assert_eq!(change.new_status_reason, None);
    assert_eq!(change.active_duplicate_connection_id, None);
    let updating = &payload(&events[2]).financial_accounts;
    assert!(!updating.is_empty() && updating.iter().all(|a| a.new_account == Some(true)));

    // Credentials are sealed, the flow no longer expires, a background refresh is drawn.
    match credentials(&app, &flow.id).await.unwrap() {
        ProviderCredentials::Plaid { access_token } => assert_eq!(access_token, item.access_token),
        other => panic!("{other:?}"),
    }
    let token = item.access_token.expose();
    let in_clear = format!("position(convert_to('{token}', 'UTF8') in credentials) > 0");
    assert_eq!(connections_where(&app, &in_clear).await, 0);
    let settled = "flow_expires_at IS NULL AND next_refresh_at IS NOT NULL";
    assert_eq!(connections_where(&app, settled).await, 1);
    let listed = accounts(&app, &key, &flow.id).await;
    assert_eq!(listed.len(), updating.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_flow_of_a_provider_linkstate_cannot_aggregate_is_unimplemented() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    use proto::service_provider::Value as P;

    for (provider, name) in [(P::Finicity, "FINICITY"), (P::Mx, "MX")] {
        let flow = create(&app, &key, provider, "customer-1", "101732")
            .await
            .unwrap();
        let request = proto::CompleteConnectionRequest {
            connection_id: flow.id.clone(),
            service_provider_connection_id: "60238343243".into(),
            ..Default::default()
        };
        assert_refused(
            complete(&app, &key, request).await,
            Code::Unimplemented,
            &format!("aggregation for {name} is not supported yet"),
        );
        // Nothing pretends: the flow is still running, with nothing stored or sent.
        assert_eq!(connection(&app, &key, &flow.id).await, flow);
        assert!(matches!(
            credentials(&app, &flow.id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(app.count("events").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(
        connections_where(&app, "status = 'IN_PROGRESS' AND credentials IS NULL").await,
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_connection_refuses_and_writes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other_key) = app.account("other").await;
    let flow = plaid_flow(&app, &key).await;
    let item = app.sim.create_item("ins_109508");
    let other_item = app.sim.create_item("ins_109508");
    let with = |token: &str, item_id: &str| proto::CompleteConnectionRequest {
        connection_id: flow.id.clone(),
        access_token: token.into(),
        service_provider_connection_id: item_id.into(),
        ..Default::default()
    };
    let token = item.access_token.expose();

    let mut request = with(token, &item.item_id);
    request.connection_id = String::new();
    assert_refused(
        complete(&app, &key, request).await,
        Code::InvalidArgument,
        "connectionId is required",
    );
    for id in [uuid::Uuid::now_v7().to_string(), "nope".to_string()] {
        let mut request = with(token, &item.item_id);
        request.connection_id = id.clone();
        assert_refused(
            complete(&app, &key, request).await,
            Code::NotFound,
            &format!("connection {id:?} not found"),
        );
    }
    assert_refused(
        complete(&app, &other_key, with(token, &item.item_id)).await,
        Code::NotFound,
        &format!("connection {:?} not found", flow.id),
    );
    assert_refused(
        complete(&app, &key, with("", &item.item_id)).await,
        Code::InvalidArgument,
        "accessToken is required to complete this PLAID connection",
    );
    assert_refused(
        complete(&app, &key, with(token, "")).await,
        Code::InvalidArgument,
        "serviceProviderConnectionId is required",
    );
    assert_refused(
        complete(&app, &key, with(token, &other_item.item_id)).await,
        Code::InvalidArgument,
        &format!(
            "serviceProviderConnectionId {:?} is not the item of this accessToken",
            other_item.item_id
        ),
    );
    assert_refused_with_prefix(
        complete(&app, &key, with("access-sandbox-unknown", &item.item_id)).await,
        Code::InvalidArgument,
        "Plaid refused the accessToken: Plaid answered HTTP 400",
    );
    app.sim.inject_error(error_rule(
        "/item/get",
        503,
        "API_ERROR",
        "PLANNED_MAINTENANCE",
    ));
    assert_refused(
        complete(&app, &key, with(token, &item.item_id)).await,
        Code::Unavailable,
        "Plaid is unavailable, retry later: Plaid answered HTTP 503 PLANNED_MAINTENANCE: \
         simulated PLANNED_MAINTENANCE",
    );

    let untouched = "status = 'IN_PROGRESS' AND credentials IS NULL \
                     AND provider_connection_id IS NULL AND flow_expires_at IS NOT NULL";
    assert_eq!(connections_where(&app, untouched).await, 1);
    assert_eq!((app.count("events").await, app.count("jobs").await), (0, 0));
    assert_eq!(app.count("institutions").await, 1);

    // Completed once; the second time it is no flow any more.
    complete(&app, &key, with(token, &item.item_id))
        .await
        .unwrap();
    assert_refused(
        complete(&app, &key, with(token, &item.item_id)).await,
        Code::FailedPrecondition,
        "connection is ACTIVE: only an IN_PROGRESS connection can be completed",
    );

    // Another flow cannot take over the item the first one has.
    let second = plaid_flow(&app, &key).await;
    let mut request = with(token, &item.item_id);
    request.connection_id = second.id.clone();
    assert_refused(
        complete(&app, &key, request).await,
        Code::AlreadyExists,
        &format!(
            "another connection already has serviceProviderConnectionId {:?}",
            item.item_id
        ),
    );
    assert_eq!(
        status_of(&connection(&app, &key, &second.id).await),
        ConnStatus::InProgress
    );
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) >= 1
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingConnectionCompleted), 1);
    assert_eq!(of_connection(&events, &second.id).len(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_connection_expires_the_flow_with_connection_failed() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = create(
        &app,
        &key,
        proto::service_provider::Value::Finicity,
        "customer-1",
        "101732",
    )
    .await
    .unwrap();

    let given = serde_json::json!({
        "serviceProviderConnectionId": "60238343243",
        "payload": {"code": 102},
    });
    let failed = fail(&app, &key, &flow.id, "UNFORESEEN", given)
        .await
        .unwrap();
    assert_eq!(status_of(&failed), ConnStatus::Expired);
    assert_eq!(failed.status_reason, None);
    assert_eq!(connections_where(&app, "flow_expires_at IS NULL").await, 1);

    let events = events_until(&app, &key, |e| e.len() == 2).await;
    assert_eq!(
        types(&events),
        [
            Type::BankLinkingConnectionFailed,
            Type::BankLinkingConnectionStatusChange
        ]
    );
    let failure = payload(&events[0]);
    assert_eq!(failure.reason.as_deref(), Some("UNFORESEEN"));
    assert_eq!(failure.request_id.as_ref().unwrap().len(), 32);
    assert_eq!(failure.connection_id.as_deref(), Some(flow.id.as_str()));
    assert_eq!(
        provider_details(&events[0]),
        serde_json::json!({
            "payload": {"code": 102.0},
            "serviceProvider": "FINICITY",
            "serviceProviderConnectionId": "60238343243",
        })
    );
    let change = payload(&events[1]);
    assert_eq!(change.old_status, Some(ConnStatus::InProgress as i32));
    assert_eq!(change.new_status, Some(ConnStatus::Expired as i32));
    assert_eq!(change.new_status_reason, None);

    // The flow is over: it can be neither failed nor completed again.
    assert_refused(
        fail(&app, &key, &flow.id, "UNFORESEEN", serde_json::json!({})).await,
        Code::FailedPrecondition,
        "connection is EXPIRED: only an IN_PROGRESS connection can be failed",
    );
    let request = proto::CompleteConnectionRequest {
        connection_id: flow.id.clone(),
        service_provider_connection_id: "60238343243".into(),
        ..Default::default()
    };
    assert_refused(
        complete(&app, &key, request).await,
        Code::FailedPrecondition,
        "connection is EXPIRED: only an IN_PROGRESS connection can be completed",
    );
    assert_eq!(app.count("events").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_connection_refuses_and_writes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other_key) = app.account("other").await;
    let flow = plaid_flow(&app, &key).await;
    let (active, _) = imported(&app, &key).await;
    let no_details = serde_json::json!({});

    assert_refused(
        fail(&app, &key, &flow.id, " ", no_details.clone()).await,
        Code::InvalidArgument,
        "reason is required",
    );
    assert_refused(
        fail(&app, &key, "", "UNFORESEEN", no_details.clone()).await,
        Code::InvalidArgument,
        "connectionId is required",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_refused(
        fail(&app, &key, &unknown, "UNFORESEEN", no_details.clone()).await,
        Code::NotFound,
        &format!("connection {unknown:?} not found"),
    );
    assert_refused(
        fail(&app, &other_key, &flow.id, "UNFORESEEN", no_details.clone()).await,
        Code::NotFound,
        &format!("connection {:?} not found", flow.id),
    );
    assert_refused(
        fail(&app, &key, &active.id, "UNFORESEEN", no_details).await,
        Code::FailedPrecondition,
        "connection is ACTIVE: only an IN_PROGRESS connection can be failed",
    );
    assert_eq!(lifecycle_event_rows(&app).await, 0);
    assert_eq!(
        connections_where(
            &app,
            "status = 'IN_PROGRESS' AND flow_expires_at IS NOT NULL"
        )
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_not_completed_within_four_hours_expire() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let abandoned = plaid_flow(&app, &key).await;
    let fresh = plaid_flow(&app, &key).await;
    let ctx = &app.app.ctx;

    execute(
        &app,
        &format!(
            "UPDATE connections SET flow_expires_at = now() - interval '1 minute' \
             WHERE id = '{}'",
            abandoned.id
        ),
    )
    .await;
    // The scheduler's own tick may get there first; either way the flow expires once.
    let expired = schedule::expire_flows(ctx).await.unwrap();
    assert!(expired <= 1, "{expired}");
    assert_eq!(
        status_of(&connection(&app, &key, &abandoned.id).await),
        ConnStatus::Expired
    );
    assert_eq!(
        status_of(&connection(&app, &key, &fresh.id).await),
        ConnStatus::InProgress
    );
    assert_eq!(schedule::expire_flows(ctx).await.unwrap(), 0);

    let events = events_until(&app, &key, |e| e.len() == 1).await;
    let change = payload(&events[0]);
    assert_eq!(types(&events), [Type::BankLinkingConnectionStatusChange]);
    assert_eq!(change.connection_id.as_deref(), Some(abandoned.id.as_str()));
    assert_eq!(change.old_status, Some(ConnStatus::InProgress as i32));
    assert_eq!(change.new_status, Some(ConnStatus::Expired as i32));
    assert_eq!(change.new_status_reason, None);
    assert_eq!(
        provider_details(&events[0]),
        serde_json::json!({"serviceProvider": "PLAID"})
    );
    let item = app.sim.create_item("ins_109508");
    assert_refused(
        complete_plaid(&app, &key, &abandoned.id, &item).await,
        Code::FailedPrecondition,
        "connection is EXPIRED: only an IN_PROGRESS connection can be completed",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_skips_flows_another_transaction_holds() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = plaid_flow(&app, &key).await;
    let ctx = app.app.ctx.clone();
    execute(
        &app,
        &format!(
            "UPDATE connections SET flow_expires_at = now() - interval '1 minute' \
             WHERE id = '{}'",
            flow.id
        ),
    )
    .await;

    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let mut holder = store::connect(&app.pool).await.unwrap();
    let lock = format!(
        "SELECT status FROM connections WHERE id = '{}' FOR UPDATE",
        flow.id
    );
    holder
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let held = diesel::sql_query(&lock).get_result::<Status>(conn).await?;
            // Only when the scheduler's tick did not take the flow in the meantime.
            if held.status == "IN_PROGRESS" {
                // Another replica holds the row (a completion, say): this one skips it.
                assert_eq!(schedule::expire_flows(&ctx).await.unwrap(), 0);
            }
            Ok(())
        })
        .await
        .unwrap();
    for _ in 0..100 {
        schedule::expire_flows(&ctx).await.unwrap();
        if status_of(&connection(&app, &key, &flow.id).await) == ConnStatus::Expired {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status_of(&connection(&app, &key, &flow.id).await),
        ConnStatus::Expired
    );
    let events = events_until(&app, &key, |e| e.len() == 1).await;
    assert_eq!(types(&events), [Type::BankLinkingConnectionStatusChange]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_plaid_item_and_keeps_the_data_readable() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (imported, item) = imported(&app, &key).await;
    let before = accounts(&app, &key, &imported.id).await;
    assert!(!before.is_empty());

    let deleted = delete(&app, &key, &imported.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);
    assert_eq!(deleted.status_reason, None);
    assert_eq!(connection(&app, &key, &imported.id).await, deleted);

    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsRemoved) == 1
    })
    .await;
    // One transaction wrote the pair, so nothing comes between them.
    let at = types(&events)
        .iter()
        .position(|t| *t == Type::BankLinkingConnectionDeleted)
        .unwrap();
    let tail = &events[at..at + 2];
    assert_eq!(
        types(tail),
        [
            Type::BankLinkingConnectionDeleted,
            Type::BankLinkingAccountsRemoved
        ]
    );
    let expected = serde_json::json!({
        "serviceProvider": "PLAID",
        "serviceProviderConnectionId": item.item_id,
    });
    assert_eq!(provider_details(&tail[0]), expected);
    assert_eq!(provider_details(&tail[1]), expected);
    let removed: BTreeSet<String> = payload(&tail[1])
        .financial_accounts
        .iter()
        .map(|a| a.id.clone().unwrap())
        .collect();
    let listed: BTreeSet<String> = before.iter().map(|a| a.id.clone()).collect();
    assert_eq!(removed, listed);

    // The data stays readable: the accounts as INACTIVE, every transaction.
    let after = accounts(&app, &key, &imported.id).await;
    assert_eq!(after.len(), before.len());
    let inactive = proto::financial_account::Status::Inactive as i32;
    assert!(after.iter().all(|a| a.status == inactive));
    let transactions = all_transactions(&app, &key, &imported.id, 100).await;
    assert!(!transactions.is_empty());
    assert_eq!(transactions.len() as i64, app.count("transactions").await);

    // No token is kept, and Plaid no longer knows the item.
    assert_eq!(connections_where(&app, "credentials IS NOT NULL").await, 0);
    let error = app
        .app
        .ctx
        .plaid()
        .item_get(&item.access_token)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("ITEM_NOT_FOUND"));
    assert_eq!(
        refresh(&app, &key, &imported.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    assert_refused(
        delete(&app, &key, &imported.id).await,
        Code::FailedPrecondition,
        "connection is already DELETED",
    );
    assert_eq!(lifecycle_event_rows(&app).await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_carries_on_when_plaid_no_longer_knows_the_item() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;

    // Removed at Plaid already (by another system, or by a delete whose write failed).
    let (gone, item) = imported(&app, &key).await;
    app.app
        .ctx
        .plaid()
        .item_remove(&item.access_token)
        .await
        .unwrap();
    let deleted = delete(&app, &key, &gone.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);

    // Plaid answers the token is invalid.
    let (invalid, _) = imported(&app, &key).await;
    app.sim.inject_error(error_rule(
        "/item/remove",
        400,
        "INVALID_INPUT",
        "INVALID_ACCESS_TOKEN",
    ));
    let deleted = delete(&app, &key, &invalid.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsRemoved) == 2
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingConnectionDeleted), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_changes_nothing_when_plaid_fails() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (imported, _) = imported(&app, &key).await;

    app.sim.inject_error(error_rule(
        "/item/remove",
        503,
        "API_ERROR",
        "PLANNED_MAINTENANCE",
    ));
    assert_refused(
        delete(&app, &key, &imported.id).await,
        Code::Unavailable,
        "Plaid is unavailable, retry later: Plaid answered HTTP 503 PLANNED_MAINTENANCE: \
         simulated PLANNED_MAINTENANCE",
    );
    app.sim.inject_error(error_rule(
        "/item/remove",
        400,
        "INVALID_INPUT",
        "INVALID_API_KEYS",
    ));
    assert_refused(
        delete(&app, &key, &imported.id).await,
        Code::FailedPrecondition,
        "Plaid refused to remove the item: Plaid answered HTTP 400 INVALID_API_KEYS: \
         simulated INVALID_API_KEYS",
    );
    assert_eq!(
        status_of(&connection(&app, &key, &imported.id).await),
        ConnStatus::Active
    );
    assert_eq!(connections_where(&app, "credentials IS NOT NULL").await, 1);
    assert_eq!(lifecycle_event_rows(&app).await, 0);
    let active = proto::financial_account::Status::Active as i32;
    assert!(
        accounts(&app, &key, &imported.id)
            .await
            .iter()
            .all(|a| a.status == active)
    );

    // Once Plaid answers, the delete goes through.
    let deleted = delete(&app, &key, &imported.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_an_in_progress_flow_sends_the_pair_with_no_accounts() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = plaid_flow(&app, &key).await;

    let deleted = delete(&app, &key, &flow.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);
    assert_eq!(connections_where(&app, "flow_expires_at IS NULL").await, 1);
    let events = events_until(&app, &key, |e| e.len() == 2).await;
    assert_eq!(
        types(&events),
        [
            Type::BankLinkingConnectionDeleted,
            Type::BankLinkingAccountsRemoved
        ]
    );
    assert!(payload(&events[1]).financial_accounts.is_empty());
    assert_eq!(
        provider_details(&events[0]),
        serde_json::json!({"serviceProvider": "PLAID"})
    );
    // A deleted flow does not expire later.
    assert_eq!(schedule::expire_flows(&app.app.ctx).await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_gets_not_found_and_changes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, intruder) = app.account("intruder").await;
    let flow = plaid_flow(&app, &key).await;
    let (active, item) = imported(&app, &key).await;
    let not_found = |id: &str| format!("connection {id:?} not found");

    assert_refused(
        complete_plaid(&app, &intruder, &flow.id, &item).await,
        Code::NotFound,
        &not_found(&flow.id),
    );
    assert_refused(
        fail(
            &app,
            &intruder,
            &flow.id,
            "UNFORESEEN",
            serde_json::json!({}),
        )
        .await,
        Code::NotFound,
        &not_found(&flow.id),
    );
    for id in [&flow.id, &active.id] {
        assert_refused(
            delete(&app, &intruder, id).await,
            Code::NotFound,
            &not_found(id),
        );
    }
    assert_refused(
        delete(&app, &key, "").await,
        Code::InvalidArgument,
        "connectionId is required",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_refused(
        delete(&app, &key, &unknown).await,
        Code::NotFound,
        &not_found(&unknown),
    );

    assert_eq!(
        status_of(&connection(&app, &key, &flow.id).await),
        ConnStatus::InProgress
    );
    assert_eq!(
        status_of(&connection(&app, &key, &active.id).await),
        ConnStatus::Active
    );
    assert_eq!(lifecycle_event_rows(&app).await, 0);
    // The item is untouched at Plaid.
    app.app
        .ctx
        .plaid()
        .item_get(&item.access_token)
        .await
        .unwrap();
    app.stop().await;
}

/// A second process on the same database, with the same key at rest but without Plaid's API
/// keys: every call that needs Plaid is a FAILED_PRECONDITION naming the settings, and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_plaid_keys_every_call_that_needs_plaid_is_refused_and_changes_nothing() {
    let sealing_key = linkstate::cipher::Cipher::generate_key();
    let cipher = || linkstate::cipher::Cipher::from_base64(&sealing_key).unwrap();
    let app = TestApp::start_with(|config| config.cipher = cipher()).await;
    let (_, key) = app.account("acme").await;
    let (connection, _) = imported(&app, &key).await;
    let flow = plaid_flow(&app, &key).await;
    let other_item = app.sim.create_item("ins_109508");
    let bare = TestApp::start_with(|config| {
        config.database_url = app.database.url.clone();
        config.cipher = cipher();
        config.plaid.client_id = None;
        config.plaid.secret = None;
    })
    .await;
    let events = app.count("events").await;
    let calls = app.sim.all_calls();
    let not_configured = "Plaid is not configured: set PLAID_CLIENT_ID and PLAID_SECRET";

    assert_refused(
        complete_plaid(&bare, &key, &flow.id, &other_item).await,
        Code::FailedPrecondition,
        not_configured,
    );
    assert_refused(
        delete(&bare, &key, &connection.id).await,
        Code::FailedPrecondition,
        not_configured,
    );
    assert_refused(
        repair(&bare, &key, repair_of(&connection.id)).await,
        Code::FailedPrecondition,
        not_configured,
    );
    let refused = refresh(&bare, &key, &connection.id)
        .await
        .expect_err("the refresh must be refused");
    assert_status(&refused, Code::FailedPrecondition, not_configured);

    assert_eq!(app.count("events").await, events, "nothing was written");
    assert_eq!(app.sim.all_calls(), calls, "Plaid was not called");
    assert_eq!(connections_where(&app, "status = 'IN_PROGRESS'").await, 1);
    assert_eq!(connections_where(&app, "status = 'ACTIVE'").await, 1);
    bare.stop().await;
    app.stop().await;
}

/// A connect flow completed while its delete was under way: the delete read IN_PROGRESS (no
/// provider link to sever), and found the row linked when it came to write. It refuses with
/// ABORTED and writes nothing; deleting again does it. The completion is played by a
/// transaction of the test that holds the row while the delete waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_completed_during_its_delete_aborts_the_delete_and_a_second_delete_finishes() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = plaid_flow(&app, &key).await;
    let (completion, connection) =
        tokio_postgres::connect(&app.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    completion
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM connections WHERE id = '{}' FOR UPDATE",
            flow.id
        ))
        .await
        .unwrap();
    let deleting = tokio::spawn({
        let channel = app.channel().await;
        let (key, id) = (key.clone(), flow.id.clone());
        async move {
            proto::connection_service_client::ConnectionServiceClient::new(channel)
                .delete_connection(authed(
                    &key,
                    proto::DeleteConnectionRequest { connection_id: id },
                ))
                .await
                .map(tonic::Response::into_inner)
        }
    });
    // The delete waits for the row the completion holds.
    wait_until(|| async {
        app.count(
            "pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            > 0
    })
    .await;
    completion
        .batch_execute(&format!(
            "UPDATE connections SET status = 'ACTIVE', flow_expires_at = NULL WHERE id = '{}'; \
             COMMIT",
            flow.id
        ))
        .await
        .unwrap();
    assert_refused(
        deleting.await.unwrap(),
        Code::Aborted,
        "the connection's connect flow completed during the delete; retry the delete",
    );
    assert_eq!(lifecycle_event_rows(&app).await, 0, "nothing was written");
    assert_eq!(connections_where(&app, "status = 'ACTIVE'").await, 1);

    let deleted = delete(&app, &key, &flow.id).await.unwrap();
    assert_eq!(status_of(&deleted), ConnStatus::Deleted);
    app.stop().await;
}

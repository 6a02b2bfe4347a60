//! API keys and tenant isolation: a key sees only its own account's data.

mod common;

use std::time::Duration;

use linkstate::proto::{self, import_result};
use linkstate_testing::{TestApp, authed};
use tokio_stream::StreamExt;
use tonic::Code;

async fn import_one(app: &TestApp, key: &str) -> proto::Connection {
    let item = app.sim.create_item("ins_109508");
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![proto::ImportConnection {
                    service_provider: proto::service_provider::Value::Plaid as i32,
                    external_customer_id: "shared-external-id".into(),
                    access_token: item.access_token.expose().into(),
                    ..Default::default()
                }],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_known_key_are_unauthenticated() {
    let app = TestApp::start().await;
    let mut connections = app.connections().await;
    let bare = connections
        .list_connections(proto::ListConnectionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated);
    let unknown = connections
        .list_connections(authed(
            "lsk_not-a-key",
            proto::ListConnectionsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(
        unknown.message(),
        "missing or unknown API key: send `authorization: Bearer <apiKey>`"
    );
    assert_eq!(unknown.message(), bare.message());
    // A write without a known key writes nothing, and never reaches the provider.
    let item = app.sim.create_item("ins_109508");
    let import = connections
        .import_connections(authed(
            "lsk_not-a-key",
            common::import_request(vec![common::plaid_item(
                "customer-1",
                item.access_token.expose(),
            )]),
        ))
        .await
        .unwrap_err();
    common::assert_status(
        &import,
        Code::Unauthenticated,
        "missing or unknown API key: send `authorization: Bearer <apiKey>`",
    );
    common::assert_nothing_written(&app).await;
    assert_eq!(app.sim.all_calls(), 0);
    let events = app
        .events()
        .await
        .stream_events(proto::StreamEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(events.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_key() {
    let app = TestApp::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_sees_nothing_of_the_first() {
    let app = TestApp::start().await;
    let (_, first) = app.account("first").await;
    let (_, second) = app.account("second").await;
    let connection = import_one(&app, &first).await;
    let mut connections = app.connections().await;

    let foreign = connections
        .get_connection(authed(
            &second,
            proto::GetConnectionRequest {
                connection_id: connection.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    common::assert_status(
        &foreign,
        Code::NotFound,
        &format!("connection {:?} not found", connection.id),
    );
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let missing = connections
        .get_connection(authed(
            &second,
            proto::GetConnectionRequest {
                connection_id: unknown_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    common::assert_status(
        &missing,
        Code::NotFound,
        &format!("connection {unknown_id:?} not found"),
    );

    let listed = connections
        .list_connections(authed(&second, proto::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty());
    let by_external = connections
        .list_connections(authed(
            &second,
            proto::ListConnectionsRequest {
                external_customer_id: "shared-external-id".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(by_external.connections.is_empty());

    let accounts = common::financial_accounts(&app, &second, &connection.id).await;
    assert!(accounts.is_empty());

    let mut events = app.events().await;
    // Events show once every older transaction has ended: wait for the first one's.
    let own = common::events_until(&app, &first, |e| !e.is_empty()).await;
    let theirs = events
        .list_events(authed(&second, proto::ListEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.events.is_empty());
    let foreign_event = events
        .get_event(authed(
            &second,
            proto::GetEventRequest {
                event_id: own[0].event_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    common::assert_status(
        &foreign_event,
        Code::NotFound,
        &format!("event {:?} not found", own[0].event_id),
    );

    // The second account's stream from the earliest event brings only heartbeats.
    let mut stream = events
        .stream_events(authed(
            &second,
            proto::StreamEventsRequest {
                from_earliest: true,
                heartbeat_seconds: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a heartbeat within 5 s")
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                message.message,
                Some(proto::stream_events_response::Message::Heartbeat(_))
            ),
            "got {message:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_connections_pages_newest_first() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(import_one(&app, &key).await.id);
    }
    let mut connections = app.connections().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = connections
            .list_connections(authed(
                &key,
                proto::ListConnectionsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.connections.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    made.reverse();
    assert_eq!(seen, made);
    let bad = connections
        .list_connections(authed(
            &key,
            proto::ListConnectionsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

//! Noisy tenants: each API key has its request rate, each account its open streams and running
//! imports; a tenant over its share is told RESOURCE_EXHAUSTED with when to retry, and the
//! other tenants, health and reflection do not notice.

mod common;

use std::time::Duration;

use common::{assert_status, import_request, plaid_item, wait_until};
use linkstate::proto;
use linkstate_testing::{TestApp, authed};
use tonic::Code;
use tonic_types::StatusExt;

/// Imports one simulator item as `customer` for `key`'s tenant.
async fn import_item(
    app: &TestApp,
    key: &str,
    customer: &str,
    item: &linkstate_sim::SandboxItem,
) -> Result<proto::ImportConnectionsResponse, tonic::Status> {
    app.connections()
        .await
        .import_connections(authed(
            key,
            import_request(vec![plaid_item(customer, item.access_token.expose())]),
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// A cheap authenticated call.
async fn list(app: &TestApp, key: &str) -> Result<(), tonic::Status> {
    app.connections()
        .await
        .list_connections(authed(key, proto::ListConnectionsRequest::default()))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_is_told_when_to_retry_and_others_are_unaffected() {
    let app = TestApp::start_with(|config| {
        config.tenants.rate_limit = 1;
        config.tenants.rate_burst = 5;
    })
    .await;
    let (_, noisy) = app.account("noisy").await;
    let (_, quiet) = app.account("quiet").await;
    for _ in 0..5 {
        list(&app, &noisy).await.expect("within the burst");
    }
    let refused = list(&app, &noisy).await.expect_err("over the burst");
    assert_status(
        &refused,
        Code::ResourceExhausted,
        "rate limit exceeded: this API key may send 1 requests per second (burst 5); retry later",
    );
    let retry = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo detail");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );

    // A refused write writes nothing.
    let item = app.sim.create_item("ins_109508");
    let refused = import_item(&app, &noisy, "c-1", &item)
        .await
        .expect_err("still over the rate");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    common::assert_nothing_written(&app).await;

    // The other key has its own bucket; health and reflection are not limited at all.
    for _ in 0..5 {
        list(&app, &quiet)
            .await
            .expect("the other tenant is unaffected");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    for _ in 0..20 {
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health is not limited");
    }

    // After the wait it names, the key is served again.
    tokio::time::sleep(retry).await;
    list(&app, &noisy).await.expect("served after the wait");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_at_most_its_share_of_streams() {
    let app = TestApp::start_with(|config| config.tenants.max_streams_per_account = 2).await;
    let (_, noisy) = app.account("noisy").await;
    let (_, quiet) = app.account("quiet").await;
    let mut client = app.events().await;
    let request = |key: &str| {
        authed(
            key,
            proto::StreamEventsRequest {
                heartbeat_seconds: 1,
                ..Default::default()
            },
        )
    };
    let first = client.stream_events(request(&noisy)).await.unwrap();
    let _second = client.stream_events(request(&noisy)).await.unwrap();
    let refused = client.stream_events(request(&noisy)).await.unwrap_err();
    assert_status(
        &refused,
        Code::ResourceExhausted,
        "this account already has 2 event streams open; retry when one ends",
    );
    assert!(refused.get_details_retry_info().is_some());
    let mut other = client
        .stream_events(request(&quiet))
        .await
        .expect("another account is unaffected")
        .into_inner();
    assert!(other.message().await.unwrap().is_some(), "it is served");
    // A stream that ends gives the account its place back.
    drop(first);
    let client = &client;
    let noisy = &noisy;
    wait_until(|| async move { client.clone().stream_events(request(noisy)).await.is_ok() }).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_runs_at_most_its_share_of_imports_at_once() {
    let app = TestApp::start_with(|config| config.tenants.max_imports_per_account = 1).await;
    let (_, noisy) = app.account("noisy").await;
    let (_, quiet) = app.account("quiet").await;
    let slow = app.sim.create_item("ins_109508");
    app.sim.set_latency(Duration::from_millis(1500));
    let running = tokio::spawn({
        let client = app.connections().await;
        let request = authed(
            &noisy,
            import_request(vec![plaid_item("c-1", slow.access_token.expose())]),
        );
        async move { client.clone().import_connections(request).await }
    });
    // The first import is at the provider: the account's one place is taken.
    wait_until(|| async { app.sim.calls("/item/get") > 0 }).await;
    let second = app.sim.create_item("ins_109508");
    let refused = import_item(&app, &noisy, "c-2", &second)
        .await
        .expect_err("one import at a time");
    assert_status(
        &refused,
        Code::ResourceExhausted,
        "this account already has 1 imports running; retry when one ends",
    );
    assert!(refused.get_details_retry_info().is_some());
    // Another account imports meanwhile.
    let other = app.sim.create_item("ins_109508");
    let answer = import_item(&app, &quiet, "q-1", &other)
        .await
        .expect("another account is unaffected");
    assert_eq!(linkstate_testing::imported(&answer), 1);
    let first = running.await.unwrap().expect("the first import completes");
    assert_eq!(linkstate_testing::imported(&first.into_inner()), 1);
    // Its place is back, and only the refused item is missing.
    app.sim.set_latency(Duration::ZERO);
    let again = import_item(&app, &noisy, "c-2", &second)
        .await
        .expect("the place came back");
    assert_eq!(linkstate_testing::imported(&again), 1);
    assert_eq!(app.count("connections").await, 3);
    app.stop().await;
}

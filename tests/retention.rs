//! Retention and limits of the event log: pruned cursors answer OUT_OF_RANGE with the oldest
//! cursor in the details, and streams beyond the configured limit answer RESOURCE_EXHAUSTED.

mod common;

use std::time::Duration;

use common::*;
use diesel_async::RunQueryDsl;
use linkstate::proto::{self, event::Type};
use linkstate_testing::{TestApp, authed};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_older_than_the_retained_log_are_out_of_range() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    import(&app, &key, &item).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;
    let first = events[0].cursor.clone();

    // The import's events are old now; pruning removes them.
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    diesel::sql_query("UPDATE events SET created_at = now() - interval '40 days'")
        .execute(&mut conn)
        .await
        .unwrap();
    let pruned = linkstate::worker::schedule::prune_events(&app.app.ctx)
        .await
        .unwrap();
    assert_eq!(pruned, events.len());

    let mut client = app.events().await;
    let stream = client
        .stream_events(authed(
            &key,
            proto::StreamEventsRequest {
                after_cursor: first.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    let listed = client
        .list_events(authed(
            &key,
            proto::ListEventsRequest {
                after_cursor: first,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    for status in [stream, listed] {
        assert_eq!(status.code(), Code::OutOfRange);
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("error info");
        assert_eq!(info.reason, "CURSOR_PRUNED");
        let oldest = info.metadata["oldestCursor"].clone();
        assert_eq!(
            oldest,
            events.last().unwrap().cursor,
            "resume after the last pruned event"
        );
        assert!(status.message().contains(&oldest));
    }
    // Resuming after the oldest cursor still available works, and so does the earliest.
    let oldest = events.last().unwrap().cursor.clone();
    client
        .list_events(authed(
            &key,
            proto::ListEventsRequest {
                after_cursor: oldest,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let empty = client
        .list_events(authed(&key, proto::ListEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.events.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_webhook_deliveries_and_their_sources_older_than_the_retention_are_pruned() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    import(&app, &key, &item).await;
    // Plaid acknowledges the webhook URL the import set: one processed delivery.
    wait_processed(&app, 1).await;
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    // Two more, as old as the processed one will be made: one processed, one not yet.
    diesel::sql_query(
        "INSERT INTO webhook_deliveries (id, service_provider, body_sha256, body, signed_at, \
             received_at, processed_at) VALUES \
         (gen_random_uuid(), 'PLAID', 'a', '\\x7b7d', now(), now(), now()), \
         (gen_random_uuid(), 'PLAID', 'b', '\\x7b7d', now(), now(), NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let none = linkstate::worker::schedule::prune_deliveries(&app.app.ctx)
        .await
        .unwrap();
    assert_eq!(none, 0, "recent deliveries stay");
    diesel::sql_query("UPDATE webhook_deliveries SET received_at = now() - interval '40 days'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        app.count("webhook_sources").await,
        1,
        "the item's latest body"
    );
    diesel::sql_query("UPDATE webhook_sources SET received_at = now() - interval '40 days'")
        .execute(&mut conn)
        .await
        .unwrap();
    let pruned = linkstate::worker::schedule::prune_deliveries(&app.app.ctx)
        .await
        .unwrap();
    assert_eq!(pruned, 2, "the two processed ones");
    assert_eq!(
        app.count("webhook_deliveries WHERE processed_at IS NULL")
            .await,
        1,
        "an unprocessed delivery stays, however old"
    );
    assert_eq!(
        app.count("webhook_sources").await,
        0,
        "sources go with the deliveries"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_until_one_ends() {
    let app = TestApp::start_with(|config| config.events.max_streams = 2).await;
    let (_, key) = app.account("acme").await;
    let mut client = app.events().await;
    let request = || {
        authed(
            &key,
            proto::StreamEventsRequest {
                heartbeat_seconds: 1,
                ..Default::default()
            },
        )
    };
    let first = client.stream_events(request()).await.unwrap().into_inner();
    let mut second = client.stream_events(request()).await.unwrap().into_inner();
    let third = client.stream_events(request()).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    // A client that goes away gives its place back (its producer stops at once).
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(stream) = client.stream_events(request()).await {
            reopened = Some(stream.into_inner());
            break;
        }
    }
    let mut reopened = reopened.expect("a place freed within 5 s");
    assert!(reopened.next().await.unwrap().is_ok());
    assert!(second.next().await.unwrap().is_ok());
    app.stop().await;
}

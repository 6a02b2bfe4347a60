//! The event stream: from the earliest event, after a cursor, live, and its argument errors.

mod common;

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use linkstate::domain::cursor::Cursor;
use linkstate::domain::event::{EventPayload, EventType, NewEvent};
use linkstate::proto::{self, stream_events_response::Message};
use linkstate::store::{self, StoreError, events};
use linkstate_testing::{TestApp, TestDatabase, authed};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::codec::Streaming;

async fn import(app: &TestApp, key: &str, external: &str) {
    let item = app.sim.create_item("ins_109508");
    app.connections()
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: vec![common::plaid_item(external, item.access_token.expose())],
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

async fn open(
    app: &TestApp,
    key: &str,
    request: proto::StreamEventsRequest,
) -> Streaming<proto::StreamEventsResponse> {
    app.events()
        .await
        .stream_events(authed(key, request))
        .await
        .unwrap()
        .into_inner()
}

/// The next `n` events of a stream, skipping heartbeats.
/// A live stream with a heartbeat every second, once its first heartbeat came (it is open).
async fn live(app: &TestApp, key: &str) -> Streaming<proto::StreamEventsResponse> {
    let mut stream = open(
        app,
        key,
        proto::StreamEventsRequest {
            heartbeat_seconds: 1,
            ..Default::default()
        },
    )
    .await;
    while !matches!(
        stream.next().await.unwrap().unwrap().message,
        Some(Message::Heartbeat(_))
    ) {}
    stream
}

async fn next_events(
    stream: &mut Streaming<proto::StreamEventsResponse>,
    n: usize,
) -> Vec<proto::Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("no error");
        if let Some(Message::Event(event)) = message.message {
            events.push(event);
        }
    }
    events
}

fn event_type(event: &proto::Event) -> proto::event::Type {
    proto::event::Type::try_from(event.event_type).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_from_earliest_resume_after_a_cursor_and_follow_live() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    import(&app, &key, "customer-1").await;

    let mut earliest = open(
        &app,
        &key,
        proto::StreamEventsRequest {
            from_earliest: true,
            ..Default::default()
        },
    )
    .await;
    // An import: ACCOUNTS_UPDATING, ACCOUNTS_UPDATED, TRANSACTIONS_AGGREGATED.
    let first_three = next_events(&mut earliest, 3).await;
    let kinds: Vec<_> = first_three.iter().map(event_type).collect();
    assert_eq!(
        kinds,
        vec![
            proto::event::Type::BankLinkingAccountsUpdating,
            proto::event::Type::BankLinkingAccountsUpdated,
            proto::event::Type::BankLinkingTransactionsAggregated,
        ]
    );

    // Resuming after the first cursor gives the second event, and nothing before it.
    let mut resumed = open(
        &app,
        &key,
        proto::StreamEventsRequest {
            after_cursor: first_three[0].cursor.clone(),
            ..Default::default()
        },
    )
    .await;
    let again = next_events(&mut resumed, 1).await;
    assert_eq!(again[0].event_id, first_three[1].event_id);

    // A live stream sees only what is written after it opened.
    let mut live = open(&app, &key, proto::StreamEventsRequest::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    import(&app, &key, "customer-2").await;
    let fresh = next_events(&mut live, 3).await;
    for event in &fresh {
        assert_eq!(
            event
                .payload
                .as_ref()
                .unwrap()
                .external_customer_id
                .as_deref(),
            Some("customer-2")
        );
    }
    // ... and the earliest stream, still open, follows on with the same events in the same order.
    let followed = next_events(&mut earliest, 3).await;
    let ids = |events: &[proto::Event]| {
        events
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&followed), ids(&fresh));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_events_pages_with_next_cursor_and_filters() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    import(&app, &key, "customer-1").await;
    import(&app, &key, "customer-2").await;
    let mut events = app.events().await;
    let mut all = Vec::new();
    for _ in 0..100 {
        all = events
            .list_events(authed(&key, proto::ListEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .events;
        if all.len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(all.len(), 6, "three events per import");

    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = events
            .list_events(authed(
                &key,
                proto::ListEventsRequest {
                    after_cursor: cursor.clone(),
                    page_size: 3,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            break;
        }
        paged.extend(page.events);
        cursor = page.next_cursor;
    }
    assert_eq!(paged, all);

    let filtered = events
        .list_events(authed(
            &key,
            proto::ListEventsRequest {
                external_customer_id: "customer-2".into(),
                event_types: vec![proto::event::Type::BankLinkingAccountsUpdated as i32],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].event_id, all[4].event_id);

    let by_id = events
        .get_event(authed(
            &key,
            proto::GetEventRequest {
                event_id: all[2].event_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id, all[2]);
    app.stop().await;
}

/// The stream's next message, heartbeat or event.
async fn next(stream: &mut Streaming<proto::StreamEventsResponse>) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .expect("stream open")
        .expect("no error")
        .message
}

/// Every event of the tenant so far, once there are `n`.
async fn listed(app: &TestApp, key: &str, n: usize) -> Vec<proto::Event> {
    let mut events = app.events().await;
    for _ in 0..100 {
        let all = events
            .list_events(authed(key, proto::ListEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .events;
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} events not listed within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_stream_hears_only_its_customer_and_its_heartbeat_moves_past_the_others() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    import(&app, &key, "customer-1").await;
    let first = listed(&app, &key, 3).await;
    let customer_1 = first[0]
        .payload
        .as_ref()
        .unwrap()
        .customer_id
        .clone()
        .unwrap();
    let mut stream = open(
        &app,
        &key,
        proto::StreamEventsRequest {
            customer_id: customer_1.clone(),
            heartbeat_seconds: 1,
            ..Default::default()
        },
    )
    .await;
    // Open once its first heartbeat comes.
    while !matches!(next(&mut stream).await, Some(Message::Heartbeat(_))) {}

    // Another customer's events are not on this stream's route, yet its heartbeats move past
    // them: a client resuming after one does not read them again.
    import(&app, &key, "customer-2").await;
    let others = listed(&app, &key, 6).await;
    let last_other = Cursor::decode(&others[5].cursor).unwrap();
    loop {
        match next(&mut stream).await {
            Some(Message::Heartbeat(heartbeat)) => {
                if Cursor::decode(&heartbeat.cursor).unwrap() >= last_other {
                    break;
                }
            }
            other => panic!("only heartbeats, got {other:?}"),
        }
    }

    // The customer's own events still come, none skipped by the heartbeat's move.
    import(&app, &key, "customer-1").await;
    let own = next_events(&mut stream, 3).await;
    for event in &own {
        assert_eq!(
            event.payload.as_ref().unwrap().customer_id,
            Some(customer_1.clone())
        );
    }
    let all = listed(&app, &key, 9).await;
    let ids = |events: &[proto::Event]| {
        events
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&own), ids(&all[6..]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_requests_are_invalid_arguments() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let mut events = app.events().await;
    let cases = [
        (
            proto::StreamEventsRequest {
                after_cursor: linkstate::domain::cursor::Cursor::START.encode(),
                from_earliest: true,
                ..Default::default()
            },
            "give afterCursor or fromEarliest, not both",
        ),
        (
            proto::StreamEventsRequest {
                after_cursor: "not-a-cursor".into(),
                ..Default::default()
            },
            "afterCursor: cursor is not one linkstate handed out",
        ),
        (
            proto::StreamEventsRequest {
                heartbeat_seconds: -1,
                ..Default::default()
            },
            "heartbeatSeconds must be between 1 and 3600",
        ),
        (
            proto::StreamEventsRequest {
                customer_id: "nope".into(),
                ..Default::default()
            },
            "customerId \"nope\" is not a valid id",
        ),
    ];
    for (request, message) in cases {
        let status = events
            .stream_events(authed(&key, request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_wake_up_announced_arrives_by_the_poll() {
    let app = TestApp::start().await;
    let (account, key) = app.account("quiet").await;
    let mut stream = live(&app, &key).await;
    // Written as a replica whose notification got lost would: no wake-up, no NOTIFY.
    let mut conn = store::connect(&app.pool).await.unwrap();
    let written = conn
        .transaction::<_, StoreError, _>(async |conn| {
            let event = NewEvent {
                event_type: EventType::BankLinkingAccountsUpdated,
                payload: EventPayload::default(),
            };
            events::append(conn, account, &[event]).await
        })
        .await
        .unwrap();
    let received = next_events(&mut stream, 1).await;
    assert_eq!(received[0].event_id, written[0].to_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_back_by_a_transaction_elsewhere_is_streamed_once_that_ends() {
    // Polling once a minute: only the hub's own looking can bring the event within the test.
    let app = TestApp::start_with(|config| {
        config.events.poll_interval = Duration::from_secs(60);
    })
    .await;
    let (_, key) = app.account("held").await;
    let mut stream = live(&app, &key).await;
    // A transaction in another database of the cluster, older than the import's: until it
    // ends, the import's events are not settled (transaction ids are cluster-wide).
    let elsewhere = TestDatabase::new().await;
    let mut holder = AsyncPgConnection::establish(&elsewhere.url).await.unwrap();
    holder
        .batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    import(&app, &key, "held-1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.count("events").await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no event written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Longer than the hub used to keep looking before it left the write to the poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let ended = tokio::time::Instant::now();
    let message = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Message::Event(event)) = stream.next().await.unwrap().unwrap().message {
                return event;
            }
        }
    })
    .await
    .expect("the event within 2 s of the holding transaction's end, not at the next poll");
    assert!(!message.event_id.is_empty());
    assert!(ended.elapsed() < Duration::from_secs(2));
    drop(holder);
    app.stop().await;
}

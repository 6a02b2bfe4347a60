//! The log's order is one readers can trust: 16 tasks append events concurrently (some of
//! their transactions roll back) while 8 readers keep disconnecting and resuming from their
//! last cursor. Every reader must end with exactly the committed log: same events, same order,
//! no gap, no duplicate.

mod common;

use std::time::Duration;

use diesel_async::AsyncConnection;
use linkstate::domain::event::{EventPayload, EventType, NewEvent};
use linkstate::domain::ids::{ConnectionId, CustomerId};
use linkstate::proto::{self, stream_events_response::Message};
use linkstate::store::{self, StoreError, events};
use linkstate_testing::{TestApp, authed};
use rand::RngExt;
use tokio_stream::StreamExt;

const WRITERS: usize = 16;
const TRANSACTIONS_PER_WRITER: usize = 120;
const READERS: usize = 8;

fn event(connection: ConnectionId) -> NewEvent {
    NewEvent {
        event_type: EventType::BankLinkingAccountsUpdated,
        payload: EventPayload {
            customer_id: Some(CustomerId::generate()),
            connection_id: Some(connection),
            ..EventPayload::default()
        },
    }
}

/// The account's committed events in log order (transaction, then sequence), by id.
async fn committed_log(
    app: &TestApp,
    account_id: linkstate::domain::ids::AccountId,
) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = store::connect(&app.pool).await.unwrap();
    diesel::sql_query(
        "SELECT event_id::text AS id FROM events WHERE account_id = $1 ORDER BY transaction_id, sequence",
    )
    .bind::<diesel::sql_types::Uuid, _>(account_id.0)
    .load::<Row>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.id)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_resuming_anywhere_see_exactly_the_committed_log() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("order").await;
    let connections: Vec<ConnectionId> = (0..300).map(|_| ConnectionId::generate()).collect();

    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (pool, connections) = (app.pool.clone(), connections.clone());
        let hub = app.app.ctx.hub().clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..TRANSACTIONS_PER_WRITER {
                let (count, roll_back, connection, pause) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=3),
                        rng.random_range(0..10) == 0,
                        connections[rng.random_range(0..connections.len())],
                        rng.random_range(0..3),
                    )
                };
                let mut conn = store::connect(&pool).await.unwrap();
                let result = conn
                    .transaction::<_, StoreError, _>(async |conn| {
                        let batch: Vec<NewEvent> = (0..count).map(|_| event(connection)).collect();
                        events::append(conn, account_id, &batch).await?;
                        // Hold the transaction open a moment, so commits interleave.
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        if roll_back {
                            return Err(StoreError::Query(
                                diesel::result::Error::RollbackTransaction,
                            ));
                        }
                        Ok(())
                    })
                    .await;
                assert!(result.is_ok() || roll_back);
                hub.wake();
            }
        }));
    }

    // How many events were committed, once the writers are done (0 until then).
    let target = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let app_events = app.events().await;
        let (key, target) = (key.clone(), target.clone());
        readers.push(tokio::spawn(async move {
            let mut client = app_events;
            let mut seen: Vec<String> = Vec::new();
            let mut cursor = String::new();
            let started = std::time::Instant::now();
            // Reconnect again and again, each time after a random number of messages, until
            // the whole committed log has come (a transaction elsewhere in the cluster, such
            // as a parallel test's CREATE DATABASE, may hold the newest events back a while).
            let done = |seen: &[String]| {
                let committed = target.load(std::sync::atomic::Ordering::SeqCst);
                committed > 0 && seen.len() >= committed
            };
            while !done(&seen) && started.elapsed() < Duration::from_secs(120) {
                let request = proto::StreamEventsRequest {
                    after_cursor: cursor.clone(),
                    from_earliest: cursor.is_empty(),
                    heartbeat_seconds: 1,
                    ..Default::default()
                };
                let mut stream = client
                    .stream_events(authed(&key, request))
                    .await
                    .unwrap()
                    .into_inner();
                let take = rand::rng().random_range(1..200);
                for _ in 0..take {
                    let next = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
                    let Ok(Some(Ok(message))) = next else { break };
                    match message.message {
                        Some(Message::Event(event)) => {
                            cursor = event.cursor.clone();
                            seen.push(event.event_id);
                        }
                        Some(Message::Heartbeat(heartbeat)) => {
                            cursor = heartbeat.cursor;
                            break;
                        }
                        None => {}
                    }
                }
            }
            seen
        }));
    }

    for writer in writers {
        writer.await.unwrap();
    }
    // The committed log, read from the table itself: ListEvents would stop at the horizon,
    // which another test's transaction may hold back.
    let committed = committed_log(&app, account_id).await;
    target.store(committed.len(), std::sync::atomic::Ordering::SeqCst);
    assert!(
        committed.len() > WRITERS * TRANSACTIONS_PER_WRITER,
        "{} events",
        committed.len()
    );
    for reader in readers {
        let seen = reader.await.unwrap();
        assert_eq!(seen.len(), committed.len(), "no gap, no duplicate");
        assert_eq!(seen, committed, "the same order");
    }
    app.stop().await;
}

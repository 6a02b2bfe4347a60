//! Group commit of provider webhooks keeps the contract: a webhook alone is written at once,
//! in a batch of its own; copies inside one batch are recorded once and all answered 200; and
//! when the writer's database connection is killed mid-batch, every request either got 200 and
//! is in the table, or got 503 and is not.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{deliver, wait_until};
use diesel_async::RunQueryDsl;
use linkstate::store;
use linkstate_testing::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A Plaid webhook about `item`, made distinct by `n`.
fn webhook(item: &str, n: usize) -> Value {
    json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "DEFAULT_UPDATE",
        "item_id": item,
        "new_transactions": n,
        "environment": "sandbox",
    })
}

/// (batches, deliveries, largest batch) the process's writer has committed.
fn stats(app: &TestApp) -> (u64, u64, u64) {
    app.app.ctx.webhook_writer().stats().read()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_alone_is_written_at_once_in_a_batch_of_its_own() {
    let app = TestApp::start().await;
    let (status, answer) = deliver(&app, &webhook("item-alone", 1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["duplicate"], false);
    // The writer takes what has queued when it is free and never waits for more: nothing else
    // was queued, so the batch was this one delivery.
    assert_eq!(stats(&app), (1, 1, 1));
    assert_eq!(app.count("webhook_deliveries").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_inside_one_batch_are_recorded_once_and_all_answered_200() {
    let app = Arc::new(TestApp::start().await);
    // Hold the writer's first batch on a table lock, so that what comes meanwhile gathers into
    // the second.
    let mut locker = store::connect(&app.pool).await.unwrap();
    for statement in ["BEGIN", "LOCK TABLE webhook_sources IN EXCLUSIVE MODE"] {
        diesel::sql_query(statement)
            .execute(&mut locker)
            .await
            .unwrap();
    }
    let send = |body: Value| {
        let app = app.clone();
        tokio::spawn(async move { deliver(&app, &body).await })
    };
    let blocker = send(webhook("item-first", 0));
    wait_until(|| async { stats(&app).0 == 1 }).await;
    let copy = webhook("item-copied", 7);
    let copies: Vec<_> = (0..10).map(|_| send(copy.clone())).collect();
    let others: Vec<_> = (0..5)
        .map(|n| send(webhook(&format!("item-{n}"), n)))
        .collect();
    wait_until(|| async { app.app.ctx.webhook_writer().queued() == 15 }).await;
    diesel::sql_query("COMMIT")
        .execute(&mut locker)
        .await
        .unwrap();

    assert_eq!(blocker.await.unwrap().0, StatusCode::OK);
    let mut ids = Vec::new();
    let mut new = 0;
    for copy in copies {
        let (status, answer) = copy.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        ids.push(answer["webhookId"].as_str().unwrap().to_string());
        new += usize::from(answer["duplicate"] == false);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "one delivery: {ids:?}");
    assert_eq!(new, 1, "exactly one copy is the new one");
    for other in others {
        let (status, answer) = other.await.unwrap();
        assert_eq!(
            (status, &answer["duplicate"]),
            (StatusCode::OK, &json!(false))
        );
    }
    assert_eq!(
        app.count("webhook_deliveries WHERE provider_connection_id = 'item-copied'")
            .await,
        1
    );
    assert_eq!(app.count("webhook_deliveries").await, 7);
    assert_eq!(app.count("jobs WHERE kind = 'webhook'").await, 7);
    assert_eq!(
        stats(&app),
        (2, 16, 15),
        "the copies and the others in one batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_batch_loses_no_acknowledged_delivery() {
    const WEBHOOKS: usize = 500;
    const SENDERS: usize = 32;
    let app = Arc::new(TestApp::start().await);
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (app, next) = (app.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= WEBHOOKS {
                        return answers;
                    }
                    let (status, answer) = deliver(&app, &webhook(&format!("item-{n}"), n)).await;
                    answers.push((n, status, answer));
                }
            })
        })
        .collect();
    // Kill the writer's connection inside its batch statement: a table lock holds the
    // statement where a kill surely aborts it (a kill at its very end may let it commit), then
    // the lock is let go and the next batch runs; again until every delivery was taken.
    let killer = {
        let app = app.clone();
        tokio::spawn(async move {
            #[derive(diesel::QueryableByName)]
            struct Killed {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut locker = store::connect(&app.pool).await.unwrap();
            let mut conn = store::connect(&app.pool).await.unwrap();
            let taken = || app.app.ctx.webhook_writer().stats().read().1 >= WEBHOOKS as u64;
            let mut kills = 0;
            while !taken() {
                for statement in ["BEGIN", "LOCK TABLE webhook_sources IN EXCLUSIVE MODE"] {
                    diesel::sql_query(statement)
                        .execute(&mut locker)
                        .await
                        .unwrap();
                }
                while !taken() {
                    let killed = diesel::sql_query(
                        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid() \
                         AND wait_event_type = 'Lock' AND query LIKE 'WITH input AS%'",
                    )
                    .get_result::<Killed>(&mut conn)
                    .await
                    .unwrap();
                    kills += killed.n;
                    if killed.n > 0 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
                diesel::sql_query("COMMIT")
                    .execute(&mut locker)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            kills
        })
    };
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    let kills = killer.await.unwrap();
    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for (n, status, answer) in answers {
        let item = format!("item-{n}");
        let stored = app
            .count(&format!(
                "webhook_deliveries WHERE provider_connection_id = '{item}'"
            ))
            .await;
        match status {
            StatusCode::OK => {
                let id = answer["webhookId"].as_str().unwrap();
                let by_id = app
                    .count(&format!(
                        "webhook_deliveries WHERE id = '{id}' AND provider_connection_id = '{item}'"
                    ))
                    .await;
                assert_eq!((stored, by_id), (1, 1), "{item} was acknowledged");
                acknowledged.push(n);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(stored, 0, "{item} was refused, yet recorded");
                refused.push(n);
            }
            other => panic!("{item}: {other} {answer}"),
        }
    }
    println!(
        "{kills} kills: {} acknowledged, {} refused with 503",
        acknowledged.len(),
        refused.len()
    );
    assert!(
        kills > 0 && !refused.is_empty(),
        "the writer was never killed"
    );
    // The provider retries what was refused: then everything is there, once.
    for n in refused {
        let (status, _) = deliver(&app, &webhook(&format!("item-{n}"), n)).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(app.count("webhook_deliveries").await, WEBHOOKS as i64);
    // Each with its job (the items are unknown, so none is processed within the test).
    assert_eq!(
        app.count("jobs WHERE kind = 'webhook'").await,
        WEBHOOKS as i64
    );
}

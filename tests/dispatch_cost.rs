//! The outbound dispatcher's cost does not grow with the log: each page reads the events after
//! its position, not every retained event before it. A page that rescanned the log from its
//! start held a transaction id for hundreds of milliseconds on a log of a million events, and
//! with it the horizon of every event reader, so live streams lagged behind by as much.
//! Nor does the dispatcher write when the log moved without new events.

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use linkstate::store::{self, outbound_deliveries};
use linkstate_testing::{TestApp, TestDatabase};

/// Events in the log; the dispatcher turns them over in pages of [`PAGE`].
const EVENTS: i64 = 20_000;
const PAGE: i64 = 1_000;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    writer: String,
}

/// The transaction that last wrote the dispatcher's position: each write makes a new version.
async fn position_version(conn: &mut diesel_async::AsyncPgConnection) -> String {
    diesel::sql_query("SELECT xmin::text AS writer FROM outbound_dispatch")
        .get_result::<Version>(conn)
        .await
        .unwrap()
        .writer
}

/// Index entries read through the log's primary key so far, as the statistics count them.
async fn log_index_reads(conn: &mut diesel_async::AsyncPgConnection) -> i64 {
    // This backend's own counts are published at once, not within the next second.
    diesel::sql_query("SELECT pg_stat_force_next_flush()")
        .execute(conn)
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT idx_tup_read AS n FROM pg_stat_user_indexes WHERE indexrelname = 'events_pkey'",
    )
    .get_result::<Count>(conn)
    .await
    .unwrap()
    .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dispatch_page_reads_only_the_events_after_its_position() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 1).unwrap();
    let mut conn = store::connect(&pool).await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO events (event_id, account_id, event_type, version, payload) \
         SELECT gen_random_uuid(), '11111111-1111-1111-1111-111111111111', \
                'BANK_LINKING_CONNECTION_STATUS_CHANGE', '1', '{{}}'::json \
         FROM generate_series(1, {EVENTS})"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // As autovacuum would, so that the plan is the one a live log gets.
    diesel::sql_query("ANALYZE events")
        .execute(&mut conn)
        .await
        .unwrap();

    let before = log_index_reads(&mut conn).await;
    let mut pages = 0;
    while let Some((queued, more)) = outbound_deliveries::dispatch(&mut conn, PAGE)
        .await
        .unwrap()
    {
        // No profile exists, so nothing is queued; the position still moves over every event.
        assert_eq!(queued, 0);
        pages += 1;
        if !more {
            break;
        }
    }
    let read = log_index_reads(&mut conn).await - before;

    assert_eq!(pages, EVENTS / PAGE + 1, "every event was paged over once");
    // Each page reads its own events and at most one more; rescanning from the start would
    // read about EVENTS * pages / 2 = 210,000.
    assert!(
        read <= EVENTS + pages,
        "{read} index entries read to dispatch {EVENTS} events in {pages} pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_does_not_write_when_the_log_moved_without_events() {
    let app = TestApp::start().await;
    let mut conn = store::connect(&app.pool).await.unwrap();
    // Settle: the process's first reads and dispatch are done.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut versions = std::collections::HashSet::from([position_version(&mut conn).await]);

    // 50 transactions that write no event, each followed by a look of the hub: each look
    // finds the horizon moved and hands the dispatcher a batch without events.
    for _ in 0..50 {
        diesel::sql_query("SELECT pg_current_xact_id()")
            .execute(&mut conn)
            .await
            .unwrap();
        app.app.ctx.hub().wake_for_peer();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        versions.insert(position_version(&mut conn).await);
    }
    let writes = versions.len() - 1;

    // Its poll (every 250 ms) still dispatches; 50 batches must not.
    assert!(
        writes <= 3,
        "the dispatcher wrote its position {writes} times for 50 batches without events"
    );
    app.stop().await;
}

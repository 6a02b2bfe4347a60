//! The statements on hot paths stay prepared on their connection: parsed and planned once, one
//! round trip per call after that.

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use linkstate::domain::cursor::Cursor;
use linkstate::domain::event_filter::EventFilter;
use linkstate::domain::ids::{AccountId, ConnectionId};
use linkstate::store::{self, accounts, connections, events, jobs, transactions};
use linkstate_testing::TestDatabase;

#[derive(QueryableByName)]
struct Statement {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
}

/// The statements prepared on `conn`, by their text.
async fn prepared_statements(conn: &mut diesel_async::AsyncPgConnection) -> Vec<String> {
    diesel::sql_query("SELECT statement FROM pg_prepared_statements ORDER BY statement")
        .load::<Statement>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.statement)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_log_and_claiming_jobs_reuse_prepared_statements() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 1).unwrap();
    let mut conn = store::connect(&pool).await.unwrap();
    for _ in 0..3 {
        let filter = EventFilter::default();
        events::read_after(
            &mut conn,
            None,
            Cursor::START,
            &filter,
            events::PageLimit {
                events: 10,
                bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
        jobs::claim(&mut conn, "worker", std::time::Duration::from_secs(30), 4)
            .await
            .unwrap();
    }
    let prepared = prepared_statements(&mut conn).await;
    let count = |needle: &str| prepared.iter().filter(|s| s.contains(needle)).count();
    // Three calls each, one prepared statement each.
    assert_eq!(count("pg_snapshot_xmin"), 1, "{prepared:#?}");
    assert_eq!(count("FROM events WHERE"), 1, "{prepared:#?}");
    assert_eq!(count("UPDATE jobs SET locked_by"), 1, "{prepared:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_reads_reuse_prepared_statements() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 1).unwrap();
    let mut conn = store::connect(&pool).await.unwrap();
    let account = AccountId::generate();
    let connection = ConnectionId::generate();
    for _ in 0..3 {
        accounts::authenticate(&mut conn, b"key hash")
            .await
            .unwrap();
        // Nothing is there to find; the statement runs all the same.
        let _ = connections::get(&mut conn, account, connection).await;
        transactions::list(
            &mut conn,
            account,
            transactions::TransactionScope::Connection(connection),
            &transactions::TransactionQuery::default(),
            100,
        )
        .await
        .unwrap();
    }
    let prepared = prepared_statements(&mut conn).await;
    let count = |needle: &str| prepared.iter().filter(|s| s.contains(needle)).count();
    // Three calls each, one prepared statement each: no call pays a round trip to prepare.
    assert_eq!(count("FROM \"api_keys\""), 1, "{prepared:#?}");
    assert_eq!(
        count("active_duplicate_connection_id = connections.id"),
        1,
        "{prepared:#?}"
    );
    assert_eq!(count("FROM \"transactions\""), 1, "{prepared:#?}");
}

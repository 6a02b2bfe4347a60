//! The job queue's own rules, on a real database: finishing a job, running it once more when it
//! was asked for again while it ran, and a vacuum that never locks the queue to shrink it.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use linkstate::domain::ids::{AccountId, ConnectionId};
use linkstate::jobs::{self, Job};
use linkstate::store::jobs::OnDuplicate;
use linkstate::store::{self, jobs as queue};
use linkstate_testing::TestDatabase;

const WORKER: &str = "worker-1";
const LEASE: Duration = Duration::from_secs(60);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, query: &str) -> i64 {
    diesel::sql_query(query)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_and_one_asked_for_again_while_it_ran_runs_once_more() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 1).unwrap();
    let mut conn = store::connect(&pool).await.unwrap();
    let (account, connection) = (AccountId::generate(), ConnectionId::generate());
    let sync = Job::webhook_sync(account, connection);

    jobs::enqueue(&mut conn, &sync, OnDuplicate::Rerun)
        .await
        .unwrap();
    let claimed = queue::claim(&mut conn, WORKER, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // The same sync is asked for while the claimed one runs: it must run once more.
    jobs::enqueue(&mut conn, &sync, OnDuplicate::Rerun)
        .await
        .unwrap();
    queue::complete(&mut conn, claimed[0].id, WORKER)
        .await
        .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM jobs \
             WHERE NOT rerun AND locked_by IS NULL AND attempts = 0"
        )
        .await,
        1,
        "the job is queued again, unclaimed"
    );

    let again = queue::claim(&mut conn, WORKER, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id);
    queue::complete(&mut conn, again[0].id, WORKER)
        .await
        .unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_leaves_an_emptied_queue_its_pages_instead_of_locking_it_to_shrink() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 1).unwrap();
    let mut conn = store::connect(&pool).await.unwrap();
    for _ in 0..2_000 {
        let job = Job::webhook_sync(AccountId::generate(), ConnectionId::generate());
        jobs::enqueue(&mut conn, &job, OnDuplicate::Skip)
            .await
            .unwrap();
    }
    let claimed = queue::claim(&mut conn, WORKER, LEASE, 2_000).await.unwrap();
    assert_eq!(claimed.len(), 2_000);
    for job in &claimed {
        queue::complete(&mut conn, job.id, WORKER).await.unwrap();
    }
    let size = "SELECT pg_relation_size('jobs') AS n";
    let before = count(&mut conn, size).await;
    assert!(before > 0);

    diesel::sql_query("VACUUM jobs")
        .execute(&mut conn)
        .await
        .unwrap();

    // Giving the empty pages back takes an exclusive lock that stops every claim and enqueue;
    // the queue fills them again soon, so they stay.
    assert_eq!(count(&mut conn, size).await, before);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs").await, 0);
}

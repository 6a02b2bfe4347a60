//! The job queue's own rules, on a real database: finishing a job, running it once more when it
//! was asked for again while it ran, and a vacuum that never locks the queue to shrink it.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use linkstate::domain::ids::{AccountId, ConnectionId};
use linkstate::jobs::{self, Job};
use linkstate::store::jobs::OnDuplicate;
use linkstate::store::{self, jobs as queue};
use linkstate_testing::{TestDatabase, count};

const WORKER: &str = "worker-1";
const LEASE: Duration = Duration::from_secs(60);

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bytes: i64,
}

/// The bytes the job queue's table takes on disk.
async fn queue_size(conn: &mut diesel_async::AsyncPgConnection) -> i64 {
    diesel::sql_query("SELECT pg_relation_size('jobs') AS bytes")
        .get_result::<Size>(conn)
        .await
        .unwrap()
        .bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_and_one_asked_for_again_while_it_ran_runs_once_more() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 2).unwrap();
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
            &pool,
            "jobs WHERE NOT rerun AND locked_by IS NULL AND attempts = 0"
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
    assert_eq!(count(&pool, "jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_leaves_an_emptied_queue_its_pages_instead_of_locking_it_to_shrink() {
    let database = TestDatabase::new().await;
    let pool = store::pool(&database.url, 2).unwrap();
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
    let before = queue_size(&mut conn).await;
    assert!(before > 0);

    diesel::sql_query("VACUUM jobs")
        .execute(&mut conn)
        .await
        .unwrap();

    // Giving the empty pages back takes an exclusive lock that stops every claim and enqueue;
    // the queue fills them again soon, so they stay.
    assert_eq!(queue_size(&mut conn).await, before);
    assert_eq!(count(&pool, "jobs").await, 0);
}

//! The job queue: durable rows claimed with `FOR UPDATE SKIP LOCKED` under a lease.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Interval, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::prepared::prepared;
use super::schema::jobs;

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// What the job does; the worker dispatches on it.
    pub kind: String,
    /// The tenant it is for, if any.
    pub account_id: Option<Uuid>,
    /// The connection it is for, if any.
    pub connection_id: Option<Uuid>,
    /// The job's input.
    pub payload: serde_json::Value,
    /// At most one live job per key.
    pub dedupe_key: Option<String>,
    /// Why it runs, for the jobs that say (aggregations).
    pub trigger: Option<String>,
}

/// What to do when a live job with the same dedupe key exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Leave it: the queued or running job covers this request.
    Skip,
    /// If it is running, make it run once more when it ends, since it may have started before
    /// whatever this request is about.
    Rerun,
}

/// A job claimed by a worker.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct ClaimedJob {
    /// Its id.
    pub id: Uuid,
    /// What it does.
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// How many times it was claimed, this time included.
    pub attempts: i32,
}

/// Enqueues a job; returns false when a live job with the same key made this one unnecessary.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    job: NewJob,
    on_duplicate: OnDuplicate,
) -> Result<bool, StoreError> {
    let insert = diesel::insert_into(jobs::table).values((
        jobs::id.eq(Uuid::now_v7()),
        jobs::kind.eq(job.kind),
        jobs::account_id.eq(job.account_id),
        jobs::connection_id.eq(job.connection_id),
        jobs::payload.eq(job.payload),
        jobs::dedupe_key.eq(job.dedupe_key),
        jobs::trigger.eq(job.trigger),
    ));
    let conflict = insert
        .on_conflict(jobs::dedupe_key)
        .filter_target(jobs::dead_at.is_null());
    let inserted = match on_duplicate {
        OnDuplicate::Skip => conflict.do_nothing().execute(conn).await?,
        OnDuplicate::Rerun => {
            // The existing row is only "updated" (flagged) when it is running right now.
            conflict
                .do_update()
                .set(jobs::rerun.eq(jobs::locked_until.is_not_null()))
                .execute(conn)
                .await?;
            return Ok(true);
        }
    };
    Ok(inserted == 1)
}

/// Claims up to `limit` due jobs for `worker` until the lease ends.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    lease: Duration,
    limit: i32,
) -> Result<Vec<ClaimedJob>, StoreError> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: serde_json::Value,
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    let claimed = prepared(
        diesel::sql_query(
            "UPDATE jobs SET locked_by = $1, locked_until = now() + $2, attempts = attempts + 1 \
         WHERE id IN ( \
             SELECT id FROM jobs \
             WHERE dead_at IS NULL AND run_at <= now() \
               AND (locked_until IS NULL OR locked_until < now()) \
             ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, payload, attempts",
        )
        .bind::<Text, _>(worker)
        .bind::<Interval, _>(pg_interval(lease))
        .bind::<Integer, _>(limit),
    )
    .load::<Claimed>(conn)
    .await?;
    Ok(claimed
        .into_iter()
        .map(|c| ClaimedJob {
            id: c.id,
            kind: c.kind,
            payload: c.payload,
            attempts: c.attempts,
        })
        .collect())
}

/// Finishes a job: deletes it, or, if a request arrived while it ran, queues it once more.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<(), StoreError> {
    let mine = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::locked_by.eq(worker));
    // Most jobs were not asked for again while they ran: one statement finishes them.
    let deleted = diesel::delete(mine.filter(jobs::rerun.eq(false)))
        .execute(conn)
        .await?;
    if deleted == 0 {
        diesel::update(mine.filter(jobs::rerun.eq(true)))
            .set((
                jobs::rerun.eq(false),
                jobs::attempts.eq(0),
                jobs::locked_by.eq(None::<String>),
                jobs::locked_until.eq(None::<DateTime<Utc>>),
                jobs::run_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether the attempt that just ended counts towards burying the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// It failed: it counts.
    Counted,
    /// It could not start (its connection was busy): it is given back.
    NotCounted,
}

/// Gives a job back to run again after `delay`, recording why it did not finish.
pub async fn retry_later(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    delay: Duration,
    error: &str,
    attempt: Attempt,
) -> Result<(), StoreError> {
    let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let given_back = match attempt {
        Attempt::Counted => 0,
        Attempt::NotCounted => 1,
    };
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((
        jobs::run_at.eq(run_at),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<DateTime<Utc>>),
        jobs::last_error.eq(error),
        jobs::attempts.eq(jobs::attempts - given_back),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Extends the leases of the jobs `worker` is running: only those, so that a claim whose answer
/// was lost (the database failed over as it committed) runs out and is claimed again.
pub async fn renew_leases(
    conn: &mut AsyncPgConnection,
    worker: &str,
    running: &[Uuid],
    lease: Duration,
) -> Result<(), StoreError> {
    if running.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE jobs SET locked_until = now() + $2 \
         WHERE locked_by = $1 AND id = ANY($3) AND locked_until IS NOT NULL AND dead_at IS NULL",
    )
    .bind::<Text, _>(worker)
    .bind::<Interval, _>(pg_interval(lease))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(running)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives back every job `worker` holds, to be claimed again at once (by another replica, when
/// this one is stopping); the interrupted attempt does not count. Answers how many.
pub async fn release_all(conn: &mut AsyncPgConnection, worker: &str) -> Result<usize, StoreError> {
    Ok(diesel::update(
        jobs::table
            .filter(jobs::locked_by.eq(worker))
            .filter(jobs::dead_at.is_null()),
    )
    .set((
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<DateTime<Utc>>),
        jobs::attempts.eq(jobs::attempts - 1),
        jobs::run_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?)
}

/// Gives up on a job: it stays in the table, dead, for an operator to look at.
pub async fn bury(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    error: &str,
) -> Result<(), StoreError> {
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((
        jobs::dead_at.eq(diesel::dsl::now),
        jobs::locked_until.eq(None::<DateTime<Utc>>),
        jobs::last_error.eq(error),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Jobs not yet dead, for tests and metrics.
pub async fn live_count(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    Ok(jobs::table
        .filter(jobs::dead_at.is_null())
        .count()
        .get_result(conn)
        .await?)
}

fn pg_interval(duration: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(duration.as_micros() as i64)
}

/// Live jobs of `kind` with this `trigger`.
pub async fn live_count_of(
    conn: &mut AsyncPgConnection,
    kind: &str,
    trigger: &str,
) -> Result<i64, StoreError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = diesel::sql_query(
        "SELECT count(*) AS n FROM jobs \
         WHERE dead_at IS NULL AND kind = $1 AND trigger = $2",
    )
    .bind::<Text, _>(kind)
    .bind::<Text, _>(trigger)
    .get_result::<Count>(conn)
    .await?;
    Ok(count.n)
}

/// Gives the live job with this dedupe key a (possibly new) payload; if it is running, it runs
/// once more when it ends, with that payload. False when no such job is live any more.
pub async fn replace_live_payload(
    conn: &mut AsyncPgConnection,
    dedupe_key: &str,
    payload: serde_json::Value,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        jobs::table
            .filter(jobs::dedupe_key.eq(dedupe_key))
            .filter(jobs::dead_at.is_null()),
    )
    .set((
        jobs::payload.eq(payload),
        jobs::rerun.eq(jobs::locked_until.is_not_null()),
    ))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// The payload of the live job with this dedupe key, if there is one.
pub async fn live_payload(
    conn: &mut AsyncPgConnection,
    dedupe_key: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(jobs::table
        .filter(jobs::dedupe_key.eq(dedupe_key))
        .filter(jobs::dead_at.is_null())
        .select(jobs::payload)
        .first::<serde_json::Value>(conn)
        .await
        .optional()?)
}

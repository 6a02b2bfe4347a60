//! Deliveries of events to webhook profiles: made from the log by one dispatcher, claimed by
//! the senders of any replica, one at a time each, with every attempt recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bytea, Integer, Interval, Json, Jsonb, Nullable, Text, Timestamptz,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::events::StoredEvent;
use super::prepared::prepared;
use super::schema::outbound_deliveries;
use super::webhook_profiles::SealedSecrets;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, Redelivery};
use crate::domain::event::Event;
use crate::domain::ids::{AccountId, DeliveryId, EventId, ProfileId};

/// A delivery row, as lists show it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = outbound_deliveries)]
struct DeliveryRow {
    id: Uuid,
    profile_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempts: serde_json::Value,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("delivery {}: {what}", row.id));
        Ok(Delivery {
            id: DeliveryId(row.id),
            profile_id: ProfileId(row.profile_id),
            event_id: EventId(row.event_id),
            status: row.status.parse().map_err(|_| corrupt("status"))?,
            attempts: serde_json::from_value(row.attempts).map_err(|_| corrupt("attempts"))?,
            event_type: row.event_type,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
        })
    }
}

/// Queues a test webhook with its body, due at once and already held by `held` (a worker and
/// its lease) for the attempt its caller makes now.
pub async fn insert_test(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    profile_id: ProfileId,
    event_id: EventId,
    body: &serde_json::Value,
    held: (&str, Duration),
) -> Result<DeliveryId, StoreError> {
    let (worker, lease) = held;
    let id = DeliveryId::generate();
    diesel::insert_into(outbound_deliveries::table)
        .values((
            outbound_deliveries::id.eq(id.0),
            outbound_deliveries::account_id.eq(account_id.0),
            outbound_deliveries::profile_id.eq(profile_id.0),
            outbound_deliveries::event_id.eq(event_id.0),
            outbound_deliveries::event_type.eq(crate::domain::delivery::WEBHOOK_TEST),
            outbound_deliveries::body.eq(body),
            outbound_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            outbound_deliveries::next_attempt_at.eq(diesel::dsl::now),
            outbound_deliveries::locked_by.eq(worker),
            outbound_deliveries::locked_until.eq(Utc::now() + lease),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// One delivery of the tenant's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: DeliveryId,
) -> Result<Delivery, StoreError> {
    outbound_deliveries::table
        .filter(outbound_deliveries::id.eq(id.0))
        .filter(outbound_deliveries::account_id.eq(account_id.0))
        .select(DeliveryRow::as_select())
        .first::<DeliveryRow>(conn)
        .await?
        .try_into()
}

/// A filter on a profile's deliveries.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// Only this event's.
    pub event_id: Option<EventId>,
    /// Only in these statuses; empty: all.
    pub statuses: Vec<DeliveryStatus>,
}

/// A profile's deliveries before `before` (created_at, id), newest first, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    profile_id: ProfileId,
    filter: &DeliveryFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let mut query = outbound_deliveries::table
        .filter(outbound_deliveries::profile_id.eq(profile_id.0))
        .order((
            outbound_deliveries::created_at.desc(),
            outbound_deliveries::id.desc(),
        ))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(event_id) = filter.event_id {
        query = query.filter(outbound_deliveries::event_id.eq(event_id.0));
    }
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        query = query.filter(outbound_deliveries::status.eq_any(statuses));
    }
    if let Some((at, id)) = before {
        query = query.filter(
            outbound_deliveries::created_at
                .lt(at)
                .or(outbound_deliveries::created_at
                    .eq(at)
                    .and(outbound_deliveries::id.lt(id))),
        );
    }
    query
        .load::<DeliveryRow>(conn)
        .await?
        .into_iter()
        .map(Delivery::try_from)
        .collect()
}

#[derive(QueryableByName)]
struct Dispatched {
    #[diesel(sql_type = BigInt)]
    scanned: i64,
    #[diesel(sql_type = BigInt)]
    queued: i64,
}

/// Turns the settled events after the dispatcher's position (at most `limit` of them) into
/// deliveries for every ACTIVE profile of their account that receives them and was made before
/// them, and moves the position past them. None when another replica is dispatching;
/// otherwise how many deliveries were queued and whether more events may be waiting.
pub async fn dispatch(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Option<(i64, bool)>, StoreError> {
    let outcome = diesel::sql_query(DISPATCH)
        .bind::<BigInt, _>(limit)
        .load::<Dispatched>(conn)
        .await?;
    Ok(outcome
        .into_iter()
        .next()
        .map(|row| (row.queued, row.scanned >= limit)))
}

/// One statement: lock the position (skipping when another replica holds it), page the settled
/// events after it (below the oldest running transaction, as the event readers do, so no later
/// commit lands behind it), queue their deliveries, and move the position; a page with nothing
/// in it moves the position up to that horizon.
const DISPATCH: &str = "\
WITH position AS (
    SELECT transaction_id, sequence FROM outbound_dispatch FOR UPDATE SKIP LOCKED
), horizon AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin
), page AS (
    SELECT e.transaction_id, e.sequence, e.event_id, e.account_id, e.event_type
    FROM events e
    WHERE (e.transaction_id, e.sequence)
          > ((SELECT transaction_id FROM position), (SELECT sequence FROM position))
      AND e.transaction_id < (SELECT xmin FROM horizon)
    ORDER BY e.transaction_id, e.sequence
    LIMIT $1
), queued AS (
    INSERT INTO outbound_deliveries (id, account_id, profile_id, event_id, event_type, status, next_attempt_at)
    SELECT gen_random_uuid(), page.account_id, w.id, page.event_id, page.event_type, 'PENDING', now()
    FROM page JOIN webhook_profiles w ON w.account_id = page.account_id
    WHERE w.status = 'ACTIVE'
      AND (cardinality(w.event_types) = 0 OR page.event_type = ANY (w.event_types))
      AND (page.transaction_id, page.sequence) > (w.start_transaction, w.start_sequence)
    ON CONFLICT (profile_id, event_id) DO NOTHING
    RETURNING 1
), last AS (
    SELECT transaction_id, sequence FROM page ORDER BY transaction_id DESC, sequence DESC LIMIT 1
), moved AS (
    UPDATE outbound_dispatch SET
        transaction_id = COALESCE((SELECT transaction_id FROM last), (SELECT xmin - 1 FROM horizon)),
        sequence = COALESCE((SELECT sequence FROM last), 9223372036854775807)
    WHERE EXISTS (SELECT 1 FROM position)
    RETURNING 1
)
SELECT (SELECT count(*) FROM page) AS scanned, (SELECT count(*) FROM queued) AS queued
FROM position";

/// A claimed delivery as read: the row, its profile's URL and sealed secrets, its event.
#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    profile_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = Nullable<Json>)]
    body: Option<serde_json::Value>,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Integer)]
    round_attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_attempted_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Bytea)]
    secret: Vec<u8>,
    #[diesel(sql_type = Nullable<Bytea>)]
    previous_secret: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    previous_secret_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    event_type: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    event_created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    event_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    event_payload: Option<String>,
}

/// What a claimed delivery sends.
#[derive(Clone, Debug)]
pub enum Content {
    /// A test webhook's own body.
    Body(serde_json::Value),
    /// Its event, to be sent in Meld's envelope.
    Event(Box<Event>),
    /// The event is no longer retained.
    Missing,
    /// The event does not read (a corrupt row): why.
    Unreadable(String),
}

/// A claimed delivery: all its attempt needs, so that the attempt reads nothing more.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The delivery.
    pub id: Uuid,
    /// The profile.
    pub profile_id: ProfileId,
    /// The event (`webhook-id`).
    pub event_id: EventId,
    /// Where it goes.
    pub url: String,
    /// Attempts so far in this round.
    pub round_attempts: i32,
    /// The round's first attempt, if there was one.
    pub first_attempted_at: Option<DateTime<Utc>>,
    /// The last attempt's error, for `Meld-Retry-Reason`.
    pub last_error: Option<String>,
    /// The profile's secrets, still sealed.
    pub secrets: SealedSecrets,
    /// What it sends.
    pub content: Content,
}

impl From<ClaimedRow> for Claimed {
    fn from(row: ClaimedRow) -> Self {
        let content = match (
            row.body,
            row.event_type,
            row.event_created_at,
            row.event_version,
            row.event_payload,
        ) {
            (Some(body), ..) => Content::Body(body),
            (None, Some(event_type), Some(created_at), Some(version), Some(payload)) => {
                let stored = StoredEvent {
                    event_id: row.event_id,
                    account_id: row.account_id,
                    event_type,
                    created_at,
                    version,
                    payload,
                };
                match stored.into_event() {
                    Ok(event) => Content::Event(Box::new(event)),
                    Err(error) => Content::Unreadable(error.to_string()),
                }
            }
            _ => Content::Missing,
        };
        Claimed {
            id: row.id,
            profile_id: ProfileId(row.profile_id),
            event_id: EventId(row.event_id),
            url: row.url,
            round_attempts: row.round_attempts,
            first_attempted_at: row.first_attempted_at,
            last_error: row.last_error,
            secrets: SealedSecrets {
                current: row.secret,
                previous: row.previous_secret,
                previous_until: row.previous_secret_until,
            },
            content,
        }
    }
}

/// What a claim answers for each row it took: the row, its profile's URL and secrets, and
/// its event (none for a test webhook, or once the event is no longer retained).
const CLAIMED: &str = "\
SELECT c.id, c.account_id, c.profile_id, c.event_id, c.body, c.url, c.round_attempts,
       c.first_attempted_at, c.last_error, c.secret, c.previous_secret, c.previous_secret_until,
       e.event_type, e.created_at AS event_created_at, e.version AS event_version,
       e.payload::text AS event_payload
FROM claimed c LEFT JOIN events e ON e.event_id = c.event_id AND e.account_id = c.account_id";

/// The columns a claim's UPDATE returns.
const CLAIM_RETURNING: &str = "RETURNING d.id, d.account_id, d.profile_id, d.event_id, d.body, \
     w.url, d.round_attempts, d.first_attempted_at, d.last_error, w.secret, w.previous_secret, \
     w.previous_secret_until";

/// Claims up to `limit` due deliveries for `worker` for `lease`, at most `per_profile` held at
/// once for any one profile (counting what every replica holds), oldest due first. A row
/// another claimer took in between is skipped: the outer WHERE is checked again on it.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    lease: Duration,
    limit: i64,
    per_profile: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let query = format!("{CLAIM} {CLAIM_RETURNING}) {CLAIMED}");
    let query = diesel::sql_query(query)
        .bind::<Text, _>(worker)
        .bind::<Interval, _>(pg_interval(lease))
        .bind::<BigInt, _>(per_profile)
        .bind::<BigInt, _>(limit);
    let rows = prepared(query).load::<ClaimedRow>(conn).await?;
    Ok(rows.into_iter().map(Claimed::from).collect())
}

const CLAIM: &str = "\
WITH held AS (
    SELECT profile_id, count(*) AS n FROM outbound_deliveries
    WHERE locked_until IS NOT NULL AND locked_until > now() AND status IN ('PENDING', 'RETRYING')
    GROUP BY profile_id
), candidates AS (
    -- Each ACTIVE profile's own oldest due rows, by its index: a profile with a long queue
    -- (a dead endpoint) cannot crowd the others out of a claim.
    SELECT c.id, c.profile_id, c.next_attempt_at FROM webhook_profiles w
    CROSS JOIN LATERAL (
        SELECT d.id, d.profile_id, d.next_attempt_at FROM outbound_deliveries d
        WHERE d.profile_id = w.id AND d.status IN ('PENDING', 'RETRYING')
          AND d.next_attempt_at <= now()
          AND (d.locked_until IS NULL OR d.locked_until <= now())
        ORDER BY d.next_attempt_at
        LIMIT $3
    ) c
    WHERE w.status = 'ACTIVE'
), due AS (
    SELECT c.id, c.next_attempt_at,
           row_number() OVER (PARTITION BY c.profile_id ORDER BY c.next_attempt_at, c.id) AS rank,
           COALESCE(h.n, 0) AS held
    FROM candidates c LEFT JOIN held h USING (profile_id)
), chosen AS (
    SELECT id FROM due WHERE rank + held <= $3 ORDER BY next_attempt_at, id LIMIT $4
), claimed AS (
UPDATE outbound_deliveries d SET locked_by = $1, locked_until = now() + $2
FROM webhook_profiles w
WHERE d.id IN (SELECT id FROM chosen) AND w.id = d.profile_id
  AND d.status IN ('PENDING', 'RETRYING') AND (d.locked_until IS NULL OR d.locked_until <= now())";

/// A std duration as a PostgreSQL interval.
fn pg_interval(duration: Duration) -> diesel::pg::data_types::PgInterval {
    diesel::pg::data_types::PgInterval::from_microseconds(duration.as_micros() as i64)
}

/// What an attempt leads to, as stored.
#[derive(Clone, Copy, Debug)]
pub struct AfterAttempt {
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// When it is due again (RETRYING).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The round's first attempt.
    pub first_attempted_at: DateTime<Utc>,
}

/// An attempt of a delivery, with what follows it, to be recorded.
#[derive(Debug)]
pub struct Recorded {
    /// The delivery.
    pub id: Uuid,
    /// The attempt.
    pub attempt: Attempt,
    /// Its consequence.
    pub after: AfterAttempt,
}

/// Records attempts of deliveries `worker` holds, in one statement; answers how many were
/// recorded (a delivery whose claim was lost, to another replica or a stopped profile, is not).
pub async fn record_attempts(
    conn: &mut AsyncPgConnection,
    worker: &str,
    recorded: &[&Recorded],
) -> Result<usize, StoreError> {
    let ids: Vec<Uuid> = recorded.iter().map(|r| r.id).collect();
    let attempts: Vec<serde_json::Value> = recorded
        .iter()
        .map(|r| serde_json::to_value(&r.attempt).expect("attempts serialize"))
        .collect();
    let statuses: Vec<&str> = recorded.iter().map(|r| r.after.status.as_str()).collect();
    let next: Vec<Option<DateTime<Utc>>> =
        recorded.iter().map(|r| r.after.next_attempt_at).collect();
    let first: Vec<DateTime<Utc>> = recorded
        .iter()
        .map(|r| r.after.first_attempted_at)
        .collect();
    let updated = diesel::sql_query(
        "UPDATE outbound_deliveries d SET attempts = d.attempts || jsonb_build_array(v.attempt), \
         status = v.status, next_attempt_at = v.next_at, first_attempted_at = v.first_at, \
         round_attempts = d.round_attempts + 1, last_error = v.attempt->>'error', \
         locked_by = NULL, locked_until = NULL \
         FROM unnest($2::uuid[], $3::jsonb[], $4::text[], $5::timestamptz[], $6::timestamptz[]) \
              AS v(id, attempt, status, next_at, first_at) \
         WHERE d.id = v.id AND d.locked_by = $1 AND d.status IN ('PENDING', 'RETRYING')",
    )
    .bind::<Text, _>(worker)
    .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<Array<Jsonb>, _>(attempts)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Nullable<Timestamptz>>, _>(next)
    .bind::<Array<Timestamptz>, _>(first);
    Ok(prepared(updated).execute(conn).await?)
}

/// Gives back what `worker` holds without an attempt (shutdown), due at once.
pub async fn release(conn: &mut AsyncPgConnection, worker: &str) -> Result<(), StoreError> {
    diesel::update(outbound_deliveries::table.filter(outbound_deliveries::locked_by.eq(worker)))
        .set((
            outbound_deliveries::locked_by.eq(None::<String>),
            outbound_deliveries::locked_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Fails every pending delivery of a profile (it was disabled by its endpoint).
pub async fn stop_profile(
    conn: &mut AsyncPgConnection,
    profile_id: ProfileId,
) -> Result<(), StoreError> {
    diesel::update(
        outbound_deliveries::table
            .filter(outbound_deliveries::profile_id.eq(profile_id.0))
            .filter(outbound_deliveries::status.eq_any(["PENDING", "RETRYING"])),
    )
    .set((
        outbound_deliveries::status.eq(DeliveryStatus::Failed.as_str()),
        outbound_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues events of the tenant's to a profile again: each gets a new round, due now (a
/// delivery it never had is made). With `only_failed`, only FAILED deliveries are. Answers how
/// many were queued.
pub async fn redeliver(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    profile_id: ProfileId,
    which: &Redelivery,
    only_failed: bool,
) -> Result<i64, StoreError> {
    let ids: Option<Vec<Uuid>> = match which {
        Redelivery::Events(ids) => Some(ids.iter().map(|id| id.0).collect()),
        Redelivery::Range { .. } => None,
    };
    let (since, until) = match which {
        Redelivery::Range { since, until } => (Some(*since), Some(*until)),
        Redelivery::Events(_) => (None, None),
    };
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count = diesel::sql_query(REDELIVER)
        .bind::<diesel::sql_types::Uuid, _>(account_id.0)
        .bind::<diesel::sql_types::Uuid, _>(profile_id.0)
        .bind::<Nullable<Array<diesel::sql_types::Uuid>>, _>(ids)
        .bind::<Nullable<Timestamptz>, _>(since)
        .bind::<Nullable<Timestamptz>, _>(until)
        .bind::<diesel::sql_types::Bool, _>(only_failed)
        .get_result::<Count>(conn)
        .await?;
    Ok(count.n)
}

/// By ids: any of the tenant's events named. By range: those the profile receives by type.
/// Only-failed touches existing FAILED deliveries only.
const REDELIVER: &str = "\
WITH chosen AS (
    SELECT e.event_id, e.event_type FROM events e, webhook_profiles w
    WHERE w.id = $2 AND w.account_id = $1 AND e.account_id = $1
      AND (($3::uuid[] IS NOT NULL AND e.event_id = ANY ($3))
        OR ($3::uuid[] IS NULL AND e.created_at >= $4 AND e.created_at < $5
            AND (cardinality(w.event_types) = 0 OR e.event_type = ANY (w.event_types))))
), queued AS (
    INSERT INTO outbound_deliveries (id, account_id, profile_id, event_id, event_type, status, next_attempt_at)
    SELECT gen_random_uuid(), $1, $2, c.event_id, c.event_type, 'PENDING', now()
    FROM chosen c
    WHERE NOT $6 OR EXISTS (
        SELECT 1 FROM outbound_deliveries d
        WHERE d.profile_id = $2 AND d.event_id = c.event_id AND d.status = 'FAILED')
    ON CONFLICT (profile_id, event_id) DO UPDATE SET
        status = 'PENDING', next_attempt_at = now(), first_attempted_at = NULL,
        round_attempts = 0, last_error = NULL
    WHERE NOT $6 OR outbound_deliveries.status = 'FAILED'
    RETURNING 1
)
SELECT count(*) AS n FROM queued";

/// Claims one delivery by id for `worker`, if it is due or pending and nobody else holds it.
pub async fn claim_one(
    conn: &mut AsyncPgConnection,
    id: DeliveryId,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, StoreError> {
    let query = format!(
        "WITH claimed AS (UPDATE outbound_deliveries d SET locked_by = $2, \
         locked_until = now() + $3 FROM webhook_profiles w \
         WHERE d.id = $1 AND w.id = d.profile_id AND d.status IN ('PENDING', 'RETRYING') \
           AND (d.locked_until IS NULL OR d.locked_until <= now() OR d.locked_by = $2) \
         {CLAIM_RETURNING}) {CLAIMED}"
    );
    let rows = diesel::sql_query(query)
        .bind::<diesel::sql_types::Uuid, _>(id.0)
        .bind::<Text, _>(worker)
        .bind::<Interval, _>(pg_interval(lease))
        .load::<ClaimedRow>(conn)
        .await?;
    Ok(rows.into_iter().next().map(Claimed::from))
}

/// Each profile with deliveries not yet sent, and the age in seconds of its oldest one.
pub async fn oldest_pending(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(ProfileId, f64)>, StoreError> {
    #[derive(QueryableByName)]
    struct Age {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        profile_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Double)]
        seconds: f64,
    }
    let ages = diesel::sql_query(
        "SELECT profile_id, extract(epoch FROM now() - min(created_at))::float8 AS seconds \
         FROM outbound_deliveries WHERE status IN ('PENDING', 'RETRYING') GROUP BY profile_id",
    )
    .load::<Age>(conn)
    .await?;
    Ok(ages
        .into_iter()
        .map(|age| (ProfileId(age.profile_id), age.seconds))
        .collect())
}
